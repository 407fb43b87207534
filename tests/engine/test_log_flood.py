"""A flood of bad input does not flood the log (docs/operations.md#repeated-faults): the first bad message
of each (channel, kind) is logged in full, the rest are counted and summed up in one line per window
(engine/faultlog.py), and every one of them is still answered and recorded (deal row, dead letter).
Real loopback sockets, a real engine and DuckDB ledger; trio's MockClock for the window."""
from __future__ import annotations

import logging

import duckdb
import pytest
import trio
import trio.testing

from engine.channels.tcp_listen import TcpListener
from engine.faultlog import REPEAT_EVERY, FaultLog
from kit import compile_text, deals, running

ROUTE = """
format Req = json
format Rsp = json
channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    max_frame = 256
    on error reply Rsp { code = error.code kind = error.kind }
}
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = ascii4
    on error reply Rsp { code = error.code kind = error.kind }
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref amount = 1.00 currency = "CNY" }
    reply Rsp { ref = msg.ref code = "00" }
}
route side {
    receive from side as Req
    deal SIDE { ref = msg.ref amount = 1.00 currency = "CNY" }
    reply Rsp { ref = msg.ref code = "00" }
}
"""
OVER_MAX = b"\xff\xff" + b"x" * 10          # a length2 prefix of 65535, over max_frame = 256
N = 120


async def send_and_close(port: int, data: bytes, *, wait: bool = True) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await s.send_all(data)
        if wait:                          # the error reply, then the close
            with trio.fail_after(10):
                while await s.receive_some(4096):
                    pass
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(s)


async def flood(port: int, data: bytes, n: int, *, wait: bool = True) -> None:
    limit = trio.CapacityLimiter(10)

    async def one() -> None:
        async with limit:
            await send_and_close(port, data, wait=wait)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)


def channel_lines(caplog: pytest.LogCaptureFixture, channel: str) -> list[str]:
    """The channel's warnings about bad input (its reconnect storm warning aside: a flood of N connections from
    one address is one too, said once; engine/channels/churn.py)."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.getMessage().startswith(f"channel {channel}:")
            and "a peer reconnecting in a storm" not in r.getMessage()]


def storm_lines(caplog: pytest.LogCaptureFixture, channel: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"channel {channel}:") and "a peer reconnecting in a storm" in r.getMessage()]


def dead_letters(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT error_kind, reason FROM dead_letters").fetchall()
    finally:
        con.close()


async def test_a_flood_of_malformed_frames_is_logged_once_in_full_then_counted(tmp_path, caplog) -> None:
    # before: one warning per connection (N lines for N malformed frames)
    caplog.set_level(logging.WARNING)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE), ledger) as sb:
        await flood(sb.channel("front").port, OVER_MAX, N)
        during = channel_lines(caplog, "front")
    after = channel_lines(caplog, "front")
    assert len(during) == 1, during
    assert len(storm_lines(caplog, "front")) == 1       # N connections from 127.0.0.1: said once too
    first = during[0]
    # the first carries the full text: the place (channel, connection, peer, byte), what was expected, the fix
    assert "from 127.0.0.1:" in first and "byte 0: length2 frame declares 65535 payload bytes, over the limit " \
        "of 256 bytes" in first and "raise max_frame if the size is legitimate" in first, first
    # the rest are summed up in one line at the stop, naming the count, the kind and the last peer
    assert len(after) == 2, after
    assert f"channel front: {N - 1:,} more malformed frames since " in after[1], after
    assert "last from 127.0.0.1:" in after[1] and "over the limit of 256 bytes" in after[1], after
    # nothing of the recording changed: each is a deal with its reason and a dead letter
    rows = deals(ledger)
    assert len(rows) == N and all(r["status"] == "rejected" for r in rows)
    assert all("over the limit of 256 bytes" in (r["reason"] or "") for r in rows)
    assert len(dead_letters(ledger)) == N


async def test_a_new_kind_or_channel_is_logged_at_once(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    async with running(compile_text(tmp_path, ROUTE), tmp_path / "l.duckdb") as sb:
        front, side = sb.channel("front").port, sb.channel("side").port
        await flood(front, OVER_MAX, 20)
        assert len(channel_lines(caplog, "front")) == 1
        await send_and_close(front, b"\x00\x40" + b"{" * 10, wait=False)      # another kind: cut mid-frame
        await send_and_close(side, b"GARBAGE-NOT-A-LENGTH")                     # another channel
        with trio.fail_after(10):
            while len(channel_lines(caplog, "front")) < 2:
                await trio.sleep(0.01)
        front_lines, side_lines = channel_lines(caplog, "front"), channel_lines(caplog, "side")
    assert "connection closed inside a frame" in front_lines[1] and "more" not in front_lines[1], front_lines
    assert len(side_lines) == 1 and "ascii4 length prefix b'GARB' is not 4 ASCII digits" in side_lines[0]
    assert "(hint: the peer sent garbage" in side_lines[0]


class Echo:
    """The exchange handler of a bare ``tcp listen`` channel: echoes frames, answers a framing error."""

    async def handle(self, conn, frames):
        return frames

    async def framing_error(self, conn, err):
        return b"ERR"


async def test_the_summary_comes_after_the_window_even_when_the_flood_stopped(nursery, caplog, mock_clock) -> None:
    # the channel alone (a ledger's timed writes would not run on a frozen clock): its time is trio's
    caplog.set_level(logging.WARNING)
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2", "max_frame": 256})
    front = await nursery.start(lst.serve, Echo())
    await flood(front, OVER_MAX, 30)
    await trio.testing.wait_all_tasks_blocked()
    assert len(channel_lines(caplog, "front")) == 1        # within the window: counted only
    mock_clock.jump(REPEAT_EVERY - 1)
    await trio.testing.wait_all_tasks_blocked()
    assert len(channel_lines(caplog, "front")) == 1
    mock_clock.jump(1.5)                                    # the window is over: no more bad input needed
    await trio.testing.wait_all_tasks_blocked()
    summary = channel_lines(caplog, "front")[1:]
    assert len(summary) == 1 and "channel front: 29 more malformed frames since " in summary[0], summary
    # quiet for a whole window after its summary: the next one is logged in full again
    mock_clock.jump(REPEAT_EVERY + 1)
    await send_and_close(front, OVER_MAX)
    again = channel_lines(caplog, "front")[2:]
    assert len(again) == 1 and "more" not in again[0] and "raise max_frame" in again[0], again
    lst.stop_accepting()
    await trio.testing.wait_all_tasks_blocked()
    assert len(channel_lines(caplog, "front")) == 3            # nothing left to sum up at the stop


FILE_ROUTE = """
format Pay = json
channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
}
route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
"""


async def test_a_folder_of_bad_files_is_logged_once_per_kind_then_counted(tmp_path, caplog) -> None:
    # before: one warning per file to error/ (a folder of thousands of bad files, thousands of lines); never
    # one per record (a file of many bad records is one line, its records in its reason file)
    caplog.set_level(logging.WARNING)
    inbox = tmp_path / "in"
    inbox.mkdir()
    n = 40
    for i in range(n):
        (inbox / f"f{i:03d}.jsonl").write_text("".join('{"ref": "R%d-%d", "amount": -1}\n' % (i, r)
                                                       for r in range(50)))
    (inbox / "zz.jsonl").write_bytes((inbox / "f000.jsonl").read_bytes())     # another kind: already run
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, FILE_ROUTE), ledger):
        with trio.fail_after(30):
            while len(list((inbox / "error").glob("*.jsonl"))) < n + 1:
                await trio.sleep(0.05)
        during = channel_lines(caplog, "inbox")
    after = channel_lines(caplog, "inbox")
    assert len(during) == 2, during
    assert during[0] == ("channel inbox: f000.jsonl -> error/f000.jsonl: record 1, byte offset 0: rejected "
                         "(rejected, code 13): invalid amount"), during
    assert during[1].startswith("channel inbox: zz.jsonl -> error/zz.jsonl: record 1, byte offset 0: the same "
                                "bytes as file f000.jsonl, run to its end at "), during
    assert len(after) == 3, after
    assert after[2].startswith(f"channel inbox: {n - 1} more files to error/ with rejected or failed records (each "
                               "with its NAME.reason.txt) since "), after
    assert f"last from f{n - 1:03d}.jsonl: -> error/f{n - 1:03d}.jsonl: record 1, byte offset 0: rejected" in after[2]
    # nothing of the recording changed: every record a deal, every file its reason
    assert len(deals(ledger)) == n * 50
    assert all((inbox / "error" / f"f{i:03d}.jsonl.reason.txt").read_text().startswith(
        f"file f{i:03d}.jsonl: 50 problem(s) in 50 record(s)") for i in range(n))


def test_storage_faults_counted_since_their_last_line_are_written_at_the_stop(caplog) -> None:
    # before: FaultLog.flush wrote bad input only; a disk still failing at the stop left its count unsaid
    caplog.set_level(logging.WARNING)
    now = [0.0]
    alarm = FaultLog(logging.getLogger("bsp.journal"), "journal", clock=lambda: now[0])
    for i in range(5):
        alarm.failed("write", f"000000000002.wal: byte {4096 * i}: [Errno 28] No space left on device (ENOSPC)")
    assert [r.getMessage() for r in caplog.records] == [
        "journal: 000000000002.wal: byte 0: [Errno 28] No space left on device (ENOSPC)"]
    now[0] = 3.0
    alarm.flush()                                      # the stop
    alarm.flush()                                      # nothing left the second time
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1:] == ["journal: still failing at the stop (4 more since the last report): 000000000002.wal: "
                         "byte 16384: [Errno 28] No space left on device (ENOSPC)"], lines
    assert all(r.levelno == logging.ERROR for r in caplog.records)
    alarm.recovered("write")                           # its failures are still counted in full
    assert caplog.records[-1].getMessage() == "journal: write works again after 5 failure(s)"


async def test_stalled_frames_are_counted_as_their_own_kind(nursery, caplog, autojump_clock) -> None:
    """A frame not completed within frame_timeout (engine/channels/idle.py) is a ``stalled`` FramingError:
    the first is logged in full, the next counted as connections stalled inside a frame, not as malformed."""
    caplog.set_level(logging.WARNING)
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2", "max_frame": 256,
                                "frame_timeout": "5s"})
    front = await nursery.start(lst.serve, Echo())
    for _ in range(3):
        s = await trio.open_tcp_stream("127.0.0.1", front)
        await s.send_all(b"\x00\x10abc")                  # 16 bytes announced, 3 sent, then nothing
        with trio.fail_after(60):                       # virtual time: cut at 5s
            while await s.receive_some(100):
                pass
        await s.aclose()
    first = channel_lines(caplog, "front")
    assert len(first) == 1, first
    assert "no complete length2 frame within 5s of its first byte (5 byte(s) buffered)" in first[0], first
    assert "raise frame_timeout for a slow link" in first[0], first
    await trio.sleep(REPEAT_EVERY + 1)
    summary = channel_lines(caplog, "front")[1:]
    assert len(summary) == 1 and "channel front: 2 more connections stalled inside a frame since " in summary[0], \
        summary
    lst.stop_accepting()
