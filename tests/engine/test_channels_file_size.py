"""file.watch max_file_bytes on a real directory with a real ledger: a file over the bound is not read,
goes to error/ with its reason, is listed by `bsp files`, and runs once the bound is raised."""
from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import trio
from typer.testing import CliRunner

from engine.channels.file_change import TooBig, read_unchanged
from engine.channels.file_watch import FileWatcher
from engine.channels.options import ChannelConfigError
from engine.cli import app
from kit import compile_text, deals, running

from test_channels_file import ROUTE  # noqa: E402  (the pay route: file watch -> file write)


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


def drop(folder: Path, name: str, data: bytes) -> None:
    (folder / f".{name}.tmp").write_bytes(data)
    os.replace(folder / f".{name}.tmp", folder / name)


BIG = b"".join(b'{"ref": "G%d", "amount": 1}\n' % i for i in range(10))       # 270 bytes
SMALL = b'{"ref": "S1", "amount": 2}\n'


async def test_a_file_over_max_file_bytes_is_not_read_and_goes_to_error(tmp_path: Path, caplog) -> None:
    inbox, error, done = tmp_path / "in", tmp_path / "in" / "error", tmp_path / "in" / "done"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    ledger = tmp_path / "l.duckdb"
    assert len(BIG) == 270
    async with running(compile_text(tmp_path, ROUTE % "max_file_bytes = 100"), ledger):
        with caplog.at_level("WARNING", logger="bsp.channel.file"):
            drop(inbox, "big.jsonl", BIG)
            drop(inbox, "small.jsonl", SMALL)
            await wait_for(lambda: (error / "big.jsonl").exists() and (done / "small.jsonl").exists(), "both")
    assert (error / "big.jsonl").read_bytes() == BIG                  # moved as it was
    reason = (error / "big.jsonl.reason.txt").read_text()
    assert reason == ("file big.jsonl: 1 problem(s) in 0 record(s)\n"
                      "the file is 270 bytes, over max_file_bytes = 100 of channel inbox: it was not read and no "
                      "record was run; to run it, raise max_file_bytes on the channel (a file is held in memory, "
                      "with its records, while it runs) and drop it again, or have its sender split it\n")
    assert "channel inbox: big.jsonl -> error/big.jsonl: the file is 270 bytes, over max_file_bytes = 100" \
        in caplog.text
    assert [r["reference"] for r in deals(ledger)] == ["S1"]         # nothing of big.jsonl ran

    out = CliRunner().invoke(app, ["files", str(inbox), "--json"])
    assert out.exit_code == 0, out.output
    runs = {r["name"]: r for r in map(orjson.loads, out.output.splitlines())}
    assert (runs["big.jsonl"]["status"], runs["big.jsonl"]["archived"], runs["big.jsonl"]["sha256"]) == \
        ("error", "big.jsonl", None)
    table = CliRunner().invoke(app, ["files", str(inbox), "--status", "error"])
    assert table.exit_code == 0 and "big.jsonl" in table.output and "(not read)" in table.output, table.output

    # the bound raised, the same bytes dropped again run: the refused file was not a run
    async with running(compile_text(tmp_path, ROUTE % "max_file_bytes = 1000"), ledger):
        drop(inbox, "big.jsonl", BIG)
        await wait_for(lambda: (done / "big.jsonl").exists(), "the file run")
    assert sorted(r["reference"] for r in deals(ledger)) == sorted(["S1", *(f"G{i}" for i in range(10))])


def test_read_unchanged_reads_nothing_of_a_file_over_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 11)
    with pytest.raises(TooBig, match="11 bytes, over max_file_bytes = 10"):
        read_unchanged(p, 10)
    assert read_unchanged(p, 11)[0] == b"x" * 11


def test_max_file_bytes_defaults_to_1_gib_and_must_be_positive(tmp_path: Path) -> None:
    assert FileWatcher("inbox", {"dir": str(tmp_path)}).max_file_bytes == 1 << 30
    with pytest.raises(ChannelConfigError, match="channel inbox: option max_file_bytes: expected a number of bytes "
                                                 "of 1 or more"):
        FileWatcher("inbox", {"dir": str(tmp_path), "max_file_bytes": 0})


def test_a_small_file_is_read_without_allocating_the_bound(tmp_path: Path) -> None:
    # read(max_file_bytes + 1) allocated 1 GiB (the default bound) for every file, a few bytes long or not:
    # address space a strict overcommit (vm.overcommit_memory = 2) refuses, with MemoryError
    import tracemalloc

    path = tmp_path / "small.csv"
    path.write_bytes(b"R1,100\n")
    tracemalloc.start()
    try:
        data, _ = read_unchanged(path, 1 << 30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == b"R1,100\n" and peak < 1 << 20, peak
