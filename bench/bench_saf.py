"""Benchmark: ISO 8583 store and forward at scale (engine/txn/saf.py) - a host outage, then its recovery.

    .venv/bin/python bench/bench_saf.py                         # 10,000 reversals, 10 s outage
    .venv/bin/python bench/bench_saf.py --count 2000 --outage 5 --tracemalloc
    .venv/bin/python bench/bench_saf.py --count 10000 --outage 10 --restart    # recovery after a restart

Shape, all on 127.0.0.1 in one process (so tracemalloc sees the queue): a POS client --0200, length2-->
bsp (a light route: deal, ISO 8583 call over a MUX ``tcp connect`` with ``match = iso8583``, the route of
tests/txn/safkit.py) --> an issuer simulator that is *down*: it takes every message and answers none.
Each 0200 times out (``--timeout``), its deal answers 68 and its reversal is queued: the reversals are
queued the real way, by ``--count`` requests that time out (the ``rev`` entry, fdatasync'ed, then the
deal row), not by writing the log.  The host stays down ``--outage`` seconds more (every attempt times
out and is repeated, back-off doubling from the call's timeout), then comes back: from then on it
answers each 0420 / 0421 with a 0430 after ``--latency`` seconds.

Prints: the time to queue; RSS growth over the queueing and, with ``--tracemalloc``, the Python memory
held once everything is queued (tracemalloc slows the run 2-3x: its times are not comparable); the peak
number of reversals in flight at the host (received, not yet answered) before and after it came back;
the attempts and the host's reversal count; the time from the host's return until every reversal is
acknowledged and on its deal, and that rate; the transaction log (records written, compactions, live
bytes) and the ledger (file size, deal_steps rows, deals flagged for an operator).  Not a test; bounded
by ``--deadline``.

``--restart``: the recovery after a restart instead.  The engine is stopped (drained) at the end of the
outage with every reversal still queued in its transaction log; the host comes back and a new engine on
the same ledger and log rebuilds the queue from the log and resumes it (each reversal already tried goes
as a 0421).  Prints the time until the new engine runs and until every reversal is acknowledged.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.channels.options import seconds  # noqa: E402
from engine.journal import open_ledger_sync  # noqa: E402
from engine.registry import default_registry  # noqa: E402
from engine.runtime.switchboard import Switchboard  # noqa: E402
from dsl.load import compile_paths  # noqa: E402
from formats.framing import LengthPrefixFramer  # noqa: E402
from engine.sim.reversal_host import CODEC, ReversalHost  # noqa: E402

ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = %s
}
route purchase {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"] + msg["41"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


class Issuer:
    """The store-and-forward tests' host (engine/sim/reversal_host.py) never answering a 0200 and, while
    ``up``, answering each reversal after ``latency`` seconds.  Its peak of reversals held while down (held
    for 95% of the call's timeout: the engine's wait began just before the send, a full timeout would
    overlap the next attempt) is ``host.peak`` when it comes back; ``in_flight`` / ``peak_up``: those
    received while up and not yet answered."""

    def __init__(self, latency: float, timeout: float) -> None:
        self.latency = latency
        self.timeout = timeout
        self.host = ReversalHost(self._ack, keep=False)     # keep no messages: the memory measured is bsp's
        self.up = False
        self.in_flight = 0
        self.peak_up = 0            # after it came back

    async def _ack(self, nth: int, msg: dict) -> bool:
        if not self.up:
            await trio.sleep(self.timeout * 0.95)        # down: the engine's attempt times out
            return False
        self.in_flight += 1
        self.peak_up = max(self.peak_up, self.in_flight)
        try:
            await trio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        return True


async def progress(saf: Any, issuer: Issuer, t1: float) -> None:
    while True:
        await trio.sleep(1.0)
        print(f"  +{time.perf_counter() - t1:5.1f}s acknowledged {saf.acknowledged:6}  pending {len(saf.items):6}  "
              f"in flight at host {issuer.in_flight:5}  attempts {saf.attempts}", flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def purchase(k: int) -> bytes:
    return CODEC.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
                         "7": "0501120000", "11": f"{k % 1000000:06d}", "41": f"T{k // 1000000:07d}",
                         "49": "978"})


async def queue_reversals(port: int, count: int, conns: int, batch: int) -> int:
    """Send ``count`` 0200s over ``conns`` connections, at most ``batch`` waiting at a time (under the MUX's
    max_in_flight): each times out and answers 68.  Returns how many answered 68."""
    got = [0]

    async def client(ks: list[int]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        async with stream:
            await stream.send_all(b"".join(tx.frame(purchase(k)) for k in ks))
            n = 0
            while n < len(ks):
                data = await stream.receive_some(1 << 16)
                if not data:
                    raise RuntimeError("the engine closed the connection")
                for raw in rx.feed(data):
                    n += 1
                    got[0] += CODEC.decode(raw).get("39") == "68"

    ks = list(range(1, count + 1))
    for start in range(0, count, batch):
        part = ks[start:start + batch]
        async with trio.open_nursery() as n:
            for c in range(conns):
                if part[c::conns]:
                    n.start_soon(client, part[c::conns])
    return got[0]


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    route = tmp / "saf.route"
    ledger_path = tmp / "ledger.duckdb"
    issuer = Issuer(args.latency, seconds(args.timeout, 1.0))
    out: dict[str, Any] = {}
    async with trio.open_nursery() as outer:
        port = await issuer.host.serve(outer)
        route.write_text(ROUTE % (port, args.timeout))
        res = compile_paths([route], default_registry())
        assert res.program is not None, res.diagnostics
        async with open_ledger_sync(ledger_path, "journal") as ledger:
            sb = Switchboard(res.program, default_registry(), ledger=ledger, grace=5.0)
            async with trio.open_nursery() as n:
                await n.start(sb.run)
                (saf,) = sb.saf
                rss0 = rss_mb()
                if args.tracemalloc:
                    tracemalloc.start()
                    mem0 = tracemalloc.get_traced_memory()[0]
                t0 = time.perf_counter()
                out["answered 68"] = await queue_reversals(sb.channel("pos").port, args.count, args.conns,
                                                           args.batch)
                out["queued in s"] = round(time.perf_counter() - t0, 2)
                out["queued"] = len(saf.items)
                if args.tracemalloc:
                    out["tracemalloc MB (queued)"] = round((tracemalloc.get_traced_memory()[0] - mem0) / 2**20, 1)
                    tracemalloc.stop()
                out["RSS growth MB (queued)"] = round(rss_mb() - rss0, 1)
                await trio.sleep(args.outage)
                out["attempts while down"] = saf.attempts
                out["peak in flight at host (down)"] = issuer.host.peak
                if not args.restart:
                    issuer.up = True
                    await recover(args, saf, issuer, out, "")
                sb.drain()
        if args.restart:       # the engine stopped with the queue in its log: a new one resumes it
            out["left in the log at the stop"] = len(saf.mgr.log.reversals)
            issuer.up = True
            t1 = time.perf_counter()
            async with open_ledger_sync(ledger_path, "journal") as ledger:
                sb = Switchboard(res.program, default_registry(), ledger=ledger, grace=5.0)
                async with trio.open_nursery() as n:
                    await n.start(sb.run)
                    (saf,) = sb.saf
                    out["restart: engine up in s"] = round(time.perf_counter() - t1, 2)
                    await recover(args, saf, issuer, out, "restart: ")
                    sb.drain()
        out["peak RSS MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["ledger MB"] = round(os.path.getsize(ledger_path) / 2**20, 1)
        outer.cancel_scope.cancel()
    import duckdb
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        out["deal_steps rows"] = con.execute("SELECT count(*) FROM deal_steps").fetchone()[0]
        out["deals"] = con.execute("SELECT count(*) FROM deals").fetchone()[0]
        out["deals flagged for an operator"] = con.execute(
            "SELECT count(DISTINCT deal_id) FROM deal_events WHERE to_state = 'reversal flagged'").fetchone()[0]
        out["deals acknowledged on the ledger"] = con.execute(
            "SELECT count(DISTINCT deal_id) FROM deal_events WHERE to_state = 'reversed auth'").fetchone()[0]
    finally:
        con.close()
    return out


async def recover(args: argparse.Namespace, saf: Any, issuer: Issuer, out: dict[str, Any], label: str) -> None:
    """The host answers: wait until every queued reversal is acknowledged and on its deal."""
    t1 = time.perf_counter()
    attempts0, acked0 = saf.attempts, saf.acknowledged
    with trio.fail_after(args.deadline):
        if args.progress:
            async with trio.open_nursery() as pn:
                pn.start_soon(progress, saf, issuer, t1)
                await saf.wait_empty()
                pn.cancel_scope.cancel()
        else:
            await saf.wait_empty()
    took = time.perf_counter() - t1
    acked = saf.acknowledged - acked0
    out[f"{label}all acknowledged in s"] = round(took, 2)
    out[f"{label}reversals acknowledged / s"] = round(acked / took, 1) if took else None
    out[f"{label}peak in flight at host (up)"] = issuer.peak_up
    out["reversals at host"] = issuer.host.reversals
    out[f"{label}attempts"] = saf.attempts - attempts0
    out[f"{label}acknowledged"] = acked
    out[f"{label}txn log writes (fdatasync rounds)"] = saf.mgr.log.writes
    out[f"{label}txn log compactions"] = saf.mgr.log.compactions
    out[f"{label}txn log live KB"] = round(saf.mgr.log._offset / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10000, help="reversals to queue (0200s that time out)")
    ap.add_argument("--timeout", default="1s", help="the call's timeout (also the first back-off pause)")
    ap.add_argument("--outage", type=float, default=10.0, help="seconds the host stays down once all are queued")
    ap.add_argument("--latency", type=float, default=0.005, help="seconds the recovered host takes per reversal")
    ap.add_argument("--conns", type=int, default=8, help="POS connections the 0200s are sent over")
    ap.add_argument("--batch", type=int, default=2000, help="0200s waiting at a time (under max_in_flight 4096)")
    ap.add_argument("--deadline", type=float, default=600.0, help="give up after this many seconds of recovery")
    ap.add_argument("--progress", action="store_true", help="print the recovery's progress every second")
    ap.add_argument("--restart", action="store_true",
                    help="stop the engine after the outage (the queue stays in its transaction log), then measure "
                         "a new engine on the same ledger and log resuming it against the recovered host")
    ap.add_argument("--quiet-log", action="store_true", help="do not print the engine's log lines (the flags)")
    ap.add_argument("--tracemalloc", action="store_true", help="measure the Python memory of the queue (slower)")
    args = ap.parse_args()
    if args.quiet_log:
        import logging
        logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench_saf_") as tmp:
        out = trio.run(bench, args, Path(tmp))
    print(f"bench_saf: {args.count} reversals, call timeout {args.timeout}, outage {args.outage:g}s, "
          f"host latency {args.latency * 1000:g} ms")
    for k, v in out.items():
        print(f"  {k:40} {v}")


if __name__ == "__main__":
    main()
