"""``bsp encode`` streams record by record, and ``--strict`` leaves nothing partial behind.

Real corpus copybook (cobrix test 6, type variety) decoded by ``bsp decode`` and encoded back.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from engine.commands.codec import register

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
CASE = CORPUS / "copybook" / "cobrix_test6_type_variety"
DATA = CASE / "input" / "INTEGR.TYPES.NOV28.DATA.dat"
CPY = CASE / "copybook.cob"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return app


APP = _app()


def bsp(*args: Any, input: bytes | None = None):
    return CliRunner().invoke(APP, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("enc") / "records.jsonl"
    r = bsp("decode", "--copybook", CPY, DATA, "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    return out.read_bytes()


def _with_bad_line(jsonl: bytes, at: int) -> bytes:
    rows = jsonl.splitlines(keepends=True)
    return b"".join(rows[:at] + [b'{"not": "this copybook"\n'] + rows[at:])


def test_strict_writes_a_temporary_file_and_leaves_the_old_output_alone(tmp_path: Path, jsonl: bytes) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_with_bad_line(jsonl, 60))           # 60 good lines encode before the bad one
    target = tmp_path / "out.dat"
    target.write_bytes(b"yesterday's file")
    r = bsp("encode", "--copybook", CPY, "--strict", src, "-o", target)
    assert r.exit_code == 1
    assert "line 61" in r.stderr and "nothing written" in r.stderr
    assert target.read_bytes() == b"yesterday's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.dat"]    # no temporary left


def test_strict_to_stdout_writes_nothing_when_a_line_is_bad(jsonl: bytes) -> None:
    r = bsp("encode", "--copybook", CPY, "--strict", "-", input=_with_bad_line(jsonl, 30))
    assert r.exit_code == 1 and r.stdout_bytes == b""
    good = bsp("encode", "--copybook", CPY, "--strict", "-", input=jsonl)
    assert good.exit_code == 0 and len(good.stdout_bytes) == DATA.stat().st_size


def test_strict_success_renames_into_place(tmp_path: Path, jsonl: bytes) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl)
    r = bsp("encode", "--copybook", CPY, "--strict", src, "-o", tmp_path / "out.dat")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "out.dat").stat().st_size == DATA.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.dat"]


def test_without_strict_good_records_are_written_around_a_bad_line(tmp_path: Path, jsonl: bytes) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_with_bad_line(jsonl, 10))
    r = bsp("encode", "--copybook", CPY, src, "-o", tmp_path / "out.dat")
    assert r.exit_code == 1 and "line 11" in r.stderr
    assert (tmp_path / "out.dat").stat().st_size == DATA.stat().st_size        # every good record


def _feed(fifo: Path, data: bytes, out: Path, seen: list[int]) -> None:
    """Writes ``data`` into the pipe 32 KiB at a time, noting the output on disk before each chunk."""
    with open(fifo, "wb") as w:
        for i in range(0, len(data), 32768):
            seen.append(out.stat().st_size if out.exists() else -1)
            w.write(data[i:i + 32768])
            w.flush()


def test_encode_writes_records_before_it_has_read_all_its_input(tmp_path: Path, jsonl: bytes) -> None:
    """Each record is read, encoded and written before the next is read: output reaches the disk
    while most of the input is still in the pipe.  (bsp encode used to read every line into
    memory first: 379 MB of Python objects for a 9 MB copybook file.)"""
    fifo, out = tmp_path / "in.pipe", tmp_path / "out.dat"
    os.mkfifo(fifo)
    seen: list[int] = []
    writer = threading.Thread(target=_feed, args=(fifo, jsonl, out, seen), daemon=True)
    writer.start()
    r = bsp("encode", "--copybook", CPY, fifo, "-o", out)
    writer.join(10)
    assert r.exit_code == 0, r.stderr
    assert out.stat().st_size == DATA.stat().st_size
    assert len(seen) >= 16, seen
    assert seen[len(seen) // 2] > 0, f"nothing written with half of the input still to come: {seen}"
