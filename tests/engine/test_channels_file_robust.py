"""file.watch / file.write robustness, under the engine `bsp run` uses (LiveEngine, its handlers
forwarded to the current generation), on real directories with a real ledger."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import trio

from engine.ledger import open_ledger
from engine.ops.live import LiveEngine
from engine.registry import default_registry
from kit import compile_text, deals

from test_channels_file import ROUTE  # noqa: E402  (the same pay route: file watch -> file write)


@asynccontextmanager
async def live(tmp_path: Path, options: str = "") -> AsyncIterator[LiveEngine]:
    """The route above served as `bsp run` serves it."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    registry = default_registry()
    program = compile_text(tmp_path, ROUTE % options, registry=registry)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([tmp_path / "test.route"], {}), grace=5)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, None)
            try:
                yield eng
            finally:
                eng.drain()


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


def drop(folder: Path, name: str, data: bytes) -> Path:
    """A writer that follows the contract: a hidden temporary name, renamed into place."""
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)
    return folder / name


async def test_under_bsp_run_a_file_with_bad_records_goes_to_error_with_its_reason(tmp_path: Path) -> None:
    """`bsp run` hands channels a forwarding handler (reloads swap its dispatcher); the file channel
    used to get no outcome through it ("unknown" for every record), so a file whose records were
    rejected went to done/ with no reason file."""
    inbox = tmp_path / "in"
    async with live(tmp_path):
        drop(inbox, "bad.jsonl", b'{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": \n{"ref": "B3", "amount": -1}\n')
        await wait_for(lambda: not (inbox / "bad.jsonl").exists(), "the file handled")
    assert (inbox / "error" / "bad.jsonl").exists() and not (inbox / "done" / "bad.jsonl").exists()
    reason = (inbox / "error" / "bad.jsonl.reason.txt").read_text()
    assert "2 problem(s) in 3 record(s)" in reason
    assert "record 2, byte offset 27: rejected (malformed" in reason
    assert "record 3, byte offset 52: rejected (rejected, code 13): invalid amount" in reason
    assert {r["reference"]: r["status"] for r in deals(tmp_path / "l.duckdb") if r["reference"]} == {"B1": "committed"}


TWO_INBOXES = ROUTE.replace('''route pay {''', '''channel inbox2 = file watch {
    dir     = "in2"
    pattern = "*.jsonl"
}

route pay2 {
    receive from inbox2 as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = outbox as Out reply Written { ref = msg.ref  amount = msg.amount }
}

route pay {''')


async def test_a_watched_folder_deleted_and_restored_stops_nothing_else(tmp_path: Path, caplog) -> None:
    """The folder removed while watched used to end the whole engine (FileNotFoundError out of the
    channel's task); a folder made again was never watched again.  Now the channel says why it cannot
    watch (log, bsp status), the other channels carry on, and it comes back with the folder."""
    import shutil
    inbox, inbox2 = tmp_path / "in", tmp_path / "in2"
    inbox2.mkdir()
    (tmp_path / "test.route").write_text("")
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        registry = default_registry()
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        program = compile_text(tmp_path, TWO_INBOXES % 'rescan = 50ms', registry=registry)
        async with open_ledger(tmp_path / "l.duckdb") as ledger:
            eng = LiveEngine(registry, ledger, load=lambda: ([tmp_path / "test.route"], {}), grace=5)
            async with trio.open_nursery() as nursery:
                await nursery.start(eng.run, program, None)
                ch = eng.current.channels["inbox"]
                shutil.rmtree(inbox)
                await wait_for(lambda: ch.status()["problem"] is not None, "the channel notices")
                assert ch.status()["problem"] == f"cannot watch {inbox}: No such file or directory"
                drop(inbox2, "other.jsonl", b'{"ref": "O1", "amount": 1}\n')
                await wait_for(lambda: (inbox2 / "done" / "other.jsonl").exists(), "the other channel")
                inbox.mkdir()                              # back: a new folder, watched again
                drop(inbox, "back.jsonl", b'{"ref": "K1", "amount": 1}\n')
                await wait_for(lambda: (inbox / "done" / "back.jsonl").exists(), "the folder watched again")
                assert ch.status()["problem"] is None and not eng.finished.is_set()
                eng.drain()
    assert f"channel inbox: cannot watch {inbox}: No such file or directory; the engine's other channels " \
           "carry on" in caplog.text
    assert caplog.text.count("cannot watch") == 1                  # once per outage, not at every look
    assert f"channel inbox: watching {inbox} again" in caplog.text
    assert {r["reference"] for r in deals(tmp_path / "l.duckdb")} == {"O1", "K1"}


async def test_a_file_that_cannot_be_archived_stays_and_is_not_run_twice(tmp_path: Path, caplog) -> None:
    """It cannot move to done/ (here a plain file named done/ is in the way, refused before its records run; a
    permission or a full disk fails the move after they ran): that used to end the whole engine.  Now the file stays,
    the cause is logged once, and it moves at a later look without its records running again."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        async with live(tmp_path, 'rescan = 50ms') as eng:
            ch = eng.current.channels["inbox"]
            (inbox / "done").rename(tmp_path / "done-away")     # the index stays out of the way
            (inbox / "done").write_text("in the way")
            drop(inbox, "a.jsonl", b'{"ref": "A1", "amount": 1}\n{"ref": "A2", "amount": 2}\n')
            await wait_for(lambda: "a.jsonl stays in" in caplog.text, "the file stuck")
            assert (inbox / "a.jsonl").exists() and not eng.finished.is_set()
            stuck = ch.status()["stuck"]                    # bsp status names it, and why
            # refused before its records run since done/ and error/ are checked first (never a link, a folder)
            assert list(stuck) == ["a.jsonl"] and f"done_dir {inbox / 'done'} is not a folder" in stuck["a.jsonl"], stuck
            (inbox / "done").unlink()
            (tmp_path / "done-away").rename(inbox / "done")
            await wait_for(lambda: (inbox / "done" / "a.jsonl").exists(), "archived at a later look")
            assert ch.status()["files_done"] == 1 and ch.status()["stuck"] == {}
    assert caplog.text.count("a.jsonl stays in") == 1
    refs = [r["reference"] for r in deals(tmp_path / "l.duckdb")]
    assert sorted(refs) == ["A1", "A2"]                          # each record once


async def test_a_file_dropped_as_the_channel_starts_is_not_left_waiting(tmp_path: Path) -> None:
    """The initial scan ran before the folder's watch was armed: a file renamed in between waited for
    the next change in the folder (for ever, if none came; about half the time in this loop)."""
    from engine.channels.file_watch import FileWatcher

    class Ok:
        async def handle(self, conn, frames):
            return [b"ok"] * len(frames)

    for i in range(6):
        inbox = tmp_path / f"in{i}"
        w = FileWatcher("w", {"dir": str(inbox), "rescan": "50ms"})
        async with trio.open_nursery() as nursery:
            await nursery.start(w.serve, Ok())
            drop(inbox, "a.jsonl", b'{"ref": "A1"}\n')
            await wait_for(lambda: list(w.processed) == ["a.jsonl"], "the file run")
            w.stop_accepting()


async def test_a_file_removed_while_its_records_run_is_not_said_to_have_gone_before(tmp_path: Path, caplog) -> None:
    """Someone removes the file while its records run: they ran (their deals are recorded), and the file
    is in neither done/ nor error/. That used to be logged at info as 'went away before it was run'."""
    from engine.channels.file_watch import FileWatcher

    inbox = tmp_path / "in"

    class Removing:
        async def handle(self, conn, frames):
            (inbox / "a.jsonl").unlink()
            return [b"ok"] * len(frames)

    w = FileWatcher("w", {"dir": str(inbox), "rescan": "50ms"})
    with caplog.at_level("INFO", logger="bsp.channel.file"):
        async with trio.open_nursery() as nursery:
            await nursery.start(w.serve, Removing())
            drop(inbox, "a.jsonl", b'{"ref": "A1"}\n{"ref": "A2"}\n')
            await wait_for(lambda: "a.jsonl was removed" in caplog.text, "the removal told")
            w.stop_accepting()
    assert "went away before it was run" not in caplog.text
    assert ("a.jsonl was removed from %s after 2 of its records ran (their deals are in the ledger)" % inbox
            in caplog.text), caplog.text
    assert [r.levelname for r in caplog.records if "was removed" in r.getMessage()] == ["ERROR"]


async def test_a_folder_back_is_said_to_be_watched_before_its_files_run(tmp_path: Path, caplog) -> None:
    """The folder made again: its files ran (and reached done/) while the channel still said "cannot
    watch" (bsp status), the problem being cleared only once the whole first look was over.  Now the
    folder listed again is said to be watched before any of its files runs."""
    import shutil
    from engine.channels.file_watch import FileWatcher

    inbox = tmp_path / "in"
    seen: list[str | None] = []

    class Telling:
        async def handle(self, conn, frames):
            seen.append(w.status()["problem"])
            return [b"ok"] * len(frames)

    w = FileWatcher("w", {"dir": str(inbox), "rescan": "50ms"})
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        async with trio.open_nursery() as nursery:
            await nursery.start(w.serve, Telling())
            shutil.rmtree(inbox)
            await wait_for(lambda: w.status()["problem"] is not None, "the channel notices")
            inbox.mkdir()
            drop(inbox, "a.jsonl", b'{"ref": "A1"}\n')
            await wait_for(lambda: list(w.processed) == ["a.jsonl"], "the file run")
            w.stop_accepting()
    assert seen == [None]
    assert f"channel w: watching {inbox} again" in caplog.text


async def test_a_folder_removed_as_its_watch_is_armed_is_told_by_its_own_error(tmp_path: Path) -> None:
    """Removed as the channel starts, the folder was told by whichever noticed first: a look at it
    ("No such file or directory"), or its watch dying (watchfiles: "No such file or directory (os error
    2) about [...]", about half the time here).  Now it is the folder's own error either way."""
    import shutil
    from engine.channels.file_watch import FileWatcher

    class Ok:
        async def handle(self, conn, frames):
            return [b"ok"] * len(frames)

    for i in range(6):
        inbox = tmp_path / f"in{i}"
        w = FileWatcher("w", {"dir": str(inbox), "rescan": "50ms"})
        async with trio.open_nursery() as nursery:
            await nursery.start(w.serve, Ok())
            shutil.rmtree(inbox)
            await wait_for(lambda: w.status()["problem"] is not None, "the channel notices")
            assert w.status()["problem"] == f"cannot watch {inbox}: No such file or directory"
            w.stop_accepting()
