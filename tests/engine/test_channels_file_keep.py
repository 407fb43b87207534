"""file.watch keep_done / keep_error: the batch files in done/ and error/ (names, IBANs as delivered) go once
older than the retention, at the channel's start and every hour, one log line per sweep; without the options
they stay, as before.  Real folders and files, their ages set with their modification times; MockClock for
the hourly sweep."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import trio

from engine.channels.file_watch import FileWatcher
from engine.channels.options import ChannelConfigError
from kit import compile_text, running

from test_channels_file import ROUTE  # noqa: E402  (the pay route: file watch -> file write)

DAY = 86400


def aged(path: Path, data: bytes, days: float) -> Path:
    path.write_bytes(data)
    t = time.time() - days * DAY
    os.utime(path, (t, t))
    return path


def drop(folder: Path, name: str, data: bytes, days: float = 0) -> None:
    aged(folder / f".{name}.tmp", data, days)
    os.replace(folder / f".{name}.tmp", folder / name)


def fill(inbox: Path) -> tuple[Path, Path]:
    done, error = inbox / "done", inbox / "error"
    for d in (done, error):
        d.mkdir(parents=True)
    aged(done / "old.jsonl", b'{"ref": "O1", "iban": "DE89370400440532013000"}\n', 31)
    aged(done / "young.jsonl", b'{"ref": "Y1"}\n', 29)
    aged(done / ".bsp-files", b"", 400)                        # the channel's index: never swept
    aged(error / "bad.jsonl", b'{"ref": "B1"}\n', 91)
    aged(error / "bad.jsonl.reason.txt", b"file bad.jsonl: 1 problem(s)\n", 91)
    aged(error / "bad2.jsonl", b'{"ref": "B2"}\n', 89)
    aged(error / "orphan.reason.txt", b"its file deleted by hand\n", 100)
    return done, error


async def wait_for(cond) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


async def test_keep_sweeps_done_and_error_at_start_and_a_file_counts_from_its_move(tmp_path: Path, caplog) -> None:
    inbox = tmp_path / "in"
    (tmp_path / "out").mkdir()
    done, error = fill(inbox)
    ledger = tmp_path / "l.duckdb"
    with caplog.at_level(logging.INFO, logger="bsp.channel.file"):
        async with running(compile_text(tmp_path, ROUTE % "keep_done = 30d\n    keep_error = 90d"), ledger) as sb:
            # a file its sender wrote 400 days ago: in done/ it is as old as its move, not swept
            drop(inbox, "sent.jsonl", b'{"ref": "S1", "amount": 1}\n', days=400)
            await wait_for(lambda: (done / "sent.jsonl").exists())
            watcher = sb.channel("inbox")
            await watcher.sweep()
    assert sorted(p.name for p in done.iterdir()) == [".bsp-files", "sent.jsonl", "young.jsonl"]
    assert sorted(p.name for p in error.iterdir()) == ["bad2.jsonl"]
    assert time.time() - (done / "sent.jsonl").stat().st_mtime < DAY
    lines = [r.getMessage() for r in caplog.records if "swept" in r.getMessage()]
    assert f"channel inbox: keep_done = 30d: swept {done}: 1 file(s) older than 30d deleted (48 bytes), " \
           f"1 kept" in lines, lines
    assert any(line.startswith(f"channel inbox: keep_error = 90d: swept {error}: 2 file(s) older than 90d "
                               f"deleted") for line in lines), lines


async def test_without_keep_nothing_is_swept(tmp_path: Path, caplog) -> None:
    inbox = tmp_path / "in"
    (tmp_path / "out").mkdir()
    done, error = fill(inbox)
    with caplog.at_level(logging.INFO, logger="bsp.channel.file"):
        async with running(compile_text(tmp_path, ROUTE % ""), tmp_path / "l.duckdb"):
            drop(inbox, "sent.jsonl", b'{"ref": "S1", "amount": 1}\n', days=400)
            await wait_for(lambda: (done / "sent.jsonl").exists())
    assert (done / "old.jsonl").exists() and (error / "bad.jsonl").exists()
    assert time.time() - (done / "sent.jsonl").stat().st_mtime > 399 * DAY      # its sender's time, as before
    assert not [r for r in caplog.records if "swept" in r.getMessage()]


async def test_the_sweep_runs_every_hour(tmp_path: Path, mock_clock, caplog) -> None:
    inbox = tmp_path / "in"
    done, error = fill(inbox)
    w = FileWatcher("inbox", {"dir": str(inbox), "keep_done": "30m", "keep_error": "90m"})
    w.keep_done, w.keep_error = 30 * DAY, 90 * DAY            # as `keep_done = 30d` gives them

    async def until(n: int) -> None:
        for _ in range(1000):                                  # the clock stands still: real time passes
            if w.sweeps >= n:
                return
            await trio.to_thread.run_sync(time.sleep, 0.01)
        raise AssertionError(f"{w.sweeps} sweep(s), not {n}")

    with caplog.at_level(logging.INFO, logger="bsp.channel.file"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w._sweeps)
            await until(1)                                     # at start
            assert not (done / "old.jsonl").exists() and (done / "young.jsonl").exists()
            aged(done / "young.jsonl", b'{"ref": "Y1"}\n', 31)
            mock_clock.jump(w.sweep_every - 1)
            await trio.to_thread.run_sync(time.sleep, 0.1)
            assert w.sweeps == 1 and (done / "young.jsonl").exists()     # not before the hour
            mock_clock.jump(1)
            await until(2)
            assert not (done / "young.jsonl").exists()
            nursery.cancel_scope.cancel()
    assert len([r for r in caplog.records if "keep_done = 30d: swept" in r.getMessage()]) == 2


@pytest.mark.parametrize("value, want", [("0s", "option keep_done: expected a duration above 0"),
                                         ("soon", "option keep_done: expected a duration")])
def test_a_bad_keep_names_the_channel_and_the_option(tmp_path: Path, value: str, want: str) -> None:
    with pytest.raises(ChannelConfigError, match=f"channel inbox: {want}"):
        FileWatcher("inbox", {"dir": str(tmp_path), "keep_done": value})
