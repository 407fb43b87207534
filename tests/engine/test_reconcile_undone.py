"""A failed deal whose debit the engine took back (compensated) shows on the core's statement as a debit and
its credit back: two lines "only in statement".  Their note says the deal failed *and* its debit was undone,
so the accountant sees the pair is the failure and its undoing, not money missing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio

from engine.deal import DealEvent, DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file

AT = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)


async def _fill(path: Path) -> str:
    async with open_ledger(path) as ledger:
        await ledger.commit(DealRecord(
            deal_type="SETTLED_SUBSCRIPTION", route="settled_subscription", config_version="v1", channel="mf",
            status="committed", received_at=AT, finished_at=AT + timedelta(milliseconds=4), reference="SS-1",
            amount=Decimal("100.00"), currency="CNY", party="CHAM"))
        failed = DealRecord(
            deal_type="SETTLED_SUBSCRIPTION", route="settled_subscription", config_version="v1", channel="mf",
            status="failed", received_at=AT, finished_at=AT + timedelta(milliseconds=9), reference="SS-2",
            amount=Decimal("11810.88"), currency="CNY", party="CHAM", response_code="91",
            events=[DealEvent(AT, "accepted", "calling debit"), DealEvent(AT, "calling debit", "calling order"),
                    DealEvent(AT, "calling order", "compensated debit"), DealEvent(AT, "compensated debit", "failed")])
        await ledger.commit(failed)
    return failed.deal_id


def test_a_compensated_failed_deal_says_its_debit_was_undone(tmp_path: Path) -> None:
    ledger = tmp_path / "bsp.duckdb"
    deal_id = trio.run(_fill, ledger)
    stmt = tmp_path / "core.csv"
    stmt.write_text("reference,amount,currency,date\n"
                    "SS-1,-100.00,CNY,2026-11-26\n"
                    "SS-2,-11810.88,CNY,2026-11-26\n"
                    "SS-2,11810.88,CNY,2026-11-26\n")
    _, rows = reconcile_file(ledger, stmt, "csv", party="CHAM")
    said = (f"no committed deal of these days with this reference; the ledger has: deal {deal_id} (2026-11-26, "
            f"failed, debit undone (compensated))")
    assert [(r.status, r.line.where, r.note) for r in rows if r.status != "matched"] == [
        ("only_in_statement", f"{stmt}:3", said), ("only_in_statement", f"{stmt}:4", said)]
