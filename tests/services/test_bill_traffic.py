"""``python -m engine.sim.bill_traffic``: traffic for an engine a newcomer started (README tour, tour-tester)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import trio
from trio.testing import MockClock

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.runtime import Switchboard
from engine.sim import bill_traffic
from engine.sim.framed import CLOSED, TIMED_OUT, FramedServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_plays_the_biller_and_sends_the_mix_to_a_running_engine(tmp_path):
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    biller_port = _free_port()

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                               ("127.0.0.1", biller_port), 60)
                sb.drain()
        return res

    res = trio.run(main)
    assert res.sent == res.replies == 60 and not res.unexpected      # the biller answered: 00 and 05 as meant
    assert res.by_code.get("00", 0) > 0 and res.by_code.get("05", 0) > 0
    text = bill_traffic.summary(res)
    assert text.startswith("sent 60 bill payment request(s)") and "60 replies" in text


def test_payments_answered_91_get_a_note_saying_why(tmp_path):
    """The engine cannot reach the biller this run serves (its biller channel still backs off after the previous
    run's biller went away, or connects elsewhere): every payment is answered 91, and the run says why instead
    of a bare `91 n` in its summary."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    served, elsewhere = _free_port(), _free_port()          # nothing listens on `elsewhere`

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{elsewhere}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                               ("127.0.0.1", served), 40)
                sb.drain()
        return res

    res = trio.run(main)
    assert res.sent == res.replies == 40 and res.by_code.get("91", 0) > 0
    note = bill_traffic.unreachable_note(res, ("127.0.0.1", served))
    assert note.startswith(f"note: {res.by_code['91']} payment(s) answered 91 (counterpart unreachable): the engine "
                           f"did not reach its biller on 127.0.0.1:{served}, which this simulator served."), note
    assert "every 2 s at most" in note and "give that address as --biller" in note
    assert "(--no-biller)" in bill_traffic.unreachable_note(res, None)
    res.by_code.pop("91")
    assert bill_traffic.unreachable_note(res, ("127.0.0.1", served)) is None


def test_no_engine_is_an_error_that_says_what_to_start(capsys):
    rc = bill_traffic.main(["--count", "3", "--mainframe", f"127.0.0.1:{_free_port()}",
                            "--biller", f"127.0.0.1:{_free_port()}"])
    assert rc == 1
    assert "is the engine running (bsp run routes/platform.yaml)" in capsys.readouterr().err


def test_an_engine_that_drains_under_it_stops_it_at_once_and_says_what_went_unanswered(tmp_path):
    """A real engine drains while the simulator sends: the closed connection ends the run (it used to wait for
    its 30 s sending deadline, and a second engine-less wait after it), and the result says so."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    codec = bill_traffic.request_codec()
    biller_port = _free_port()

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)

                async def drain_soon() -> None:
                    while sb.stats.committed < 100:          # under way
                        await trio.sleep(0.01)
                    sb.drain()
                nursery.start_soon(drain_soon)
                with trio.fail_after(10):
                    return await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                                    ("127.0.0.1", biller_port), 30_000, codec=codec)

    res = trio.run(main)
    assert res.stopped and set(res.stopped) == {CLOSED} and res.sent < 30_000
    err = bill_traffic.problem(res, 30_000)
    assert err.startswith(f"error: {res.sent - res.replies:,} of {res.sent:,} request(s) sent got no reply, "
                          f"and {30_000 - res.sent:,} of --count 30,000 were not sent: "
                          f"the engine closed the connection (it drained or stopped"), err


class _Stalls(FramedServer):
    framing = "length2"
    stall = True             # reads every request, answers none


def test_no_reply_within_the_reply_timeout_stops_it(tmp_path):
    codec = bill_traffic.request_codec()

    async def main():
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_Stalls().serve)
            t0 = trio.current_time()
            res = await bill_traffic.drive(("127.0.0.1", port), None, 50, codec=codec, reply_timeout=7)
            nursery.cancel_scope.cancel()
        return res, trio.current_time() - t0

    res, took = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert (res.sent, res.replies, res.stopped) == (50, 0, [TIMED_OUT, TIMED_OUT])
    assert 7 <= took < 8
    assert bill_traffic.problem(res, 50, 7) == (
        "error: 50 of 50 request(s) sent got no reply: no reply came for 7 s (--reply-timeout) while requests "
        "were waiting (is the engine stuck, or its biller channel unable to connect?)")


def test_the_command_exits_1_and_says_so_when_the_engine_hangs_up(capsys):
    """`python -m engine.sim.bill_traffic` against a server that reads and closes: exit 1, the count unanswered."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(20)
    port = server.getsockname()[1]

    def hang_up() -> None:
        with server:
            for _ in range(2):                  # --connections 2
                conn, _addr = server.accept()
                with conn:
                    conn.recv(65536)
    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    t0 = time.monotonic()
    rc = bill_traffic.main(["--count", "40", "--mainframe", f"127.0.0.1:{port}", "--no-biller"])
    t.join(5)
    out, err = capsys.readouterr()
    assert rc == 1 and time.monotonic() - t0 < 20
    assert "40 bill payment request(s)" in out and "40 got no reply" in out
    assert err.splitlines()[0] == ("error: 40 of 40 request(s) sent got no reply: the engine closed the connection "
                                   "(it drained or stopped: see its log, or `bsp status`)"), err
    assert err.splitlines()[1].startswith("hint: a mainframe channel with TLS"), err   # no reply at all: TLS?
    with pytest.raises(SystemExit):
        bill_traffic.main(["--reply-timeout", "0"])
    assert "expected a number of seconds > 0" in capsys.readouterr().err
