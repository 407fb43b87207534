"""How many log lines a flood of bad input writes, per kind, at bsp run's default log level (warning).

    .venv/bin/python bench/log_flood.py [--count 5000] [--only malformed_over_max,tls_no_cert]

A real engine (``engine.ops.serve.run_live``, as ``bsp run`` serves it, with its admin API) on loopback
port 0, a real DuckDB ledger in a temporary folder, the log configured as ``bsp run`` configures it
(``engine.ops.logs.setup_logging``, text, to a file).  Each kind of bad input is sent ``--count`` times
over real sockets; the script prints, per kind, the lines and bytes the log grew by, lines per bad
message, and the deals / dead letters the ledger holds afterwards (nothing of those may change).
The lines written at the stop (drain, summaries) are counted apart.
"""
from __future__ import annotations

import argparse
import os
import ssl
import sys
import tempfile
from functools import partial
from pathlib import Path

import duckdb
import httpx
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.certs import new_ca  # noqa: E402
from engine.ops.logs import setup_logging  # noqa: E402
from engine.ops.serve import AdminOptions, OpsOptions, run_live  # noqa: E402
from engine.registry import default_registry  # noqa: E402
from dsl.load import compile_paths  # noqa: E402
from formats.framing import LengthPrefixFramer  # noqa: E402

TOKEN = "flood-admin-token-" + "q" * 24
ROUTE = """
format Req = json
format Rsp = json
channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    max_frame = 256
    on error reply Rsp { code = error.code kind = error.kind text = error.text }
}
channel asc = tcp listen {
    address = "127.0.0.1:0"
    framing = ascii4
    on error reply Rsp { code = error.code kind = error.kind }
}
channel secure = tcp listen {
    address     = "127.0.0.1:0"
    framing     = length2
    cert        = "%(dir)s/server.pem"
    key         = "%(dir)s/server.key"
    ca          = "%(dir)s/ca.pem"
    client_cert = "required"
}
channel api = http listen { address = "127.0.0.1:0" path = "/pay" }
channel back = tcp connect { address = "127.0.0.1:%(dead)d" framing = length4 timeout = 2s }
channel capped = tcp listen { address = "127.0.0.1:0" framing = length2 max_connections = 1 }
channel host = tcp connect {
    address = "127.0.0.1:%(mux)d"
    framing = length2
    pool    = 1
    match   = ["ref"]
    timeout = 5s
}
route mux {
    receive from front as Req when msg.op == "mux"
    deal MUX { ref = msg.ref amount = 1.00 currency = "CNY" }
    call c = host as Req reply Rsp { ref = msg.ref }
    reply Rsp { ref = msg.ref code = "00" }
}
route capped_echo {
    receive from capped as Req
    deal CAPPED { ref = msg.ref amount = 1.00 currency = "CNY" }
    reply Rsp { ref = msg.ref }
}
route pay {
    receive from front as Req when msg.op == "pay"
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    deal PAYMENT { ref = msg.ref amount = msg.amount currency = "CNY" }
    call post = back as Req reply Rsp { ref = msg.ref amount = msg.amount } expect post.status == "OK"
    reply Rsp { ref = msg.ref code = "00" }
}
route bug {
    receive from front as Req when msg.op == "bug"
    let limits = "5"
    deal BUG { ref = msg.ref amount = 1.00 currency = "CNY" }
    let top = limits.max
    reply Rsp { ref = msg.ref code = "00" }
}
route asc_echo {
    receive from asc as Req
    deal ECHO { ref = msg.ref amount = 1.00 currency = "CNY" }
    reply Rsp { ref = msg.ref }
}
route secure_echo {
    receive from secure as Req
    deal SECURE { ref = msg.ref amount = 1.00 currency = "CNY" }
    reply Rsp { ref = msg.ref }
}
route web {
    receive from api as Req
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    deal WEB { ref = msg.ref amount = msg.amount currency = "CNY" }
    reply Rsp { ref = msg.ref code = "00" }
}
"""
PAN = "4111111111111111"
F2 = LengthPrefixFramer(2)


def dead_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def one_connection(port: int, data: bytes, *, wait_close: bool = True) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await s.send_all(data)
        if wait_close:
            with trio.move_on_after(5):
                while await s.receive_some(65536):
                    pass
    except (trio.BrokenResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(s)


async def many_connections(n: int, port: int, data: bytes, *, wait_close: bool = True, par: int = 20) -> None:
    lim = trio.CapacityLimiter(par)

    async def one(_: int) -> None:
        async with lim:
            await one_connection(port, data, wait_close=wait_close)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


async def frames_on_one_connection(n: int, port: int, frames: list[bytes], framer=F2) -> None:
    """Send ``n`` frames (cycled from ``frames``) in chunks and read as many replies."""
    s = await trio.open_tcp_stream("127.0.0.1", port)
    rx = type(framer)(framer.width) if hasattr(framer, "width") else LengthPrefixFramer(2)
    got = 0
    sent = 0
    try:
        while sent < n:
            k = min(100, n - sent)
            await s.send_all(b"".join(framer.frame(frames[(sent + i) % len(frames)]) for i in range(k)))
            sent += k
            while got < sent:
                data = await s.receive_some(65536)
                if not data:
                    raise RuntimeError(f"closed after {got} replies")
                got += len(rx.feed(data))
    finally:
        await s.aclose()


async def http_posts(n: int, url: str, body: bytes, ctype: str) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(n):
            await c.post(url, content=body, headers={"content-type": ctype})


async def admin_refused(n: int, port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"authorization": f"Bearer wrong-{PAN}-token"}) as c:
        for _ in range(n):
            await c.get("/status")


async def tls_no_cert(n: int, port: int, ca: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    lim = trio.CapacityLimiter(8)

    async def one(_: int) -> None:
        async with lim:
            try:
                s = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
                await s.send_all(F2.frame(b'{"ref":"T"}'))
                with trio.move_on_after(5):
                    await s.receive_some(100)
                await trio.aclose_forcefully(s)
            except (trio.BrokenResourceError, ssl.SSLError, OSError):
                pass

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


def ledger_counts(path: Path) -> tuple[int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (con.execute("SELECT count(*) FROM deals").fetchone()[0],
                con.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
    finally:
        con.close()


def log_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return data.count(b"\n"), len(data)


class Counterpart:
    """The far end of ``host`` gone wrong: before each reply, ``stray`` replies matching no request."""

    def __init__(self) -> None:
        self.stray = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        rx = LengthPrefixFramer(2)
        try:
            while data := await stream.receive_some(65536):
                for frame in rx.feed(data):
                    await stream.send_all(F2.frame(b'{"ref":"STRAY"}') * self.stray + F2.frame(frame))
        except trio.BrokenResourceError:
            pass


async def reconnect_at_cap(n: int, port: int) -> None:
    """A peer reconnecting in a loop at max_connections = 1: each connect closes the last (idle) one."""
    last = await trio.open_tcp_stream("127.0.0.1", port)
    for _ in range(n):
        s = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.move_on_after(5):
            while await last.receive_some(65536):     # closed by the engine for room
                pass
        await trio.aclose_forcefully(last)
        last = s
    await trio.aclose_forcefully(last)


async def mux_unmatched(n: int, port: int, far: Counterpart) -> None:
    far.stray = n                      # one request: n replies matching nothing, then its own
    await frames_on_one_connection(1, port, [b'{"op":"mux","ref":"M1"}'])
    far.stray = 0


async def main(count: int, only: set[str], work: Path) -> None:
    ca = new_ca("flood CA")
    ca.write(work / "ca")
    ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(work / "server")
    route = work / "flood.route"
    far = Counterpart()
    (far_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    route.write_text(ROUTE % {"dir": work, "dead": dead_port(), "mux": far_listener.socket.getsockname()[1]})
    log = work / "bsp.log"
    setup_logging("warning", "text", log).add(TOKEN)
    registry = default_registry()
    res = compile_paths([route], registry)
    assert res.program is not None, [str(d) for d in res.diagnostics]
    ledger = work / "l.duckdb"
    box: list = []
    ready = trio.Event()

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
    results: list[tuple[str, int, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.serve_listeners, far.serve, [far_listener]))
        nursery.start_soon(partial(run_live, res.program, registry, ledger_path=ledger,
                                   load=lambda: ([route], {}), grace=2.0, ops=ops))
        await ready.wait()
        eng = box[0]
        ch = eng.current.channels
        front, asc, secure, api, capped = (ch[n].port for n in ("front", "asc", "secure", "api", "capped"))
        url = f"http://127.0.0.1:{api}/pay"
        kinds = {
            "malformed_over_max": lambda: many_connections(count, front, b"\xff\xff" + b"x" * 10),
            "malformed_garbage": lambda: many_connections(count, asc, b"GARBAGE-NOT-A-LENGTH"),
            "undecodable_body": lambda: frames_on_one_connection(count, front, [b"not json at all " + PAN.encode()]),
            "no_route": lambda: frames_on_one_connection(count, front, [b'{"op":"XX99","ref":"N","amount":1}']),
            "validation_reject": lambda: frames_on_one_connection(count, front, [b'{"op":"pay","ref":"V","amount":-1}']),
            "counterpart_unreachable": lambda: frames_on_one_connection(
                count, front, [b'{"op":"pay","ref":"U%d","amount":1}' % i for i in range(count)]),
            "route_internal_error": lambda: frames_on_one_connection(
                count, front, [b'{"op":"bug","ref":"B","amount":1}']),
            "http_bad_json": lambda: http_posts(count, url, b'{"ref": "H", "amount": ', "application/json"),
            "http_wrong_content_type": lambda: http_posts(count, url, b"ref=H&amount=1", "text/plain"),
            "admin_token_refused": lambda: admin_refused(count, eng.admin_port),
            "tls_no_cert": lambda: tls_no_cert(count, secure, work / "ca.pem"),
            "closed_mid_frame": lambda: many_connections(count, front, b"\x00\x40" + b"{" * 10, wait_close=False),
            "reconnect_at_cap": lambda: reconnect_at_cap(count, capped),
            "mux_unmatched_replies": lambda: mux_unmatched(count, front, far),
        }
        await trio.sleep(0.5)
        for name, run in kinds.items():
            if only and name not in only:
                continue
            l0, b0 = log_size(log)
            t0 = trio.current_time()
            await run()
            await trio.sleep(1.0)          # let the engine finish writing what the last one caused
            l1, b1 = log_size(log)
            results.append((name, l1 - l0, b1 - b0))
            print(f"{name:26s} {count:6d} sent  {l1 - l0:7d} lines  {b1 - b0:9d} bytes  "
                  f"{(l1 - l0) / count:7.3f} lines/msg  ({trio.current_time() - t0:.1f}s)", flush=True)
        l0, b0 = log_size(log)
        eng.drain()
        await trio.sleep(3.0)
        nursery.cancel_scope.cancel()       # the counterpart of ``host``
    l1, b1 = log_size(log)
    print(f"{'at the stop':26s} {'':6s}       {l1 - l0:7d} lines  {b1 - b0:9d} bytes")
    deals, dead = ledger_counts(ledger)
    print(f"ledger: {deals} deals, {dead} dead letters; log {log} ({log_size(log)[0]} lines)")
    text = log.read_text()
    print("secrets in the log:", TOKEN in text, "| clear PAN in the log:", PAN in text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (the log) and print it")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bsp-logflood-"))
    os.environ.pop("BSP_ADMIN_TOKEN", None)
    trio.run(main, a.count, {k for k in a.only.split(",") if k}, work)
    if not a.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
