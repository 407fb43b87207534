"""The refusals of ``bsp ledger archive`` resuming an archive and of ``bsp audit verify --archive``
(engine/ledger_archive.py ``_verify``, engine/audit.py ``continuity``): each names the file, what was expected
and what to do, on real DuckDB files through the CLI."""
from __future__ import annotations

import os
from pathlib import Path

from test_ledger_archive import FEB, KEY, archive, bsp, fill, sha, tamper  # noqa: F401  (bsp: the fixture)


async def test_an_unfinished_archive_changed_since_it_was_written_is_refused_on_resume(tmp_path: Path, bsp) -> None:
    from engine.ledger_archive import prepare

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    job = prepare(led, arc, FEB, KEY)             # stopped after the archive was renamed, before the anchor
    partial = arc.with_name(arc.name + ".partial")
    job._write(partial, None)
    job._verify(partial, None)
    os.replace(partial, arc)
    job.close()
    tamper(arc, "UPDATE deals SET amount = 1200.50 WHERE reference = 'R3'")
    before = sha(led)
    res = archive(bsp, led, arc)
    assert res.exit_code == 1, res.output
    assert f"{arc}: the archive does not verify: seq " in res.output, res.output
    assert "content does not match its mac" in res.output, res.output
    assert f"Nothing was removed from {led}" in res.output and f"remove {arc} and try again" in res.output
    assert sha(led) == before


async def test_verify_archive_with_a_file_that_is_not_an_archive(tmp_path: Path, bsp) -> None:
    led, arc, other = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb", tmp_path / "other.duckdb"
    await fill(led)
    await fill(other)
    assert archive(bsp, led, arc).exit_code == 0
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(other))
    assert res.exit_code == 1, res.output
    assert f"archive NOT CONTINUOUS: {other}: not an archive written by bsp ledger archive" in res.output, res.output
    assert f"`bsp audit verify --ledger {led}` names the archives of this ledger" in res.output, res.output


async def test_verify_archive_with_an_archive_of_another_ledger(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    led2, arc2 = tmp_path / "b2.duckdb", tmp_path / "arc2.duckdb"
    await fill(led, jan=6)
    await fill(led2, jan=3)
    assert archive(bsp, led, arc).exit_code == 0
    assert archive(bsp, led2, arc2).exit_code == 0
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc2))
    assert res.exit_code == 1, res.output
    assert f"{arc2}: holds records 1..14, and no anchor of the live ledger ends at seq 14" in res.output, res.output
    assert "it is not an archive of this ledger" in res.output
    assert f"`bsp audit verify --ledger {led}` names the archives of this ledger" in res.output, res.output


async def test_verify_archive_whose_last_record_is_not_the_anchors(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    assert archive(bsp, led, arc).exit_code == 0
    tamper(arc, "UPDATE dead_letters SET mac = deals.mac FROM deals WHERE deals.reference = 'R0'")
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 1, res.output
    assert "its last record (seq 26) and mac are not the anchor's (seq 26)" in res.output, res.output
    assert "the chain does not continue from this file into the live ledger" in res.output
    assert f"put back the copy of {arc.name} kept when it was written" in res.output
