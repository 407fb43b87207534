"""A long batch file shows how far it is: ``bsp status`` (the channel's ``running_records`` and
``running_done``) and a progress line in the log every ``progress_every`` seconds; and its records are
not held as copies beside the file's bytes."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from engine.channels.file_watch import FileWatcher


class Watching:
    """An ``ExchangeHandler`` (the channel's side of the contract) that notes the channel's status as
    each batch arrives and answers nothing."""

    def __init__(self, watcher: FileWatcher) -> None:
        self.watcher = watcher
        self.seen: list[tuple[Any, Any, Any]] = []

    async def handle(self, conn: Any, frames: list[bytes]) -> list[bytes | None]:
        st = self.watcher.status()
        self.seen.append((st["running"], st["running_done"], st["running_records"]))
        return [None] * len(frames)


async def test_status_and_the_log_tell_how_far_a_file_is(tmp_path: Path, caplog) -> None:
    w = FileWatcher("inbox", {"dir": str(tmp_path), "batch": 2})
    w.progress_every = 0            # every batch (30 s in production)
    path = tmp_path / "PAY.csv"
    path.write_bytes(b"".join(b"R%d,1.00\n" % i for i in range(5)))
    handler = Watching(w)
    with caplog.at_level(logging.INFO, logger="bsp.channel.file"):
        assert await w.process(path, handler)
    assert handler.seen == [("PAY.csv", 0, 5), ("PAY.csv", 2, 5), ("PAY.csv", 4, 5)]
    lines = [r.getMessage() for r in caplog.records if "records run" in r.getMessage()]
    assert [m.split(": ", 2)[2].split(",")[0] for m in lines] == ["2 of 5 records run (40%)", "4 of 5 records run (80%)"]
    assert "0 rejected or failed so far" in lines[0]
    st = w.status()
    assert (st["running"], st["running_done"], st["running_records"], st["files_done"]) == (None, None, None, 1)


def test_bsp_status_table_shows_the_file_running_and_how_far() -> None:
    import io

    from rich.console import Console

    from engine.commands.top import render
    doc = {"version": "0.1.0", "channels": {"inbox": {"kind": "file.watch", "role": "listen", "running": "big.csv",
                                                      "running_records": 100000, "running_done": 59000,
                                                      "files_done": 3, "files_error": 1, "address": "/in",
                                                      "stuck": {"X.csv": "Permission denied: /in/X.csv"}}}}
    out = Console(width=240, record=True, file=io.StringIO())
    out.print(render(doc, None, 0, {}))
    text = out.export_text()
    assert "file watch inbox: big.csv: 59,000 of 100,000 records run (59%); 3 file(s) to done/, 1 to error/ " \
           "since start" in text
    assert "file watch inbox: X.csv stays in /in: Permission denied: /in/X.csv (tried again at each look)" \
        in text


class Quiet:
    async def handle(self, conn: Any, frames: list[bytes]) -> list[bytes | None]:
        return [None] * len(frames)


@pytest.mark.parametrize("options", [{"record": "lines"}, {"record": "csv", "header_row": True},
                                     {"record": "fixed", "record_size": 25}])
async def test_a_file_s_records_are_not_held_as_copies_beside_it(tmp_path: Path, options: dict) -> None:
    """A file is read whole (bounded by max_file_bytes); its records used to be held as a list of copies
    beside it, each with the header row when header_row = true: ~160 bytes a record more, 7.6 times
    the file's size in all for 39-byte lines.  Now the records are places in the file's bytes, each
    sliced when its batch runs: the memory the run allocates stays within three times the file's size
    (the file itself, 16 bytes a record, a batch)."""
    import tracemalloc
    w = FileWatcher("inbox", {"dir": str(tmp_path), **options})
    path = tmp_path / "PAY.csv"
    head = b"" if options["record"] == "fixed" else b"ref,amount,currency\n"
    data = head + b"".join(b"R%09d,%06d.%02d,EUR\n" % (i, i, i % 100) for i in range(50_000))
    path.write_bytes(data)
    await w._files()                          # the index opened before measuring
    tracemalloc.start()
    try:
        assert await w.process(path, Quiet())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(data), f"{peak:,} bytes allocated at the peak for a file of {len(data):,}"
