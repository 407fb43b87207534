"""Peak memory and time of ``bsp replay`` on a synthetic capture of many exchanges, and the same report from
another source tree (the code before a change: ``--base``).

    .venv/bin/python bench/bench_replay_memory.py --exchanges 30000
    git archive <commit> | tar -x -C /tmp/base
    .venv/bin/python bench/bench_replay_memory.py --exchanges 30000 --base /tmp/base

A real session of the shipped bill payment service is recorded (tests/replay/replaykit.py: loopback sockets,
mainframe simulator -> bsp -> biller simulator, ``--seed`` exchanges), then its exchanges are copied in the
capture file (SQL: each copy with new seq, exchange ids and later times) up to ``--exchanges``.  Each source tree
replays it in its own process (``python -m engine.cli replay``) against a candidate that changes the reply
message of every exchange (``lower`` for ``upper``: an unexpected difference each) and a fee (an expected one, by
a profile), writing the JSON, HTML and JUnit reports; the peak RSS of that process (``wait4``: ru_maxrss) and
its wall time are printed (``--candidate same``: the recorded configuration, no difference).  With ``--base``, the reports of both trees are compared (the run time and the
``time`` attributes left out) and the bench says whether they are the same.  Not a test, no assertions.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "replay"))

PROFILE = ('expect:\n  - {channel: mainframe, what: reply, field: message, recorded: "fee 0.50", '
           'produced: "fee 0.75", reason: CR-1 fee}\n')


def make_capture(tmp: Path, seed: int, exchanges: int) -> tuple[Path, Path]:
    from replaykit import config_copy, record_session

    config = config_copy(tmp / "config")
    capture = record_session(tmp, config, seed)
    con = duckdb.connect(str(capture))
    try:
        span = con.execute("SELECT max(seq), max(exchange), max(t_ms) FROM frames").fetchone()
        copies = -(-exchanges // seed) - 1
        for k in range(1, copies + 1):      # each copy: later seq, exchange ids and times
            con.execute("INSERT INTO frames SELECT * REPLACE (seq + ? AS seq, exchange + ? AS exchange, "
                        "t_ms + ? AS t_ms) FROM frames WHERE seq <= ?",
                        [k * span[0], k * span[1], k * (span[2] + 1.0), span[0]])
        n = con.execute("SELECT count(*) FROM frames WHERE role = 'inbound' AND direction = 'in'").fetchone()[0]
        if n > exchanges:                   # the last copy cut to the count asked
            con.execute("DELETE FROM frames WHERE exchange IN (SELECT exchange FROM frames WHERE role = "
                        "'inbound' AND direction = 'in' ORDER BY t_ms DESC, seq DESC LIMIT ?)", [n - exchanges])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return capture, config


def run_replay(tree: Path, capture: Path, cand: Path, profile: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "engine.cli", "replay", str(capture), "--config", str(cand), "--profile",
            str(profile), "--json", str(out / "r.json"), "--html", str(out / "r.html"), "--junit",
            str(out / "r.xml"), "--progress-every", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"})
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{tree}: bsp replay exited {proc.returncode}:\n{stderr.decode()[-3000:]}")
    return {"exit": proc.returncode, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "text": stdout.decode()}


def reports(out: Path) -> tuple[str, str, bytes]:
    text = re.sub(r'"seconds": [0-9.]+', '"seconds": 0', (out / "r.json").read_text())
    page = re.sub(r"<th>time</th><td>[^<]*</td>", "", (out / "r.html").read_text())
    xml = re.sub(rb' time="[^"]*"', b"", (out / "r.xml").read_bytes())
    return text, page, xml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=500, help="exchanges recorded for real, then copied")
    ap.add_argument("--base", type=Path, help="another source tree (the code before a change) to compare with")
    ap.add_argument("--keep", type=Path, help="keep the capture and reports in this folder")
    ap.add_argument("--candidate", choices=("changed", "same"), default="changed",
                    help="changed: a difference in (nearly) every exchange; same: the recorded configuration")
    a = ap.parse_args()
    from replaykit import config_copy

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp_s:
        tmp = a.keep or Path(tmp_s)
        tmp.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        capture, _ = make_capture(tmp, a.seed, a.exchanges)
        size = capture.stat().st_size / 1e6
        print(f"capture: {a.exchanges} exchanges, {size:.1f} MB, made in {time.perf_counter() - t0:.1f}s")
        change = (lambda t: t.replace('message    = "paid " + upper(', 'message    = "paid " + lower(')
                  .replace("else 0.50", "else 0.75")) if a.candidate == "changed" else None
        cand = config_copy(tmp / "cand", change)
        profile = tmp / "cr.yaml"
        profile.write_text(PROFILE)
        trees = ([("before", a.base.resolve())] if a.base else []) + [("after", REPO)]
        res = {}
        for name, tree in trees:
            res[name] = r = run_replay(tree, capture, cand, profile, tmp / name)
            print(f"{name:7} {tree}: exit {r['exit']}, {r['seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB")
            print("        " + r["text"].splitlines()[1].strip())
        if a.base:
            same = [kind for kind, x, y in zip(("JSON", "HTML", "JUnit"), reports(tmp / "before"),
                                                reports(tmp / "after")) if x == y]
            print(f"reports the same before and after: {', '.join(same) or 'none'}"
                  + ("" if len(same) == 3 else " (NOT all: compare the files with --keep DIR)"))


if __name__ == "__main__":
    main()
