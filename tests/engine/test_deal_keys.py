"""The ledger's deal key index (deal_keys, schema 4) and ``LedgerStore.deals_by_key``, on real DuckDB files.

``deals_by_key`` must answer exactly what the look-up of schema 3 answered (a scan of deal_events, kept
below as the reference) and, for fresh keys, read nothing but deal_keys' index (DuckDB's own profiler
says which tables a query read and how)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.deal import DealEvent, DealRecord
from engine.ledger import open_ledger
from engine.ledger_store import KEYS_FROM_EVENTS, DealRows, LedgerStore

# The look-up of ledger schema 3 (before deal_keys): the reference the index must agree with.
OLD_QUERY = (
    "SELECT json_extract_string(e.detail, '$.key') AS k, d.deal_id, d.status, d.response_code, "
    "d.finished_at FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id "
    "WHERE e.to_state IN ('accepted', 'in flight at restart', 'committed', 'failed', 'rejected') "
    "AND list_contains(?, json_extract_string(e.detail, '$.key')) AND d.status <> 'duplicate' "
    "ORDER BY d.finished_at")

T = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def old_lookup(con: Any, keys: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, deal_id, status, code, finished in con.execute(OLD_QUERY, [keys]).fetchall():
        # fp: the deal's fingerprint (engine/txn/fingerprint.py), None for these deals without amount, currency or party
        out.setdefault(k, {"deal_id": deal_id, "status": status, "response_code": code, "finished_at": finished,
                           "fp": None})
    return out


def record(n: int, status: str, events: list[tuple[str | None, str, Any]], *, finished_min: int,
           code: str | None = None) -> DealRecord:
    at = T + timedelta(minutes=finished_min)
    return DealRecord(deal_id=f"{n:032x}", deal_type="TRANSFER", route="transfer", config_version="v1",
                      channel="front", status=status, received_at=at - timedelta(seconds=1), finished_at=at,
                      reference=f"R{n}", response_code=code,
                      events=[DealEvent(at, f, t, d) for f, t, d in events])


# Every way a deal key reaches deal_events (engine/txn/manager.py, engine/txn/recovery.py), and the
# look-alikes that must not count.
DEALS = [
    record(1, "committed", [("received", "accepted", {"key": "r|a"}), ("accepted", "calling d", None),
                            ("calling d", "committed", None)], finished_min=10),
    # the same key again, finished earlier (a deal run again after its row was gone, say): the first by
    # finished_at wins, not the first written
    record(2, "failed", [("received", "accepted", {"key": "r|a"}), ("accepted", "failed", None)],
           finished_min=5, code="05"),
    # a repeat: its events name the key, it is never the deal a key leads to
    record(3, "duplicate", [("received", "duplicate", {"original": "x", "key": "r|a"})], finished_min=1, code="94"),
    record(4, "duplicate", [("received", "accepted", {"key": "r|b"})], finished_min=1),
    # resolved on restart: the key is in `in flight at restart`, then `accepted` again (policy complete)
    record(5, "failed", [(None, "in flight at restart", {"steps": {"key": "sending"}, "key": "r|c"}),
                         ("in flight at restart", "recovered", {"policy": "complete"}),
                         ("recovered", "accepted", {"key": "r|c"}), ("accepted", "failed", None)],
           finished_min=20, code="96"),
    # written again from the transaction log: the event is named after the status
    record(6, "rejected", [(None, "rejected", {"recovered": "row written on restart", "key": "r|d"})],
           finished_min=30, code="13"),
    record(7, "committed", [(None, "committed", {"recovered": "row written on restart", "key": "r|e"})],
           finished_min=31),
    # a key-shaped value in an event that does not carry the deal key, and no key at all
    record(8, "committed", [("received", "calling d", {"key": "r|f"}), ("calling d", "committed", None)],
           finished_min=40),
    record(9, "committed", [("received", "accepted", None), ("accepted", "committed", {"n": 1})], finished_min=41),
    record(10, "committed", [], finished_min=42),                               # a deal line: no events
]
KEYS = ["r|a", "r|b", "r|c", "r|d", "r|e", "r|f", "r|none"]


@pytest.mark.parametrize("sync", ["duckdb", "journal"])
async def test_the_index_answers_what_the_deal_events_scan_answered(tmp_path: Path, sync: str) -> None:
    from engine.journal import open_ledger_sync
    path = tmp_path / "l.duckdb"
    async with open_ledger_sync(path, sync, audit_key=None, keyring=None) as ledger:
        assert await ledger.commit_many(DEALS) == [None] * len(DEALS)
    store = LedgerStore.open(path)
    try:
        got = store.deals_by_key(KEYS)
        assert got == old_lookup(store.connection, KEYS)
        assert {k: v["deal_id"] for k, v in got.items()} == {
            "r|a": f"{2:032x}", "r|c": f"{5:032x}", "r|d": f"{6:032x}", "r|e": f"{7:032x}"}
        assert got["r|a"]["status"] == "failed" and got["r|a"]["response_code"] == "05"
        assert got["r|a"]["finished_at"] == T + timedelta(minutes=5)
        rows = store.connection.execute("SELECT key, deal_id FROM deal_keys ORDER BY deal_id").fetchall()
        assert rows == [("r|a", f"{1:032x}"), ("r|a", f"{2:032x}"), ("r|c", f"{5:032x}"),
                        ("r|d", f"{6:032x}"), ("r|e", f"{7:032x}")]            # once per deal and key
        assert sorted(rows) == sorted(store.connection.execute(KEYS_FROM_EVENTS).fetchall())
        for one in KEYS:                                     # key by key, too
            assert store.deals_by_key([one]) == old_lookup(store.connection, [one])
        assert store.deals_by_key([]) == {}
    finally:
        store.close()


def _profiled(store: LedgerStore, tmp_path: Path, fn: Any) -> list[dict[str, Any]]:
    """The table scans (table name, scan type) of the last query ``fn`` runs, from DuckDB's profiler."""
    out = tmp_path / "profile.json"
    con = store.connection
    con.execute("SET enable_profiling = 'json'").fetchall()
    con.execute(f"SET profiling_output = '{out}'").fetchall()
    try:
        fn()
    finally:
        con.execute("SET enable_profiling = 'no_output'").fetchall()
    scans: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info") or {}
        if "Table" in info:
            scans.append({"table": info["Table"].split(".")[-1], "type": info.get("Type"),
                          "rows_scanned": node.get("rows_scanned")})
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(out.read_text())["operator"]:
        walk(node)
    return scans


async def test_fresh_keys_read_the_index_only_never_deal_events(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    n = 3000
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:
        records = [record(i, "committed", [("received", "accepted", {"key": f"transfer|K{i}"}),
                                           ("accepted", "committed", None)], finished_min=i) for i in range(n)]
        assert await ledger.commit_many(records) == [None] * n
    store = LedgerStore.open(path)
    try:
        # fresh keys of the stored shape, sorting among them: no zone map can rule them out
        fresh = [f"transfer|K{n + 7 * i}" for i in range(64)]
        scans = _profiled(store, tmp_path, lambda: store.deals_by_key(fresh))
        assert scans == [{"table": "deal_keys", "type": "Index Scan", "rows_scanned": 0}]
        assert store.deals_by_key(fresh) == old_lookup(store.connection, fresh) == {}
        # keys found: the index, then the deals rows of the keys found; still no deal_events
        known = [f"transfer|K{i * 40}" for i in range(64)] + fresh
        assert store.deals_by_key(known) == old_lookup(store.connection, known)
        assert len(store.deals_by_key(known)) == 64
        scans = _profiled(store, tmp_path, lambda: store.deals_by_key(known))
        assert [s["table"] for s in scans] == ["deals"]       # the last query: deals for the 64 found
    finally:
        store.close()


def _rows(n: int, key: str) -> DealRows:
    at = T + timedelta(minutes=n)
    did = f"{n:032x}"
    row = {"deal_id": did, "deal_type": "TRANSFER", "route": "transfer", "config_version": "v1", "channel": "front",
           "reference": f"R{n}", "amount": None, "currency": None, "party": None, "status": "committed",
           "response_code": None, "reason": None, "received_at": at, "finished_at": at, "duration_ms": 1.0,
           "request": None, "response": None}
    return DealRows(row, [], [{"deal_id": did, "seq": 1, "at": at, "from_state": "received", "to_state": "accepted",
                               "detail": json.dumps({"key": key})}])


def test_a_batch_refused_by_duckdb_leaves_no_deal_keys(tmp_path: Path) -> None:
    """deal_keys rows go in the deal's transaction: a batch DuckDB refuses writes none of them."""
    store = LedgerStore.open(tmp_path / "l.duckdb")
    try:
        good, bad = _rows(1, "r|g"), _rows(2, "r|h")
        bad.steps = [{"deal_id": bad.row["deal_id"], "seq": 1, "step": None, "kind": "call", "vote": None,
                      "outcome": "ok", "started_at": T, "duration_ms": 1.0, "detail": None}]   # step is NOT NULL
        with pytest.raises(duckdb.Error):
            store.write([good, bad])
        assert store.connection.execute("SELECT count(*) FROM deal_keys").fetchall() == [(0,)]
        store.write([good])
        assert store.connection.execute("SELECT key, deal_id FROM deal_keys").fetchall() == [("r|g", f"{1:032x}")]
    finally:
        store.close()
