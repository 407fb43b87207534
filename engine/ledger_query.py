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

import duckdb
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


# ---------------------------------------------------------------- one deal's story

def _read_only(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger file here (an engine creates it on its first run)")
    return connect(path, read_only=True)


def _dicts(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _has_table(con: Any, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()[0][0])


class AmbiguousId(LookupError):
    """A deal id prefix that matches more than one deal."""


def get_deal(path: str | Path, deal_id: str) -> dict[str, Any] | None:
    """The whole story of one deal, or None when no deal has this id.

    ``deal_id`` may be a unique prefix (at least 8 hex digits).  The dict has
    the ``deals`` columns (as ``query_deals`` gives them) plus ``steps`` and
    ``events`` (lists of dicts in order), ``calls`` (the steps of kind
    ``call``), ``chain_seq`` and ``config`` (``version``, ``loaded_at``,
    ``files``: the route files of that configuration, or None when it was
    never recorded).
    """
    path = Path(path)
    con = _read_only(path)
    try:
        try:
            cols = ", ".join(COLUMNS)
            if len(deal_id) >= 32:
                rows = _dicts(con, f"SELECT {cols}, chain_seq FROM deals WHERE deal_id = ?", [deal_id])
            elif len(deal_id) >= 8:
                rows = _dicts(con, f"SELECT {cols}, chain_seq FROM deals WHERE starts_with(deal_id, ?) LIMIT 3",
                              [deal_id.lower()])
            else:
                raise ValueError(f"deal id {deal_id!r} is too short: give the 32-digit id or at least its first 8 digits")
            if len(rows) > 1:
                raise AmbiguousId(f"deal id prefix {deal_id!r} matches several deals "
                                  f"({', '.join(r['deal_id'] for r in rows)}...); give more digits")
            if not rows:
                return None
            d = rows[0]
            full = d["deal_id"]
            d["steps"] = _dicts(con, "SELECT seq, step, kind, vote, outcome, started_at, duration_ms, detail "
                                     "FROM deal_steps WHERE deal_id = ? ORDER BY seq", [full])
            d["events"] = _dicts(con, 'SELECT seq, "at", from_state, to_state, detail '
                                      "FROM deal_events WHERE deal_id = ? ORDER BY seq", [full])
            cfg = _dicts(con, "SELECT version, loaded_at, sources FROM config_versions WHERE version = ?",
                         [d["config_version"]])
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read deal {deal_id}: {exc}") from exc
    finally:
        con.close()
    d["amount"] = display_amount(d["amount"], d["currency"])
    for k in ("received_at", "finished_at"):
        d[k] = d[k].astimezone(timezone.utc)
    for k in ("request", "response"):
        if d[k] is not None:
            d[k] = orjson.loads(d[k])
    for item in (*d["steps"], *d["events"]):
        if item.get("detail") is not None:
            item["detail"] = orjson.loads(item["detail"])
        for k in ("started_at", "at"):
            if k in item:
                item[k] = item[k].astimezone(timezone.utc)
    d["calls"] = [s for s in d["steps"] if s["kind"] == "call"]
    if cfg:
        c = cfg[0]
        sources = orjson.loads(c["sources"]) if c["sources"] else {}
        d["config"] = {"version": c["version"], "loaded_at": c["loaded_at"].astimezone(timezone.utc),
                       "files": sorted(sources) if isinstance(sources, dict) else []}
    else:
        d["config"] = None
    return d


# ---------------------------------------------------------------- dead letters

DEAD_LIST_COLUMNS = ("id", "at", "route", "channel", "reason", "error_kind", "error_code", "config_version",
                     "status", "retried_at", "retry_outcome", "raw_key", "raw_sha256", "chain_seq")


def query_dead_letters(
    path: str | Path,
    *,
    route: str | None = None,
    channel: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: list[str] | None = None,
    limit: int | None = 50,
    with_raw: bool = False,
) -> list[dict[str, Any]]:
    """Dead letters matching every filter, newest first.  ``reason`` is a case-insensitive substring.

    With ``with_raw`` each dict has ``raw``: the stored bytes (encrypted when
    ``raw_key`` is set; see ``engine.deadletter.raw_bytes``), None once purged.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("route", route), ("channel", channel), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if reason is not None:
        where.append("contains(lower(reason), lower(?))")
        params.append(reason)
    if since is not None:
        where.append('"at" >= ?')
        params.append(_utc(since, "since"))
    if until is not None:
        where.append('"at" < ?')
        params.append(_utc(until, "until"))
    if ids:
        where.append(f"id IN ({', '.join('?' for _ in ids)})")
        params.extend(ids)
    cols = ", ".join(f'"{c}"' for c in DEAD_LIST_COLUMNS) + (", raw" if with_raw else "")
    sql = f"SELECT {cols} FROM dead_letters"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += ' ORDER BY "at" DESC, id DESC'
    if limit is not None:
        if limit < 0:
            raise ValueError(f"query_dead_letters: limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    path = Path(path)
    con = _read_only(path)
    try:
        if not _has_table(con, "dead_letters"):
            return []
        try:
            rows = _dicts(con, sql, params)
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read dead letters: {exc}") from exc
    finally:
        con.close()
    for r in rows:
        for k in ("at", "retried_at"):
            if r[k] is not None:
                r[k] = r[k].astimezone(timezone.utc)
    return rows
