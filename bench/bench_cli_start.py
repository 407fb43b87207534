"""Start-up time of the ``bsp`` command line: wall time of a few commands that do no work.

    .venv/bin/python bench/bench_cli_start.py [--runs 9] [--no-bytecode] [--tree DIR]

Runs each command ``--runs`` times as a new process (as an operator or a test's subprocess does),
round-robin so that a busy moment of the machine falls on all of them, and prints the median,
minimum and maximum wall time of each, then the heavy packages ``import engine.cli`` loads
(none is the goal: each command imports what it needs when it runs).

By default bsp's modules run from their bytecode caches (``__pycache__``, written by a first
untimed run), as in an installed engine.  ``--no-bytecode`` removes the caches of bsp's own packages
(engine/, dsl/, formats/ of the tree) and sets ``PYTHONDONTWRITEBYTECODE``, so that each start compiles
bsp's modules from their source (the installed packages keep theirs), as a run from a checkout with
``PYTHONDONTWRITEBYTECODE=1`` does (some CI and test set-ups).  ``--tree DIR`` measures another checkout with this virtualenv, e.g. the
commit before a change: ``git archive COMMIT | tar -x -C /tmp/old`` then ``--tree /tmp/old``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BSP = ROOT / ".venv" / "bin" / "bsp"
COMMANDS = (
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("python -c 'import engine.cli'", [sys.executable, "-c", "import engine.cli"]),
    ("bsp version", [str(BSP), "version"]),
    ("bsp --help", [str(BSP), "--help"]),
    ("bsp deals --help", [str(BSP), "deals", "--help"]),
    ("bsp report --help", [str(BSP), "report", "--help"]),
    ("bsp decode --help", [str(BSP), "decode", "--help"]),
)
HEAVY = ("duckdb", "pyarrow", "cryptography", "h11", "httpx", "lxml", "xmlschema", "trio", "lark",
         "prometheus_client", "yaml", "jsonschema", "rich")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--no-bytecode", action="store_true", help="compile bsp's modules on every start")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose engine/ is measured")
    args = ap.parse_args()
    tree = args.tree.resolve()
    env = dict(os.environ, PYTHONPATH=str(tree))
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for package in ("engine", "dsl", "formats"):
            for cache in (tree / package).rglob("__pycache__"):
                shutil.rmtree(cache)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _name, cmd in COMMANDS:                      # writes the caches; not timed
            subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
    for _ in range(args.runs):
        for name, cmd in COMMANDS:
            t = time.perf_counter()
            subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t)
    probe = ("import engine.cli, sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))"
             % (HEAVY,))
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True,
                            check=True)
    mode = "compiled on each start" if args.no_bytecode else "bytecode cached"
    print(f"{tree}: {args.runs} runs each, bsp's modules {mode}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':34} {'median':>8} {'min':>8} {'max':>8}  (seconds)")
    for name, ts in times.items():
        print(f"{name:34} {statistics.median(ts):8.3f} {min(ts):8.3f} {max(ts):8.3f}")
    print(f"heavy packages after import engine.cli: {loaded.stdout.strip() or '(none)'}")


if __name__ == "__main__":
    main()
