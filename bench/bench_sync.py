"""This disk's commit latency: what one group commit of the journal costs here.

    .venv/bin/python bench/bench_sync.py [--dir var] [--count 2000] [--sizes 6000,46600]

Like PostgreSQL's ``pg_test_fsync``: for each record size it writes ``--count``
records into a file made ahead (zero-filled, as the journal and the transaction
log make theirs) and syncs each one with ``engine.durable.write_at`` (``pwrite``
+ ``fdatasync``, what the engine does).  ``--dsync`` also times one
``pwritev(..., RWF_DSYNC)`` per record, the single-call alternative (Linux).
Prints the mean and p50 / p99 wall time per commit and the system CPU it cost.  Run it on the file system that holds the ledger (``--dir``): the
engine's durable throughput at 64 deals per group commit is bounded by two of
these per round trip.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import durable  # noqa: E402

FILE_BYTES = 64 << 20


def _dsync_write(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwritev(fd, [view], offset, os.RWF_DSYNC)
        view, offset = view[n:], offset + n


def measure(directory: Path, size: int, count: int, dsync: bool) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(dir=directory, prefix="bsp-sync-", suffix=".bin") as f:
        fd = f.fileno()
        zeros = bytes(1 << 20)
        for at in range(0, FILE_BYTES, len(zeros)):
            os.pwrite(fd, zeros, at)
        os.fsync(fd)
        data = os.urandom(size)
        write = _dsync_write if dsync else durable.write_at
        times = []
        offset = 0
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(count):
            if offset + size > FILE_BYTES:
                offset = 0
            t = time.perf_counter()
            write(fd, data, offset)
            times.append(time.perf_counter() - t)
            offset += size
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    times.sort()
    us = 1e6
    return {"mean": statistics.fmean(times) * us, "p50": times[len(times) // 2] * us,
            "p99": times[int(len(times) * 0.99)] * us,
            "sys": (r1.ru_stime - r0.ru_stime) / count * us}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Exit 0 measured; 2 a usage error (--dir names no folder: it is not made "
                                        "here, which could put it on another file system than the ledger's).")
    ap.add_argument("--dir", type=Path, default=None, help="a folder on the ledger's file system (default var)")
    ap.add_argument("--count", type=int, default=2000, help="commits per size and way (default 2000)")
    ap.add_argument("--sizes", default="6000,46600",
                    help="record sizes in bytes, comma-separated (default: a small record, and the bench's "
                         "journal record of 64 deals)")
    ap.add_argument("--dsync", action="store_true", help="also time pwritev(..., RWF_DSYNC) (Linux)")
    args = ap.parse_args()
    if args.dir is not None and not args.dir.is_dir():
        # a folder named is measured where it is: made here, it could land on another file system
        print(f"error: --dir {args.dir}: no such folder; give a folder on the ledger's file system (the folder "
              f"of the deployment file's ledger:, as bsp run prints it)", file=sys.stderr)
        raise SystemExit(2)
    if args.dir is None:
        args.dir = Path("var")
        args.dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    ways = [("pwrite+fdatasync", False)]
    if args.dsync and hasattr(os, "RWF_DSYNC"):
        ways.append(("pwritev RWF_DSYNC", True))
    elif args.dsync:
        print("(this platform has no RWF_DSYNC: pwrite + fdatasync only)")
    print(f"{args.dir.resolve()}: {args.count} commits per size and way")
    for size in sizes:
        for name, dsync in ways:
            r = measure(args.dir, size, args.count, dsync)
            print(f"{size:>8,} B  {name:<18} mean {r['mean']:7.1f} us  p50 {r['p50']:7.1f}  "
                  f"p99 {r['p99']:8.1f}  system CPU {r['sys']:5.1f} us/commit")


if __name__ == "__main__":
    main()
