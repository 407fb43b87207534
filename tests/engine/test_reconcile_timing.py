"""`bsp reconcile --date DAY` on a real ledger: a deal of 23:59 UTC that the counterparty books the next morning
is "only in ledger" on its own day (the statement's lines of the next day are not read), and its note says where
the statement books it, so the accountant sees a timing difference that the next day's run clears."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file

DEALS = (("000134", "19.99", datetime(2026, 11, 26, 23, 59, 59, 999000, tzinfo=timezone.utc)),
         ("000124", "0.01", datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)),
         ("000200", "7.00", datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)))


async def _fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for ref, amount, at in DEALS:
            await ledger.commit(DealRecord(
                deal_type="TRANSFER", route="transfer", config_version="v1", channel="mainframe",
                status="committed", received_at=at, finished_at=at + timedelta(milliseconds=4),
                reference=ref, amount=Decimal(amount), currency="EUR", party="ACME"))


def test_a_deal_booked_the_next_day_says_so_on_its_own_day(tmp_path: Path) -> None:
    ledger = tmp_path / "bsp.duckdb"
    trio.run(_fill, ledger)
    stmt = tmp_path / "acme.csv"
    stmt.write_text("reference,amount,currency,date\n"
                    "000124,0.01,EUR,2026-11-26\n"
                    "000134,19.99,EUR,2026-11-27\n")
    _, rows = reconcile_file(ledger, stmt, "csv", on=date(2026, 11, 26), party="ACME")
    notes = {r.deal.reference: (r.status, r.note) for r in rows if r.status != "matched"}
    assert notes == {
        "000134": ("only_in_ledger", f"not on the statement's lines of 2026-11-26; booked 2026-11-27 ({stmt}:3), "
                                     f"outside --date 2026-11-26: a timing difference, reconciled with --date "
                                     f"2026-11-27"),
        "000200": ("only_in_ledger", "not on the statement"),   # booked on no day: a real break
    }
    _, next_day = reconcile_file(ledger, stmt, "csv", on=date(2026, 11, 27), party="ACME")
    assert [(r.status, r.deal.reference) for r in next_day] == [("matched", "000134")]
    _, whole = reconcile_file(ledger, stmt, "csv", party="ACME")     # without --date: nothing to explain
    assert {r.deal.reference: r.note for r in whole if r.status == "only_in_ledger"} == {
        "000200": "not on the statement"}
