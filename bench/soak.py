"""Soak test of the live engine: every shipped service under steady traffic and repeated hot reloads.

    .venv/bin/python bench/soak.py                    # 3 minutes, a reload every 20 s, a sample every 5 s
    .venv/bin/python bench/soak.py --minutes 5 --reload-every 10 --keep var/soak
    .venv/bin/python bench/soak.py --minutes 3 --reload-every 0 --tracemalloc   # no reloads; what grew, by line

A script, not a test (loopback only).  It copies ``routes/`` to a work folder,
starts every counterpart simulator the demo uses (engine/sim/services, the bill
payment biller), writes a deployment file that points the routes' channels at
them (free loopback ports; the file channels at folders of the work folder)
and starts ``bsp run`` on it with the admin API on.  Then, for ``--minutes``:

- traffic: bill payment from the mainframe simulator (good, enquiries,
  rejected, unrouted, malformed), every other TCP service from its request
  generator (good, rejected, refused by the counterpart), about 2% of the good
  requests to keyed routes sent again (duplicates), card payments whose card
  host never answers (they time out and are reversed), the card front end's
  own 0420 reversals (forwarded by card_reversal, 00), remittances whose
  ordering customer is on the sanctions list (held for compliance, 62), the
  HTTP services (customs duty, premium collection, claims payout), batch files
  (receivables and payables, standing orders), and now and then a frame longer
  than the channel allows (a framing error: error reply, connection closed);
  each round of a service's requests has its own seed (its own customers);
- a hot reload (``POST /reload``) every ``--reload-every`` seconds,
  alternating two route versions (the ``biller`` and ``cp_host`` channels'
  timeouts change, so both outbound channels are rebuilt each time);
- a sample every ``--sample-every`` seconds: the engine's RSS and peak RSS
  (VmRSS / VmHWM), open fds, threads, the sizes of its per-exchange structures
  (``bsp_bookkeeping_entries`` on ``/metrics``, engine/ops/bookkeeping.py) and
  the ledger's files (journal segments, transaction log, DuckDB), and the anonymous memory
  (``/proc/PID/smaps_rollup``: the heap, Python's and DuckDB's, without the mapped files);
- two probes inside the engine (bench/soak_trace.py, put on its ``PYTHONPATH`` as its
  ``sitecustomize``: no engine code), with the first sample after ``--warmup`` and after the idle
  one: gc's objects by type and DuckDB's own figures (``duckdb_memory()``, ``PRAGMA
  database_size``, ``memory_limit``); with ``--tracemalloc`` also tracemalloc snapshots (tracing
  started at half the warm-up), compared by line and by traceback at the end.

At the end the traffic stops, the engine is left idle for a few seconds
(every structure should be back to its floor) and sampled once more, then
stopped with SIGTERM (drain).  It prints the table of samples, the growth from
the first sample after ``--warmup`` seconds to the idle one (in all, and per
100k messages), and checks nothing was lost, as ``bsp demo`` counts: every
request got a reply and has its deal row in the ledger (each repeat as a
duplicate row, or by a row of its own when its original freed its deal key:
nothing of it reached a counterpart, e.g. a first call ``unreachable``, so the
repeat rightly ran as a new deal; counted as "ran again", not lost).  Exit 0;
1 when a request was lost, a reload failed or the engine could not start.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.sim.biller import BillerSim  # noqa: E402
from engine.sim.iso_host import IsoHost  # noqa: E402
from engine.sim.ledger_count import SentRequest, count_lost, ledger_rows  # noqa: E402
from engine.sim.mainframe import MainframeSim  # noqa: E402
from engine.sim.services import card_payments, remittance  # noqa: E402
from engine.sim.services.batch_files import BatchFileClient  # noqa: E402
from engine.sim.services.catalog import SERVICES  # noqa: E402
from engine.sim.services.driver import ServiceClient  # noqa: E402
from engine.sim.services.http_client import HttpServiceClient  # noqa: E402
from engine.sim.services.model import Request, Service  # noqa: E402
from engine.sim.services.sims import service_sims  # noqa: E402

TOKEN = "soak-" + os.urandom(12).hex()
TIMEOUT_AMOUNT = "000000077700"          # 777.00: the card host never answers it (the call times out)
TIMEOUT_SHARE = 3                         # in 100 card payments
REVERSAL_SHARE = 5                        # the front end's 0420s, in 100 card payments
HELD_SHARE = 4                            # in 100 remittances: a sanctioned ordering customer, held (62)
SANCTIONED = "KURGANOV VIKTOR ALEXANDROVICH"     # SYN-UN-0001 of routes/remittance/sanctions.csv, reordered
ROUND = 120                               # requests per client connection set (then new connections)
FILE_BATCH = 12                           # records per batch file
SWAPS = (("bill_payment/bill_payment.route", "timeout = 3s", "timeout = 4s"),
         ("card_payments/card_payments.route", "timeout = 3s", "timeout = 2s"))


# ---------------------------------------------------------------- the engine's side
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin(port: int, method: str, path: str, timeout: float = 30.0) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=timeout) as rsp:
        return rsp.read()


_GAUGE = re.compile(r'^bsp_bookkeeping_entries\{structure="([^"]+)"\} (\S+)$', re.M)


def proc_figures(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
            elif key == "Threads":
                out["threads"] = int(value)
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Anonymous", "Rss"):
                out["anon" if key == "Anonymous" else "smaps_rss"] = int(value.split()[0]) / 1024
    except (OSError, ValueError):
        pass
    return out


def ledger_files(ledger: Path) -> dict[str, float]:
    journal = Path(str(ledger) + ".journal")
    segs = list(journal.glob("*.wal")) if journal.is_dir() else []
    txn = Path(str(ledger) + ".txn")

    def size(p: Path) -> int:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size if p.exists() else 0

    return {"wal_segments": len(segs), "journal_mb": size(journal) / 2**20, "txn_mb": size(txn) / 2**20,
            "duckdb_mb": (size(ledger) + size(Path(str(ledger) + ".wal"))) / 2**20}


# ---------------------------------------------------------------- traffic
@dataclasses.dataclass
class Tally:
    sent: list[SentRequest] = dataclasses.field(default_factory=list)
    by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    codes: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)     # kind -> code -> n
    unexpected: int = 0
    unexpected_by: dict[tuple[str, str, str, str], int] = dataclasses.field(default_factory=dict)
    framing_sent: int = 0
    framing_replies: int = 0

    @property
    def count(self) -> int:
        return len(self.sent) + self.framing_sent

    def add(self, service: str, channel: str, kind: str, key: str, code: str | None, expect: str | None,
            repeat: bool) -> None:
        self.sent.append(SentRequest(service, channel, key, code is not None, repeat))
        kind = "duplicate" if repeat else kind
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        per = self.codes.setdefault(kind, {})
        per[str(code)] = per.get(str(code), 0) + 1
        if expect is not None and code != expect:
            self.unexpected += 1
            k = (service, kind, str(expect), str(code))
            self.unexpected_by[k] = self.unexpected_by.get(k, 0) + 1


def card_service() -> Service:
    """Card payments with a share of timing-out requests (an amount the card host never answers) and of the
    front end's reversals (a 0420 advice naming a 0200 in DE 90: card_reversal forwards it, answered 00)."""
    base = card_payments.SERVICE

    def make(kind: str, n: int, rng: Any, run: str = "") -> Request:
        if kind not in ("timeout", "reversal"):
            return base.make(kind, n, rng, run)
        req = base.make("good", n, rng, run)
        if kind == "reversal":
            v = req.values
            return Request("reversal", {**v, "t": "0420", "90": "0200" + v["11"] + v["7"] + "0" * 22}, "00", req.ref)
        return Request("timeout", {**req.values, "4": TIMEOUT_AMOUNT}, "", req.ref)

    mix = {k: v for k, v in base.mix.items()}
    mix["timeout"] = TIMEOUT_SHARE
    mix["reversal"] = REVERSAL_SHARE
    return dataclasses.replace(base, make=make, mix=mix, hosts=(("cp_host", card_host),))


def remittance_service() -> Service:
    """Remittances with a share whose ordering customer is on the sanctions list (a reordered entry of
    routes/remittance/sanctions.csv): held for compliance by the screen step, answered 62, nothing sent."""
    base = remittance.SERVICE

    def make(kind: str, n: int, rng: Any, run: str = "") -> Request:
        if kind != "held":
            return base.make(kind, n, rng, run)
        req = base.make("good", n, rng, run)
        return Request("held", {**req.values, "debtor_name": SANCTIONED}, "62", req.ref)

    mix = {k: v for k, v in base.mix.items()}
    mix["held"] = HELD_SHARE
    return dataclasses.replace(base, make=make, mix=mix)


def card_host() -> IsoHost:
    return IsoHost(framing="length2", spec="iso8583_1987_ascii", decline_amounts=(card_payments.DECLINED_AMOUNT,),
                   drop=lambda r: r.get("t") == "0200" and r.get("4") == TIMEOUT_AMOUNT)


class AckReader(BatchFileClient):
    """A batch file client that removes the acknowledgements it read (the folder stays small); an
    acknowledgement file with a header line (``Service.ack_header``: the engine appends to it) is read as
    the base client reads it and left in place."""

    def collect(self) -> int:
        if self.service.ack_header:
            return super().collect()
        new = 0
        for p in sorted(self.outbox.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            for line in p.read_bytes().splitlines():
                if line.strip():
                    v = self.reply_codec.decode(line)
                    self._acks[self.key(v)] = v
                    new += 1
            p.unlink()
        return new


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bsp-soak-"))
        self.routes = self.work / "routes"
        self.ledger = self.work / "soak.duckdb"
        self.admin_port = free_port()
        self.tally = Tally()
        self.samples: list[dict[str, Any]] = []
        self.reloads: list[tuple[float, bool, str]] = []
        self.versions: set[str] = set()
        self.stop_at = 0.0
        self.pid = 0
        self.t0 = 0.0
        self.swapped = False
        self.trace = self.work / "trace"        # bench/soak_trace.py's requests and answers

    # -------------------------------------------------------------- set-up
    def prepare(self) -> None:
        if self.routes.exists():
            shutil.rmtree(self.routes)
        shutil.copytree(REPO / "routes", self.routes, ignore=shutil.ignore_patterns("*.duckdb*", "done", "error"))
        for rel, old, _ in SWAPS:
            if old not in (self.routes / rel).read_text():
                raise SystemExit(f"error: {rel}: no {old!r} to change on reload; update SWAPS in bench/soak.py")
        from dsl.load import compile_paths
        from engine.registry import default_registry
        from engine.runtime.binder import Binder
        res = compile_paths(sorted(self.routes.rglob("*.route")), default_registry())
        if res.program is None:
            raise SystemExit("error: the route library does not compile: run `bsp check routes/`")
        self.program = res.program
        self.binder = Binder(res.program, default_registry())

    def swap(self) -> None:
        """The other route version: the two channels' timeouts change (or change back)."""
        self.swapped = not self.swapped
        for rel, a, b in SWAPS:
            p = self.routes / rel
            old, new = (a, b) if self.swapped else (b, a)
            p.write_text(p.read_text().replace(old, new, 1))

    def deployment(self, channels: dict[str, dict[str, Any]]) -> Path:
        lines = ["version: 1", "routes:", f"  - {self.routes}", f"ledger: {self.ledger}",
                 "admin:", f'  listen: "127.0.0.1:{self.admin_port}"', "  token: {env: BSP_SOAK_TOKEN}",
                 "channels:"]
        for name, opts in sorted(channels.items()):
            body = ", ".join(f'{k}: "{v}"' if isinstance(v, str) else f"{k}: {str(v).lower()}"
                             for k, v in opts.items())
            lines.append(f"  {name}: {{{body}}}")
        path = self.work / "platform.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start_sims(self, nursery: trio.Nursery) -> dict[str, dict[str, Any]]:
        channels: dict[str, dict[str, Any]] = {}
        wrap = {"card_payments": card_service, "remittance": remittance_service}
        self.services = [wrap[s.name]() if s.name in wrap else s for s in SERVICES]
        started: set[str] = set()
        for svc in self.services:       # the demo's simulators (engine.sim.services.sims), one per channel
            for channel, sim in service_sims(svc, self.binder.codec):
                if channel in started:
                    continue
                await nursery.start(sim.serve)
                started.add(channel)
                channels[channel] = {"address": f"127.0.0.1:{sim.port}"}
        biller = BillerSim()
        await nursery.start(biller.serve)
        channels["biller"] = {"address": f"127.0.0.1:{biller.port}"}
        self.ports: dict[str, int] = {}
        for name, decl in self.program.channels.items():
            if decl.kind in ("tcp.listen", "http.listen"):
                self.ports[name] = free_port()
                channels[name] = {"address": f"127.0.0.1:{self.ports[name]}"}
            elif decl.kind in ("file.watch", "file.write"):
                d = self.work / "files" / name
                d.mkdir(parents=True, exist_ok=True)
                channels[name] = {"dir": str(d)} | ({"fsync": False} if decl.kind == "file.write" else {})
        return channels

    async def start_engine(self, nursery: trio.Nursery, platform: Path) -> Any:
        env = dict(os.environ, BSP_SOAK_TOKEN=TOKEN)
        if self.trace is not None:        # bench/soak_trace.py as the engine's sitecustomize (the probes)
            self.trace.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "bench" / "soak_trace.py", self.trace / "sitecustomize.py")
            env.update(BSP_SOAK_TRACE=str(self.trace), BSP_SOAK_LEDGER=str(self.ledger),
                       PYTHONPATH=os.pathsep.join(filter(None, [str(self.trace), env.get("PYTHONPATH")])))
        bsp = Path(sys.executable).parent / "bsp"
        self.log_path = self.work / "engine.log"
        log = open(self.log_path, "ab")
        proc = await trio.lowlevel.open_process(
            [str(bsp), "run", str(platform), "--ledger-sync", self.args.ledger_sync, "--grace", "15"],
            stdout=log, stderr=log, env=env, cwd=str(self.work))
        log.close()
        self.pid = proc.pid
        with trio.move_on_after(60):
            while proc.poll() is None:
                try:
                    await trio.to_thread.run_sync(admin, self.admin_port, "GET", "/ready", 2.0)
                    return proc
                except OSError:
                    await trio.sleep(0.2)
        proc.kill()
        raise SystemExit(f"error: the engine did not become ready; its log: {self.log_path}\n"
                         + self.log_path.read_text()[-3000:])

    # -------------------------------------------------------------- load
    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def drive_bill(self) -> None:
        codec = self.binder.codec("BillPayReq")
        while self.running():
            mf = MainframeSim(codec)
            res = await mf.run(self.ports["mainframe"], total=ROUND * 4, connections=4, window=8,
                               repeats=0.02, deadline=120)
            for r in res.requests:
                self.tally.add("bill_payment", "mainframe", r.kind, r.trace, r.code, r.expect_code,
                               r.repeat_of is not None)

    async def drive(self, svc: Service) -> None:
        req, rep = self.binder.codec(svc.request_format), self.binder.codec(svc.reply_format)
        rounds = 0
        while self.running():
            # a seed per round: the same seed each round sent the same customers again, so a 3-minute soak
            # took a remittance customer past the route's daily cap (61) by repeating the same accounts
            rounds += 1
            client = (HttpServiceClient if svc.transport == "http" else ServiceClient)(svc, req, rep, seed=rounds)
            res = await client.run(self.ports[svc.inbound], total=ROUND, connections=2, window=8,
                                   repeats=0.02, deadline=120)
            for o in res.outcomes:
                self.tally.add(svc.name, svc.inbound, o.kind, o.ref, o.code,
                               o.expect_code if o.kind != "timeout" else None, o.repeat_of is not None)

    async def drive_files(self, svc: Service) -> None:
        inbox = self.work / "files" / svc.inbound
        outbox = self.work / "files" / svc.ack_channel
        req, rep = self.binder.codec(svc.request_format), self.binder.codec(svc.reply_format)
        rounds = 0
        while self.running():
            rounds += 1
            client = AckReader(svc, req, rep, inbox=inbox, outbox=outbox, seed=rounds)
            res = await client.run(total=FILE_BATCH, deadline=60)
            for o in res.outcomes:
                self.tally.add(svc.name, svc.inbound, o.kind, o.ref, o.code, o.expect_code, False)
            await trio.sleep(1.0)

    async def drive_bad_frames(self) -> None:
        """Now and then a frame longer than the mainframe channel's max_frame (4096): a framing error."""
        while self.running():
            await trio.sleep(2.0)
            self.tally.framing_sent += 1
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.ports["mainframe"])
                async with stream:
                    await stream.send_all(b"\xff\xff" + b"X" * 64)
                    with trio.move_on_after(5):
                        data = await stream.receive_some(4096)
                        if data:
                            self.tally.framing_replies += 1
            except OSError:
                pass

    async def reload_loop(self) -> None:
        if not self.args.reload_every:
            return
        while True:
            await trio.sleep(self.args.reload_every)
            if not self.running():
                return
            self.swap()
            t = time.monotonic() - self.t0
            try:
                body = await trio.to_thread.run_sync(admin, self.admin_port, "POST", "/reload", 60.0)
                import json
                doc = json.loads(body)
                ok = bool(doc.get("ok"))
                self.versions.add(str(doc.get("version")))
                self.reloads.append((t, ok, "" if ok else "; ".join(doc.get("diagnostics") or [])))
            except OSError as exc:
                self.reloads.append((t, False, str(exc)))

    # -------------------------------------------------------------- samples
    async def sample(self, label: str = "") -> dict[str, Any]:
        row: dict[str, Any] = {"t": time.monotonic() - self.t0, "msgs": self.tally.count, "reloads": len(self.reloads),
                               "label": label}
        row.update(proc_figures(self.pid))
        try:
            text = (await trio.to_thread.run_sync(admin, self.admin_port, "GET", "/metrics", 10.0)).decode()
            row.update({k: float(v) for k, v in _GAUGE.findall(text)})
        except OSError:
            pass
        row.update(ledger_files(self.ledger))
        self.samples.append(row)
        return row

    async def probe(self, label: str) -> None:
        """Ask bench/soak_trace.py in the engine for ``label`` (``start``, or a snapshot) and wait for it."""
        if self.trace is None:
            return
        (self.trace / f"{label}.req").write_text("")
        with trio.move_on_after(300):
            while not (self.trace / f"{label}.done").exists():
                await trio.sleep(0.2)

    def holders(self, top: int = 8) -> None:
        """The lines that grew most between the snapshots, for the engine to say what holds their objects."""
        import tracemalloc
        try:
            a, b = (tracemalloc.Snapshot.load(str(self.trace / f"{x}.snap")) for x in "ab")
        except OSError:
            return
        lines = [st.traceback[-1] for st in b.compare_to(a, "lineno") if st.count_diff > 0][:top]
        (self.trace / "holders.spec").write_text(
            "\n".join(f"{fr.filename.replace(str(REPO) + '/', '')}:{fr.lineno}" for fr in lines) + "\n")

    async def sample_loop(self) -> None:
        started = snapped = False
        while self.running():
            t = time.monotonic() - self.t0
            if not started and t >= self.args.warmup / 2:
                started = True
                if self.args.tracemalloc:
                    await self.probe("start")
            label = ""
            if not snapped and t >= self.args.warmup:
                snapped = True
                label = "a"
                await self.probe("a")
            row = await self.sample(label)
            print(f"  {row['t']:6.0f}s  msgs {row['msgs']:>8,}  rss {row.get('VmRSS', 0):6.1f} MB  "
                  f"fds {row.get('fds', 0):4.0f}  threads {row.get('threads', 0):3.0f}  "
                  f"reloads {row['reloads']:3d}  tasks {row.get('trio.tasks', 0):5.0f}  "
                  f"txn.states {row.get('txn.states', 0):4.0f}  keys {row.get('txn.log.ends', 0):7.0f}", flush=True)
            await trio.sleep(self.args.sample_every)

    # -------------------------------------------------------------- the run
    async def main(self) -> int:
        self.prepare()
        print(f"bsp soak: {len(self.program.routes)} routes, {self.args.minutes:g} min, reload every "
              f"{self.args.reload_every:g}s, sample every {self.args.sample_every:g}s; work folder {self.work}",
              flush=True)
        started_at = datetime.now(timezone.utc)
        async with trio.open_nursery() as sims:
            channels = await self.start_sims(sims)
            proc = await self.start_engine(sims, self.deployment(channels))
            self.versions.add(self.program.version)
            self.t0 = time.monotonic()
            self.stop_at = self.t0 + self.args.minutes * 60
            try:
                async with trio.open_nursery() as load:
                    load.start_soon(self.sample_loop)
                    load.start_soon(self.reload_loop)
                    load.start_soon(self.drive_bill)
                    load.start_soon(self.drive_bad_frames)
                    for svc in self.services:
                        if svc.transport == "file":
                            load.start_soon(self.drive_files, svc)
                        else:
                            load.start_soon(self.drive, svc)
                print(f"traffic stopped at {time.monotonic() - self.t0:.0f}s; idle {self.args.idle:g}s, then "
                      f"the last sample", flush=True)
                await trio.sleep(self.args.idle)
                await self.sample("idle")
                await self.probe("b")             # after the idle sample: nothing in flight (its gauges say so)
                if self.args.tracemalloc:
                    self.holders()
                    await self.probe("holders")
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(60):
                    await proc.wait()
                if proc.poll() is None:
                    proc.kill()
                sims.cancel_scope.cancel()
        return self.report(started_at, proc.returncode)

    def ledger_versions(self, since: datetime) -> set[str]:
        """The configuration versions of this run's deal rows: the engine's own (the version this script
        compiles from the same folder is not always the engine's: then every deal before the first reload,
        and all of a run without reloads, was counted lost)."""
        import duckdb
        con = duckdb.connect(str(self.ledger), read_only=True)
        try:
            return {v for (v,) in con.execute("SELECT DISTINCT config_version FROM deals WHERE received_at >= ?",
                                              [since]).fetchall()}
        finally:
            con.close()

    def report(self, started_at: datetime, rc: int | None) -> int:
        keys: collections.Counter[tuple[str, str]] = collections.Counter()
        dups: dict[tuple[str, str], int] = {}
        for version in self.versions | self.ledger_versions(started_at):
            k, d = ledger_rows(self.ledger, version, started_at)
            keys.update(k)          # summed: a repeat that ran as a new deal may be of another version
            for key, n in d.items():
                dups[key] = dups.get(key, 0) + n
        acc = count_lost(self.tally.sent, keys, duplicates=dups)
        self.print_table()
        self.print_trace()
        elapsed = self.samples[-1]["t"] if self.samples else 0.0
        print()
        print(f"traffic: {acc.sent:,} requests ({', '.join(f'{k} {n:,}' for k, n in sorted(self.tally.by_kind.items()))})"
              f", {acc.replies:,} replies, {acc.in_ledger:,} found in the ledger, {acc.lost:,} lost; "
              f"{acc.ran_again:,} repeats ran again as new deals (their original freed its key: nothing of it "
              f"reached a counterpart), found by their own deal rows; "
              f"{self.tally.framing_sent} oversized frames ({self.tally.framing_replies} answered); "
              f"{self.tally.unexpected:,} reply codes not the expected one; "
              f"{acc.replies / max(elapsed, 1e-9):,.0f} msgs/s over {elapsed:.0f}s")
        for (svc, kind, want, got), n in sorted(self.tally.unexpected_by.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  not the expected code: {svc} {kind}: {n:,} answered {got}, expected {want}")
        for kind in ("held", "reversal"):
            if self.tally.codes.get(kind):
                print(f"{kind} requests, by reply code: {self.tally.codes[kind]}")
        timeouts = self.tally.codes.get("timeout", {})
        if timeouts:
            print(f"timing-out card payments, by reply code: {timeouts}")
        failed = [r for r in self.reloads if not r[1]]
        print(f"reloads: {len(self.reloads)} ({len(failed)} failed); versions {', '.join(sorted(self.versions))}; "
              f"engine exit status {rc}")
        for t, _, why in failed[:3]:
            print(f"  reload at {t:.0f}s failed: {why[:300]}")
        for example in acc.lost_examples:
            print(f"  lost: {example}")
        return 1 if acc.lost or failed or rc not in (0, None) else 0

    def print_table(self) -> None:
        if not self.samples:
            return
        cols = ["t", "msgs", "reloads", "VmRSS", "VmHWM", "anon", "fds", "threads", "trio.tasks", "python.blocks",
                "channels.objects", "generations.alive", "generations.retiring", "engine.stats_parts", "engine.task_scopes",
                "observer.route_tags", "metrics.channel_connects", "txn.states", "txn.light", "txn.light_sent",
                "txn.inflight_keys", "txn.log.pending", "txn.log.accepted", "txn.log.unrecorded", "txn.log.ends",
                "routes.running", "calls.sent", "mux.pending", "mux.fifo", "mux.sent", "mux.seen", "tcp.pending",
                "ledger.queue", "ledger.to_load", "wal_segments", "journal_mb", "txn_mb", "duckdb_mb"]
        short = {"VmRSS": "rss", "VmHWM": "hwm", "anon": "anon", "python.blocks": "blocks", "channels.objects": "chan",
                 "generations.alive": "gens", "generations.retiring": "retir", "engine.stats_parts": "stats", "engine.task_scopes": "scopes",
                 "observer.route_tags": "tags", "metrics.channel_connects": "conns", "txn.states": "states",
                 "txn.light": "light", "txn.light_sent": "lsent", "txn.inflight_keys": "infl",
                 "txn.log.pending": "lpend", "txn.log.accepted": "lacc", "txn.log.unrecorded": "lunrec",
                 "txn.log.ends": "keys", "routes.running": "run", "calls.sent": "csent", "mux.pending": "mpend",
                 "mux.fifo": "mfifo", "mux.sent": "msent", "mux.seen": "mseen", "tcp.pending": "tpend",
                 "ledger.queue": "lq", "ledger.to_load": "lload", "wal_segments": "wals", "journal_mb": "jMB",
                 "txn_mb": "txnMB", "duckdb_mb": "dbMB", "trio.tasks": "tasks"}
        print()
        print("samples (rss/hwm MB; structures: entries; files: MB):")
        print(" ".join(f"{short.get(c, c):>7}" for c in cols))
        for row in self.samples:
            print(" ".join(_cell(row.get(c)) for c in cols) + (f"  <- {row['label']}" if row.get("label") else ""))
        warm = next((r for r in self.samples if r["t"] >= self.args.warmup), self.samples[0])
        last = self.samples[-1]
        msgs = last["msgs"] - warm["msgs"]
        print()
        print(f"growth from t={warm['t']:.0f}s ({warm['msgs']:,} msgs, {warm['reloads']} reloads) to the "
              f"{'idle ' if last.get('label') == 'idle' else ''}sample at t={last['t']:.0f}s ({last['msgs']:,} msgs, "
              f"{last['reloads']} reloads): {msgs:,} msgs, {last['reloads'] - warm['reloads']} reloads")
        print(f"{'':22} {'growth':>10} {'per 100k msgs':>14}")
        for c in cols[3:]:
            a, b = warm.get(c), last.get(c)
            if a is None or b is None:
                continue
            d = b - a
            per = d / msgs * 100_000 if msgs else 0.0
            print(f"{c:22} {d:>10.1f} {per:>14.2f}")

    def print_trace(self) -> None:
        """What grew in the engine between the two probes of --tracemalloc (bench/soak_trace.py)."""
        if self.trace is None:
            return
        import json
        import tracemalloc
        try:
            a, b = (json.loads((self.trace / f"{x}.json").read_text()) for x in "ab")
            snaps = [tracemalloc.Snapshot.load(str(self.trace / f"{x}.snap")) for x in "ab"] \
                if self.args.tracemalloc else []
        except (OSError, ValueError) as exc:
            print(f"\nprobes: no answer ({exc}); see {self.trace}")
            return
        rows = {r.get("label"): r for r in self.samples}
        ra, rb = rows.get("a", {}), rows.get("idle", {})
        msgs = rb.get("msgs", 0) - ra.get("msgs", 0)
        per = 100_000 / msgs if msgs else 0.0
        print(f"\nprobes in the engine (bench/soak_trace.py), a (t={ra.get('t', 0):.0f}s, {ra.get('msgs', 0):,} msgs) to b (idle, "
              f"{rb.get('msgs', 0):,} msgs): {msgs:,} msgs")
        ta, tb = a.get("traced", [0, 0])[0], b.get("traced", [0, 0])[0]
        print(f"  (--tracemalloc) traced Python heap {ta / 2**20:.1f} -> {tb / 2**20:.1f} MB ({(tb - ta) / 2**20 * per:+.1f} MB per "
              f"100k msgs); allocated blocks {a['blocks']:,} -> {b['blocks']:,}")
        for name in ("VmRSS", "anon"):
            if name in ra and name in rb:
                print(f"  {name} {ra[name]:.1f} -> {rb[name]:.1f} MB ({(rb[name] - ra[name]) * per:+.1f} MB per 100k msgs)")
        da, db = a["duckdb"], b["duckdb"]
        if "memory" in da and "memory" in db:
            tot = [sum(v[0] for v in d["memory"].values()) / 2**20 for d in (da, db)]
            print(f"  DuckDB duckdb_memory() {tot[0]:.1f} -> {tot[1]:.1f} MB (memory_limit {db.get('memory_limit')}); "
                  f"by tag: " + ", ".join(f"{t} {da['memory'].get(t, [0])[0] / 2**20:.1f}->{v[0] / 2**20:.1f}"
                                          for t, v in sorted(db["memory"].items()) if v[0] or da["memory"].get(t, [0])[0]))
            print(f"  PRAGMA database_size: {db.get('database_size')}")
        else:
            print(f"  DuckDB: {da.get('error')} / {db.get('error')}")
        types_a, types_b = dict(a["types"]), dict(b["types"])
        grown = sorted(((types_b.get(k, 0) - types_a.get(k, 0), k) for k in set(types_a) | set(types_b)), reverse=True)
        print(f"  gc objects by type (after a gc.collect(): {b.get('gc_collected', 0):,} collected at b), growth: "
              + ", ".join(f"{k} {d:+,}" for d, k in grown[:12] if d))
        for name, p in (b.get("programs") or {}).items():
            if name == "chains":
                for chain in p[:3]:
                    print("  an old configuration's Binder, held by (level by level): "
                          + " <- ".join("/".join(level[:2]) for level in chain))
                continue
            print(f"  {name} objects alive at b: {p['alive']} (at a: {a.get('programs', {}).get(name, {}).get('alive')}); "
                  f"held by: " + ", ".join(f"{n} {k}" for k, n in p["holders"][:8]))
        if not snaps:
            return
        try:
            held = json.loads((self.trace / "holders.json").read_text())
        except (OSError, ValueError):
            held = {}
        diff = snaps[1].compare_to(snaps[0], "lineno")
        print("  grown most, by line (size diff, count diff):")
        for st in diff[:20]:
            fr = st.traceback[-1]                   # the most recent frame (sorted oldest first)
            print(f"    {st.size_diff / 1024:+10.1f} KiB {st.count_diff:+9,}  {fr.filename.replace(str(REPO) + '/', '')}:{fr.lineno}")
        for where, h in held.items():
            print(f"  what holds {h['objects']} of the live objects allocated at {where}: "
                  + ", ".join(f"{n} {k}" for k, n in h["holders"][:5]) + "; two up: "
                  + ", ".join(f"{n} {k}" for k, n in h["holders2"][:6]))
        print("  grown most, by traceback (the engine's frames):")
        for st in snaps[1].compare_to(snaps[0], "traceback")[:6]:
            print(f"    {st.size_diff / 1024:+10.1f} KiB {st.count_diff:+9,}")
            for fr in [f for f in st.traceback if str(REPO) in f.filename and "/.venv/" not in f.filename][-6:]:
                print(f"        {fr.filename.replace(str(REPO) + '/', '')}:{fr.lineno}")


def _cell(v: Any) -> str:
    if v is None:
        return f"{'-':>7}"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:>7.1f}"
    return f"{int(v):>7}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    ap.add_argument("--minutes", type=float, default=3.0, help="how long traffic runs (default 3)")
    ap.add_argument("--reload-every", type=float, default=20.0, metavar="SECONDS",
                    help="a hot reload every SECONDS, alternating two route versions (default 20; 0: none)")
    ap.add_argument("--sample-every", type=float, default=5.0, metavar="SECONDS",
                    help="sample the engine every SECONDS (default 5)")
    ap.add_argument("--warmup", type=float, default=30.0, metavar="SECONDS",
                    help="growth is counted from the first sample after SECONDS (default 30)")
    ap.add_argument("--idle", type=float, default=8.0, metavar="SECONDS",
                    help="after the traffic, wait SECONDS before the last sample (default 8: past the "
                         "calls' timeouts)")
    ap.add_argument("--ledger-sync", default="journal", choices=("journal", "duckdb", "none"),
                    help="as bsp run --ledger-sync (default journal)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="trace the engine's Python heap (bench/soak_trace.py as its sitecustomize): started at "
                         "half the warm-up, a snapshot with the first sample after it and one at idle; prints what "
                         "grew between them, by line and by traceback, gc's objects by type and DuckDB's "
                         "duckdb_memory() (slows the engine: figures of such a run are not throughput)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if not (args.minutes > 0 and args.reload_every >= 0 and args.sample_every > 0):
        ap.error("--minutes and --sample-every must be above 0, --reload-every at least 0 (0: no reloads)")
    soak = Soak(args)
    try:
        return trio.run(soak.main)
    finally:
        if not args.keep:
            shutil.rmtree(soak.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
