"""The two sides of a reconciliation: ledger deals and statement lines."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

# references that say "there is none"
_EMPTY_REFS = {"", "nonref", "notprovided", "none", "n/a", "-"}


def norm_ref(ref: str | None) -> str:
    """Compare references without case and runs of blanks: ``' TFNR  0300 '`` ~ ``'tfnr 0300'``."""
    return re.sub(r"\s+", " ", (ref or "").strip()).casefold()


def usable(ref: str | None) -> bool:
    return norm_ref(ref) not in _EMPTY_REFS


@dataclass(frozen=True, slots=True)
class LedgerDeal:
    deal_id: str
    reference: str | None
    amount: Decimal
    currency: str
    received_at: datetime          # aware, UTC
    party: str | None = None
    in_scope: bool = True          # received inside the reconciled days (else only a candidate for a late booking)
    business_day: date | None = None   # its day on the reconciliation's clock (--tz, --cutoff); None: the UTC date

    @property
    def day(self) -> date:
        return self.business_day or self.received_at.date()


@dataclass(frozen=True, slots=True)
class StatementLine:
    where: str                     # "file:line" (MT940, CSV), "file: Stmt 1 / Ntry 2" (camt.053), "... Rpt 1 ..." (camt.052)
    amount: Decimal                # signed as the statement shows it: credits +, debits -
    currency: str
    booking_date: date | None
    value_date: date | None
    refs: tuple[str, ...] = ()     # candidate references, the most specific first (EndToEndId, EREF+ ...)
    text: str = ""                 # free text searched for a ledger reference (:86:, RmtInf/Ustrd ...)
    detail: str = ""               # said after `where` in an error: " (report R1, byte 1234)" (camt)

    @property
    def day(self) -> date | None:
        return self.booking_date or self.value_date

    @property
    def reference(self) -> str:
        return next((r for r in self.refs if usable(r)), "")

    def days(self) -> list[date]:
        return [d for d in (self.booking_date, self.value_date) if d is not None]


__all__ = ["LedgerDeal", "StatementLine", "norm_ref", "usable"]
