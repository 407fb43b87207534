"""`bsp run` in a real subprocess: serves, drains on SIGTERM with a request in flight, exits 0."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import trio

from kit import Client, REPO, deals, read_until

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:%d"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:%d"
    framing = length4
    timeout = 5s
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def test_sigterm_drains_in_flight_and_exits_0(nursery, tmp_path: Path) -> None:
    release = trio.Event()
    held: list[bytes] = []

    def answer(req: dict):
        return {"status": "OK"}

    # the counterpart answers only once released, so the request is in flight at SIGTERM
    async def gated_counterpart(task_status=trio.TASK_STATUS_IGNORED):
        import functools
        from formats.framing import LengthPrefixFramer
        import orjson

        async def handler(stream):
            f = LengthPrefixFramer(4)
            async with stream:
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    frames = f.feed(data)
                    held.extend(frames)
                    await release.wait()
                    await stream.send_all(b"".join(f.frame(orjson.dumps(answer(orjson.loads(p)))) for p in frames))

        ls = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        task_status.started(ls[0].socket.getsockname()[1])

    back = await nursery.start(gated_counterpart)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (0, back))         # port 0: the engine binds one and names it in its banner
    ledger = tmp_path / "ledger.duckdb"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stderr=subprocess.PIPE)
    try:
        # wait for the "serving" line: the listener is bound by then (a hang guard: a loaded CI machine
        # takes seconds to start a Python process)
        with trio.fail_after(60):
            m, buf = await read_until(proc.stderr, rb"channel front: listen 127\.0\.0\.1:(\d+)")
            await read_until(proc.stderr, rb"serving", buf)
        c = await Client.open(int(m[1]))
        await c.send(b'{"ref":"T1"}')
        with trio.fail_after(30):
            while not held:
                await trio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):        # the engine is draining (it says so); the exchange is still in flight
            await read_until(proc.stderr, rb"signal SIGTERM: draining")
        release.set()
        with trio.fail_after(30):
            (r,) = await c.recv_json()
        assert r == {"ref": "T1", "code": "00"}
        assert await c.closed()          # drained: no more reading on this connection
        await c.aclose()
        with trio.fail_after(20):
            rc = await proc.wait()
        assert rc == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    (d,) = deals(ledger)
    assert (d["reference"], d["status"]) == ("T1", "committed")
