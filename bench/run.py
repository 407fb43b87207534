"""Benchmark: a bare trio forwarder vs the bsp engine on the same shape, on loopback.

    .venv/bin/python bench/run.py                 # 200k messages each
    .venv/bin/python bench/run.py --count 20000   # quick run

Shape: client --JSON ~200 B, length4--> server --one persistent connection-->
backend (answers {"status":"OK","confirmation":...}) --> server --> client.
(a) bare: the server relays bytes, replies matched FIFO, coalesced writes.
(b) bsp:  bench/bench_route.route: decode JSON, map 5 fields, call, reply,
    deal row group-committed to a DuckDB file before the reply leaves.
The server under test runs in its own process; the client (64 requests in
flight) and the backend run in this one.  Prints msgs/s, p50/p99 latency, the
server's peak RSS, its CPU per message (event loop thread and the others: the
DuckDB loader), this process's, and the ratio bsp / bare.  Not a test: no assertions.
"""
from __future__ import annotations

import argparse
import statistics
import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from formats.framing import LengthPrefixFramer  # noqa: E402
from benchkit import cpu_seconds, latency_summary, peak_rss_mb, profile_until_sigterm  # noqa: E402  (bench/ is on sys.path as the script folder)


# ------------------------------------------------------------------ backend

async def backend(task_status=trio.TASK_STATUS_IGNORED) -> None:
    async def conn(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        n = 0
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(262144)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                out = []
                for _ in f.feed(data):
                    n += 1
                    out.append(f.frame(b'{"status":"OK","confirmation":"CF%010d"}' % n))
                if out:
                    await stream.send_all(b"".join(out))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, conn, 0, host="127.0.0.1"))
        task_status.started(listeners[0].socket.getsockname()[1])


# ------------------------------------------------------------------ bare forwarder (subprocess)

async def bare_server(backend_port: int, port_file: Path) -> None:
    from collections import deque

    back = await trio.open_tcp_stream("127.0.0.1", backend_port)
    bf = LengthPrefixFramer(4)
    waiting: deque = deque()       # (client_state) per forwarded request, FIFO
    send_lock = trio.Lock()

    class Client:
        def __init__(self, stream: trio.SocketStream) -> None:
            self.stream = stream
            self.out: list[bytes] = []
            self.wake = trio.Event()

    async def back_reader() -> None:
        while True:
            data = await back.receive_some(262144)
            if not data:
                return
            touched = set()
            for reply in bf.feed(data):
                c = waiting.popleft()
                c.out.append(bf.frame(reply))
                touched.add(c)
            for c in touched:
                c.wake.set()

    async def client_writer(c: Client) -> None:
        while True:
            await c.wake.wait()
            c.wake = trio.Event()
            out, c.out = c.out, []
            await c.stream.send_all(b"".join(out))

    async def conn(stream: trio.SocketStream) -> None:
        c = Client(stream)
        f = LengthPrefixFramer(4)
        async with trio.open_nursery() as n:
            n.start_soon(client_writer, c)
            while True:
                data = await stream.receive_some(262144)
                if not data:
                    break
                frames = f.feed(data)
                out = b"".join(bf.frame(p) for p in frames)
                async with send_lock:       # several client connections share the backend's
                    waiting.extend([c] * len(frames))
                    await back.send_all(out)    # one write per chunk, in the order of `waiting`
            n.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(back_reader)
        listeners = await nursery.start(functools.partial(trio.serve_tcp, conn, 0, host="127.0.0.1"))
        port_file.write_text(str(listeners[0].socket.getsockname()[1]))


# ------------------------------------------------------------------ bsp (subprocess)

async def bsp_server(backend_port: int, port_file: Path, ledger: Path, sync: str) -> None:
    from dsl.load import compile_paths
    from engine.journal import open_ledger_sync
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    reg = default_registry()
    res = compile_paths([REPO / "bench" / "bench_route.route"], reg)
    assert res.program is not None, res.diagnostics
    if os.environ.get("BSP_SWITCH"):
        sys.setswitchinterval(float(os.environ["BSP_SWITCH"]))
    if sync == "off":
        led = None
        sb = Switchboard(res.program, reg, ledger=None,
                         overrides={"back": {"address": f"127.0.0.1:{backend_port}"}})
        async with trio.open_nursery() as nursery:
            await nursery.start(sb.run)
            port_file.write_text(str(sb.channel("front").port))
        return
    async with open_ledger_sync(ledger, sync, max_wait=0) as led:
        sb = Switchboard(res.program, reg, ledger=led,
                         overrides={"back": {"address": f"127.0.0.1:{backend_port}"}})
        async with trio.open_nursery() as nursery:
            await nursery.start(sb.run)
            port_file.write_text(str(sb.channel("front").port))
            if os.environ.get("BSP_BENCH_STATS"):      # ledger / journal figures every 2 s, on stderr
                while True:
                    await trio.sleep(2)
                    print(f"  [{sync}] {led.stats}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ client

def payload(i: int) -> bytes:
    cents = i % 99999 + 100                   # 1.00 .. 1000.98, in integer cents (no float near money)
    return orjson.dumps({
        "ref": f"REF{i:012d}", "amount": f"{cents // 100}.{cents % 100:02d}", "currency": "CNY",
        "payer": f"ACC-PAYER-{i % 1000:06d}-XXXXXXXX", "payee": f"ACC-PAYEE-{i % 777:06d}-YYYYYYYY",
        "memo": "utility bill payment for the month of november", "channel": "MB",
    }).replace(b'"amount":"', b'"amount":').replace(b'","currency"', b',"currency"', 1)


async def client(port: int, count: int, inflight: int, conns: int) -> dict:
    lat: list[float] = []
    per = count // conns
    t0 = time.perf_counter()

    async def one(n: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tx, rx = LengthPrefixFramer(4, 1 << 20), LengthPrefixFramer(4, 1 << 20)
        sent_at: list[float] = []
        got = 0
        room = trio.Semaphore(inflight)
        sent = 0
        async with stream:
            async def reader() -> None:
                nonlocal got
                while got < n:
                    data = await stream.receive_some(262144)
                    if not data:
                        raise RuntimeError(f"server closed the connection after {got} replies")
                    now = time.perf_counter()
                    for _ in rx.feed(data):
                        lat.append(now - sent_at[got])
                        got += 1
                        room.release()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                while sent < n:
                    await room.acquire()
                    k = 1
                    while k < n - sent and room.value > 0:
                        room.acquire_nowait()
                        k += 1
                    now = time.perf_counter()
                    sent_at.extend([now] * k)
                    await stream.send_all(b"".join(tx.frame(payload(sent + j)) for j in range(k)))
                    sent += k

    async with trio.open_nursery() as nursery:
        for _ in range(conns):
            nursery.start_soon(one, per)
    elapsed = time.perf_counter() - t0
    return latency_summary(lat, elapsed)


async def measure(kind: str, count: int, inflight: int, conns: int, tmp: Path) -> dict:
    async with trio.open_nursery() as nursery:
        bport = await nursery.start(backend)
        port_file = tmp / f"{kind}.port"
        serve, _, sync = kind.partition("-")
        args = [sys.executable, __file__, "--serve", serve, "--backend", str(bport), "--port-file", str(port_file),
                "--ledger", str(tmp / f"{kind}.duckdb"), "--sync", sync or "journal"]
        proc = subprocess.Popen(args)
        try:
            while not port_file.exists() or not port_file.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(f"{kind} server exited with {proc.returncode}")
                await trio.sleep(0.05)
            port = int(port_file.read_text())
            await client(port, min(2000, count), inflight, conns)          # warm-up
            cpu0, main0, here0 = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid), time.process_time()
            res = await client(port, count, inflight, conns)
            res["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / res["count"] * 1e6
            res["main_us"] = (cpu_seconds(proc.pid, proc.pid) - main0) / res["count"] * 1e6
            res["here_us"] = (time.process_time() - here0) / res["count"] * 1e6
            res["rss"] = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        nursery.cancel_scope.cancel()
    return res


def machine() -> str:
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds: each server measured this many times, alternating (the machine drifts "
                         "between runs); the figures and ratios are then the medians")
    ap.add_argument("--serve", choices=("bare", "bsp"))
    ap.add_argument("--sync", choices=("journal", "duckdb", "none", "off"), default="journal",
                    help="ledger sync of the bsp server (journal: durable, default; duckdb: strict; none: not durable)")
    ap.add_argument("--only", default="bare,bsp-journal,bsp-duckdb,bsp-none",
                    help="servers to measure, comma-separated")
    ap.add_argument("--backend", type=int)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--ledger", type=Path)
    a = ap.parse_args()
    if a.serve == "bare":
        trio.run(bare_server, a.backend, a.port_file)
        return
    if a.serve == "bsp":
        profile_until_sigterm()          # BSP_BENCH_PROFILE=FILE: cProfile the server
        trio.run(bsp_server, a.backend, a.port_file, a.ledger, a.sync)
        return
    print(f"machine: {machine()}")
    print(f"messages: {a.count}, {a.inflight} in flight per connection, {a.connections} connection(s), "
          f"payload {len(payload(1))} bytes")
    kinds = a.only.split(",")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(a.repeat):
            if a.repeat > 1:
                print(f"-- round {rep + 1} of {a.repeat}", flush=True)
            for kind in kinds:
                tmp = Path(d) / f"round{rep}"
                tmp.mkdir(exist_ok=True)
                r = trio.run(measure, kind, a.count, a.inflight, a.connections, tmp)
                runs[kind].append(r)
                _show(kind, r)
    # the run with the median rate of each server (one run: that run)
    results = {k: sorted(rs, key=lambda r: r["rate"])[len(rs) // 2] for k, rs in runs.items()}
    if a.repeat > 1:
        print(f"-- medians of {a.repeat} alternating rounds")
        for kind, r in results.items():
            _show(kind, r)
    bare = results.get("bare")
    for kind, r in results.items():
        if kind != "bare" and bare:
            bar = "  (bar: >= 0.30)" if kind == "bsp-journal" else ""
            print(f"ratio {kind} / bare: {r['rate'] / bare['rate']:.3f}{bar}")
    if "bsp-journal" in results and "bsp-none" in results:
        print(f"durable / not durable (bsp-journal / bsp-none): "
              f"{results['bsp-journal']['rate'] / results['bsp-none']['rate']:.3f}  (issue 5 item 8: >= 0.80; "
              f"three digits, so that 0.798 does not print as 0.80)")
    if a.repeat > 1 and "bsp-journal" in runs and "bsp-none" in runs:
        each = [j["rate"] / n["rate"] for j, n in zip(runs["bsp-journal"], runs["bsp-none"])]
        print("  per round: " + ", ".join(f"{x:.3f}" for x in each)
              + f"  (median {statistics.median(each):.3f})")


def _show(kind: str, r: dict) -> None:
    print(f"{kind:11s} {r['rate']:>10,.0f} msgs/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms   "
                  f"peak RSS {r['rss']:6.1f} MB   ({r['count']} msgs in {r['elapsed']:.1f} s)", flush=True)
    print(f"{'':11s} server CPU {r['cpu_us']:5.1f} us/msg (event loop thread {r['main_us']:5.1f}, "
          f"other threads {r['cpu_us'] - r['main_us']:4.1f}); client + backend {r['here_us']:4.1f} us/msg",
          flush=True)


if __name__ == "__main__":
    main()
