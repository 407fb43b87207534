"""Crash-recovery audit of `bsp run`: SIGKILL a real engine at random moments under load, restart it
on the same ledger each time, then check what the docs promise (ledger.md, transactions.md,
operations.md).  A script, not a test: loopback only, bounded in kills and time, prints a summary.

    .venv/bin/python bench/chaos.py                      # 8 kills, seed 1, the shipped card_payments route
    .venv/bin/python bench/chaos.py --kills 12 --seed 7 --on-restart flag
    .venv/bin/python bench/chaos.py --keep --dir var/chaos   # keep the ledger, log and engine logs

Shape.  `bsp run` (a real process, `python -m engine.cli run`) serves routes/card_payments/card_payments.route,
shipped as it is (deal key DE41/DE37/DE11/MMDD, an ISO 8583 0200 call to the card host over a MUX, reversed
with 0420/0421 when it is left without an answer, `on restart compensate`), through a deployment file
that only moves its channels to loopback ports (cp_mainframe on port 0, cp_host on this script's host,
timeout ``--timeout``).  With ``--on-restart flag`` a copy of the route gets `on restart flag` (the deals a
crash left in flight are flagged for an operator instead of reversed on restart).

* The card host is ``engine.sim.iso_host.IsoHost`` (this process): each answer after a random delay (up
  to 40 ms), amount 666.00 declined (05), about 3% of 0200s never answered (a time-out: 68, then an
  ISO 8583 reversal by store and forward), about a third of first 0420s not answered (so 0421 repeats
  happen).  It records, per DE41/DE37/DE11, every 0200 and 0420/0421 it received, in order.
* The client (the mainframe's card front end) keeps ``--conns`` connections with ``--window`` requests
  in flight each (pipelined; replies matched by DE 37).  ~86% good, ~7% rejected by `validate`, ~7%
  declined; and ``--reversals`` (8%) of the new requests are the front end's own 0420 advice of an earlier
  0200 (DE 90 naming it; its own DE 37 ``V...`` and STAN), which `card_reversal` forwards to the card host
  (`store and forward`: one the host leaves unanswered is answered 00 and repeated as 0421 until
  acknowledged).  ``--reversal-on-restart`` runs a copy of the route with another `on restart` for
  `card_reversal` (the shipped route has none: flag).  After each restart it first resends every request it has no answer for (same bytes, as a
  mainframe does after a time-out) and repeats a few it has (the answer must be byte for byte the first).
* Each cycle: start the engine, drive it for a random time (``--min-run``..``--max-run`` s, seeded), SIGKILL.
  The transaction log is then read (a copy of it: the engine's own file is not touched) for the deals in
  flight (in doubt) and the queued reversals.  After ``--kills`` kills: a last run that resends everything
  unanswered, waits until the card host has been quiet (the reversals acknowledged), SIGTERM (drain).

Checks (each violation is listed; exit 1 if any):
  1 acked       every reply the client got has its deal in the ledger exactly once (one non-duplicate row for
                its key), with a status that matches the reply (00 -> committed; 94 -> its original ended
                without an answer: failed; other codes -> failed / rejected); a repeat got the first bytes
  2 once        the card host never saw a key's 0200 twice without a reversal in between; a committed deal's
                0200 was never reversed; every deal with `reversal queued` was reversed at the host and has
                one `reversed auth` event
  3 in doubt    each deal in flight at a kill ends as transactions.md says for the route's `on restart`:
                failed, 96, an `in flight at restart` event, then `flagged` (flag; nothing sent for it after the
                crash) or `recovered` (compensate; a call that may have left is reversed: `reversal queued`,
                `reversed auth`, and the host saw the 0420; a front end's 0420 left `sending` is queued:
                `reversal queued`, `reversed rev`)
  4 audit       `bsp audit verify` passes (the ledger has an audit key: BSP_AUDIT_KEY)
  5 dead        the dead-letter store holds one letter per rejected or failed deal and nothing else
                (transactions.md "Every rejected or failed exchange is also a dead letter", id = deal id)
  6 settled     after the last stop the log has no deal in flight and no reversal queued; every request sent has
                exactly one non-duplicate deal row
  7 forwarded   a front end's 0420 answered 00 reached the card host (at once, or stored and forwarded); the
                host got only 0420/0421 for it.  Printed: how each ended, how many the host saw more than once,
                how many were flagged for an operator (in flight at a kill under `on restart flag`)
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
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.sim.iso_host import IsoHost  # noqa: E402
from engine.txn.log import TxnLog, log_path  # noqa: E402
from formats.framing import make_framer  # noqa: E402
from formats.iso8583 import codec_for  # noqa: E402

ROUTE = REPO / "routes" / "card_payments" / "card_payments.route"
CODEC = codec_for("iso8583_1987_ascii", validate=False)
DECLINED = "000000066600"
BINS = ("622848", "621700", "436742")
BILLING = {"622848": "156", "621700": "156", "436742": "978"}      # card_bins.csv limit_currency
REVERSALS = ("0420", "0421", "0400", "0401")


def hkey(v: dict[str, Any]) -> str:
    return f"{v.get('41', '')}/{v.get('37', '')}/{v.get('11', '')}"


class ChaosHost(IsoHost):
    """The card host: random delays, some 0200s and first 0420s never answered; every request recorded."""

    def __init__(self, rng: random.Random, drop_rate: float) -> None:
        super().__init__(framing="length2", spec="iso8583_1987_ascii", decline_amounts=(DECLINED,),
                         delay=lambda req: rng.uniform(0.0, 0.04), drop=self._drops)
        self.rng = rng
        self.drop_rate = drop_rate
        self.seen: dict[str, list[str]] = defaultdict(list)     # key -> MTIs in the order received
        self.last = time.monotonic()

    def _decode(self, frame: bytes) -> tuple[dict[str, Any], bool] | None:
        got = super()._decode(frame)       # recorded as received: a host applies a 0200 when it takes it
        if got is not None:
            self.seen[hkey(got[0])].append(str(got[0].get("t")))
            self.last = time.monotonic()
        return got

    def _drops(self, req: dict[str, Any]) -> bool:
        mti = str(req.get("t"))
        if mti == "0200":
            return self.rng.random() < self.drop_rate
        if mti == "0420":
            return self.rng.random() < 0.35
        return False


class Req:
    __slots__ = ("ref", "kind", "values", "data", "key", "orig")

    def __init__(self, ref: str, kind: str, values: dict[str, Any], orig: str = "") -> None:
        self.ref, self.kind, self.values, self.orig = ref, kind, values, orig
        self.data = CODEC.encode(values)
        self.key = hkey(values)


class Client:
    """The mainframe's card front end: pipelined requests, replies matched by DE 37."""

    def __init__(self, rng: random.Random, tag: str, reversals: float = 0.0) -> None:
        self.rng = rng
        self.tag = tag
        self.reversals = reversals             # share of new requests that are a front end's 0420 of an earlier 0200
        self.purchases: list[Req] = []         # 0200s sent not yet reversed by the front end
        self.n = 0
        self.reqs: dict[str, Req] = {}
        self.answers: dict[str, bytes] = {}        # ref -> the first reply's bytes
        self.codes: dict[str, str] = {}            # ref -> DE 39 of the first reply
        self.repeats_ok = 0
        self.mismatch: list[str] = []
        self.replies = 0

    def new(self) -> Req:
        self.n += 1
        if self.purchases and self.rng.random() < self.reversals:
            return self.reversal()
        r = self.rng.random()
        kind = "good" if r < 0.86 else "rejected" if r < 0.93 else "declined"
        ref = f"C{self.tag}{self.n:07d}"[:12]
        values = {"t": "0200", "2": self.rng.choice(BINS) + f"{self.rng.randrange(10**10):010d}", "3": "000000",
                  "4": f"{self.rng.randrange(100, 1_000_000):012d}", "7": datetime.now().strftime("%m%d%H%M%S"),
                  "11": f"{self.n % 1_000_000:06d}", "37": ref, "41": f"ATM{self.n % 7:05d}", "49": "156"}
        values["49"] = BILLING[values["2"][:6]]      # the card's limit currency (card_bins.csv), else refused (57)
        if kind == "rejected":
            values["2"] = "4000000000" + values["2"][-6:]
        elif kind == "declined":
            values["4"] = DECLINED
        req = Req(ref, kind, values)
        self.reqs[ref] = req
        if kind != "rejected":
            self.purchases.append(req)
        return req

    def reversal(self) -> Req:
        """The front end's 0420 advice of an earlier 0200 (answered or not): DE 90 names the original (its MTI,
        STAN, DE 7, acquirer and forwarder ids).  Its own DE 37 (``V...``) and STAN, so replies and the card
        host's record keep it apart from the purchase."""
        o = self.purchases.pop(self.rng.randrange(len(self.purchases)))
        ov = o.values
        ref = f"V{self.tag}{self.n:07d}"[:12]
        values = {"t": "0420", "2": ov["2"], "3": ov["3"], "4": ov["4"],
                  "7": datetime.now().strftime("%m%d%H%M%S"), "11": f"{(self.n + 500_000) % 1_000_000:06d}",
                  "37": ref, "41": ov["41"], "49": ov["49"],
                  "90": "0200" + ov["11"] + ov["7"] + "0" * 22}
        req = Req(ref, "reversal", values, orig=o.ref)
        self.reqs[ref] = req
        return req

    def unanswered(self) -> list[Req]:
        return [r for ref, r in self.reqs.items() if ref not in self.answers]

    def got(self, data: bytes) -> None:
        v = CODEC.decode(data)
        ref = str(v.get("37", "")).strip()
        self.replies += 1
        if ref not in self.reqs:
            self.mismatch.append(f"a reply for no request sent: DE 37 {ref!r}")
            return
        if ref in self.answers:
            if data == self.answers[ref]:
                self.repeats_ok += 1
            elif self.codes[ref] != "94":    # an original that ended without an answer: 94 each time
                self.mismatch.append(f"{ref}: a repeat got other bytes than the first answer "
                                     f"(DE 39 {self.codes[ref]} then {v.get('39')})")
            return
        self.answers[ref] = data
        self.codes[ref] = str(v.get("39"))

    async def drive(self, port: int, first: list[Req], conns: int, window: int, stop: trio.Event,
                    new_after: bool = True) -> None:
        """Send ``first`` then new requests (unless ``new_after`` is False) until ``stop`` or the engine dies."""
        queue = list(first)

        def nxt() -> Req | None:
            if queue:
                return queue.pop(0)
            return self.new() if new_after and not stop.is_set() else None

        async def conn() -> None:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                return
            framer = make_framer("length2")
            slots = trio.Semaphore(window)
            out = [0]
            async with stream:
                async with trio.open_nursery() as n:
                    async def reader() -> None:
                        try:
                            while True:
                                data = await stream.receive_some(65536)
                                if not data:
                                    break
                                for f in framer.feed(data):
                                    self.got(f)
                                    out[0] -= 1
                                    slots.release()
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                        n.cancel_scope.cancel()             # the engine is gone: so is this connection
                    n.start_soon(reader)
                    try:
                        while True:
                            await slots.acquire()
                            r = nxt()
                            if r is None:
                                break
                            out[0] += 1
                            await stream.send_all(framer.frame(r.data))
                        with trio.move_on_after(30):        # the last answers (a time-out is --timeout)
                            while out[0] > 0:
                                await trio.sleep(0.02)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                    n.cancel_scope.cancel()

        async with trio.open_nursery() as n:
            for _ in range(conns):
                n.start_soon(conn)


class Engine:
    def __init__(self, work: Path, deploy: Path, env: dict[str, str]) -> None:
        self.work, self.deploy, self.env = work, deploy, env
        self.proc: Any = None
        self.runs = 0

    async def start(self) -> int:
        self.runs += 1
        self.logfile = self.work / f"engine-{self.runs:02d}.log"
        fh = open(self.logfile, "wb")
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "engine.cli", "run", str(self.deploy), "--grace", "10"],
            cwd=str(REPO), stderr=fh, stdout=subprocess.DEVNULL, env=self.env)
        fh.close()
        with trio.fail_after(60):
            while True:
                text = self.logfile.read_bytes()
                if b"serving" in text:
                    m = re.search(rb"^channel cp_mainframe: \S+ [\d.]+:(\d+)", text, re.M)
                    if m:
                        return int(m.group(1))
                if self.proc.poll() is not None:
                    raise SystemExit(f"bsp run exited early ({self.proc.returncode}):\n{text.decode()}")
                await trio.sleep(0.05)

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            return await self.proc.wait()


def log_state(ledger: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(deals in flight, queued reversals) of the transaction log, read from a copy of it."""
    src = log_path(ledger)
    if not src.exists():
        return {}, {}
    copy = work / "txn-copy"
    shutil.copyfile(src, copy)
    log = TxnLog(copy)
    try:
        pending = {p.id: {"key": p.begin.get("key"), "phases": dict(p.phases), "light": p.light,
                          "route": p.begin.get("route")}
                   for p in log.pending.values()}
        revs = dict(log.reversals)
    finally:
        log.close()
        for p in (copy, Path(str(copy) + ".spare")):
            p.unlink(missing_ok=True)
    return pending, revs


def route_policy(text: str, route: str) -> str:
    """The `on restart` policy of ``route`` in a route file's text (flag when it says none)."""
    body = text.split(f"route {route} {{", 1)[1].split("\nroute ", 1)[0]
    m = re.search(r"^\s*on restart (\w+)", body, re.M)
    return m.group(1) if m else "flag"


def q(con: Any, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


async def main(a: argparse.Namespace) -> int:
    t0 = time.monotonic()
    rng = random.Random(a.seed)
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="bsp-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    ledger = work / "chaos.duckdb"
    for p in work.glob("chaos.duckdb*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    route = ROUTE
    text = ROUTE.read_text()
    shipped_rev = route_policy(text, "card_reversal")
    if a.on_restart != "compensate":          # the shipped route says `on restart compensate`
        if "    on restart compensate\n" not in text:
            raise SystemExit(f"{ROUTE}: no `on restart compensate` line to replace with {a.on_restart!r}")
        text = text.replace("    on restart compensate\n", f"    on restart {a.on_restart}\n", 1)
    if a.reversal_on_restart and a.reversal_on_restart != shipped_rev:     # a copy with card_reversal's policy
        head, rest = text.split("route card_reversal {", 1)
        body, tail = rest.split("\nroute ", 1)
        body = re.sub(r"\n    on restart \w+\n", "\n", body)
        body = body.replace("\n    let amount", f"\n    on restart {a.reversal_on_restart}\n\n    let amount", 1)
        text = head + "route card_reversal {" + body + "\nroute " + tail
    if text != ROUTE.read_text():
        route = work / "card_payments.route"
        route.write_text(text)
        for f in ROUTE.parent.glob("*.csv"):
            shutil.copyfile(f, work / f.name)
    audit_key = base64.b64encode(b"chaos-audit-key-" + bytes(16)).decode()
    env = dict(os.environ, BSP_AUDIT_KEY=audit_key)
    env.pop("BSP_FIELD_KEYS", None)
    host = ChaosHost(random.Random(a.seed + 1), a.drop)
    client = Client(random.Random(a.seed + 2), f"{a.seed % 100:02d}{int(time.time()) % 100:02d}", a.reversals)
    policy = {"card_purchase": a.on_restart, "card_reversal": route_policy(Path(route).read_text(), "card_reversal")}
    doubt: dict[str, dict[str, Any]] = {}          # deal id -> what the log said at the kill
    doubt_at: dict[str, int] = {}
    queued_at_kill = Counter()
    violations: list[str] = []
    kills = 0
    async with trio.open_nursery() as nursery:
        hport = await nursery.start(host.serve)
        deploy = work / "platform.yaml"
        deploy.write_text(
            "version: 1\n"
            f"routes:\n  - {route}\n"
            f"ledger: {ledger}\n"
            "channels:\n"
            "  cp_mainframe: {address: \"127.0.0.1:0\"}\n"
            f"  cp_host: {{address: \"127.0.0.1:{hport}\", timeout: {a.timeout}s}}\n")
        eng = Engine(work, deploy, env)
        for k in range(1, a.kills + 1):
            port = await eng.start()
            resend = client.unanswered()
            answered = [r for r in client.reqs.values() if r.ref in client.answers]
            resend += rng.sample(answered, min(3, len(answered)))
            stop = trio.Event()
            run_for = rng.uniform(a.min_run, a.max_run)
            async with trio.open_nursery() as n:
                n.start_soon(client.drive, port, resend, a.conns, a.window, stop)
                await trio.sleep(run_for)
                await eng.kill()                    # SIGKILL: no drain, no clean close
                kills += 1
                stop.set()
            pending, revs = log_state(ledger, work)
            for i, p in pending.items():
                doubt.setdefault(i, p)
                doubt_at.setdefault(i, k)
            queued_at_kill[k] = len(revs)
            print(f"kill {k}/{a.kills} after {run_for:.2f}s: sent {len(client.reqs)}, answered "
                  f"{len(client.answers)}, in flight in the log {len(pending)}, reversals queued {len(revs)}",
                  flush=True)
            if time.monotonic() - t0 > a.deadline:
                print("deadline reached: no more kills", flush=True)
                break
        # the last run: resend everything unanswered, let the reversals drain, stop cleanly
        for attempt in range(3):
            port = await eng.start()
            stop = trio.Event()
            stop.set()
            await client.drive(port, client.unanswered(), a.conns, a.window, stop, new_after=False)
            with trio.move_on_after(a.settle + 30):
                while time.monotonic() - host.last < a.settle:
                    await trio.sleep(0.2)
            rc = await eng.stop()
            if rc != 0:
                violations.append(f"settled: the last bsp run exited {rc} on SIGTERM (see {eng.logfile})")
            pending, revs = log_state(ledger, work)
            if not revs and not client.unanswered():
                break
        nursery.cancel_scope.cancel()

    # -- checks (engine stopped) -------------------------------------------------------------------
    verify = subprocess.run([sys.executable, "-m", "engine.cli", "audit", "verify", "--ledger", str(ledger)],
                            cwd=str(REPO), env=env, capture_output=True, text=True)
    if verify.returncode != 0:
        violations.append(f"audit: bsp audit verify exited {verify.returncode}: "
                          f"{(verify.stdout + verify.stderr).strip()[-800:]}")
    con = duckdb.connect(str(ledger), read_only=True)
    deals = q(con, "SELECT deal_id, status, reference, response_code, reason FROM deals")
    events = q(con, "SELECT deal_id, to_state, detail FROM deal_events ORDER BY deal_id, seq")
    dead = {r["id"] for r in q(con, "SELECT id FROM dead_letters")}
    con.close()
    ev: dict[str, list[str]] = defaultdict(list)
    for e in events:
        ev[e["deal_id"]].append(e["to_state"])
    # a deal's rows: a repeat is a `duplicate` row of its own; a request `validate` rejects never takes its key,
    # so its repeat is checked again and rejected again (transactions.md, services/card_payments.md): one
    # row per request that is neither, or only `rejected` rows
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rejected_again = 0
    for d in sorted(deals, key=lambda d: d["status"] != "rejected"):
        ref = (d["reference"] or "").strip()
        if d["status"] == "duplicate":
            continue
        if d["status"] == "rejected" and by_ref.get(ref) and by_ref[ref][0]["status"] == "rejected":
            rejected_again += 1
            continue
        by_ref[ref].append(d)
    status = Counter(d["status"] for d in deals)

    # 1 acked
    violations += [f"acked: {m}" for m in client.mismatch]
    for ref, code in client.codes.items():
        rows = by_ref.get(ref, [])
        if len(rows) != 1:
            violations.append(f"acked: {ref} (DE 39 {code}) has {len(rows)} deal row(s), not 1")
            continue
        st = rows[0]["status"]
        want = {"00": ("committed",), "94": ("failed",)}.get(code, ("failed", "rejected"))
        if client.reqs[ref].kind == "reversal" and code == "00":
            want = ("committed", "failed")      # failed: stored and forwarded ("accepted for forwarding"), check 7
        if st not in want:
            violations.append(f"acked: {ref} answered DE 39 {code} but its deal {rows[0]['deal_id']} is {st}")
    # 2 once
    twice = 0
    reversed_keys = 0
    for key, mtis in host.seen.items():
        applied = False
        for m in mtis:
            if m == "0200":
                if applied:
                    twice += 1
                    violations.append(f"once: the card host saw {key}'s 0200 again without a reversal: {mtis}")
                    break
                applied = True
            elif m in REVERSALS:
                applied = False
        if any(m in REVERSALS for m in mtis):
            reversed_keys += 1
    ref_of_key = {r.key: ref for ref, r in client.reqs.items()}
    for key, mtis in host.seen.items():
        ref = ref_of_key.get(key)
        rows = by_ref.get(ref or "", [])
        if ref and client.reqs[ref].kind == "reversal":
            continue                            # the front end's own reversal: check 7
        if rows and rows[0]["status"] == "committed" and any(m in REVERSALS for m in mtis):
            violations.append(f"once: committed deal {rows[0]['deal_id']} ({ref}) was reversed at the host: {mtis}")
    queued = 0
    for d in deals:
        names = ev.get(d["deal_id"], [])
        if "reversal queued" in names:
            queued += 1
            n_rev = names.count("reversed auth") + names.count("reversed rev")
            seen = host.seen.get(client.reqs[d["reference"].strip()].key, []) if d["reference"].strip() in client.reqs else []
            if n_rev != 1 or not any(m in REVERSALS for m in seen):
                violations.append(f"once: deal {d['deal_id']} queued a reversal: {n_rev} `reversed auth` event(s), "
                                  f"host saw {seen}")
    # 3 in doubt
    outcome = Counter()
    deal_of = {d["deal_id"]: d for d in deals}
    for i, p in doubt.items():
        d = deal_of.get(i)
        if d is None:
            violations.append(f"in doubt: deal {i} (in flight at kill {doubt_at[i]}) has no row")
            continue
        names = ev.get(i, [])
        rt = p.get("route") or "card_purchase"
        call = "rev" if rt == "card_reversal" else "auth"
        pol = policy.get(rt, a.on_restart)
        phase = p["phases"].get(call)
        if d["status"] != "failed" or d["response_code"] != "96" or "in flight at restart" not in names:
            violations.append(f"in doubt: deal {i} ({rt}, kill {doubt_at[i]}, {call} {phase}) ended {d['status']} "
                              f"{d['response_code']} events {names}")
            continue
        if pol == "flag":
            ok = "flagged" in names and "reversal queued" not in names
            outcome[f"{rt} flagged"] += 1
        else:
            ok = "recovered" in names
            # a 0200 sent (answered or not) is reversed; the front end's advice is queued only when left
            # `sending` (no answer logged): one the host answered (`done`) is acknowledged, nothing to repeat
            if phase in (("sending", "done") if call == "auth" else ("sending",)):
                ok = ok and "reversal queued" in names and names.count(f"reversed {call}") == 1
                outcome[f"{rt} {'reversed' if call == 'auth' else 'forwarded'}"] += 1
            else:       # no call sent, or the 0200's reversal already queued (`reversing`) before the kill
                outcome[f"{rt} {call} {phase or 'not sent'}"] += 1
        if not ok:
            violations.append(f"in doubt: deal {i} ({rt}, kill {doubt_at[i]}, {call} {phase}, policy {pol}) "
                              f"events {names}")
    # 7 forwarded: a front end's reversal answered 00 reached the card host (at once, or stored and forwarded)
    fwd = Counter()
    for ref, r in client.reqs.items():
        if r.kind != "reversal":
            continue
        code = client.codes.get(ref)
        seen = host.seen.get(r.key, [])
        fwd[f"answered {code}"] += 1
        fwd["host saw it"] += bool(seen)
        fwd["host saw it more than once"] += len(seen) > 1
        rows = by_ref.get(ref, [])
        names = ev.get(rows[0]["deal_id"], []) if rows else []
        if "flagged" in names:
            fwd["flagged for an operator"] += 1
        if code == "00" and not seen:
            violations.append(f"forwarded: reversal {ref} (of {r.orig}) was answered 00 but the card host never "
                              f"got it; its deal: {rows[0]['status'] if rows else None} events {names}")
        if any(m not in ("0420", "0421") for m in seen):
            violations.append(f"forwarded: reversal {ref}: the card host got {seen}")
    # 5 dead
    want_dead = {d["deal_id"] for d in deals if d["status"] in ("rejected", "failed")}
    missing, extra = sorted(want_dead - dead), sorted(dead - want_dead)
    if missing:
        violations.append(f"dead: {len(missing)} rejected/failed deal(s) without a dead letter: {missing[:10]}")
    if extra:
        violations.append(f"dead: {len(extra)} dead letter(s) for no rejected/failed deal: {extra[:10]}")
    # 6 settled
    pending, revs = log_state(ledger, work)
    if pending or revs:
        violations.append(f"settled: after the last stop the log holds {len(pending)} deal(s) in flight, "
                          f"{len(revs)} reversal(s) queued")
    for ref in client.reqs:
        if len(by_ref.get(ref, [])) != 1:
            violations.append(f"settled: request {ref} has {len(by_ref.get(ref, []))} non-duplicate deal row(s)")

    secs = time.monotonic() - t0
    codes = Counter(client.codes.values())
    print()
    print(f"bsp chaos: seed {a.seed}, route card_payments (on restart {a.on_restart}), {kills} SIGKILLs, "
          f"{eng.runs} engine starts, {secs:.1f}s, work dir {work}")
    print(f"  requests sent       {len(client.reqs)} (replies read {client.replies}, repeats answered byte for "
          f"byte {client.repeats_ok})")
    print(f"  acknowledged        {len(client.answers)}  by DE 39: {dict(sorted(codes.items()))}")
    print(f"  deal rows           {len(deals)}  {dict(sorted(status.items()))}")
    print(f"  in doubt at kills   {len(doubt)}  ended: {dict(outcome)}  reversals queued at kills: "
          f"{sum(queued_at_kill.values())}")
    print(f"  card host           0200s {sum(m.count('0200') for m in host.seen.values())}, reversals "
          f"{sum(sum(1 for x in m if x in REVERSALS) for m in host.seen.values())} for {reversed_keys} keys, "
          f"0200 twice without reversal {twice}; deals with `reversal queued` {queued}")
    print(f"  front-end 0420s     {dict(fwd)}")
    print(f"  rejected again      {rejected_again} (repeats of rejected requests: a rejected request takes no key)")
    print(f"  dead letters        {len(dead)} (rejected+failed deals {len(want_dead)})")
    print(f"  bsp audit verify    {'ok' if verify.returncode == 0 else 'FAILED'}")
    print(f"  violations          {len(violations)}")
    for v in violations[:40]:
        print(f"    - {v}")
    if len(violations) > 40:
        print(f"    ... {len(violations) - 40} more")
    if not a.keep and not a.dir and not violations:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if violations else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=8, help="SIGKILLs (default 8)")
    p.add_argument("--seed", type=int, default=1, help="seed of the kill moments, traffic and host faults (default 1)")
    p.add_argument("--on-restart", choices=("flag", "compensate"), default="compensate",
                   help="the route's `on restart` policy: compensate (as shipped) or flag (a patched copy)")
    p.add_argument("--conns", type=int, default=4, help="client connections (default 4)")
    p.add_argument("--window", type=int, default=16, help="requests in flight per connection (default 16)")
    p.add_argument("--min-run", type=float, default=0.3, help="shortest run before a kill, s (default 0.3)")
    p.add_argument("--max-run", type=float, default=3.0, help="longest run before a kill, s (default 3)")
    p.add_argument("--timeout", type=float, default=0.5, help="cp_host's call timeout, s (default 0.5)")
    p.add_argument("--reversal-on-restart", choices=("flag", "compensate"),
                   help="card_reversal's `on restart` policy, when not the shipped route's (a patched copy)")
    p.add_argument("--reversals", type=float, default=0.08,
                   help="share of new requests that are the front end's 0420 reversal of an earlier 0200 (default 0.08)")
    p.add_argument("--drop", type=float, default=0.03, help="share of 0200s the card host never answers (default 0.03)")
    p.add_argument("--settle", type=float, default=4.0, help="quiet seconds at the host before the last stop (default 4)")
    p.add_argument("--deadline", type=float, default=240.0, help="no new kill after this many seconds (default 240)")
    p.add_argument("--dir", help="work directory (default: a new temporary one, removed when clean)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(main, parse()))
