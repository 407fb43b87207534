"""A capture stores who sent each request (frames.peer, the peer.* a tcp listen channel authenticated over
mutual TLS): a replay gives it back, so a deal key built from peer.cn is the same and two partners sending
the same request id replay as they ran (no difference); a capture of before the column still reads, with
peer.* null; `--to-tests` writes the peer as the test's `peer { ... }` clause, and the written tests pass."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import trio

from engine.certs import new_ca
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture, CaptureError
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.session import replay_file
from engine.replay.tap import recording
from engine.replay.totests import write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from dsl.load import compile_paths
from engine.tls import client_context
from formats.framing import LengthPrefixFramer


def compile_text(d: Path, text: str, name: str) -> object:
    (d / name).write_text(text)
    res = compile_paths([d / name], default_registry())
    assert res.program is not None, res.diagnostics
    return res.program


async def ask(port: int, ctx: object, body: bytes) -> None:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    rx = LengthPrefixFramer(2)
    await stream.send_all(LengthPrefixFramer(2).frame(body))
    while not rx.feed(await stream.receive_some(65536)):
        pass
    await stream.aclose()


ROUTE = '''
format Req = json
channel partners = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    cert = "server.pem"
    key = "server.key"
    ca = "ca.pem"
    client_cert = "required"
    allow = ["cn:PARTNER-A", "cn:PARTNER-B"]
}
route book {
    receive from partners as Req
    deal ORDER { ref = msg.request_id  amount = msg.amount  key = peer.cn + "/" + msg.request_id }
    reply Req { request_id = msg.request_id  n = msg.n  partner = peer.cn }
}
'''


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("peer")
    ca = new_ca("partners CA")
    ca.write(d / "ca")
    ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(d / "server")
    for who in ("A", "B"):
        ca.issue(f"PARTNER-{who}", client=True).write(d / who)
    registry = default_registry()
    program = compile_text(d, ROUTE, name="book.route")
    path = d / "cap.duckdb"
    with recording(program, registry, path) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(d / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    port = sb.channel("partners").port
                    for who, n in (("A", 1), ("B", 2), ("A", 3)):     # A, then B with A's id, then A's repeat
                        ctx = client_context(d / "ca.pem", d / f"{who}.pem", d / f"{who}.key", "localhost")
                        await ask(port, ctx, b'{"request_id": "R1", "amount": 5, "n": %d}' % n)
                    sb.drain()

        trio.run(main)
    return path, d / "book.route"


def test_the_capture_stores_the_peer_of_each_request(recorded) -> None:
    path, _ = recorded
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT peer FROM frames WHERE role = 'inbound' AND direction = 'in' "
                           "ORDER BY seq").fetchall()
        others = con.execute("SELECT count(*) FROM frames WHERE peer IS NOT NULL AND "
                             "NOT (role = 'inbound' AND direction = 'in')").fetchone()[0]
    finally:
        con.close()
    assert others == 0
    assert ['"cn": "PARTNER-A"' in r[0] for r in rows] == [True, False, True], rows
    assert '"cn": "PARTNER-B"' in rows[1][0] and '"address": "127.0.0.1:' in rows[1][0]


def test_the_replay_gives_the_same_peer_and_keys(recorded) -> None:
    path, route = recorded
    s = replay_file(path, [route], default_registry()).summary()
    assert s["exchanges"] == 3 and s["identical"] == 3 and s["unexpected_differences"] == 0, s


def test_a_capture_without_the_peer_column_still_reads_and_replays(recorded, tmp_path: Path) -> None:
    path, route = recorded
    old = tmp_path / "old.duckdb"
    shutil.copy(path, old)
    con = duckdb.connect(str(old))
    try:
        con.execute("ALTER TABLE frames DROP COLUMN peer")
    finally:
        con.close()
    assert all(f.peer is None for f in Capture(old).frames)
    report = replay_file(old, [route], default_registry())
    s = report.summary()
    # peer.cn null as before the column: one key for both partners, so B's and A's later request repeat A's
    assert s["exchanges"] == 3 and s["identical"] == 0
    assert "partner" in {d.field for d in report.diff.unexpected}


def test_a_damaged_peer_is_told_with_the_frame(recorded, tmp_path: Path) -> None:
    path, _ = recorded
    bad = tmp_path / "bad.duckdb"
    shutil.copy(path, bad)
    con = duckdb.connect(str(bad))
    try:
        con.execute("UPDATE frames SET peer = '{\"cn\": 7}' WHERE peer IS NOT NULL")
    finally:
        con.close()
    with pytest.raises(CaptureError, match=r"bad\.duckdb: frame \d+ \(channel partners\), column frames\.peer: .*cn = 7"):
        Capture(bad)


@pytest.mark.parametrize("stored, told", [
    ("{not json", r"the request's peer is not JSON \(.*\), expected an object \{\"cn\": \.\.\., \"san\""),
    ("[1, 2]", r"the request's peer is a JSON list, expected an object"),
    ('{"san": "PARTNER-A"}', r"the request's peer has san = 'PARTNER-A', expected a list of texts"),
])
def test_each_damaged_peer_names_the_frame_the_column_and_what_to_do(recorded, tmp_path: Path, stored: str,
                                                                      told: str) -> None:
    path, _ = recorded
    bad = tmp_path / "bad.duckdb"
    shutil.copy(path, bad)
    con = duckdb.connect(str(bad))
    try:
        con.execute("UPDATE frames SET peer = ? WHERE peer IS NOT NULL", [stored])
    finally:
        con.close()
    with pytest.raises(CaptureError, match=r"bad\.duckdb: frame \d+ \(channel partners\), column frames\.peer: "
                                           + told) as err:
        Capture(bad)
    assert "replay a copy kept as it was written, or record the traffic again (`bsp run --record`)" in str(err.value)


def test_to_tests_writes_the_peer_clause_and_the_tests_pass(recorded, tmp_path: Path) -> None:
    path, route = recorded
    registry = default_registry()
    program = compile_text(route.parent, ROUTE, name="book.route")
    res = write_tests(Capture(path), program, FormatGuide(program, Binder(program, registry).codec),
                      tmp_path / "gen", [route], Profile(), mask=False)
    assert res.written == 3, res.skipped
    text = res.path.read_text()
    assert text.count('peer { cn = "PARTNER-A"  address = "127.0.0.1:') == 2, text
    assert text.count('peer { cn = "PARTNER-B"') == 1, text
    ran = run_paths([res.path], registry)
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert len(ran.outcomes) == 3 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]
