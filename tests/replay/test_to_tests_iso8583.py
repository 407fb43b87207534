"""`bsp replay --to-tests` from a recording of the shipped card payments service (ISO 8583 over tcp,
real loopback sockets, a real ledger): its fields are named "2", "39" ..., which the route language
writes quoted (`"39" = "00"`, as routes/card_payments/card_payments_test.route does), so every
exchange is written as a test, and each test passes against the configuration that was recorded.
A card host that could not be reached is written `answers unreachable` (kind unreachable, 91: nothing
left), not `answers error` (a broken connection, lost: the purchase may have reached the host, so the
route reverses it and the test found a call with no answer)."""
from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.tap import recording
from engine.replay.totests import write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from engine.sim.iso_host import IsoHost

REPO = Path(__file__).resolve().parents[2]
ROUTE = REPO / "routes" / "card_payments" / "card_payments.route"
PAN = "6228481234567890"


def _request(stan: int, pan: str = PAN) -> dict:
    return {"t": "0200", "2": pan, "3": "000000", "4": "000000012550", "7": "1127051500",
            "11": f"{stan:06d}", "37": f"TT{stan:010d}", "41": "ATM00001", "49": "156"}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _record(tmp: Path, host_up: bool) -> Path:
    registry = default_registry()
    program = compile_paths([ROUTE], registry).program
    iso = Binder(program, registry).codec("CardIso")
    path = tmp / ("up.duckdb" if host_up else "down.duckdb")
    with recording(program, registry, path) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / f"ledger-{host_up}.duckdb", audit_key=None, keyring=None) as ledger:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(IsoHost().serve) if host_up else _closed_port()
                    sb = Switchboard(program, rreg, ledger=ledger, overrides={
                        "cp_mainframe": {"address": "127.0.0.1:0"}, "cp_host": {"address": f"127.0.0.1:{port}"}})
                    await nursery.start(sb.run)
                    stream = await trio.open_tcp_stream("127.0.0.1", sb.channel("cp_mainframe").port)
                    buf = b""
                    for req in (_request(1), _request(2, "4000001234567899")):   # the host's; another bank's BIN
                        body = iso.encode(req)
                        await stream.send_all(struct.pack(">H", len(body)) + body)
                        with trio.fail_after(10):
                            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                                buf += await stream.receive_some()
                        buf = buf[2 + struct.unpack(">H", buf[:2])[0]:]
                    await stream.aclose()
                    sb.drain()
                    nursery.cancel_scope.cancel()

        trio.run(main)
    return path


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cards")
    return _record(tmp, True), _record(tmp, False)


def _write(capture: Path, out: Path):
    registry = default_registry()
    program = compile_paths([ROUTE], registry).program
    return write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec), out,
                       [ROUTE], Profile())


def test_iso8583_exchanges_are_written_with_quoted_field_names(captures, tmp_path: Path) -> None:
    for capture in captures:
        res = _write(capture, tmp_path / capture.stem)
        assert res.skipped == {} and res.written == 2, res.skipped
        text = res.path.read_text()
        assert '"39" = "00"' in text or '"39" = "91"' in text, text
        assert PAN not in text and '"2" = "622848' in text        # a stand-in with the card's BIN


def test_the_tests_written_pass_and_an_unreachable_host_is_written_unreachable(captures, tmp_path: Path) -> None:
    up, down = captures
    text = _write(down, tmp_path / "down").path.read_text()
    assert "given cp_host answers unreachable" in text and "answers error" not in text, text
    for capture in (up, down):
        path = _write(capture, tmp_path / f"run-{capture.stem}").path
        ran = run_paths([path], default_registry())
        assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
        assert len(ran.outcomes) == 2 and all(o.passed for o in ran.outcomes), \
            [f for o in ran.outcomes for f in o.failures]


def test_a_recorded_unreachable_host_replays_with_the_same_dead_letter(captures) -> None:
    """The replay gives the recorded failure again ("... (as recorded)"): the dead letter it writes is the
    recorded one, not a difference (dead letters compared since 2026-11-28)."""
    from engine.replay.session import replay_file

    _up, down = captures
    rep = replay_file(down, [ROUTE], default_registry())
    assert rep.passed and rep.diff.identical == rep.diff.exchanges == 2, [vars(d) for d in rep.diff.differences]
    import duckdb
    with duckdb.connect(str(down), read_only=True) as con:
        letters = [r[0] for r in con.execute("SELECT dead_letters FROM frames WHERE role = 'inbound' AND "
                                             "direction = 'in' ORDER BY t_ms").fetchall()]
    assert '"kind": "unreachable"' in letters[0], letters
