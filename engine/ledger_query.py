"""Reading the deal ledger: ``query_deals`` for ``bsp deals``, reports and tests.

Reads open the file read-only.  DuckDB lets one process hold a file for
writing, and a read-only open from another process is refused while that
writer runs (file lock); within one process, a read-only connection cannot
join a read-write one either.  So query a ledger when no engine holds it, or
query a copy.  ``LedgerError`` says so when the file is locked.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from engine.ledger_store import COLUMNS, LedgerError, connect

# ISO 4217 minor units that are not 2; amounts are shown with their currency's
# decimals when that loses nothing (the column stores 4).
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def minor_units(currency: str | None) -> int:
    return _MINOR_UNITS.get((currency or "").upper(), 2)


def display_amount(amount: Decimal | None, currency: str | None) -> Decimal | None:
    """``amount`` with its currency's decimals (120.5000 CNY -> 120.50) unless that would drop digits."""
    if amount is None:
        return None
    q = amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
    if q == amount:
        return q
    return amount.normalize()   # more decimals than the currency has: show them all


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"query_deals: {name} must be a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def query_deals(
    path: str | Path,
    *,
    deal_type: str | None = None,
    status: str | None = None,
    reference: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Deals matching every given filter, newest first (by received_at).

    ``since`` is inclusive, ``until`` exclusive; naive datetimes are taken as
    UTC.  ``limit=None`` returns all.  Each dict has the ``deals`` columns:
    ``amount`` as ``Decimal`` (with its currency's decimals), timestamps as
    aware UTC datetimes, ``request``/``response`` parsed from JSON (money in
    them is an exact string).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger file here (an engine creates it on its first run)")
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("deal_type", deal_type), ("status", status), ("reference", reference)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("received_at >= ?")
        params.append(_utc(since, "since"))
    if until is not None:
        where.append("received_at < ?")
        params.append(_utc(until, "until"))
    sql = f"SELECT {', '.join(COLUMNS)} FROM deals"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY received_at DESC, deal_id DESC"
    if limit is not None:
        if limit < 0:
            raise ValueError(f"query_deals: limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    con = connect(path, read_only=True)
    try:
        try:
            rows = con.execute(sql, params).fetchall()
        except Exception as exc:
            raise LedgerError(f"{path}: cannot read deals: {exc}") from exc
    finally:
        con.close()
    out = []
    for row in rows:
        d = dict(zip(COLUMNS, row))
        d["amount"] = display_amount(d["amount"], d["currency"])
        for k in ("received_at", "finished_at"):
            d[k] = d[k].astimezone(timezone.utc)
        for k in ("request", "response"):
            if d[k] is not None:
                d[k] = orjson.loads(d[k])
        out.append(d)
    return out
