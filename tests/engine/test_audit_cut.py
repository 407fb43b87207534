"""Records cut from the chain's end while the engine was stopped (the DuckDB file edited directly) are named by
`bsp audit verify`, also after the next writer opened the ledger and wrote on: that open records a chained
`audit break` (engine/audit_cut.py) instead of continuing from the cut as if nothing happened."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import trio

from engine.audit_cut import head_path
from engine.ledger import open_ledger
from tests.engine.test_audit import KEY, check, cli, deal, fill, sql

TABLES = ("deals", "deal_steps", "deal_events", "dead_letters", "config_versions")


async def _two_more(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(10))
        await ledger.commit(deal(11))


def _cut_after(path: Path, seq: int) -> None:
    for t in TABLES:
        sql(path, f"DELETE FROM {t} WHERE chain_seq > {seq}")
    sql(path, "DELETE FROM deal_keys WHERE deal_id NOT IN (SELECT deal_id FROM deals)")


async def _restart_and_write(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(20))


def _texts(report) -> list[str]:
    return [str(b) for b in report.breaks]


async def test_a_cut_with_the_head_row_deleted_stays_named_after_the_next_writer(tmp_path: Path,
                                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    cut = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    await _two_more(path)
    last = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    assert check(path).ok
    _cut_after(path, cut)
    sql(path, "DELETE FROM audit_head")
    await _restart_and_write(path)             # before: took the chain for one without a key and sealed on
    assert "AUDIT BREAK" in caplog.text and "had no key" not in caplog.text
    report = check(path)
    assert not report.ok, "the cut was laundered by the writer open"
    texts = _texts(report)
    assert [b.table for b in report.breaks] == ["audit break"], texts
    assert f"records seq {cut + 1}..{last} were deleted" in texts[0], texts
    await _restart_and_write(path)            # and again: the break is chained, it stays
    assert [b.table for b in check(path).breaks] == ["audit break"]


async def test_a_cut_with_an_old_head_row_put_back_is_named_before_and_after_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    old_seq, old_mac = sql(path, "SELECT chain_seq, mac FROM audit_head")[0]     # a copy kept of the head
    await _two_more(path)
    _cut_after(path, old_seq)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM audit_head")
    con.execute("INSERT INTO audit_head VALUES (?, ?)", [old_seq, old_mac])
    con.close()
    report = check(path)            # the head in the file verifies: only the one kept outside tells
    assert [b.table for b in report.breaks] == ["audit_head"], _texts(report)
    assert "kept outside the ledger" in _texts(report)[0] and "were deleted" in _texts(report)[0]
    await _restart_and_write(path)
    report = check(path)
    assert [b.table for b in report.breaks] == ["audit break"], _texts(report)
    assert f"ends at seq {old_seq}" in _texts(report)[0]


async def test_an_older_copy_put_in_place_of_the_ledger_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(path, backup)
    await _two_more(path)
    shutil.copyfile(backup, path)
    await _restart_and_write(path)
    report = check(path)
    assert [b.table for b in report.breaks] == ["audit break"], _texts(report)


async def test_the_tail_record_replaced_and_written_on_is_named(tmp_path: Path) -> None:
    """The record at the seq the kept head names is not the one it was: the chain was cut there and
    the writer of before continued (here: a head file of a later state put back after a cut and a write)."""
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    await _two_more(path)
    kept = head_path(path).read_bytes()
    seq = json.loads(kept)["seq"]
    _cut_after(path, seq - 3)
    sql(path, "DELETE FROM audit_head")
    head_path(path).unlink()       # deleted with the cut: the next open cannot compare (documented) ...
    await _restart_and_write(path)
    await _two_more(path)
    head_path(path).write_bytes(kept)     # ... but a copy kept off the host, put back, tells
    report = check(path)
    assert any("is not the one it was" in t for t in _texts(report)), _texts(report)


async def test_a_deleted_ledger_file_is_named_in_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    path.unlink()
    await _restart_and_write(path)
    report = check(path)
    assert [b.table for b in report.breaks] == ["audit break"], _texts(report)
    assert "records seq 1.." in _texts(report)[0]


async def test_a_changed_outside_head_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    doc = json.loads(head_path(path).read_bytes())
    doc["seq"] = 5
    head_path(path).write_text(json.dumps(doc))
    report = check(path)
    assert any("does not verify with the audit key" in t for t in _texts(report)), _texts(report)


async def test_untouched_ledgers_stay_clean_across_restarts_and_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    for _ in range(2):
        await _restart_and_write(path)
    assert check(path).ok
    # a writer killed after its open: the head kept outside is the open's, the ledger goes further
    kept = head_path(path).read_bytes()
    await _two_more(path)
    head_path(path).write_bytes(kept)
    assert check(path).ok
    await _restart_and_write(path)
    assert check(path).ok, _texts(check(path))


def test_verify_cli_exits_1_on_a_cut_after_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(fill, path, 3)
    cut = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    trio.run(_two_more, path)
    _cut_after(path, cut)
    sql(path, "DELETE FROM audit_head")
    trio.run(_restart_and_write, path)
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1, res.output
    assert "audit chain BROKEN" in res.output and "(audit break)" in res.output


async def test_the_tail_record_edited_with_the_head_row_deleted_stays_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    last = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    sql(path, f"UPDATE dead_letters SET reason = 'nothing happened' WHERE chain_seq = {last}")
    sql(path, "DELETE FROM audit_head")
    head_path(path).unlink()          # the kept head too: the head row's absence alone tells
    await _restart_and_write(path)
    report = check(path)
    tables = [b.table for b in report.breaks]
    assert tables == ["dead_letters", "audit break"], _texts(report)
    assert "modified" in _texts(report)[0] and "head row is gone" in _texts(report)[1]
