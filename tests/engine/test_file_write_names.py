"""`file write` names a file from the deal's values: `name = "pacs008-{ref}-{who}.xml"` on the channel,
`name { ref = msg.ref  who = ... }` on the call.  A real route end to end: two deals, two files named
from their references; a bad value (a '/') fails its deal, nothing is written outside dir, the reason
names the channel, the field and the place of its value, masked when the value is classified, and the
request goes to the dead letters."""
from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import orjson

from dsl.load import compile_paths
from engine.channels.file_names import NameValues
from engine.channels.file_write import FileWriter
from engine.registry import default_registry
from kit import Client, compile_text, deals, running

ROUTE = '''
format Remit = json classify ["payee:personal"]
format Ack = json
format Written = json

channel front = tcp listen {
    address = "127.0.0.1:0"
}

channel remit_out = file write {
    dir   = "out"
    name  = "pacs008-{ref}-{who}.xml"
    fsync = false
}

route remit {
    receive from front as Remit
    deal REMIT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = remit_out as Remit reply Written {
        ref    = msg.ref
        amount = msg.amount
    } name { ref = msg.ref  who = upper(msg.payee) }
    reply Ack { ref = msg.ref  file = w.file }
    on error reply Ack { ref = msg.ref  file = error.code }
}
'''


async def test_two_deals_two_files_named_from_their_refs_and_a_bad_name_to_dead_letters(tmp_path: Path, caplog) -> None:
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "l.duckdb"
    sent = [{"ref": "R1", "amount": 1.5, "payee": "ann"}, {"ref": "R2", "amount": 2, "payee": "bob"},
            {"ref": "R3", "amount": 3, "payee": "eve/../../x"}]
    with caplog.at_level(logging.INFO):
        async with running(prog, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            for m in sent:
                await c.send(orjson.dumps(m))
            replies = await c.recv_json(3)
            await c.aclose()
    assert [r["file"] for r in replies] == ["pacs008-R1-ANN.xml", "pacs008-R2-BOB.xml", "96"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pacs008-R1-ANN.xml", "pacs008-R2-BOB.xml"]
    assert orjson.loads((tmp_path / "out" / "pacs008-R1-ANN.xml").read_bytes())["ref"] == "R1"
    # nowhere, not even where "../../" pointed (the other tests' folders are there too: match this route's names)
    assert not list(tmp_path.parent.rglob("pacs008-R3*")) and not list(tmp_path.parent.rglob("*pacs008*.tmp"))
    rows = {d["reference"]: d for d in deals(ledger)}
    assert rows["R1"]["status"] == rows["R2"]["status"] == "committed"
    bad = rows["R3"]
    assert bad["status"] == "failed"
    reason = bad["reason"]
    assert "channel remit_out: file name value {who} = 'E***' contains '/'" in reason, reason
    assert "(name { who = ... } at " in reason and "test.route:" in reason
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        letters = con.execute("SELECT reason FROM dead_letters").fetchall()
    finally:
        con.close()
    assert len(letters) == 1 and "{who} = 'E***' contains '/'" in letters[0][0]
    for text in [reason, letters[0][0], caplog.text]:
        assert "EVE" not in text and "eve/" not in text


def test_bsp_check_names_an_unknown_or_missing_value_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    bad = ROUTE.replace("name { ref = msg.ref  who = upper(msg.payee) }", "name { reff = msg.ref }")
    (tmp_path / "r.route").write_text(bad)
    res = compile_paths([tmp_path / "r.route"], default_registry())
    got = [(d.code, d.pos.line, d.pos.col, d.message, d.help) for d in res.diagnostics if d.severity == "error"]
    assert [g[:3] for g in got] == [("E104", 22, 7), ("E104", 22, 14)], got
    assert "uses {ref}, {who}, which this call does not give" in got[0][3]
    assert "unknown file name value `reff`" in got[1][3]
    assert got[1][4] == "write `ref` instead, or add {reff} to the channel's name if the file is named by it"


def test_e104_help_for_an_unknown_value_is_one_sentence(tmp_path: Path) -> None:
    """Nothing close: the help lists the fields the name has, in one sentence (no "?;")."""
    (tmp_path / "out").mkdir()
    bad = ROUTE.replace("name { ref = msg.ref  who = upper(msg.payee) }",
                        "name { ref = msg.ref  who = msg.payee  branch = \"B1\" }")
    (tmp_path / "r.route").write_text(bad)
    res = compile_paths([tmp_path / "r.route"], default_registry())
    got = [(d.code, d.message, d.help) for d in res.diagnostics if d.severity == "error"]
    assert got == [("E104", "unknown file name value `branch`: the name of channel `remit_out` "
                            "('pacs008-{ref}-{who}.xml') has no {branch}",
                    "write one of the fields the channel's name has ({ref}, {who}), or add {branch} to the "
                    "channel's name")], got


async def test_the_channel_refuses_a_bad_value_itself_and_writes_nothing(tmp_path: Path) -> None:
    w = FileWriter("o", {"dir": str(tmp_path / "out"), "name": "R-{ref}.csv", "fsync": False})
    await w.run()
    values = [NameValues({"ref": v}, {"ref": "*"}) for v in ("ok", "..", "", "a\\b", "x\x00", "y" * 300)]
    got = await w.request_many([b"1"] * len(values), names=values)
    assert orjson.loads(got[0])["file"] == "R-ok.csv"
    assert [str(g).split(": ", 1)[1][:30] for g in got[1:]] == [
        "file name value {ref} = '*' is", "file name value {ref} = '*' is",
        "file name value {ref} = '*' co", "file name value {ref} = '*' co", "file name 'R-*.csv' (from {ref"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["R-ok.csv"]
    a = FileWriter("o", {"dir": str(tmp_path / "res"), "name": "RESULT-{source}", "mode": "append",
                         "fsync": False})
    await a.run()
    got = await a.request_many([b"l1", b"l2", b"l3"], names=[NameValues({"source": s}) for s in ("A.csv", "B.csv", "A.csv")])
    assert [orjson.loads(g)["file"] for g in got] == ["RESULT-A.csv", "RESULT-B.csv", "RESULT-A.csv"]
    assert (tmp_path / "res" / "RESULT-A.csv").read_text() == "l1\nl3\n"


def test_a_capture_keeps_each_calls_name_values_and_a_replay_finds_a_changed_name(tmp_path: Path) -> None:
    """Record the route (two good deals, one bad name), replay it: the same configuration names the same
    files (no difference); a candidate that names them otherwise differs in `file name {ref}`."""
    import trio

    from engine.ledger import open_ledger
    from engine.replay.session import replay_file
    from engine.replay.tap import recording
    from engine.runtime import Switchboard

    (tmp_path / "out").mkdir()
    route = tmp_path / "test.route"
    route.write_text(ROUTE)
    registry = default_registry()
    program = compile_paths([route], registry).program
    cap = tmp_path / "cap.duckdb"
    with recording(program, registry, cap) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp_path / "l.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    c = await Client.open(sb.channel("front").port)
                    for m in ({"ref": "R1", "amount": 1, "payee": "ann"}, {"ref": "R2", "amount": 2, "payee": "bob"},
                              {"ref": "R3", "amount": 3, "payee": "e/ve"}):
                        await c.send(orjson.dumps(m))
                    await c.recv(3)
                    await c.aclose()
                    sb.drain()

        trio.run(main)
    con = duckdb.connect(str(cap), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT names FROM frames WHERE names IS NOT NULL ORDER BY t_ms").fetchall()]
    finally:
        con.close()
    assert sorted(orjson.loads(n)["ref"] for n in names) == ["R1", "R2"], names      # the bad one was never sent
    same = replay_file(cap, [route], registry).summary()
    assert same["exchanges"] == 3 and same["unexpected_differences"] == 0, same
    other = tmp_path / "cand"
    (other / "out").mkdir(parents=True)
    (other / "test.route").write_text(ROUTE.replace("name { ref = msg.ref ", 'name { ref = "X" + msg.ref '))
    report = replay_file(cap, [other / "test.route"], registry)
    diffs = {(d.channel, d.field, d.recorded, d.produced) for d in report.diff.unexpected}
    assert diffs == {("remit_out", "file name {ref}", "R1", "XR1"), ("remit_out", "file name {ref}", "R2", "XR2")}, diffs


def test_a_masked_capture_masks_a_name_value_built_from_a_classified_field(tmp_path: Path) -> None:
    """`bsp run --record --mask`: `who = upper(msg.payee)` (payee personal) is "ANN", a text the request
    does not hold; it is masked whole in `frames.names` as bsp check found it classified, not kept in clear."""
    import trio

    from engine.ledger import open_ledger
    from engine.replay.tap import recording
    from engine.runtime import Switchboard

    (tmp_path / "out").mkdir()
    route = tmp_path / "test.route"
    route.write_text(ROUTE)
    registry = default_registry()
    program = compile_paths([route], registry).program
    cap = tmp_path / "cap.duckdb"
    with recording(program, registry, cap, mask=True) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp_path / "l.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    c = await Client.open(sb.channel("front").port)
                    await c.send(orjson.dumps({"ref": "R1", "amount": 1, "payee": "annabel"}))
                    await c.recv(1)
                    await c.aclose()
                    sb.drain()

        trio.run(main)
    con = duckdb.connect(str(cap), read_only=True)
    try:
        (names,) = [orjson.loads(r[0]) for r in con.execute("SELECT names FROM frames WHERE names IS NOT NULL").fetchall()]
        frames = [bytes(r[0]) for r in con.execute("SELECT raw FROM frames ORDER BY seq").fetchall()]
    finally:
        con.close()
    assert names == {"ref": "R1", "who": "A***"}, names
    # and in the frames after the call: the channel's answer and the reply that copies w.file
    assert len(frames) == 4 and not [f for f in frames if b"ANNABEL" in f or b"annabel" in f], frames
    assert sum(b'"pacs008-R1-A***.xml"' in f for f in frames) == 2, frames


def _record(tmp_path: Path, sent: list[dict]) -> Path:
    import trio

    from engine.ledger import open_ledger
    from engine.replay.tap import recording
    from engine.runtime import Switchboard

    (tmp_path / "out").mkdir(exist_ok=True)
    route = tmp_path / "test.route"
    route.write_text(ROUTE)
    registry = default_registry()
    program = compile_paths([route], registry).program
    cap = tmp_path / "cap.duckdb"
    with recording(program, registry, cap) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp_path / "l.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    c = await Client.open(sb.channel("front").port)
                    for m in sent:
                        await c.send(orjson.dumps(m))
                    await c.recv(len(sent))
                    await c.aclose()
                    sb.drain()

        trio.run(main)
    return cap


def test_to_tests_writes_each_calls_name_values_masked_and_the_tests_pass(tmp_path: Path) -> None:
    """`bsp replay --to-tests`: each `expect call remit_out` has a `name { ... }` with the values the call gave;
    `who = upper(msg.payee)` (payee personal) is masked as the request's payee is (the test's route makes the
    same mask from it), `--no-mask` writes it as recorded; the tests written pass."""
    from engine.replay.capture import Capture
    from engine.replay.guide import FormatGuide
    from engine.replay.profile import Profile
    from engine.replay.totests import write_tests
    from engine.routetest.runner import run_paths
    from engine.runtime.binder import Binder

    cap = _record(tmp_path, [{"ref": "R1", "amount": 1, "payee": "annabel"}, {"ref": "R2", "amount": 2, "payee": "bobby"}])
    registry = default_registry()
    route = tmp_path / "test.route"
    program = compile_paths([route], registry).program
    guide = FormatGuide(program, Binder(program, registry).codec)
    masked = write_tests(Capture(cap), program, guide, tmp_path / "gen", [route], Profile())
    clear = write_tests(Capture(cap), program, guide, tmp_path / "gen_clear", [route], Profile(), mask=False)
    text, text_clear = masked.path.read_text(), clear.path.read_text()
    assert masked.written == clear.written == 2, (masked.skipped, clear.skipped)
    names = [line.split("} name ")[1] for line in text.splitlines() if line.startswith("    } name ")]
    assert sorted(names) == ['{ ref = "R1"  who = "A***" }', '{ ref = "R2"  who = "B***" }'], text
    assert "ANNABEL" not in text and "annabel" not in text and "BOBBY" not in text
    assert text.count('file = "pacs008-R1-A***.xml"') == 2, text     # the answer, and the reply copying w.file
    assert 'name { ref = "R1"  who = "ANNABEL" }' in text_clear, text_clear
    for path in (masked.path, clear.path):
        ran = run_paths([path], registry)
        assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
        assert [o.passed for o in ran.outcomes] == [True, True], [f for o in ran.outcomes for f in o.failures]
    # a profile that ignores a name value leaves it out
    prof = tmp_path / "p.yaml"
    prof.write_text('ignore:\n  - channel: remit_out\n    what: call\n    field: "file name {who}"\n')
    from engine.replay.profile import load_profile
    less = write_tests(Capture(cap), program, guide, tmp_path / "gen_less", [route], load_profile(prof))
    assert "} name { ref = \"R1\" }" in less.path.read_text(), less.path.read_text()
