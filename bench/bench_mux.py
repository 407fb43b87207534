"""Benchmark: ISO 8583 through bsp over one persistent multiplexed connection, plain and TLS.

    .venv/bin/python bench/bench_mux.py                    # 100k messages, plain then TLS
    .venv/bin/python bench/bench_mux.py --count 20000 --only plain
    BSP_BENCH_PROFILE=/tmp/mux.prof .venv/bin/python bench/bench_mux.py --count 20000 --only plain

Shape: mainframe client --0200, length2--> bsp (bench/bench_mux.route: decode,
deal, call, reply) --one MUX connection, match = iso8583--> ISO host simulator
(engine/sim/iso_host.py, answers each chunk in reverse order) --0210--> bsp
--0210--> client.  The TLS scenario puts mutual TLS (certificates from
engine/certs.py) on both legs.  bsp, the host and the client run in three
processes.  Prints msgs/s, p50/p99 latency, bsp's peak RSS and the CPU time bsp
(all its threads) and the host spent per message - steadier than msgs/s on a
shared machine.  Not a test.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from formats.framing import LengthPrefixFramer  # noqa: E402
from formats.iso8583 import codec_for  # noqa: E402
from benchkit import cpu_seconds, latency_summary, peak_rss_mb, profile_until_sigterm  # noqa: E402

ROUTE = REPO / "bench" / "bench_mux.route"


# ------------------------------------------------------------------ bsp (subprocess)

async def bsp_server(host_port: int, port_file: Path, ledger: Path, sync: str, pki: Path | None) -> None:
    from dsl.load import compile_paths
    from engine.journal import open_ledger_sync
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    reg = default_registry()
    res = compile_paths([ROUTE], reg)
    assert res.program is not None, res.diagnostics
    front: dict = {"address": "127.0.0.1:0"}
    back: dict = {"address": f"127.0.0.1:{host_port}"}
    if pki is not None:
        front.update(cert=str(pki / "server.pem"), key=str(pki / "server.key"), ca=str(pki / "ca.pem"),
                     client_cert="required", allow=["cn:MAINFRAME01"])
        back.update(ca=str(pki / "ca.pem"), cert=str(pki / "client.pem"), key=str(pki / "client.key"),
                    server_name="localhost")
    overrides = {"mainframe": front, "issuer": back}

    async def serve(led: object) -> None:
        sb = Switchboard(res.program, reg, ledger=led, overrides=overrides)
        async with trio.open_nursery() as nursery:
            await nursery.start(sb.run)
            port_file.write_text(str(sb.channel("mainframe").port))

    if sync == "off":
        await serve(None)
        return
    async with open_ledger_sync(ledger, sync, max_wait=0) as led:
        await serve(led)


# ------------------------------------------------------------------ client

def requests(count: int) -> list[bytes]:
    codec = codec_for("iso8583_1987_ascii")
    f = LengthPrefixFramer(2)
    return [f.frame(codec.encode({
        "t": "0200", "2": "4111111111111111", "3": "000000", "4": f"{i % 99999 + 1:012d}", "7": "1125120000",
        "11": f"{i % 1000000:06d}", "41": f"TERM{i // 1000000:04d}", "49": "978"})) for i in range(count)]


async def client(port: int, frames: list[bytes], inflight: int, ssl_ctx: object = None) -> dict:
    lat: list[float] = []
    n = len(frames)
    if ssl_ctx is not None:
        stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ssl_ctx)
    else:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    rx = LengthPrefixFramer(2)
    sent_at: list[float] = []
    got = 0
    bad = 0
    room = trio.Semaphore(inflight)
    t0 = time.perf_counter()
    async with stream:
        async def reader() -> None:
            nonlocal got, bad
            while got < n:
                data = await stream.receive_some(262144)
                if not data:
                    raise RuntimeError(f"bsp closed the connection after {got} replies")
                now = time.perf_counter()
                for r in rx.feed(data):
                    if r[-12:-10] != b"00" and b"00TERM" not in r:    # cheap check; counted, not asserted
                        bad += 1
                    lat.append(now - sent_at[got])
                    got += 1
                    room.release()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            sent = 0
            while sent < n:
                await room.acquire()
                k = 1
                while k < n - sent and room.value > 0:
                    room.acquire_nowait()
                    k += 1
                sent_at.extend([time.perf_counter()] * k)
                await stream.send_all(b"".join(frames[sent:sent + k]))
                sent += k
    elapsed = time.perf_counter() - t0
    return latency_summary(lat, elapsed)


async def wait_port(proc: subprocess.Popen, port_file: Path, what: str) -> int:
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        await trio.sleep(0.05)
    return int(port_file.read_text())


async def measure(kind: str, count: int, inflight: int, sync: str, tmp: Path) -> dict:
    pki = None
    ssl_ctx = None
    host_args = [sys.executable, "-m", "engine.sim.iso_host", "--port", "0", "--reverse",
                 "--port-file", str(tmp / f"{kind}.host")]
    if kind == "tls":
        from engine.certs import new_ca
        from engine.tls import client_context
        pki = tmp / "pki"
        ca = new_ca("bench CA")
        ca.write(pki / "ca")
        ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(pki / "server")
        ca.issue("MAINFRAME01", client=True).write(pki / "client")
        ssl_ctx = client_context(pki / "ca.pem", pki / "client.pem", pki / "client.key", "localhost")
        host_args += ["--cert", str(pki / "server.pem"), "--key", str(pki / "server.key")]
    frames = requests(count)
    host = subprocess.Popen(host_args, cwd=REPO, stdout=subprocess.DEVNULL)
    procs = [host]
    try:
        host_port = await wait_port(host, tmp / f"{kind}.host", "iso host")
        port_file = tmp / f"{kind}.port"
        args = [sys.executable, __file__, "--serve", "--host-port", str(host_port), "--port-file", str(port_file),
                "--ledger", str(tmp / f"{kind}.duckdb"), "--sync", sync]
        if pki is not None:
            args += ["--pki", str(pki)]
        bsp = subprocess.Popen(args)
        procs.append(bsp)
        port = await wait_port(bsp, port_file, "bsp")
        await client(port, frames[:2000], inflight, ssl_ctx)         # warm-up (STANs reused later: fine)
        cpu0, host0, client0 = cpu_seconds(bsp.pid), cpu_seconds(host.pid), time.process_time()
        res = await client(port, frames, inflight, ssl_ctx)
        res["client_us"] = (time.process_time() - client0) / res["count"] * 1e6
        res["rss"] = peak_rss_mb(bsp.pid)
        res["cpu_us"] = (cpu_seconds(bsp.pid) - cpu0) / res["count"] * 1e6
        res["host_us"] = (cpu_seconds(host.pid) - host0) / res["count"] * 1e6
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--only", default="plain,tls", help="scenarios: plain, tls (comma-separated)")
    ap.add_argument("--sync", choices=("journal", "duckdb", "none", "off"), default="journal",
                    help="bsp's ledger: journal (durable, default), duckdb, none (not durable), off (no ledger)")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--host-port", type=int)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--ledger", type=Path)
    ap.add_argument("--pki", type=Path)
    a = ap.parse_args()
    if a.serve:
        profile_until_sigterm()          # BSP_BENCH_PROFILE=FILE: cProfile the server
        trio.run(bsp_server, a.host_port, a.port_file, a.ledger, a.sync, a.pki)
        return
    print(f"messages: {a.count}, {a.inflight} in flight, one mainframe connection, one MUX connection, "
          f"ledger {a.sync}")
    with tempfile.TemporaryDirectory() as d:
        for kind in a.only.split(","):
            r = trio.run(measure, kind, a.count, a.inflight, a.sync, Path(d))
            print(f"{kind:6s} {r['rate']:>9,.0f} msgs/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms   "
                  f"bsp peak RSS {r['rss']:6.1f} MB   bsp CPU {r['cpu_us']:.0f} us/msg (host {r['host_us']:.0f}, "
                  f"client {r['client_us']:.0f})   "
                  f"({r['count']} msgs in {r['elapsed']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
