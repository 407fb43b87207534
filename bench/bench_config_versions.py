"""Ledger growth and cost of recording configuration versions that share a big configuration folder.

    .venv/bin/python bench/bench_config_versions.py [--files 500] [--kb 50] [--reloads 10] [--dir DIR]

A version of ``--files`` XSD-like files of ``--kb`` KB each (an ISO 20022 ``xsd_dir``) plus one route file is
recorded (``Ledger.record_config``, keyed), then ``--reloads`` versions that each change the route file only, as
reloads do, each with the ledger opened and closed around it.  Prints the time of each record, of the close
(DuckDB's checkpoint writes the version into the file) and the file's size after it, and
``bsp audit verify``'s time at the end.  Run it with another checkout first on ``PYTHONPATH`` (``sys.path[0]``
is this file's repository unless ``BSP_TREE`` names another) to compare with that bsp.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BSP_TREE") or str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import trio  # noqa: E402

from engine.audit import verify  # noqa: E402
from engine.ledger import open_ledger  # noqa: E402
from engine.ledger_store import SCHEMA_VERSION  # noqa: E402

KEY = bytes(range(32))


WORDS = ("Amount Account Agent Identification Party Charges Settlement Instruction Remittance Reference Creditor "
         "Debtor Intermediary Currency Purpose Status Reason Date Time Code Proprietary Structured Unstructured "
         "Postal Address Country Scheme Issuer Clearing System Member Branch Financial Institution").split()


def folder(files: int, kb: int) -> dict[str, str]:
    """XSD-like texts that DuckDB compresses about as much as real ISO 20022 schemas (element names and
    annotations from a small vocabulary, in random order: not the runs a repeated line would give)."""
    rnd = random.Random(20022)
    out = {}
    for i in range(files):
        lines, size = [], 0
        while size < kb * 1024:
            name = "".join(rnd.choice(WORDS) for _ in range(3))
            doc = " ".join(rnd.choice(WORDS).lower() for _ in range(rnd.randint(6, 14)))
            line = (f'  <xs:element name="{name}{rnd.randint(1, 99)}" type="{rnd.choice(WORDS)}{rnd.randint(1, 9)}'
                    f'Code" minOccurs="{rnd.randint(0, 1)}"><xs:annotation><xs:documentation>{doc}'
                    f'</xs:documentation></xs:annotation></xs:element>\n')
            lines.append(line)
            size += len(line)
        out[f"/etc/bsp/iso/xsd/msg{i:04d}.xsd"] = "".join(lines)
    return out


async def main(files: int, kb: int, reloads: int, where: Path) -> None:
    path = where / "bench.duckdb"
    xsd = folder(files, kb)
    total = sum(len(t) for t in xsd.values())
    print(f"bsp schema {SCHEMA_VERSION}: {files} files, {total / 1e6:.1f} MB of folder text, {reloads} reloads "
          f"changing the route file only")
    times, closes, sizes = [], [], []
    for n in range(reloads + 1):
        sources = {"/etc/bsp/routes/pay.route": f"route pay {{ # reload {n}\n}}\n", **xsd}
        async with open_ledger(path, audit_key=KEY) as ledger:
            t0 = time.perf_counter()
            assert await ledger.record_config(f"v{n:04d}", sources)
            times.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
        closes.append(time.perf_counter() - t1)          # the close checkpoints the version into the file
        sizes.append(path.stat().st_size)
        print(f"  version {n:2d}: record {times[-1]:.3f} s, close {closes[-1]:.3f} s, ledger {sizes[-1] / 1e6:8.1f} MB"
              + (f" (+{(sizes[-1] - sizes[-2]) / 1e6:.1f} MB)" if n else ""))
    growth = [(b - a) / 1e6 for a, b in zip(sizes, sizes[1:])]
    print(f"first version: {times[0]:.3f} s + close {closes[0]:.3f} s; each reload: record median "
          f"{statistics.median(times[1:]):.3f} s + close median {statistics.median(closes[1:]):.3f} s, ledger growth "
          f"median {statistics.median(growth):.1f} MB/reload, largest {max(sizes) / 1e6:.1f} MB, "
          f"{sizes[-1] / 1e6:.1f} MB at the end")
    con = duckdb.connect(str(path), read_only=True)
    try:
        t0 = time.perf_counter()
        rep = verify(con, path, KEY)
        print(f"bsp audit verify: {'ok' if rep.ok else 'BROKEN'} in {time.perf_counter() - t0:.2f} s")
    finally:
        con.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--kb", type=int, default=50)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--dir", type=Path)
    a = ap.parse_args()
    if a.dir:
        a.dir.mkdir(parents=True, exist_ok=True)
        trio.run(main, a.files, a.kb, a.reloads, a.dir)
    else:
        with tempfile.TemporaryDirectory() as d:
            trio.run(main, a.files, a.kb, a.reloads, Path(d))
