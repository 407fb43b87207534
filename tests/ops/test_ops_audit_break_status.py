"""A start that finds records cut from the ledger's audit chain (edited while stopped, or an older copy put in
its place: a restore from a snapshot) logs `AUDIT BREAK` once and records it; until 2026-11-27 nothing else
said so: `bsp status` had no word of the audit chain (nor whether the ledger was keyed at all) and /metrics no
series an alert could watch, so a monitoring setup never saw a tampered or restored ledger.  Now `bsp status`
`ledger.audit` {keyed, break_at_start}, the table's red line, and `bsp_audit_keyed` / `bsp_audit_break_recorded`.

A real engine (LiveEngine as `bsp run` runs it) on a real keyed DuckDB ledger, cut as tests/engine/test_audit_cut.py
cuts one."""
from __future__ import annotations

from pathlib import Path

from engine.ops.backend import EngineBackend
from engine.ops.gauges import EngineMetrics
from opskit import ECHO, live
from test_ops_degraded import _table
from tests.engine.test_audit import KEY, fill, sql
from tests.engine.test_audit_cut import _cut_after, _two_more


async def _status_and_metrics(tmp_path: Path, ledger: Path) -> tuple[dict, str]:
    route = tmp_path / "r.route"
    route.write_text(ECHO % "x")
    async with live([route], ledger, audit_key=KEY) as eng:
        doc = dict(await EngineBackend(eng, eng.observer).status())
        metrics = EngineMetrics()
        metrics.watch(eng)
        return doc, metrics.render().decode()


async def test_a_cut_found_at_the_start_is_in_status_the_table_and_metrics(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    await fill(ledger, 3)
    doc, text = await _status_and_metrics(tmp_path, ledger)        # whole: keyed, no break
    assert doc["ledger"]["audit"] == {"keyed": True, "break_at_start": None}, doc["ledger"]
    assert "bsp_audit_keyed 1.0" in text and "bsp_audit_break_recorded 0.0" in text, text
    assert "AUDIT BREAK" not in _table({**doc, "ready": True})

    cut = sql(ledger, "SELECT chain_seq FROM audit_head")[0][0]
    await _two_more(ledger)
    _cut_after(ledger, cut)                   # the newest records deleted while no writer had the file
    sql(ledger, "DELETE FROM audit_head")
    doc, text = await _status_and_metrics(tmp_path, ledger)
    found = doc["ledger"]["audit"]["break_at_start"]
    assert found is not None and found["seq"] == cut + 1, doc["ledger"]
    assert "were deleted" in found["what"], found
    assert "bsp_audit_break_recorded 1.0" in text, text
    table = _table({**doc, "ready": True})
    assert f"AUDIT BREAK recorded at this start (seq {cut + 1})" in table, table


async def test_a_ledger_written_without_an_audit_key_says_so(tmp_path: Path) -> None:
    route = tmp_path / "r.route"
    route.write_text(ECHO % "x")
    async with live([route], tmp_path / "l.duckdb") as eng:
        doc = dict(await EngineBackend(eng, eng.observer).status())
        metrics = EngineMetrics()
        metrics.watch(eng)
        text = metrics.render().decode()
    assert doc["ledger"]["audit"] == {"keyed": False, "break_at_start": None}, doc["ledger"]
    assert "bsp_audit_keyed 0.0" in text, text
    assert "ledger records not tamper-protected: no audit key" in _table({**doc, "ready": True})
