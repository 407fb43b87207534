"""The ledger's deal key look-up past the key store's retention (``LedgerStore.deals_by_key``).

    .venv/bin/python bench/bench_key_lookup.py                     # 1M keyed deals
    .venv/bin/python bench/bench_key_lookup.py --deals 10000000    # 10M (~3 GB of disk, a few minutes to fill)

Fills a real ledger file (schema from ``LedgerStore.open``; rows by SQL ``range()``, as a ledger of keyed
deals looks: each deal an ``accepted`` event carrying its key and a final ``committed`` event, and its
deal_keys row), then times the look-up of 64 fresh keys (none in the ledger: the common case, every batch of
a keyed route once the key store has dropped keys), of 64 existing keys spread over the whole ledger
(repeats; the worst case for the read of their deals rows) and of 64 existing keys of deals made within a
few seconds (one file repeated), both ways:

* before: the query of schema 3 (kept below): every deal_events row's detail through json_extract_string,
  joined with deals;
* after: ``LedgerStore.deals_by_key`` (deal_keys' index, then deals for the keys found).

Then the cost of writing deal_keys rows: the deals of ``--write-batches`` batches of 4,096 keyed deals
through ``LedgerStore.write``, with and without their deal_keys rows (the write measured as a whole), and
the schema-4 migration of a ledger that size (deal_keys emptied, then back-filled from deal_events and
indexed, as ``LedgerStore.open`` does for a schema-3 file).
Figures: docs/benchmarks.md section 3, docs/transactions.md (Key retention).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.ledger_store import KEYS_INDEX_DDL, DealRows, LedgerStore, _migrate_to_4  # noqa: E402

# The look-up of schema 3 (engine/ledger_store.py before deal_keys), for comparison.
OLD_QUERY = (
    "SELECT json_extract_string(e.detail, '$.key') AS k, d.deal_id, d.status, d.response_code, "
    "d.finished_at FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id "
    "WHERE e.to_state IN ('accepted', 'in flight at restart', 'committed', 'failed', 'rejected') "
    "AND list_contains(?, json_extract_string(e.detail, '$.key')) AND d.status <> 'duplicate' "
    "ORDER BY d.finished_at")


def old_deals_by_key(store: LedgerStore, keys: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, deal_id, status, code, finished in store.connection.execute(OLD_QUERY, [keys]).fetchall():
        out.setdefault(k, {"deal_id": deal_id, "status": status, "response_code": code, "finished_at": finished})
    return out


def fill(store: LedgerStore, n: int) -> float:
    """``n`` keyed deals (ids D<i>, keys transfer|K<i>), by SQL; returns seconds."""
    con = store.connection
    t = time.perf_counter()
    con.execute("BEGIN TRANSACTION").fetchall()
    con.execute(f"""INSERT INTO deals (deal_id, deal_type, route, config_version, channel, reference, status,
                    received_at, finished_at, duration_ms)
                    SELECT 'D' || lpad(i::VARCHAR, 9, '0'), 'TRANSFER', 'transfer', 'v1', 'front', 'R' || i,
                           'committed', TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 100),
                           TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 100 + 5), 5
                    FROM range({n}) t(i)""").fetchall()
    con.execute(f"""INSERT INTO deal_events SELECT 'D' || lpad(i::VARCHAR, 9, '0'), 1,
                    TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 100), 'received', 'accepted',
                    json_object('key', 'transfer|K' || i), NULL, NULL FROM range({n}) t(i)""").fetchall()
    con.execute(f"""INSERT INTO deal_events SELECT 'D' || lpad(i::VARCHAR, 9, '0'), 2,
                    TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * 100 + 5), 'accepted', 'committed',
                    NULL, NULL, NULL FROM range({n}) t(i)""").fetchall()
    con.execute(f"""INSERT INTO deal_keys SELECT 'transfer|K' || i, 'D' || lpad(i::VARCHAR, 9, '0')
                    FROM range({n}) t(i)""").fetchall()
    con.execute("COMMIT").fetchall()
    con.execute("CHECKPOINT").fetchall()
    return time.perf_counter() - t


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    """(median ms, best ms, last result) over ``rounds`` calls."""
    times, result = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times), min(times), result


def keyed_deals(start: int, count: int, with_key: bool) -> list[DealRows]:
    t0 = datetime(2026, 6, 1, tzinfo=timezone.utc)
    out = []
    for i in range(start, start + count):
        did = f"W{i:012d}"
        at = t0 + timedelta(milliseconds=i)
        row = {"deal_id": did, "deal_type": "TRANSFER", "route": "transfer", "config_version": "v1",
               "channel": "front", "reference": f"W{i}", "amount": None, "currency": None, "party": None,
               "status": "committed", "response_code": None, "reason": None, "received_at": at,
               "finished_at": at, "duration_ms": 1.0, "request": None, "response": None}
        detail = f'{{"key":"transfer|W{i}"}}' if with_key else '{"nokey":"transfer|W%d"}' % i
        events = [{"deal_id": did, "seq": 1, "at": at, "from_state": "received", "to_state": "accepted",
                   "detail": detail},
                  {"deal_id": did, "seq": 2, "at": at, "from_state": "accepted", "to_state": "committed",
                   "detail": None}]
        out.append(DealRows(row, [], events))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=1_000_000, help="keyed deals in the ledger (default 1M)")
    ap.add_argument("--rounds", type=int, default=7, help="look-ups timed per case (median reported)")
    ap.add_argument("--old-rounds", type=int, default=3, help="the same for the old query (slow at 10M)")
    ap.add_argument("--write-batches", type=int, default=10, help="batches of 4,096 keyed deals written")
    ap.add_argument("--dir", default=None, help="where the ledger file goes (default: a temporary directory)")
    args = ap.parse_args()
    n = args.deals
    d = Path(args.dir or tempfile.mkdtemp(prefix="bench_keys_"))
    path = d / "keys.duckdb"
    if path.exists():
        path.unlink()
    store = LedgerStore.open(path)
    secs = fill(store, n)
    size = os.path.getsize(path)
    print(f"ledger: {n:,} keyed deals, {2 * n:,} events, {n:,} deal_keys rows; filled in {secs:.1f} s, "
          f"{size / 1e6:,.0f} MB ({path})")
    # fresh keys of the same shape, which sort among the stored ones ('transfer|K1000007' lies between
    # 'transfer|K100000' and 'transfer|K100001'): no zone map can rule them out, only the index
    fresh = [f"transfer|K{n + 7 * i}" for i in range(64)]
    step = max(1, n // 64)
    existing = [f"transfer|K{i * step}" for i in range(64)]
    clustered = [f"transfer|K{n // 2 + i}" for i in range(64)]    # one file's deals repeated: 6.4 s of deals
    for label, keys in (("64 fresh keys", fresh), ("64 existing keys", existing),
                        ("64 existing, close", clustered)):
        new_med, new_best, new = timed(lambda: store.deals_by_key(keys), args.rounds)
        old_med, old_best, old = timed(lambda: old_deals_by_key(store, keys), args.old_rounds)
        assert new == old, "the two look-ups disagree"
        print(f"{label:18}: before (deal_events scan) {old_med:8.2f} ms median ({old_best:.2f} best); "
              f"after (deal_keys) {new_med:6.2f} ms median ({new_best:.2f} best); {len(new)} found")
    art = store.connection.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'ART_INDEX'").fetchall()
    print(f"DuckDB memory held by ART indexes after the look-ups: {(art[0][0] or 0) / 1e6:,.0f} MB; "
          f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    # writing: batches with keys (deal_keys rows) and without (no key in the events), alternating
    per = 4096
    times: dict[bool, list[float]] = {False: [], True: []}
    for b in range(2 * args.write_batches):
        with_key = bool(b % 2)
        batch = keyed_deals((b + 1) * 10_000_000, per, with_key)
        t = time.perf_counter()
        store.write(batch)
        times[with_key].append((time.perf_counter() - t) * 1000.0)
    for with_key in (False, True):
        ms = statistics.median(times[with_key])
        print(f"write {per} deals (2 events each) {'with' if with_key else 'without'} deal_keys rows: "
              f"{ms:.1f} ms a batch median of {args.write_batches} ({ms * 1000.0 / per:.2f} us a deal)")
    extra = statistics.median(times[True]) - statistics.median(times[False])
    print(f"deal_keys rows cost {extra * 1000.0 / per:.2f} us a keyed deal (difference of the medians)")
    # the schema-4 migration of a ledger this size: back-fill deal_keys from deal_events, build the index
    con = store.connection
    con.execute("DROP INDEX deal_keys_key").fetchall()
    con.execute("DELETE FROM deal_keys").fetchall()
    con.execute("CHECKPOINT").fetchall()
    t = time.perf_counter()
    con.execute("BEGIN TRANSACTION").fetchall()
    _migrate_to_4(con)
    con.execute(KEYS_INDEX_DDL).fetchall()
    con.execute("COMMIT").fetchall()
    back = con.execute("SELECT count(*) FROM deal_keys").fetchall()[0][0]
    print(f"migration to schema 4: {back:,} deal_keys rows back-filled and indexed in "
          f"{time.perf_counter() - t:.1f} s")
    store.close()
    if not args.dir:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


if __name__ == "__main__":
    main()
