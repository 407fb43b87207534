"""The transaction log's live size with and without the key store's retention (docs/transactions.md).

    .venv/bin/python bench/bench_key_retention.py            # 3000 keyed deals over 60 days

A keyed route (tests/txn/test_txn_flow.py's transfer: two calls, compensations) served by a real
Switchboard on loopback with real JSON counterparts, a real DuckDB ledger and the real log.  The
transaction manager's clock is moved one day after each day's deals (no sleep).  Then the log is
opened again (an open compacts it) with the default retention (35d) and with ``forever`` (the
behaviour before the retention), and the live bytes are printed: what the compacted log holds and what
the answers files hold (engine/txn/answers.py: a compaction moves the recorded answers there), with the
memory the open log keeps (tracemalloc; the answers files' index is on disk).  ``--log-only``: without the
answers files (every key in the log and in memory, as before 2026-11-27).  Not a test: no assertions.
"""
from __future__ import annotations

import argparse
import tracemalloc
import sys
import tempfile
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "txn"), str(REPO / "tests" / "engine")]

from engine.txn.log import KEY_RETENTION, MAGIC, TxnLog, log_path  # noqa: E402
from test_txn_flow import _req, _setup  # noqa: E402
from test_txn_key_retention import DAY, Clock, ask, serving  # noqa: E402


async def main(deals: int, days: int, log_only: bool) -> None:
    if log_only:                    # as before 2026-11-27: the engine's log without the answers files
        import engine.txn.log as txnlog
        real = txnlog.TxnLog.__init__

        def init(self, *a, **k):
            k["answers"] = False
            real(self, *a, **k)
        txnlog.TxnLog.__init__ = init
    per_day = deals // days
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        async with trio.open_nursery() as nursery:
            program, debit, _ = await _setup(nursery, tmp_path)
            ledger = tmp_path / "l.duckdb"
            clock = Clock()
            async with serving(program, ledger, clock) as sb:
                for day in range(days):
                    await ask(sb, *[_req(f"D{day}-{i}") for i in range(per_day)])
                    clock.t += DAY
            nursery.cancel_scope.cancel()
        path = log_path(ledger)
        print(f"{per_day * days} keyed deals, {per_day}/day over {days} days; file {path.stat().st_size} bytes")
        for name, retention in (("forever", None), ("35d", KEY_RETENTION)):
            tracemalloc.start()
            log = TxnLog(path, clock=clock, retention=retention)
            held = tracemalloc.get_traced_memory()[0]     # what the open log keeps: the key store
            tracemalloc.stop()
            live = log._offset - len(MAGIC)
            files = log.answers.file_bytes() if log.answers is not None else 0
            kept = max(1, len(log.ends))
            print(f"  retention {name:8s} keys kept {len(log.ends):5d}  dropped {log.dropped:5d}  "
                  f"live log {live:8d} bytes + answers files {files:8d} ({(live + files) / kept:.0f} B/key)  "
                  f"memory {held / kept:.0f} B/key  log file {log._size} bytes")
            log.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=3000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--log-only", action="store_true", help="without the answers files (as before)")
    a = ap.parse_args()
    trio.run(main, a.deals, a.days, a.log_only)
