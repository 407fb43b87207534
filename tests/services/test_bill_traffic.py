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


def test_it_plays_the_biller_and_sends_the_mix_to_a_running_engine(tmp_path, held_port):
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    biller_port = held_port.port                  # refused until drive serves the biller there

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                               ("127.0.0.1", held_port.release()), 60)
                sb.drain()
        return res

    res = trio.run(main)
    assert res.sent == res.replies == 60 and not res.unexpected      # the biller answered: 00 and 05 as meant
    assert res.by_code.get("00", 0) > 0 and res.by_code.get("05", 0) > 0
    text = bill_traffic.summary(res)
    assert text.startswith("sent 60 bill payment request(s)") and "60 replies" in text


def test_payments_answered_91_get_a_note_saying_why(tmp_path, held_port, dead_port):
    """The engine cannot reach the biller this run serves (its biller channel still backs off after the previous
    run's biller went away, or connects elsewhere): every payment is answered 91, and the run says why instead
    of a bare `91 n` in its summary."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    served, elsewhere = held_port.port, dead_port            # nothing listens on `elsewhere`

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{elsewhere}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                               ("127.0.0.1", held_port.release()), 40)
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


def test_no_engine_is_an_error_that_says_what_to_start(capsys, dead_port, held_port):
    rc = bill_traffic.main(["--count", "3", "--mainframe", f"127.0.0.1:{dead_port}",
                            "--biller", f"127.0.0.1:{held_port.release()}"])
    assert rc == 1
    assert "is the engine running (bsp run routes/platform.yaml)" in capsys.readouterr().err


def test_an_engine_that_drains_under_it_stops_it_at_once_and_says_what_went_unanswered(tmp_path, held_port):
    """A real engine drains while the simulator sends: the closed connection ends the run (it used to wait for
    its 30 s sending deadline, and a second engine-less wait after it), and the result says so."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    codec = bill_traffic.request_codec()
    biller_port = held_port.port                  # refused until drive serves the biller there

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
                                                    ("127.0.0.1", held_port.release()), 30_000, codec=codec)

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
    # no reply at all, but what hung up speaks no TLS (it is gone): no TLS hint, which sent a newcomer whose
    # engine simply drained looking for certificates
    assert "TLS" not in err, err
    with pytest.raises(SystemExit):
        bill_traffic.main(["--reply-timeout", "0"])
    assert "expected a number of seconds > 0" in capsys.readouterr().err


class _Arrivals(FramedServer):
    """Answers every request with a good reply code, noting when each arrived (trio's clock)."""
    framing = "length2"

    def __init__(self) -> None:
        self.at: list[float] = []

    def reply_frame(self, payload: bytes) -> bytes:
        self.at.append(trio.current_time())
        return payload[16:28] + b"00"          # BillPayReq: txn_code(4) trace_no(12)... -> trace_no, resp_code


def test_rate_paces_the_requests_across_the_connections():
    """--rate 100: 30 requests over 2 connections leave 10 ms apart, not in one burst; the summary says how fast.

    On trio's MockClock (autojumping when every task waits): the pacer's slots are the only thing that moves
    the clock, so the arrival times are the pacing's, not a loaded machine's (in real time a CI machine that
    stalled the process 50 ms let a dozen requests land in one 50 ms window and failed the burst check)."""
    codec = bill_traffic.request_codec()
    server = _Arrivals()

    async def main():
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            res = await bill_traffic.drive(("127.0.0.1", port), None, 30, codec=codec, rate=100)
            nursery.cancel_scope.cancel()
        return res

    res = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert res.sent == res.replies == 30 and not res.stopped
    span = server.at[-1] - server.at[0]
    assert 0.27 <= span < 2, span                    # 29 gaps of 10 ms; unpaced it is a few ms
    assert max(sum(1 for t in server.at if t0 <= t < t0 + 0.05) for t0 in server.at) <= 8   # ~5 in any 50 ms
    assert bill_traffic.problem(res, 30) is None
    assert " in 0.3 s (" in bill_traffic.summary(res) or " in 0.4 s (" in bill_traffic.summary(res)


def test_duration_ends_the_sending_and_the_replies_of_what_was_sent_still_count(tmp_path, held_port):
    """A real engine, --duration 0.5 unpaced with a --count it cannot reach in that time: sending stops at the
    deadline, every request already sent gets its reply (they used to be cut off with the sending, and counted
    as lost), and the unsent rest of --count is no error."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    codec = bill_traffic.request_codec()
    biller_port = held_port.port                  # refused until drive serves the biller there

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                with trio.fail_after(20):
                    res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                                   ("127.0.0.1", held_port.release()), 1_000_000, codec=codec,
                                                   duration=0.5)
                sb.drain()
        return res

    res = trio.run(main)
    assert 0 < res.sent < 1_000_000 and not res.stopped
    assert res.replies == res.sent and not res.unexpected
    assert bill_traffic.problem(res, 1_000_000, duration=0.5) is None


def test_rate_and_duration_on_the_command_line_send_rate_x_duration_with_a_progress_bar():
    """`--rate 40 --duration 0.5` (no --count): 20 requests over about half a second, exit 0; on a terminal a
    progress bar shows the replies."""
    from io import StringIO
    from rich.console import Console

    codec_server = _Arrivals()
    out = StringIO()
    ready = threading.Event()
    holder = {}

    def serve() -> None:
        async def run():
            async with trio.open_nursery() as nursery:
                holder["port"] = await nursery.start(codec_server.serve)
                holder["stop"], holder["token"] = nursery.cancel_scope.cancel, trio.lowlevel.current_trio_token()
                ready.set()
        trio.run(run)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        t0 = time.monotonic()
        rc = bill_traffic.main(["--rate", "40", "--duration", "0.5", "--mainframe", f"127.0.0.1:{holder['port']}",
                                "--no-biller"], console=Console(file=out, force_terminal=True, width=100))
        took = time.monotonic() - t0
    finally:
        trio.from_thread.run_sync(holder["stop"], trio_token=holder["token"])
        t.join(5)
    assert rc == 0 and 0.45 <= took < 10, took
    # --count is rate x duration: 20, the bar's total.  All 20 leave in the half second when the machine keeps
    # up (test_rate_and_duration_send_rate_x_duration_in_that_time, on trio's clock); in real time a loaded
    # CI machine that stalls this process 50 ms puts the last slot (475 ms) past the 500 ms deadline, and
    # --duration stops the sending there, as it says: 19 sent, each answered, exit 0.
    sent = len(codec_server.at)
    assert 0 < sent <= 20
    assert "Bill payment (mainframe)" in out.getvalue() and f"{sent}/20" in out.getvalue()


def test_rate_and_duration_send_rate_x_duration_in_that_time():
    """--rate 40 --duration 0.5 and its --count of 20 (as the command line makes it): all 20 leave within the
    half second, paced, each answered.  On trio's MockClock: the sending's deadline is only met in real time
    when the machine keeps up (see the command line test above)."""
    codec = bill_traffic.request_codec()
    server = _Arrivals()

    async def main():
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            t0 = trio.current_time()
            res = await bill_traffic.drive(("127.0.0.1", port), None, 20, codec=codec, rate=40, duration=0.5)
            nursery.cancel_scope.cancel()
        return res, t0

    res, t0 = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert res.sent == res.replies == len(server.at) == 20 and not res.stopped
    assert server.at[-1] - t0 < 0.5 <= server.at[-1] - t0 + 0.025 + 1e-9      # the last slot, 475 ms in
    assert bill_traffic.problem(res, 20, duration=0.5) is None


def test_rate_and_duration_must_be_positive(capsys):
    for argv in (["--rate", "0"], ["--duration", "-1"], ["--count", "-5"]):
        with pytest.raises(SystemExit):
            bill_traffic.main(argv)
    err = capsys.readouterr().err
    assert "expected a number > 0, e.g. --rate 50" in err and "e.g. --duration 120" in err
    assert "expected a number of requests >= 0" in err


def test_ctrl_c_prints_what_was_sent_and_exits_130_without_a_traceback():
    """Ctrl-C (SIGINT) while requests wait for replies: the summary so far and one line, exit 130."""
    import signal
    import subprocess
    import sys

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    arrived = threading.Event()
    conns = []

    def read_never_answer() -> None:
        with server:
            for _ in range(2):                  # --connections 2
                conn, _addr = server.accept()
                conns.append(conn)
                if conn.recv(65536):
                    arrived.set()
    t = threading.Thread(target=read_never_answer, daemon=True)
    t.start()
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.bill_traffic", "--count", "40", "--mainframe",
                             f"127.0.0.1:{port}", "--no-biller", "--reply-timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert arrived.wait(30), "no request arrived"
        time.sleep(0.2)                         # let both connections send their window
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        for c in conns:
            c.close()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert "bill payment request(s)" in out and "got no reply" in out, out
    assert "interrupted (Ctrl-C): " in err and "of 40 request(s) sent" in err, err
