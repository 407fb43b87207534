"""What one deal key costs in memory in the key store (``TxnLog.ends``), live and after a restart.

    .venv/bin/python bench/bench_key_memory.py                 # 50,000 keys, 300-byte replies
    .venv/bin/python bench/bench_key_memory.py --keys 50000 --reply-bytes 300 --keyring

The ``end`` entries are made as ``TxnManager.after_commit`` makes them (deal id, key, status, code, reason,
the reply sealed by ``TxnManager.seal``: hex, or a field keyring token with ``--keyring``, the deal's
route/channel/amount/party, fp, fin) and appended to a real log (``<tmp>/l.duckdb.txn``) in group-commit
batches of 64, each followed by its ``recorded`` mark, as the engine writes them.  tracemalloc counts what
the log holds after the last batch (the key store) and again after the log is opened anew (a restart:
read, compacted).  One key in 20 is of a failed deal that keeps its key (``held``, ``kind``).  Loopback
files only; not a test, no assertions.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from engine.deal import new_deal_ids  # noqa: E402
from engine.txn import fingerprint  # noqa: E402
from engine.txn.log import TxnLog  # noqa: E402


class _Ledger:
    path = Path("unused")


def _seal(keyring: object | None):
    from engine.txn.manager import TxnManager

    m = TxnManager.__new__(TxnManager)
    m.keyring = keyring
    return m.seal


def _ends(n: int, reply_bytes: int, seal, digests, start: int) -> list[dict]:
    """``n`` ``end`` entries of deals ``start``.. (made here, inside the traced window: nothing shared)."""
    out = []
    ids = new_deal_ids(n)
    body = b'{"status":"OK","code":"00","message":"payment accepted","ref":"%s","pad":"'
    for i, did in enumerate(ids, start):
        ref = f"INV-{i:09d}"
        head = body % ref.encode()
        reply = head + b"x" * max(0, reply_bytes - len(head) - 2) + b'"}'
        amount, currency, party = Decimal(f"{100 + i % 900}.{i % 100:02d}"), "EUR", f"CUST{i % 5000:06d}"
        failed = i % 20 == 0
        e = {"t": "end", "id": did, "key": f"bill_payment|{ref}", "status": "failed" if failed else "committed",
             "code": "91" if failed else "00", "reason": "biller did not answer" if failed else None,
             "reply": seal(reply, f"reply|{did}"), "route": "bill_payment", "channel": "front",
             "version": "v" * 64, "at": "2026-11-27T10:00:00+00:00", "type": "BILL", "ref": ref,
             "amount": amount, "currency": currency, "party": party, "fin": time.time(),
             "fp": fingerprint.of(amount, currency, party, None, digests)}
        if failed:
            e["held"] = (f"call `biller` (step 3) may have reached the counterpart (timeout: sent, no answer it can "
                         f"trust), so the deal is in doubt and never runs again under its key: ask the counterpart "
                         f"whether it applied it and settle it there (`bsp deals show {did}`)")
            e["kind"] = "timeout"
        out.append(e)
    return out


def measure(keys: int, reply_bytes: int, keyring: bool) -> None:
    ring = None
    if keyring:
        import base64
        import os
        from engine.fieldcrypt import load_keyring
        ring = load_keyring({"BSP_FIELD_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode()})
    seal = _seal(ring)
    digests = fingerprint.Digests(ring)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.duckdb.txn"
        log = TxnLog(path, sync=False)
        log.compact_after = None
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        for i in range(0, keys, 64):
            batch = _ends(min(64, keys - i), reply_bytes, seal, digests, i)
            log.append(batch)
            log.append([{"t": "recorded", "ids": [e["id"] for e in batch], "keys": [e["key"] for e in batch]}])
            del batch
        live_s = time.perf_counter() - t0
        gc.collect()
        live = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        log.close()
        size = path.stat().st_size
        del log
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        log = TxnLog(path, sync=False)
        open_s = time.perf_counter() - t0
        gc.collect()
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n = len(log.ends)
        log.close()
    print(f"keys {n:,}  reply {reply_bytes} bytes  {'keyring' if keyring else 'no keyring'}")
    print(f"  live:    {live / n:7.0f} bytes a key  ({live / 1e6:.1f} MB; appends {live_s:.2f} s)")
    print(f"  restart: {(cur - base) / n:7.0f} bytes a key  ({(cur - base) / 1e6:.1f} MB; open {open_s:.2f} s, "
          f"peak while reading {(peak - base) / 1e6:.1f} MB; log file {size / 1e6:.1f} MB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=50_000)
    p.add_argument("--reply-bytes", type=int, default=300)
    p.add_argument("--keyring", action="store_true", help="replies sealed with a field keyring")
    a = p.parse_args()
    measure(a.keys, a.reply_bytes, a.keyring)


if __name__ == "__main__":
    main()
