"""The `screen` step's cost per name (engine/steps/screen.py), pure Python.

    .venv/bin/python bench/bench_screen.py                  # 5,000 entries
    .venv/bin/python bench/bench_screen.py --entries 2000
    .venv/bin/python bench/bench_screen.py --dated --entries 20000     # a new day's index: the loop meanwhile

A synthetic list (random names of 2-4 words made of 540 syllables, up to 3 aliases each, the entries' joined
forms as a list file gives them) and random names of 2-3 words, timed three ways: names whose words were never
screened (every word compared with its neighbours in the index), new names made of words screened before,
and names screened before (the result cache).  Docs: docs/screening.md#cost.

``--dated``: the same list as an effective-dated table (a CSV file, ``effective from listed_from``; a tenth of the
entries listed from tomorrow) and the index of tomorrow's list built as the first deal of that day builds it, with
a ticker task turning the engine's loop (``trio.sleep(0.01)``, noting its longest stall): ``before``, on the loop
(``ScreenStep.run``, until 2026-11-28); ``after``, in a worker thread (``ScreenStep.before_batch``).
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
    ap.add_argument("--dated", action="store_true", help="a new day's index of a dated list: the loop's stall")
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
    if args.dated:
        dated(entries)
        return
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


def dated(entries: list[Entry]) -> None:
    import csv
    import tempfile
    from datetime import date, timedelta
    from pathlib import Path

    import trio

    from benchkit import loop_stall
    from dsl import ir
    from dsl.tables import load_table
    from engine.steps import screen

    today = date(2026, 11, 30)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["entry_id", "listed_from", "source", "name", "aliases"])
            for i, e in enumerate(entries):
                listed = today + timedelta(days=1) if i % 10 == 0 else date(2020, 1, 1)
                w.writerow([e.entry_id, listed.isoformat(), "SYN", " ".join(e.names[0]),
                            ";".join(" ".join(n) for n in e.names[1:])])
        table = load_table(ir.TableDecl("sanctions", "csv", str(path), "entry_id", effective="listed_from"))
        print(f"{len(entries):,} entries, dated: {len(table.rows_on(today)):,} in force today, "
              f"{len(table.rows_on(today + timedelta(days=1))):,} tomorrow")
        for how in ("before", "after"):
            screen._BUILT.clear()

            async def work() -> None:
                day = today + timedelta(days=1)
                if how == "before":
                    screen.index_of_table(table, day)
                else:
                    await trio.to_thread.run_sync(screen.index_of_table, table, day)

            took, lag, ticks = trio.run(loop_stall, work)
            print(f"  {how}: tomorrow's index built in {took:.2f} s; the loop's longest stall {lag * 1000:.0f} ms, "
                  f"{ticks} ticks of 10 ms meanwhile")


if __name__ == "__main__":
    main()
