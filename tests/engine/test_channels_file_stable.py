"""file.watch and a sender that writes its file in place (as many bank FTP / SFTP drops do) instead of
renaming it into place: ``complete = "stable"`` waits until the file stops changing, and in every mode
a file that changed while its records ran goes to error/ as it is now, saying what ran."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from engine.channels.file_watch import FileWatcher


class Recorder:
    """Stands in for the routes: every record is answered, and kept."""

    def __init__(self, during=None):
        self.frames: list[bytes] = []
        self.during = during

    async def handle(self, conn, frames):
        self.frames.extend(frames)
        if self.during is not None:
            self.during()
        return [b"ok"] * len(frames)


async def test_stable_takes_a_file_written_in_place_once_it_stops_changing(tmp_path: Path) -> None:
    """The sender writes PAY.csv under its final name in pieces: a watcher that took it at once read
    `R2,25` of `R2,250.00` and committed the wrong amount.  With complete = "stable" it waits until
    size and time have not changed for settle, then runs the whole file, without a change event or a
    rescan to wake it (rescan is far off)."""
    inbox = tmp_path / "in"
    w = FileWatcher("inbox", {"dir": str(inbox), "complete": "stable", "settle": "500ms", "rescan": "60s"})
    h = Recorder()
    pieces = [b"R1,100.00\nR2,25", b"0.00\n", b"R3,7.5", b"0\n"]
    async with trio.open_nursery() as nursery:
        await nursery.start(w.serve, h)
        with open(inbox / "PAY.csv", "wb") as fh:
            for piece in pieces:
                fh.write(piece)
                fh.flush()
                await trio.sleep(0.1)                       # pauses shorter than settle
                assert not w.processed and (inbox / "PAY.csv").exists()
        last_write = trio.current_time()
        with trio.fail_after(5):
            while not w.processed:
                await trio.sleep(0.02)
        took = trio.current_time() - last_write
        w.stop_accepting()
    assert h.frames == [b"R1,100.00", b"R2,250.00", b"R3,7.50"]
    assert (inbox / "done" / "PAY.csv").read_bytes() == b"".join(pieces)
    assert 0.5 - 0.1 <= took < 2.5, took                   # settle after its last change, not the rescan


def test_settle_is_checked(tmp_path: Path) -> None:
    assert FileWatcher("w", {"dir": str(tmp_path), "complete": "stable"}).settle == 2.0
    with pytest.raises(ValueError, match='channel w: option settle is for complete = "stable" '
                                         r"\(complete is 'rename'\)"):
        FileWatcher("w", {"dir": str(tmp_path), "settle": "1s"})
    with pytest.raises(ValueError, match="channel w: option settle: expected a duration above 0"):
        FileWatcher("w", {"dir": str(tmp_path), "complete": "stable", "settle": "0s"})
    with pytest.raises(ValueError, match="channel w: option settle: expected a duration such as 3s"):
        FileWatcher("w", {"dir": str(tmp_path), "complete": "stable", "settle": "soon"})
    with pytest.raises(ValueError, match='option complete: expected "rename", "marker" or "stable", got '
                                         "'changed'"):
        FileWatcher("w", {"dir": str(tmp_path), "complete": "changed"})
    # rescan: the same check, naming the channel and option (a rescan of 0 would poll the folder in a loop)
    with pytest.raises(ValueError, match=r"channel w: option rescan: expected a duration above 0 \(e.g. rescan = 5s\), "
                                         "got 0s"):
        FileWatcher("w", {"dir": str(tmp_path), "rescan": "0s"})
    with pytest.raises(ValueError, match="channel w: option rescan: expected a duration such as 3s"):
        FileWatcher("w", {"dir": str(tmp_path), "rescan": "often"})


@pytest.mark.parametrize("complete", ["rename", "marker", "stable"])
async def test_a_file_changed_as_its_records_ran_goes_to_error_as_it_is_now(tmp_path: Path, complete: str,
                                                                            caplog) -> None:
    """The sender was still writing as the records ran: the file used to go to done/ as if all was well,
    its last record cut short (`R2,25` committed for `R2,250.00`) and what came after the read never
    run.  Now the whole file as it is now goes to error/, its reason saying which records ran (their
    deals are committed), which may be cut short, and how to fix the sender."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = inbox / "PAY.csv"
    path.write_bytes(b"R1,100.00\nR2,25")
    if complete == "marker":
        (inbox / "PAY.csv.done").write_text("")

    def sender_writes_on():
        with open(path, "ab") as fh:
            fh.write(b"0.00\nR3,7.50\n")

    h = Recorder(during=sender_writes_on)
    w = FileWatcher("inbox", {"dir": str(inbox), "complete": complete})
    with caplog.at_level("ERROR", logger="bsp.channel.file"):
        assert not await w.process(path, h)
    assert h.frames == [b"R1,100.00", b"R2,25"]
    assert not (inbox / "done" / "PAY.csv").exists() and not path.exists()
    assert (inbox / "error" / "PAY.csv").read_bytes() == b"R1,100.00\nR2,250.00\nR3,7.50\n"   # nothing lost
    reason = (inbox / "error" / "PAY.csv.reason.txt").read_text()
    assert reason.startswith("file PAY.csv changed while it was read: 15 bytes modified at ")
    assert "when read, 28 bytes modified at " in reason
    assert ("records 1 to 2 of the 15 bytes read were run through the routes: their deals are in the ledger, "
            "committed unless listed below as rejected or failed; record 2 (byte offset 10), the last one "
            "read, may have been cut short by the sender still writing it: check its deal") in reason
    assert "what the sender wrote after the read (from byte 15 on, if it appended) was not run" in reason
    assert ("write the file under a temporary name (.PAY.csv or PAY.csv.tmp) and rename it into place once "
            'complete; or set complete = "stable" on channel inbox') in reason
    assert list(w.failed) == ["PAY.csv"] and not w.processed
    (record,) = [r for r in caplog.records if "changed while it was read" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert "-> error/PAY.csv; records 1 to 2 of the bytes read ran, their deals in the ledger" \
        in record.getMessage()


async def test_a_file_rewritten_in_place_with_the_same_size_is_noticed(tmp_path: Path) -> None:
    """Not only a file that grew: one rewritten in place (another amount, the same length) changes its
    time, and one another file was renamed over changes its inode."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    path = inbox / "PAY.csv"
    path.write_bytes(b"R1,100.00\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))

    def rewrite():
        path.write_bytes(b"R1,900.00\n")

    w = FileWatcher("inbox", {"dir": str(inbox)})
    assert not await w.process(path, Recorder(during=rewrite))
    assert (inbox / "error" / "PAY.csv").read_bytes() == b"R1,900.00\n"
    assert ("changed while it was read: 10 bytes modified at 1970-01-01T00:00:01.000000Z when read, 10 bytes "
            "modified at ") in (inbox / "error" / "PAY.csv.reason.txt").read_text()

    path.write_bytes(b"R2,100.00\n")

    def renamed_over():
        (inbox / ".new.tmp").write_bytes(b"R9,900.00\n")
        os.utime(inbox / ".new.tmp", ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))  # as `put -p` keeps it
        os.replace(inbox / ".new.tmp", path)

    assert not await w.process(path, Recorder(during=renamed_over))
    assert (inbox / "error" / "PAY.2.csv").read_bytes() == b"R9,900.00\n"
    assert "another file was renamed over it" in (inbox / "error" / "PAY.2.csv.reason.txt").read_text()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_a_file_changing_as_it_is_read_is_not_run_and_read_again_later(tmp_path: Path, caplog) -> None:
    """Its size said one thing and its read another (here a /proc file, whose size is always 0: a file
    being written as it is read does the same): none of it runs, it stays, and the cause is logged once.
    (The file is given by its own path: a symbolic link to it in the folder is never followed.)"""
    inbox = tmp_path / "in"
    inbox.mkdir()
    status = Path("/proc/self/status")
    h = Recorder()
    w = FileWatcher("inbox", {"dir": str(inbox)})
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        assert not await w.process(status, h)
        assert not await w.process(status, h)
    assert h.frames == [] and status.exists() and not list((inbox / "error").glob("*"))
    assert caplog.text.count("status changed while it was read") == 1
    assert "nothing of it was run, and it is read again at the next look" in caplog.text
