"""file write never writes through a symbolic link in its folder: whoever can write the outbox (the
partner that collects the files) could otherwise plant `SETTLE-20261127.csv -> /etc/bsp/platform.yaml` and
have the engine append payment lines to, or cut the torn tail of, any file it can write."""
from __future__ import annotations

import os
from pathlib import Path

import orjson

from engine.channels.file_write import FileWriter
from engine.channels.file_names import NameValues


async def test_append_never_follows_a_link_planted_under_the_name(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.yaml"
    out.mkdir()
    victim.write_bytes(b"ledger:\n  path: /var/lib/bsp/bsp.duckdb\nadmin: {listen: 127.0.0.1:9180}")  # no final LF
    os.symlink(victim, out / "SETTLE-A.csv")
    w = FileWriter("day", {"dir": str(out), "name": "SETTLE-{who}.csv", "mode": "append", "fsync": False})
    await w.run()
    got = await w.request_many([b"R1,1.50", b"R2,2.50"], names=[NameValues({"who": "A"}), NameValues({"who": "B"})])
    assert victim.read_bytes() == b"ledger:\n  path: /var/lib/bsp/bsp.duckdb\nadmin: {listen: 127.0.0.1:9180}"
    assert "symbolic link" in str(got[0]) and "not followed" in str(got[0]), got[0]
    assert orjson.loads(got[1])["file"] == "SETTLE-B.csv"
    assert (out / "SETTLE-B.csv").read_bytes() == b"R2,2.50\n"


async def test_a_whole_file_is_never_written_over_a_link(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.write_bytes(b"keep")
    os.symlink(victim, out / "R-1.csv")
    w = FileWriter("o", {"dir": str(out), "name": "R-{ref}.csv", "fsync": False})
    await w.run()
    got = await w.request_many([b"x"], names=[NameValues({"ref": "1"})])
    assert victim.read_bytes() == b"keep" and "exists" in str(got[0])
