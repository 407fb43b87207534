"""A plugin written from docs/plugins.md alone (tests/plugin_line, distribution bsp-linebank): a call
channel (`line connect`: one request per line, one answer per line, over TCP), a format (`piperec`: a
header word, the fields, a trailer checksum) and a step with side effects and an undo (`earmark`).  One
route uses all three against a line counterpart on a real loopback socket.

What it covers beyond tests/plugin_kv: a plugin's *connect* channel (its ``Unreachable`` /
``ConnectionLost`` / ``CallTimeout`` answers, the call's timeout reaching ``request_many``), and a
compensable plugin step before a call that fails: refused -> undone; left in doubt -> kept and flagged
under ``on doubt flag`` (the default), undone under ``on doubt compensate``; a ``readonly`` call that
times out -> undone, not flagged (docs/transactions.md)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import duckdb
import pytest
import trio
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app as bsp_app
from engine.registry import default_registry
from kit import REPO, deals, running
from pluginkit import on_path

ROUTE = REPO / "tests" / "plugin_line" / "routes" / "pay.route"
PLUGIN = "plugin bsp-linebank 0.1.0 (entry point linebank = bsp_linebank:register)"


@pytest.fixture
def linebank(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(("plugin_line",), tmp_path_factory, monkeypatch)


def pipe(header: str, *fields: str) -> bytes:
    from bsp_linebank.piperec import checksum
    body = "|".join((header,) + fields).encode()
    return body + b"|TRL|" + checksum(body).encode()


async def core(nursery: trio.Nursery, seen: list) -> int:
    """The line counterpart.  By the reference: R* refuses the BOOK, T* never answers it, Q* never
    answers the ENQ; anything else is OK."""
    async def conn(stream: trio.SocketStream) -> None:
        buf = b""
        async with stream:
            while data := await stream.receive_some(4096):
                buf += data
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    head, ref = line.decode().split("|")[:2]
                    seen.append((head, ref))
                    if (head, ref[0]) in (("BOOK", "T"), ("ENQ", "Q")):
                        continue
                    status = "NO" if (head, ref[0]) == ("BOOK", "R") else "OK"
                    await stream.send_all(pipe("RSP", ref, status, "B-" + ref) + b"\n")

    listeners = await nursery.start(partial(trio.serve_tcp, conn, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def events(ledger: Path, deal_id: str) -> list[str]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                          [deal_id]).fetchall()]
    finally:
        con.close()


async def serve(route: Path, ledger: Path, requests: list[bytes], lose: str = "") -> tuple[list[bytes], list]:
    from bsp_linebank.earmark import BOOK
    reg = default_registry()
    res = compile_paths([route], reg)
    assert res.program is not None, res.diagnostics
    seen: list = []
    answers: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await core(nursery, seen)
        over = {"teller": {"address": "127.0.0.1:0"}, "core": {"address": f"127.0.0.1:{port}"}}
        async with running(res.program, ledger, registry=reg, overrides=over) as sb:
            stream = await trio.open_tcp_stream("127.0.0.1", sb.channel("teller").port)
            buf = b""
            for req in requests:
                BOOK.lose_answer = 1 if lose and lose.encode() in req else 0
                await stream.send_all(req + b"\n")
                with trio.fail_after(10):
                    while b"\n" not in buf:
                        buf += await stream.receive_some(4096)
                line, _, buf = buf.partition(b"\n")
                answers.append(line)
            await stream.aclose()
        nursery.cancel_scope.cancel()
    return answers, seen


async def test_the_three_kinds_in_one_route_over_loopback(linebank: Path, tmp_path: Path) -> None:
    from bsp_linebank.earmark import BOOK
    BOOK.marks.clear()
    BOOK.lifted.clear()
    ledger = tmp_path / "l.duckdb"
    refs = ("P1", "R2", "T3", "Q4", "E5")
    answers, seen = await serve(ROUTE, ledger, [pipe("PAY", r, "ACC1", "10.25") for r in refs]
                                + [b"PAY|X6|ACC1|1|TRL|00"], lose="E5")
    assert answers == [pipe("ANS", "P1", "00", "", "E-P1"), pipe("ANS", "", "05", "refused by counterpart", ""),
                       pipe("ANS", "", "68", "no reply from counterpart", ""),
                       pipe("ANS", "", "68", "no reply from counterpart", ""),
                       pipe("ANS", "", "96", "outcome unknown", ""), pipe("ANS", "", "30", "malformed request", "")]
    # the counterpart saw each line once; E5's earmark failed before any call
    assert seen == [("ENQ", "P1"), ("BOOK", "P1"), ("ENQ", "R2"), ("BOOK", "R2"), ("ENQ", "T3"), ("BOOK", "T3"),
                    ("ENQ", "Q4")]
    # P1 done; T3's booking may have gone through: its earmark is kept (on doubt flag); the others lifted
    assert set(BOOK.marks) == {"P1", "T3"} and sorted(BOOK.lifted) == ["E5", "Q4", "R2"]
    by_ref = {d["reference"]: d for d in deals(ledger)}
    ev = {r: events(ledger, by_ref[r]["deal_id"]) for r in refs}
    assert by_ref["P1"]["status"] == "committed"
    assert "compensated 2:earmark" in ev["R2"] and "flagged" not in ev["R2"]
    assert "compensated 2:earmark" not in ev["T3"] and "flagged" in ev["T3"]
    assert "so step 2:earmark is kept, not undone (on doubt flag)" in by_ref["T3"]["reason"]
    assert "within 0.5s" in by_ref["T3"]["reason"]           # the channel's `timeout` option, as a Decimal
    assert "compensated 2:earmark" in ev["Q4"] and "flagged" not in ev["Q4"]     # readonly: never in doubt
    assert by_ref["E5"]["reason"].startswith("in_doubt: ConnectionError: earmark system went away before it "
                                             f"answered (step kind earmark, from {PLUGIN})")
    assert "compensated 2:earmark" in ev["E5"]
    (bad,) = [d for d in deals(ledger) if d["status"] == "rejected"]
    assert "checksum b'00' does not match the record (15)" in bad["reason"]


async def test_on_doubt_compensate_lifts_the_earmark_before_a_call_in_doubt(linebank: Path, tmp_path: Path) -> None:
    from bsp_linebank.earmark import BOOK
    BOOK.marks.clear()
    route = tmp_path / "pay.route"
    route.write_text(ROUTE.read_text().replace("    receive from teller as Pay\n",
                                               "    receive from teller as Pay\n    on doubt compensate\n"))
    ledger = tmp_path / "l.duckdb"
    answers, _ = await serve(route, ledger, [pipe("PAY", "T7", "ACC1", "1")])
    assert answers == [pipe("ANS", "", "68", "no reply from counterpart", "")]
    assert BOOK.marks == {}
    (d,) = deals(ledger)
    assert "compensated 2:earmark" in events(ledger, d["deal_id"]) and "flagged" in events(ledger, d["deal_id"])


def test_check_and_docs_know_the_kinds(linebank: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(bsp_app, ["check", str(ROUTE)])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.route"
    bad.write_text(ROUTE.read_text().replace("    address = \"127.0.0.1:7502\"", "    adress = \"127.0.0.1:7502\"")
                   .replace("account = msg.account  amount", "acount = msg.account  amount", 1))
    res = CliRunner().invoke(bsp_app, ["check", str(bad)])
    assert res.exit_code != 0
    assert "error[E043]: unknown option `adress` for channel `core` (line connect)" in res.output
    assert "help: did you mean `address`?" in res.output
    assert "error[E043]: unknown option `acount` for step `earmark`" in res.output
    out = CliRunner().invoke(bsp_app, ["docs", "components"]).output
    for kind in ("### `line.connect`", "### `piperec`", "### `earmark`"):
        assert f"From {PLUGIN}." in out.split(kind)[1].split("### ")[0], kind
