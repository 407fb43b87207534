"""Durability: a real `bsp run` under load is SIGKILLed; after a restart every acknowledged deal is
in the ledger with a final status, no call reached the counterpart twice, nothing is left in flight."""
from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import trio

from engine.txn.log import TxnLog, log_path
from formats.framing import LengthPrefixFramer
from txnkit import REPO, Client, deals, free_port, rows

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:%d" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 5s }
route pay {
    receive from front as J
    on restart compensate
    deal PAY { ref = msg.ref  amount = 1.00  key = msg.ref }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
        compensate call back as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""
N = 80


async def slow_counterpart(nursery, counts: Counter, delay: float) -> int:
    async def handler(stream):
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                out = []
                for p in f.feed(data):
                    req = orjson.loads(p)
                    counts[(req["op"], req["ref"])] += 1
                    out.append(f.frame(orjson.dumps({"status": "OK", "ref": req["ref"]})))
                await trio.sleep(delay)
                try:
                    await stream.send_all(b"".join(out))
                except trio.BrokenResourceError:
                    return

    ls = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return ls[0].socket.getsockname()[1]


async def start_engine(route: Path, ledger: Path):
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    with trio.fail_after(30):
        while b"serving" not in buf:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"bsp run exited early: {buf.decode()}"
            buf += chunk
    return proc


async def test_sigkill_under_load_loses_no_acknowledged_deal_and_runs_no_call_twice(nursery, tmp_path: Path) -> None:
    counts: Counter = Counter()
    back = await slow_counterpart(nursery, counts, 0.03)
    front = free_port()
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (front, back))
    ledger = tmp_path / "ledger.duckdb"
    acked: dict[str, dict] = {}

    proc = await start_engine(route, ledger)
    try:
        async def client(refs: list[str]) -> None:
            c = await Client.open(front)
            try:
                for ref in refs:
                    await c.send(orjson.dumps({"ref": ref}))
                    (r,) = await c.recv_json()
                    acked[ref] = r
            except (AssertionError, trio.BrokenResourceError, OSError):
                return              # the engine died under us
            finally:
                await c.aclose()
        refs = [f"P{i:03d}" for i in range(N)]
        async with trio.open_nursery() as n:
            for k in range(8):
                n.start_soon(client, refs[k::8])
            with trio.fail_after(30):
                while len(acked) < N // 4:
                    await trio.sleep(0.005)
            proc.kill()                                       # SIGKILL mid-load
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    assert N // 4 <= len(acked) < N, "the kill must land in the middle of the load"
    in_flight_before = len(TxnLog(log_path(ledger)).pending)

    # restart; the client resends what it never saw answered (and repeats one it did)
    proc = await start_engine(route, ledger)
    try:
        c = await Client.open(front)
        again = [r for r in refs if r not in acked] + [next(iter(acked))]
        for ref in again:
            await c.send(orjson.dumps({"ref": ref}))
            with trio.fail_after(20):
                (r,) = await c.recv_json()
            if ref not in acked:
                acked[ref] = r
            else:
                assert r == acked[ref]                          # the original answer, repeated
        await c.aclose()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()

    ledger_deals = deals(ledger)
    final = {d["reference"]: d["status"] for d in ledger_deals if d["status"] != "duplicate"}
    for ref, answer in acked.items():
        if answer["code"] == "00" and ref in final:
            assert final[ref] == "committed", ref
    assert set(final) == set(refs)                              # every deal has its final row
    assert all(v in ("committed", "failed") for v in final.values())
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]   # nothing ran twice
    assert TxnLog(log_path(ledger)).pending == {}               # nothing left in flight
    recovered = rows(ledger, "SELECT count(DISTINCT deal_id) AS n FROM deal_events "
                             "WHERE to_state = 'in flight at restart'")[0]["n"]
    assert recovered == in_flight_before
