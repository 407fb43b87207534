"""`bsp audit verify` with a key that is not the ledger's says so, and a check stopped at --max-breaks
claims nothing about the records it did not read (it said the newest ones were deleted)."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.engine.test_audit import KEY, check, cli, fill, sql

OTHER = bytes([9]) * 32


async def test_a_wrong_key_is_named_as_such_not_as_tampering(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    report = check(path, key=OTHER)
    assert not report.ok and report.wrong_key
    assert len(report.breaks) == 1 and report.breaks[0].table == "audit key"
    assert "not the key this ledger's chain was sealed with" in report.breaks[0].what


async def test_the_right_key_with_every_checked_record_modified_is_not_a_wrong_key(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    sql(path, "UPDATE deals SET reference = 'X'")
    report = check(path)
    assert not report.wrong_key and "modified" in report.breaks[0].what      # the head still verifies


async def test_a_check_stopped_at_max_breaks_does_not_claim_the_rest_was_deleted(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 10)
    sql(path, "UPDATE deal_events SET detail = '{\"x\": 1}'")     # 20 records modified, the chain goes on
    from engine.audit import verify
    import duckdb
    con = duckdb.connect(str(path), read_only=True)
    try:
        report = verify(con, path, KEY, max_breaks=5)
    finally:
        con.close()
    text = [str(b) for b in report.breaks]
    assert report.stopped_early and len(report.breaks) == 5, text
    assert not any("deleted" in t or "audit_head" in t for t in text), text


def test_verify_cli_wrong_key_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(fill, path, 30)
    res = cli(monkeypatch, path, OTHER)
    assert res.exit_code == 1, res.output
    assert "the audit key (BSP_AUDIT_KEY) is not the key this ledger's chain was sealed with" in res.output
    assert "were deleted" not in res.output and "modified after it was written" not in res.output
    res = cli(monkeypatch, path, KEY, "--max-breaks", "1")
    assert res.exit_code == 0, res.output
