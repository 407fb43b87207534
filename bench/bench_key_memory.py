"""What one deal key costs in memory in the key store (``TxnLog.ends``), live and after a restart, and what
the compactions cost: with the answers files (engine/txn/answers.py, the default) and without them (the log
holding every key, as before 2026-11-27).

    .venv/bin/python bench/bench_key_memory.py                 # 50,000 keys, 300-byte replies, both tiers
    .venv/bin/python bench/bench_key_memory.py --keys 1000000 --keyring --only answers

The ``end`` entries are made as ``TxnManager.after_commit`` makes them (deal id, key, status, code, reason,
the reply sealed by ``TxnManager.seal``: hex, or a field keyring token with ``--keyring``, the deal's
route/channel/amount/party, fp, fin) and appended to a real log (``<tmp>/l.duckdb.txn``) in group-commit
batches of 64, each followed by its ``recorded`` mark, as the engine writes them.  Every ``--compact-every``
keys (3,472: 1M keyed deals a day, one compaction every 5 minutes) the log is compacted, as ``COMPACT_AFTER``
does; the bench prints the time of those compactions and the bytes they wrote (new log files, answers files);
``--timing`` leaves tracemalloc out of that part (it slows it several times) and prints no live figure.
tracemalloc counts what the log holds after the last batch (the key store) and again after the log is opened
anew (a restart: read, compacted).  One key in 20 is of a failed deal that keeps its key (``held``, ``kind``).
Then ``--lookups`` keys are looked up: repeats (found) and new keys (not found), as admission does.  Loopback
files only, fdatasync on (``--no-sync``: off); not a test, no assertions.
``--hot`` measures only the keys held in memory between compactions at the default compaction setting;
``--rebuild`` measures only the rebuild of a lost index (``Answers`` opened on files without ``index.sqlite``):

    .venv/bin/python bench/bench_key_memory.py --rebuild --keys 1000000
    .venv/bin/python bench/bench_key_memory.py --rebuild --loop --keys 300000    # the event loop meanwhile
    .venv/bin/python bench/bench_key_memory.py --hot --keys 200000 [--small]
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


def _rss() -> int:
    """This process's resident memory (bytes; SQLite's page cache is not Python's, tracemalloc does not see it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(keys: int, reply_bytes: int, keyring: bool, answers: bool, every: int, lookups: int,
            sync: bool, timing: bool = False) -> None:
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
        log = TxnLog(path, sync=sync, answers=answers)
        log.compact_after = None
        gc.collect()
        if not timing:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        compact_s, compactions, made = 0.0, 0, 0
        bytes0 = log.compacted_bytes
        for i in range(0, keys, 64):
            batch = _ends(min(64, keys - i), reply_bytes, seal, digests, i)
            log.append(batch)
            log.append([{"t": "recorded", "ids": [e["id"] for e in batch], "keys": [e["key"] for e in batch]}])
            made += len(batch)
            del batch
            if made >= every:                      # COMPACT_AFTER: one every 5 minutes
                made = 0
                c0 = time.perf_counter()
                log._compact()
                compact_s += time.perf_counter() - c0
                compactions += 1
        live_s = time.perf_counter() - t0
        gc.collect()
        live = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        log_written = log.compacted_bytes - bytes0
        ans_written = log.answers.bytes_written if log.answers is not None else 0
        c0 = time.perf_counter()
        log._compact()                             # one more: what a compaction costs at the end, all keys in
        last_s = time.perf_counter() - c0
        last_bytes = log.compacted_bytes - bytes0 - log_written
        log.close()
        size = path.stat().st_size
        files = log.answers.file_bytes() if log.answers is not None else 0
        index = sum(p.stat().st_size for p in log.answers.path.glob("index.sqlite*")) if log.answers is not None else 0
        del log
        gc.collect()
        rss0 = _rss()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        log = TxnLog(path, sync=sync, answers=answers)
        open_s = time.perf_counter() - t0
        gc.collect()
        cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n = len(log.ends)
        found = [f"bill_payment|INV-{(i * 7919) % keys:09d}" for i in range(lookups)]
        new = [f"bill_payment|NEW-{i:09d}" for i in range(lookups)]
        ends = log.ends

        def one_by_one(keys: list[str]) -> tuple[int, float]:
            t0 = time.perf_counter()
            n = sum(ends.get(k) is not None for k in keys)
            return n, (time.perf_counter() - t0) / lookups * 1e6

        def batched(keys: list[str]) -> tuple[int, float]:       # as admission does: a batch of 64 at once
            t0 = time.perf_counter()
            n = 0
            for i in range(0, len(keys), 64):
                part = keys[i:i + 64]
                if hasattr(ends, "prefetch"):
                    ends.prefetch(part)
                n += sum(ends.get(k) is not None for k in part)
            return n, (time.perf_counter() - t0) / lookups * 1e6

        hits, hit_us = one_by_one(found)
        misses, miss_us = one_by_one(new)
        found = [f"bill_payment|INV-{(i * 104729 + 1) % keys:09d}" for i in range(lookups)]
        new = [f"bill_payment|NEW2-{i:09d}" for i in range(lookups)]
        bhits, bhit_us = batched(found)
        bmisses, bmiss_us = batched(new)
        misses, bmisses = lookups - misses, lookups - bmisses
        gc.collect()
        rss = _rss() - rss0           # after the open and the look-ups (SQLite's cache warm)
        log.close()
    tier = "answers files" if answers else "log only (before)"
    print(f"keys {n:,}  reply {reply_bytes} bytes  {'keyring' if keyring else 'no keyring'}  {tier}")
    if timing:
        print(f"  live:    not traced (--timing: the compactions' times without tracemalloc); appends {live_s:.2f} s")
    else:
        print(f"  live:    {live / n:7.0f} bytes a key  ({live / 1e6:.1f} MB; appends {live_s:.2f} s, traced)")
    print(f"  restart: {(cur - base) / n:7.0f} bytes a key  ({(cur - base) / 1e6:.1f} MB; open {open_s:.2f} s, "
          f"peak while reading {(peak - base) / 1e6:.1f} MB; log file {size / 1e6:.1f} MB, answers files "
          f"{files / 1e6:.1f} MB, index {index / 1e6:.1f} MB); RSS after the open and the look-ups "
          f"{rss / 1e6:+.1f} MB ({rss / n:.0f} bytes a key)")
    print(f"  compactions every {every:,} keys: {compactions}, {compact_s:.2f} s in all "
          f"({compact_s / max(1, compactions) * 1e3:.0f} ms each); wrote {log_written / 1e6:.1f} MB of log "
          f"+ {ans_written / 1e6:.1f} MB of answers files; the next one, all keys in: {last_s * 1e3:.0f} ms, "
          f"{last_bytes / 1e6:.2f} MB of log")
    print(f"  look-ups one by one: a repeat (found) {hit_us:.1f} us ({hits}/{lookups}), a new key (not found) "
          f"{miss_us:.1f} us ({misses}/{lookups}); in batches of 64 (prefetch): found {bhit_us:.1f} us "
          f"({bhits}/{lookups}), new {bmiss_us:.1f} us ({bmisses}/{lookups})")


def rebuild(keys: int, reply_bytes: int, keyring: bool, every: int, sync: bool) -> None:
    """``--rebuild``: ``keys`` answers written straight into the answers files (``Answers.add``, ``every`` at a
    time, as the compactions move them), then the index removed and the files opened again: the time of the
    index's rebuild (a lost or damaged ``index.sqlite``), and the files' bytes a key."""
    import logging

    from engine.txn.answers import Answers
    from engine.txn.log import _answer_only

    logging.basicConfig(level=logging.INFO, format="  %(asctime)s %(name)s: %(message)s")
    ring = None
    if keyring:
        import base64
        import os
        from engine.fieldcrypt import load_keyring
        ring = load_keyring({"BSP_FIELD_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode()})
    seal = _seal(ring)
    digests = fingerprint.Digests(ring)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.duckdb.txn.answers"
        a = Answers(path, sync=sync)
        t0 = time.perf_counter()
        for i in range(0, keys, every):
            ends = _ends(min(every, keys - i), reply_bytes, seal, digests, i)
            for e in ends:
                e["recorded"] = True
            a.add([_answer_only(e) for e in ends])
        fill_s = time.perf_counter() - t0
        files = a.file_bytes()
        a.close()
        index = sum(p.stat().st_size for p in path.glob("index.sqlite*"))
        for p in path.glob("index.sqlite*"):
            p.unlink()
        t0 = time.perf_counter()
        a = Answers(path, sync=sync)
        open_s = time.perf_counter() - t0
        n = a.count
        t0 = time.perf_counter()
        a.close()
        a = Answers(path, sync=sync)             # an open with the index in place: nothing to index
        again_s = time.perf_counter() - t0
        a.close()
    print(f"answers {n:,}  reply {reply_bytes} bytes  {'keyring' if keyring else 'no keyring'}  "
          f"sync {'on' if sync else 'off'}")
    print(f"  written in {fill_s:.1f} s; answers files {files / 1e6:.1f} MB ({files / max(1, n):.0f} bytes a key), "
          f"index {index / 1e6:.1f} MB ({index / max(1, n):.0f} bytes a key)")
    print(f"  index lost: the open rebuilt it in {open_s:.2f} s ({open_s / max(1, n) * 1e6:.1f} us a key); "
          f"the next open {again_s:.3f} s")


def rebuild_loop(keys: int, reply_bytes: int, every: int, sync: bool) -> None:
    """``--rebuild --loop``: what the engine's event loop does while a lost index is made again.  ``keys`` answers
    written as for ``--rebuild``, the index removed, then in a trio run with a ticker task (``trio.sleep(0.01)``
    in a loop, noting the longest gap between two ticks, as ``bsp_event_loop_lag_seconds`` would): ``before``, the
    open on the loop as the engine made it until 2026-11-28 (``TxnManager.log``); ``after``, the open in a worker
    thread (``engine.txn.keyopen.open_log``), the ticker also reading the progress line ``bsp status`` shows."""
    import types

    import trio

    from benchkit import loop_stall
    from engine.txn import keyopen
    from engine.txn.answers import Answers, answers_dir
    from engine.txn.log import _answer_only
    from engine.txn.manager import TxnManager

    seal = _seal(None)
    digests = fingerprint.Digests(None)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = types.SimpleNamespace(path=Path(tmp) / "l.duckdb", sync="journal" if sync else "none")
        path = answers_dir(Path(tmp) / "l.duckdb.txn")
        a = Answers(path, sync=sync)
        for i in range(0, keys, every):
            ends = _ends(min(every, keys - i), reply_bytes, seal, digests, i)
            for e in ends:
                e["recorded"] = True
            a.add([_answer_only(e) for e in ends])
        files = a.file_bytes()
        a.close()
        print(f"answers {keys:,}  reply {reply_bytes} bytes  files {files / 1e6:.1f} MB  sync {'on' if sync else 'off'}")
        for how in ("before", "after"):
            for p in path.glob("index.sqlite*"):
                p.unlink()
            mgr = TxnManager(ledger)
            lines: list[str] = []

            def progress(ticks: int) -> None:
                op = mgr.opening
                if op is not None and op.rebuild.running and (not lines or ticks % 100 == 0):
                    lines.append(op.rebuild.text())

            async def work() -> None:
                if how == "before":
                    mgr.log                       # the open on the loop (no worker thread)
                else:
                    await keyopen.open_log(mgr)

            took, lag, ticks = trio.run(loop_stall, work, progress)
            n = mgr.log.answers.count
            mgr.log.close()
            print(f"  {how}: rebuilt {n:,} answers in {took:.2f} s; the loop's longest stall {lag * 1000:.0f} ms, "
                  f"{ticks} ticks of 10 ms meanwhile")
            for line in lines[:1] + lines[len(lines) // 2:len(lines) // 2 + 1] + lines[-1:]:
                print(f"    status: {line}")


def hot(keys: int, reply_bytes: int, sync: bool, small: bool) -> None:
    """``--hot``: the keys answered since the last compaction, which the log holds in memory (``KeyStore.hot``),
    at the default compaction setting (``COMPACT_AFTER``, 5 minutes, or when the 8 MiB log is full) under load:
    ``keys`` appended as fast as this machine writes them, batches of 64 and their ``recorded`` marks, no
    compaction asked for.  ``--small``: the smallest ``end`` this bsp writes for a keyed deal (short key and
    route, an empty reply, no fingerprint): the most keys an 8 MiB log holds."""
    from engine.txn.log import SEGMENT_BYTES

    seal = _seal(None)
    digests = fingerprint.Digests(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.duckdb.txn"
        log = TxnLog(path, sync=sync)
        most = most_bytes = 0
        c0 = log.compactions
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        for i in range(0, keys, 64):
            batch = _ends(min(64, keys - i), reply_bytes, seal, digests, i)
            if small:
                for e in batch:
                    for name in ("reason", "type", "amount", "currency", "party", "fp", "held", "kind"):
                        e.pop(name, None)
                    e.update(key=f"k|{e['ref'][4:]}", route="r", channel="c", ref=None, reply="")
            log.append(batch)
            log.append([{"t": "recorded", "ids": [e["id"] for e in batch], "keys": [e["key"] for e in batch]}])
            del batch
            if len(log.ends.hot) > most:
                most = len(log.ends.hot)
                most_bytes = tracemalloc.get_traced_memory()[0] - base
        took = time.perf_counter() - t0
        tracemalloc.stop()
        n = log.compactions - c0
        log.close()
    what = "the smallest end" if small else f"reply {reply_bytes} bytes"
    print(f"keys {keys:,}  {what}  sync {'on' if sync else 'off'}"
          f"  log {SEGMENT_BYTES >> 20} MiB, compaction after {log.compact_after:.0f} s")
    print(f"  {keys / took:,.0f} keys/s (traced); {n} compactions (when the log was full: {keys / max(1, n):,.0f} keys "
          f"apart); most keys in memory at once {most:,} ({most_bytes / 1e6:.1f} MB traced then, "
          f"{most_bytes / max(1, most):.0f} bytes a key)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=50_000)
    p.add_argument("--reply-bytes", type=int, default=300)
    p.add_argument("--keyring", action="store_true", help="replies sealed with a field keyring")
    p.add_argument("--only", choices=("answers", "log"), help="one tier: the answers files, or the log only")
    p.add_argument("--compact-every", type=int, default=3472, help="keys between compactions (1M/day, 5 min)")
    p.add_argument("--lookups", type=int, default=2000)
    p.add_argument("--no-sync", action="store_true")
    p.add_argument("--timing", action="store_true",
                   help="no tracemalloc while appending and compacting (it slows them several times)")
    p.add_argument("--rebuild", action="store_true",
                   help="only the index's rebuild: --keys answers written to the files, the index removed, opened")
    p.add_argument("--hot", action="store_true",
                   help="only the keys held in memory between compactions at the default compaction setting")
    p.add_argument("--small", action="store_true", help="with --hot: the smallest end entry")
    p.add_argument("--loop", action="store_true",
                   help="with --rebuild: the event loop's stall during the rebuild, on the loop and in a worker thread")
    a = p.parse_args()
    if a.hot:
        hot(a.keys, a.reply_bytes, not a.no_sync, a.small)
        return
    if a.rebuild and a.loop:
        rebuild_loop(a.keys, a.reply_bytes, a.compact_every, not a.no_sync)
        return
    if a.rebuild:
        rebuild(a.keys, a.reply_bytes, a.keyring, a.compact_every, not a.no_sync)
        return
    for answers in (False, True):
        if a.only is None or a.only == ("answers" if answers else "log"):
            measure(a.keys, a.reply_bytes, a.keyring, answers, a.compact_every, a.lookups, not a.no_sync,
                    a.timing)


if __name__ == "__main__":
    main()
