"""A large batch file through ``file watch``: seconds from drop to done/, and the engine's peak memory.

    .venv/bin/python bench/bench_file_watch.py [--records 200000] [--batch 1000]

Writes a JSON-lines file of ``--records`` payments, starts ``bsp run`` on a route
that validates each and records its deal (journal ledger, in a temporary folder),
drops the file into the watched folder (renamed into place), waits for it in
done/, and prints the time, records/s and the engine's peak RSS (VmHWM) before
and after.  ``--batch`` is the channel's option (records run together).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import peak_rss_mb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROUTE = """
format Pay = json
channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
    batch   = %d
}
route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000, help="payments in the file (default 200,000)")
    ap.add_argument("--batch", type=int, default=1000, help="the channel's batch option (default 1,000)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=REPO / "var" if (REPO / "var").is_dir() else None) as d:
        work = Path(d)
        (work / "in").mkdir()
        (work / "pay.route").write_text(ROUTE % a.batch)
        staged = work / "in" / ".pay.jsonl.tmp"
        with staged.open("w") as f:
            for i in range(a.records):          # amounts in integer cents: no float near money
                f.write('{"ref": "R%08d", "amount": %d.%02d}\n' % (i, i % 1000 + 1, i % 100))
        bsp = [sys.executable, "-m", "engine.cli", "run", str(work / "pay.route"), "--ledger", str(work / "l.duckdb")]
        proc = subprocess.Popen(bsp, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while proc.stderr is not None:
                line = proc.stderr.readline()
                if not line or "serving" in line or time.monotonic() > deadline:
                    break
            before = peak_rss_mb(proc.pid)
            t0 = time.perf_counter()
            os.replace(staged, work / "in" / "pay.jsonl")
            done = work / "in" / "done" / "pay.jsonl"
            while not done.exists():
                if proc.poll() is not None:
                    raise SystemExit(f"bsp run exited with {proc.returncode}")
                time.sleep(0.02)
            took = time.perf_counter() - t0
            after = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    print(f"{a.records:,} records, batch {a.batch:,}: {took:.2f} s ({a.records / took:,.0f} records/s); "
          f"peak RSS {before:.0f} MB before the file, {after:.0f} MB after")


if __name__ == "__main__":
    main()
