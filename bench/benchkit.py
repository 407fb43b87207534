"""Shared measurement helpers for the bench scripts (bench/run.py, bench/bench_mux.py)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def latency_summary(lat: list[float], elapsed: float) -> dict[str, float]:
    """count, elapsed, rate (msgs/s), p50 and p99 (ms) of a list of latencies in seconds."""
    lat.sort()
    return {"count": len(lat), "elapsed": elapsed, "rate": len(lat) / elapsed,
            "p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * 0.99)] * 1000}


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads), or of its thread ``tid``
    (``tid == pid``: the main thread), from /proc."""
    stat = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def profile_until_sigterm() -> None:
    """With BSP_BENCH_PROFILE=FILE set: cProfile this process (a server under test) and write the
    stats to FILE when it gets SIGTERM (the bench stops its servers that way)."""
    out = os.environ.get("BSP_BENCH_PROFILE")
    if not out:
        return
    import cProfile
    import signal
    prof = cProfile.Profile()

    def dump(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)
        os._exit(0)
    signal.signal(signal.SIGTERM, dump)
    prof.enable()


async def loop_stall(work: Any, on_tick: Any = None) -> tuple[float, float, int]:
    """How long ``await work()`` took, the event loop's longest stall meanwhile (a 10 ms ticker's longest gap
    past its 10 ms) and the ticker's ticks; ``on_tick(ticks)`` runs at each tick (progress lines)."""
    import trio

    gaps = [0.0, 0]
    done = trio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await trio.sleep(0.01)
            now = time.perf_counter()
            gaps[0] = max(gaps[0], now - last - 0.01)
            gaps[1] += 1
            last = now
            if on_tick is not None:
                on_tick(gaps[1])

    async with trio.open_nursery() as n:
        n.start_soon(ticker)
        await trio.sleep(0.05)
        t0 = time.perf_counter()
        await work()
        took = time.perf_counter() - t0
        done.set()
    return took, gaps[0], int(gaps[1])
