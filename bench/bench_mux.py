"""Benchmark: ISO 8583 through bsp over one persistent multiplexed connection, plain and TLS.

    .venv/bin/python bench/bench_mux.py                    # 100k messages, plain then TLS
    .venv/bin/python bench/bench_mux.py --count 20000 --only plain
    BSP_BENCH_PROFILE=/tmp/mux.prof .venv/bin/python bench/bench_mux.py --count 20000 --only plain
    .venv/bin/python bench/bench_mux.py --count 50000 --only plain --mac retail-des

Shape: mainframe client --0200, length2--> bsp (bench/bench_mux.route: decode,
deal, call, reply) --one MUX connection, match = iso8583--> ISO host simulator
(engine/sim/iso_host.py, answers each chunk in reverse order) --0210--> bsp
--0210--> client.  The TLS scenario puts mutual TLS (certificates from
engine/certs.py) on both legs.  bsp, the host and the client run in three
processes.  Prints msgs/s, p50/p99 latency, bsp's peak RSS and the CPU time bsp
(all its threads) and the host spent per message - steadier than msgs/s on a
shared machine.  Not a test.

``--mac ALG`` (retail-des, cmac-aes, hmac-sha256) puts message MACs (DE 64) on
every message: the route's format gets ``mac_algorithm "ALG" mac_key_env
"BSP_BENCH_MAC_KEY"`` (a copy of bench_mux.route, written to the temporary
directory), bsp and the host simulator get the key in their environment, the
client's 0200s carry a good MAC and the client verifies the MAC of every 0210
(failures are counted and printed; there should be none).  Through the MUX each
deal then makes four MAC operations in bsp: request verified, call MAC'd,
answer verified, reply MAC'd.
"""
from __future__ import annotations

import argparse
import os
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
from formats.iso8583.macs import MacPolicy, plan_mac  # noqa: E402
from formats.mac import ALGORITHMS, parse_key  # noqa: E402
from benchkit import cpu_seconds, latency_summary, peak_rss_mb, profile_until_sigterm  # noqa: E402

ROUTE = REPO / "bench" / "bench_mux.route"
FORMAT_LINE = "format Iso = iso8583 iso8583_1987_ascii\n"
MAC_KEY_ENV = "BSP_BENCH_MAC_KEY"
# bench keys, not secrets: a double-length DES key, the AES-128 key of RFC 4493, an HMAC text secret
MAC_KEYS = {"retail-des": "0123456789ABCDEFFEDCBA9876543210",
            "cmac-aes": "2B7E151628AED2A6ABF7158809CF4F3C",
            "hmac-sha256": "bsp-bench-hmac-secret"}


def mac_route(tmp: Path, algorithm: str) -> Path:
    """bench_mux.route with its format MAC'd (the file itself stays as it is: tests use it)."""
    text = ROUTE.read_text()
    assert text.count(FORMAT_LINE) == 1, "bench_mux.route's format line changed"
    out = tmp / f"bench_mux_{algorithm}.route"
    out.write_text(text.replace(FORMAT_LINE, f'format Iso = iso8583 iso8583_1987_ascii mac_algorithm "{algorithm}" '
                                             f'mac_key_env "{MAC_KEY_ENV}"\n'))
    return out


def mac_policy(algorithm: str) -> MacPolicy:
    spec = codec_for("iso8583_1987_ascii").spec
    return MacPolicy(algorithm, parse_key(algorithm, MAC_KEYS[algorithm]), plan_mac(spec, algorithm, None), None)


# ------------------------------------------------------------------ bsp (subprocess)

async def bsp_server(host_port: int, port_file: Path, ledger: Path, sync: str, pki: Path | None,
                     route: Path = ROUTE) -> None:
    from dsl.load import compile_paths
    from engine.journal import open_ledger_sync
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    reg = default_registry()
    res = compile_paths([route], reg)
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

def requests(count: int, mac: MacPolicy | None = None) -> list[bytes]:
    codec = codec_for("iso8583_1987_ascii")
    if mac is not None:
        codec = codec.with_mac(mac)
    f = LengthPrefixFramer(2)
    return [f.frame(codec.encode({
        "t": "0200", "2": "4111111111111111", "3": "000000", "4": f"{i % 99999 + 1:012d}", "7": "1125120000",
        "11": f"{i % 1000000:06d}", "41": f"TERM{i // 1000000:04d}", "49": "978"})) for i in range(count)]


async def client(port: int, frames: list[bytes], inflight: int, ssl_ctx: object = None,
                 mac: MacPolicy | None = None) -> dict:
    lat: list[float] = []
    n = len(frames)
    if ssl_ctx is not None:
        stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ssl_ctx)
    else:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    rx = LengthPrefixFramer(2)
    sent_at: list[float] = []
    got = 0
    bad = 0                     # answers whose DE 39 is not "00"
    bad_macs: list[bytes] = []  # answers whose MAC does not verify (with --mac)
    slot = mac.slot(False) if mac is not None else None
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
                    if b"00TERM" not in r:      # DE 39 "00" then DE 41; cheap check, counted, not asserted
                        bad += 1
                    if slot is not None:        # the MAC is the last field, over every byte before it
                        m = slot.read(r[-slot.wire:])
                        if m is None or not mac.verify(r[:-slot.wire], m):
                            bad_macs.append(r)
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
    out: dict = latency_summary(lat, elapsed)
    out.update(bad=bad, bad_macs=bad_macs)
    return out


async def wait_port(proc: subprocess.Popen, port_file: Path, what: str) -> int:
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        await trio.sleep(0.05)
    return int(port_file.read_text())


async def measure(kind: str, count: int, inflight: int, sync: str, tmp: Path, mac_alg: str = "none") -> dict:
    pki = None
    ssl_ctx = None
    host_args = [sys.executable, "-m", "engine.sim.iso_host", "--port", "0", "--reverse", "--decline", "none",
                 "--port-file", str(tmp / f"{kind}.host")]
    env = dict(os.environ)
    mac = None
    route = ROUTE
    if mac_alg != "none":
        mac = mac_policy(mac_alg)
        route = mac_route(tmp, mac_alg)
        env[MAC_KEY_ENV] = MAC_KEYS[mac_alg]
        host_args += ["--mac-algorithm", mac_alg, "--mac-key-env", MAC_KEY_ENV]
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
    frames = requests(count, mac)
    host = subprocess.Popen(host_args, cwd=REPO, stdout=subprocess.DEVNULL, env=env)
    procs = [host]
    try:
        host_port = await wait_port(host, tmp / f"{kind}.host", "iso host")
        port_file = tmp / f"{kind}.port"
        args = [sys.executable, __file__, "--serve", "--host-port", str(host_port), "--port-file", str(port_file),
                "--ledger", str(tmp / f"{kind}.duckdb"), "--sync", sync, "--route", str(route)]
        if pki is not None:
            args += ["--pki", str(pki)]
        bsp = subprocess.Popen(args, env=env)
        procs.append(bsp)
        port = await wait_port(bsp, port_file, "bsp")
        warm = await client(port, frames[:2000], inflight, ssl_ctx, mac)   # warm-up (STANs reused later: fine)
        cpu0, host0, client0 = cpu_seconds(bsp.pid), cpu_seconds(host.pid), time.process_time()
        res = await client(port, frames, inflight, ssl_ctx, mac)
        res["bad"] += warm["bad"]
        res["bad_macs"] = warm["bad_macs"] + res["bad_macs"]
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
    ap.add_argument("--mac", choices=("none",) + ALGORITHMS, default="none",
                    help="message MACs (DE 64) on every message with this algorithm (default: none)")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--route", type=Path, default=ROUTE)
    ap.add_argument("--host-port", type=int)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--ledger", type=Path)
    ap.add_argument("--pki", type=Path)
    a = ap.parse_args()
    if a.serve:
        profile_until_sigterm()          # BSP_BENCH_PROFILE=FILE: cProfile the server
        trio.run(bsp_server, a.host_port, a.port_file, a.ledger, a.sync, a.pki, a.route)
        return
    print(f"messages: {a.count}, {a.inflight} in flight, one mainframe connection, one MUX connection, "
          f"ledger {a.sync}, MAC {a.mac}")
    with tempfile.TemporaryDirectory() as d:
        for kind in a.only.split(","):
            r = trio.run(measure, kind, a.count, a.inflight, a.sync, Path(d), a.mac)
            print(f"{kind:6s} {r['rate']:>9,.0f} msgs/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms   "
                  f"bsp peak RSS {r['rss']:6.1f} MB   bsp CPU {r['cpu_us']:.0f} us/msg (host {r['host_us']:.0f}, "
                  f"client {r['client_us']:.0f})   "
                  f"({r['count']} msgs in {r['elapsed']:.1f} s)", flush=True)
            print(f"       answers not 00: {r['bad']}" + (f"   MAC failures: {len(r['bad_macs'])}"
                                                         if a.mac != "none" else ""), flush=True)
            for raw in r["bad_macs"][:5]:
                print(f"       MAC does not verify: {raw!r}", flush=True)


if __name__ == "__main__":
    main()
