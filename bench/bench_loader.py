"""Rows per second of the journal's loader (journal -> DuckDB), the path every acknowledged deal takes.

    .venv/bin/python bench/bench_loader.py [--deals 200000] [--group 50] [--load-rows 10000] [--stepped 0.0]

Journals ``--deals`` deals in group commits of ``--group`` (``commit_many``), the loader held back
(``load_wait`` of an hour, no row bound), then times ``wait_loaded``: the loader moving them into DuckDB in loads of
``--load-rows`` (NDJSON lines through pyarrow's JSON reader; ``--stepped``: the share of deals with a
step and events, journaled as prepared rows).  Writes to a temporary directory.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ledger import make_deal  # noqa: E402
from engine.deal import DealEvent, DealStep  # noqa: E402
from engine.journal import open_journaled_ledger  # noqa: E402


async def run(deals: int, group: int, load_rows: int, stepped: float, path: Path) -> dict:
    t0 = datetime.now(timezone.utc)
    every = int(1 / stepped) if stepped else 0
    records = []
    for i in range(deals):
        r = make_deal(i, t0)
        if every and i % every == 0:
            r.steps = [DealStep("post", "call", "ok", t0, 1.0, detail={"code": "00"})]
            r.events = [DealEvent(t0, None, "accepted", {"key": f"bill_payment|{i}"}),
                        DealEvent(t0 + timedelta(milliseconds=3), "accepted", "committed")]
        records.append(r)
    async with open_journaled_ledger(path, load_wait=3600, load_rows=10**12, max_lag_rows=deals + 1,
                                     audit_key=None) as led:
        for k in range(0, deals, group):
            errors = await led.commit_many(records[k:k + group])
            assert not any(errors), errors
        assert led.stats.loads == 0 and led.pending == deals
        led._load_rows = load_rows          # held back until now (the lag bound would start it)
        start = time.perf_counter()
        await led.wait_loaded()
        secs = time.perf_counter() - start
        return {"rows/s": round(deals / secs), "seconds": round(secs, 3), "loads": led.stats.loads,
                "failed": led.stats.failed_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=200_000)
    ap.add_argument("--group", type=int, default=50)
    ap.add_argument("--load-rows", type=int, default=10_000)
    ap.add_argument("--stepped", type=float, default=0.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(trio.run(run, a.deals, a.group, a.load_rows, a.stepped, Path(d) / "bench.duckdb"))


if __name__ == "__main__":
    main()
