"""The ``limit`` totals and statement links ``bsp ledger archive`` carries forward (``archived_totals``,
``archived_links``) are under the archive anchor's seal (its ``carried_sha256``): a row changed, deleted or added
in the live ledger file is named by ``bsp audit verify``, and an untouched archive still verifies clean.  Real
DuckDB files edited directly, the CLI in process."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from engine.deal import DealEvent
import test_ledger_archive
from test_ledger_archive import JAN, FEB, archive, fill
from test_ledger_archive_totals import _counted, _deal

bsp = test_ledger_archive.bsp          # the CLI in process, with the audit key (a fixture)


def _sql(path: Path, stmt: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(stmt)
    finally:
        con.close()


async def _archived(tmp_path: Path, bsp) -> tuple[Path, Path]:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    d1 = JAN + timedelta(days=1)
    extra = [_deal(201, d1, DealEvent(d1, None, "counted", _counted("drawn", "LC1", "40.00"))),
             _deal(202, d1, DealEvent(d1, None, "counted", _counted("drawn", "LC2", "7.00")))]
    late = _deal(300, FEB + timedelta(days=5),
                 DealEvent(FEB + timedelta(days=5), None, "counted", _counted("drawn", "LC1", "5.00")))
    await fill(led, extra=[*extra, late])
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 0, res.output
    return led, arc


@pytest.mark.parametrize("edit", [
    "UPDATE archived_totals SET amount = 0.01 WHERE key = 'LC1'",          # the LC's drawings made smaller
    "DELETE FROM archived_totals WHERE key = 'LC2'",
    "INSERT INTO archived_totals SELECT anchor_seq, total, 'LC9', currency, day, amount, into_key FROM archived_totals "
    "LIMIT 1",
])
async def test_a_carried_total_edited_in_the_file_is_named(tmp_path: Path, bsp, edit: str) -> None:
    led, _arc = await _archived(tmp_path, bsp)
    _sql(led, edit)
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 1, res.output
    assert "(archived_totals" in res.output and "not those the anchor sealed" in res.output, res.output


async def test_a_row_naming_no_anchor_and_a_changed_digest_are_named(tmp_path: Path, bsp) -> None:
    led, _arc = await _archived(tmp_path, bsp)
    _sql(led, "INSERT INTO archived_totals VALUES (999999, 'drawn', 'LC3', 'EUR', '', -100, NULL)")
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 1 and "name no archive anchor" in res.output, res.output
    _sql(led, "DELETE FROM archived_totals WHERE anchor_seq = 999999")
    _sql(led, "UPDATE archived_totals SET amount = 1 WHERE key = 'LC1'")
    _sql(led, "UPDATE audit_anchor SET carried_sha256 = NULL")     # hiding the change from the digest check
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 1 and "does not match its seal" in res.output, res.output
