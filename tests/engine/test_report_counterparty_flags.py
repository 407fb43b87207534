"""`counterparty-statement` and `daily-summary` on a real ledger: a failed deal flagged for an operator (its call left in doubt, so
the money may stand at the counterpart) says so in the `flag` column, open or as the operator resolved it, and
the key figures count the open ones: a reader of the statement sees "failed" and would take it as not paid."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio

from engine.deal import DealEvent, DealRecord
from engine.deal_resolve import resolve_in_file
from engine.ledger import open_ledger
from engine.reports import build_report, period
from engine.reports.tabular import csv_text

T = datetime(2026, 11, 26, 13, 0, tzinfo=timezone.utc)


async def _fill(path: Path) -> list[str]:
    ids = []
    async with open_ledger(path) as ledger:
        for i, (status, flagged) in enumerate((("committed", False), ("failed", True), ("failed", True),
                                               ("failed", False))):
            at = T + timedelta(minutes=i)
            deal = DealRecord(
                deal_type="TRANSFER", route="transfer", config_version="v1", channel="mainframe", status=status,
                received_at=at, finished_at=at + timedelta(milliseconds=4), reference=f"{i:06d}",
                amount=Decimal("300.00"), currency="EUR", party="ACME", response_code="00" if i == 0 else "91",
                events=[DealEvent(at, "calling post", "flagged", {"why": "call post left in doubt"})] if flagged
                else [])
            await ledger.commit(deal)
            ids.append(deal.deal_id)
    return ids


def test_a_flagged_failed_deal_says_so_on_the_statement(tmp_path: Path) -> None:
    path = tmp_path / "bsp.duckdb"
    ids = trio.run(_fill, path)
    resolve_in_file(path, ids[2], "applied", "booked by hand, OPS-1", "ops-alice", None)
    rep = build_report("counterparty-statement", path, period("2026-11-26"), party="ACME")
    assert [(r["reference"], r["status"], r["flag"]) for r in rep.main.dicts()] == [
        ("000000", "committed", None),
        ("000001", "failed", "flagged, open: settle it with the counterpart, then bsp deals resolve"),
        ("000002", "failed", "flagged, resolved: applied"),
        ("000003", "failed", None),
    ]
    assert ("flagged, open", "1") in rep.figures
    assert csv_text(rep.main).splitlines()[0].endswith(",deal_id,flag")


def test_the_daily_summary_counts_the_open_flags(tmp_path: Path) -> None:
    path = tmp_path / "bsp.duckdb"
    ids = trio.run(_fill, path)
    resolve_in_file(path, ids[2], "applied", "booked by hand, OPS-1", "ops-alice", None)
    rep = build_report("daily-summary", path, period("2026-11-26"))
    assert ("flagged, open", "1 (bsp deals --flagged)") in rep.figures
    resolve_in_file(path, ids[1], "not-applied", "never booked, OPS-2", "ops-alice", None)
    assert not [f for f in build_report("daily-summary", path, period("2026-11-26")).figures if "flagged" in f[0]]
