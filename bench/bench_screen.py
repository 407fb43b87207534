"""The `screen` step's cost per name (engine/steps/screen.py), pure Python.

    .venv/bin/python bench/bench_screen.py                  # 5,000 entries
    .venv/bin/python bench/bench_screen.py --entries 2000

A synthetic list (random names of 2-4 words made of 540 syllables, up to 3 aliases each, the entries' joined
forms as a list file gives them) and random names of 2-3 words, timed three ways: names whose words were never
screened (every word compared with its neighbours in the index), new names made of words screened before,
and names screened before (the result cache).  Docs: docs/screening.md#cost.
"""
from __future__ import annotations

import argparse
import random
import time

from engine.steps.screen import Entry, ScreenIndex, normalise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--names", type=int, default=300)
    args = ap.parse_args()
    rng = random.Random(7)
    syl = [c + v + k for c in "bcdfghjklmnprstvwz" for v in "aeiou" for k in ("", "", "n", "r", "l", "s")]

    def word() -> str:
        return "".join(rng.choice(syl) for _ in range(rng.randint(2, 4)))

    entries = []
    for i in range(args.entries):
        names = [[word() for _ in range(rng.randint(2, 4))]]
        names += [[word() for _ in range(2)] for _ in range(rng.randint(0, 3))]
        names += [["".join(t)] for t in names if len(t) > 1]
        entries.append(Entry(f"E{i}", "SYN", names, i + 2))
    t = time.perf_counter()
    index = ScreenIndex(entries)
    built = time.perf_counter() - t
    print(f"{len(index):,} entries, {sum(len(e.names) for e in entries):,} names, {len(index.by_token):,} words; "
          f"indexed in {built * 1000:.0f} ms")
    queries = [" ".join(word() for _ in range(rng.randint(2, 3))) for _ in range(args.names)]

    def timed(names: list[str]) -> float:
        t = time.perf_counter()
        for n in names:
            index.screen(n)
        return (time.perf_counter() - t) / len(names) * 1e6

    print(f"names whose words were never screened: {timed(queries):,.0f} us/screen")
    print(f"names screened before:                 {timed(queries):,.1f} us/screen")
    words = [w for q in queries for w in normalise(q)]
    print(f"new names of words screened before:    {timed([' '.join(rng.sample(words, 2)) for _ in queries]):,.0f} us/screen")


if __name__ == "__main__":
    main()
