"""Leak scan: run the shipped services through ``bsp run`` and look for classified values in clear.

    .venv/bin/python tests/tools/leak_scan.py --work var/leakscan               # every service
    .venv/bin/python tests/tools/leak_scan.py --work var/ls --services card_payments,remittance \\
        --per-service 100 --bill 200

What it does, as a security officer would (docs/security.md, "Field protection"):

1. Starts every counterpart simulator of the chosen services (and the bill payment biller) on loopback
   ports, and ``bsp run`` as a process on a deployment file it writes: the services' route files, a
   field keyring and an audit key in files (``ledger.field_keys`` / ``ledger.audit_key``), the admin API,
   ``--log-level debug -v --log-file``, ``--record CAPTURE --mask``.
2. Drives each service with its request generator (good, rejected, failing; repeats) and bill payment
   with the mainframe simulator (malformed and unrouted frames included).  Every message a simulator
   encodes or decodes goes through its format's codec, which is tapped: every value at a path the
   format classifies (``formats.classify.classified_values``) is collected, with its tag.
3. While the engine runs, reads the admin API (``/status``, ``/deals``, each deal, ``/dead-letters``,
   each dead letter, ``/metrics``); stops it with SIGTERM; then, as an operator, ``bsp deals``,
   ``bsp deals show`` (no ``--reveal``), ``bsp dead list``, ``bsp dead show`` (no ``--reveal``; with
   it, the documented decrypted view: scanned, reported apart), every report in every format, a reconciliation
   (``bsp reconcile`` against a CSV statement of the day's deals, every export format) and
   ``bsp audit verify``.
4. Scans every artefact for every collected value (at least ``--min-len`` characters), as is, upper,
   lower, without spaces, JSON- and XML-escaped, as UTF-8 and EBCDIC (cp037) bytes and their hex:
   the engine's output and log file, the ledger's tables as text and its files' bytes (``.wal``,
   ``.journal/``, ``.txn``), the capture's tables and bytes, the admin API's answers, the CLI's
   output, the report and reconciliation files, the ``.reason.txt`` files of the file channels.

Exit 0: no value found in clear (outside the decrypted view); 1: leaks, one line each
(``artefact: value (tag, first seen in FORMAT) as VARIANT``); 2: the run itself failed.
``scan()`` and ``variants()`` are importable for tests (tests/engine/test_leak_scan_services.py).
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from formats.classify import classified_values, mask, tags_of  # noqa: E402

BSP = str(Path(sys.executable).parent / "bsp")
BILL = "bill_payment"
FORMATS = ("csv", "html", "xlsx", "parquet", "json")      # every report and reconciliation export format


# ---------------------------------------------------------------- collecting the clear values

@dataclass
class Harvest:
    """Every classified value the simulators sent or received: text -> (tag, the format it was seen in);
    ``plain``: the texts also seen in a field no format classifies (a route may copy an unclassified
    value into a classified field, the purpose of a payment into an MT103's field 70: the deal's
    request, in a format that does not classify it, is then stored as it is, by design)."""
    values: dict[str, tuple[str, str]] = field(default_factory=dict)
    messages: int = 0
    plain: set[str] = field(default_factory=set)

    def add(self, fmt: str, codec: Any, values: Any) -> None:
        self.messages += 1
        tags = tags_of(codec)
        for text, tag in classified_values(values, tags, min_len=1).items():
            self.values.setdefault(text, (tag, fmt))
        unmasked = mask(values, tags) if tags else values
        self.plain.update(_leaves(values, unmasked))

    def classified(self) -> dict[str, tuple[str, str]]:
        """The values only ever seen in classified fields: not the same text (or number: ``1.50`` and
        ``1.5``) as a value of an unclassified field, nor part of one (a BIC in a longer BIC)."""
        plain = {_number(v) or v for v in self.plain}
        joined = "\0".join(sorted(self.plain))
        return {v: t for v, t in self.values.items()
                if (_number(v) or v) not in plain and v not in joined and not _shows_itself(v, t[0])}


def _number(text: str) -> str | None:
    """A decimal number's canonical text (``1.50`` -> ``1.5``), else None."""
    from decimal import Decimal, InvalidOperation
    if not re.fullmatch(r"-?\d+(\.\d+)?", text.strip()):
        return None
    try:
        return str(Decimal(text.strip()).normalize())
    except InvalidOperation:
        return None


def _shows_itself(text: str, tag: str) -> bool:
    """A card number whose hidden digits are all 0 reads the same as its mask in a numeric field
    (``400000******3393`` with hidden digits as 0 is ``4000000000003393``): not a leak."""
    from formats.classify import mask_value
    return tag == "pan" and str(mask_value(text, "pan")).replace("*", "0") == text


def _leaves(values: Any, masked: Any) -> Iterable[str]:
    """The scalars of ``values`` that masking left as they were (not classified)."""
    if isinstance(values, dict) and isinstance(masked, dict):
        for k, v in values.items():
            yield from _leaves(v, masked.get(k))
    elif isinstance(values, (list, tuple)) and isinstance(masked, (list, tuple)) and len(values) == len(masked):
        for v, m in zip(values, masked):
            yield from _leaves(v, m)
    elif values is not None and not isinstance(values, (bool, dict, list, tuple)) and values == masked:
        yield values if isinstance(values, str) else str(values)


class TapCodec:
    """A codec that gives every value it encodes or decodes to a Harvest, then does what its codec does."""

    def __init__(self, name: str, inner: Any, harvest: Harvest) -> None:
        self._name, self._inner, self._harvest = name, inner, harvest

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def encode(self, values: Any, *args: Any, **kw: Any) -> Any:
        self._harvest.add(self._name, self._inner, values)
        return self._inner.encode(values, *args, **kw)

    def decode(self, data: Any, *args: Any, **kw: Any) -> Any:
        values = self._inner.decode(data, *args, **kw)
        self._harvest.add(self._name, self._inner, values)
        return values


# ---------------------------------------------------------------- the variants a value may appear as

def variants(text: str) -> dict[str, bytes]:
    """``{how: bytes}`` forms of a clear value worth searching for."""
    forms: dict[str, str] = {"as is": text, "upper": text.upper(), "lower": text.lower(),
                             "no spaces": re.sub(r"\s+", "", text)}
    escaped = json.dumps(text)[1:-1]
    if escaped != text:
        forms["json-escaped"] = escaped
    xml = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if xml != text:
        forms["xml-escaped"] = xml
    out: dict[str, bytes] = {}
    for how, form in forms.items():
        if form and form.encode() not in out.values():
            out[how] = form.encode()
    for how, form in (("cp037", text), ("cp037 upper", text.upper())):
        try:
            b = form.encode("cp037")
        except UnicodeEncodeError:
            continue
        if b not in out.values():
            out[how] = b
    for how, b in list(out.items()):
        if how in ("as is", "cp037"):
            out[f"hex of {how}"] = b.hex().encode()
            out[f"HEX of {how}"] = b.hex().upper().encode()
    return out


@dataclass
class Leak:
    artefact: str
    value: str
    tag: str
    source: str
    how: str
    context: str


def scan(values: dict[str, tuple[str, str]], artefacts: dict[str, bytes], *, min_len: int = 6) -> list[Leak]:
    """Every (artefact, value) whose value appears in one of its variants; case-insensitive for text."""
    leaks: list[Leak] = []
    lowered = {name: data.lower() for name, data in artefacts.items()}
    for text, (tag, source) in sorted(values.items()):
        if len(text) < min_len:
            continue
        forms = variants(text)
        for name, data in artefacts.items():
            for how, needle in forms.items():
                hay = data if how.startswith(("cp037", "hex", "HEX")) else lowered[name]
                probe = needle if hay is data else needle.lower()
                at = hay.find(probe)
                if at >= 0:
                    ctx = data[max(0, at - 60):at + len(probe) + 60].decode("utf-8", "replace")
                    leaks.append(Leak(name, text, tag, source, how, ctx.replace("\n", "\\n")))
                    break
    return leaks


# ---------------------------------------------------------------- the artefacts

def duckdb_text(path: Path) -> dict[str, bytes]:
    """Each table of a DuckDB file as text (one line per row, every column cast to text)."""
    import duckdb
    out: dict[str, bytes] = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        for t in tables:
            rows = con.execute(f'SELECT * FROM "{t}"').fetchall()
            lines = []
            for row in rows:
                cells = []
                for c in row:
                    if isinstance(c, (bytes, bytearray, memoryview)):
                        b = bytes(c)
                        cells.append(b.decode("latin-1") + " " + b.hex())
                    else:
                        cells.append("" if c is None else str(c))
                lines.append("|".join(cells))
            out[f"{path.name} table {t}"] = "\n".join(lines).encode()
    finally:
        con.close()
    return out


def file_bytes(paths: Iterable[Path], label_base: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in paths:
        if p.is_file():
            try:
                out[str(p.relative_to(label_base))] = p.read_bytes()
            except ValueError:
                out[str(p)] = p.read_bytes()
    return out


# ---------------------------------------------------------------- the run

def write_keys(work: Path) -> tuple[Path, Path]:
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    audit = keys / "audit.key"
    audit.write_text(base64.b64encode(os.urandom(32)).decode())
    ring = keys / "field-keys.json"
    ring.write_text(json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}))
    for p in (audit, ring):
        p.chmod(0o600)
    return audit, ring


def route_globs(services: list[str]) -> list[str]:
    from engine.sim.services.catalog import ROUTES_DIR
    return [str(ROUTES_DIR / name / "*.route") for name in services]


def write_deployment(work: Path, services: list[str], overrides: dict[str, dict[str, Any]]) -> Path:
    import yaml
    audit, ring = write_keys(work)
    dep = {"version": 1, "routes": route_globs(services), "ledger": str(work / "bsp.duckdb"),
           "admin": {"listen": "127.0.0.1:0", "token": {"env": "BSP_ADMIN_TOKEN"}},
           "ledger_keys": None, "channels": overrides}
    dep.pop("ledger_keys")
    dep["ledger"] = {"path": str(work / "bsp.duckdb"), "audit_key": {"file": str(audit)},
                     "field_keys": {"file": str(ring)}}
    path = work / "platform.yaml"
    path.write_text(yaml.safe_dump(dep, sort_keys=False))
    return path


def program_for(services: list[str]) -> tuple[Any, Any]:
    from dsl.load import compile_paths
    from engine.sim.services.catalog import ROUTES_DIR
    from engine.sim.services.registry import services_registry
    registry = services_registry()
    files = sorted(p for name in services for p in (ROUTES_DIR / name).glob("*.route"))
    res = compile_paths(files, registry)
    if res.program is None:
        raise SystemExit(f"leak scan: the routes of {', '.join(services)} do not compile")
    return res.program, registry


@dataclass
class RunResult:
    work: Path
    deployment: Path
    harvest: Harvest
    sent: int = 0
    artefacts: dict[str, bytes] = field(default_factory=dict)
    decrypted_view: dict[str, bytes] = field(default_factory=dict)
    engine_exit: int | None = None


def admin_get(url: str, token: str, path: str) -> bytes:
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def run_platform(work: Path, services: list[str], *, per_service: int, bill: int, seed: int = 7,
                 repeats: float = 0.02, sample: int = 40, formats: Iterable[str] = FORMATS,
                 echo: Any = print, at: str | None = None) -> RunResult:
    """Everything up to and including the CLI exports; ``artefacts`` filled, nothing scanned yet.  ``at``: the
    instant the engine's clock starts at (``bsp run --at``; the simulators date their requests by the same
    clock), so that remittances are dated on days the shipped calendars list; None: the wall clock."""
    from dsl.clock import engine_clock, parse_instant
    from engine.runtime.binder import Binder
    from engine.sim.biller import BillerSim
    from engine.sim.mainframe import MainframeSim
    from engine.sim.services.batch_files import BatchFileClient
    from engine.sim.services.catalog import SERVICES
    from engine.sim.services.counterpart import CounterpartSim
    from engine.sim.services.driver import ServiceClient

    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = [s for s in services if s != BILL]
    svcs = [s for s in SERVICES if s.name in names]
    program, registry = program_for(services)
    binder = Binder(program, registry)
    harvest = Harvest()

    def codec(name: str) -> TapCodec:
        return TapCodec(name, binder.codec(name), harvest)

    token = base64.b16encode(os.urandom(16)).decode().lower()
    env = dict(os.environ, BSP_ADMIN_TOKEN=token, COLUMNS="200")
    for k in ("BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_ENV"):
        env.pop(k, None)
    out: dict[str, Any] = {}
    res = RunResult(work, work / "platform.yaml", harvest)
    stderr_path, stdout_path = work / "engine.stderr", work / "engine.stdout"
    capture, log_file = work / "capture.duckdb", work / "engine.log"
    for p in (capture, log_file, work / "bsp.duckdb"):
        if p.exists():
            raise SystemExit(f"leak scan: {p} is already there; give --work a new folder")

    async def main() -> None:
        overrides: dict[str, dict[str, Any]] = {}
        sims: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            for svc in svcs:
                for cp in svc.counterparts:
                    if cp.channel in sims:
                        continue
                    sim = CounterpartSim(cp.channel, codec(cp.request_format), codec(cp.reply_format), cp.answer,
                                         framing=cp.framing, ref=cp.ref)
                    await nursery.start(sim.serve)
                    sims[cp.channel] = sim
                for channel, factory in svc.hosts:
                    if channel not in sims:
                        host = factory()
                        await nursery.start(host.serve)
                        sims[channel] = host
            if BILL in services:
                biller = BillerSim()
                await nursery.start(biller.serve)
                sims["biller"] = biller
            for channel, sim in sims.items():
                overrides[channel] = {"address": f"127.0.0.1:{sim.port}"}
            dirs: dict[str, Path] = {}
            for name, decl in program.channels.items():
                if decl.kind == "tcp.listen":
                    overrides[name] = {"address": "127.0.0.1:0"}
                elif decl.kind in ("file.watch", "file.write"):
                    dirs[name] = work / "files" / name
                    dirs[name].mkdir(parents=True, exist_ok=True)
                    overrides[name] = {"dir": str(dirs[name])}
            dep = write_deployment(work, services, overrides)
            cmd = [BSP, "run", str(dep), "--log-level", "debug", "-v", "--log-file", str(log_file),
                   "--record", str(capture), "--mask", "--grace", "10", *(["--at", at] if at else [])]
            with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
                proc = await trio.lowlevel.open_process(cmd, stdout=so, stderr=se, env=env, cwd=str(work))
            try:
                ports, admin = await wait_ready(proc, stderr_path)
                echo(f"leak scan: engine ready, {len(ports)} listening channel(s), admin {admin}")
                sent = 0

                async def drive(svc: Any) -> None:
                    nonlocal sent
                    req, rsp = codec(svc.request_format), codec(svc.reply_format)
                    if svc.transport == "file":
                        client = BatchFileClient(svc, req, rsp, inbox=dirs[svc.inbound], outbox=dirs[svc.ack_channel],
                                                 seed=seed)
                        r = await client.run(total=per_service, deadline=60)
                    else:
                        client = ServiceClient(svc, req, rsp, seed=seed)
                        r = await client.run(ports[svc.inbound], total=per_service, repeats=repeats, deadline=60)
                    sent += len(r.outcomes)

                async def drive_bill() -> None:
                    nonlocal sent
                    mf = MainframeSim(codec("BillPayReq"), seed=seed)
                    r = await mf.run(ports["mainframe"], total=bill, connections=4, repeats=repeats, deadline=60)
                    sent += len(r.requests)

                async with trio.open_nursery() as load:
                    if BILL in services:
                        load.start_soon(drive_bill)
                    for svc in svcs:
                        load.start_soon(drive, svc)
                res.sent = sent
                echo(f"leak scan: {sent} requests sent; reading the admin API")
                out["admin"] = await trio.to_thread.run_sync(read_admin, admin, token, sample)
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(60):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                res.engine_exit = proc.returncode
            nursery.cancel_scope.cancel()

    with engine_clock(parse_instant(at)[0] if at else None):
        trio.run(main)
    echo(f"leak scan: engine exit {res.engine_exit}; exporting with the CLI")
    cli, decrypted = exports(work, res.deployment, env, sample, formats)
    save(work / "out", {**out.get("admin", {}), **cli})
    save(work / "decrypted", decrypted)
    (work / "harvest.json").write_text(json.dumps({"sent": res.sent, "messages": harvest.messages,
                                                   "engine_exit": res.engine_exit, "values": harvest.values,
                                                   "plain": sorted(harvest.plain)}))
    res.artefacts, res.decrypted_view = collect(work)
    return res


def save(folder: Path, outputs: dict[str, bytes]) -> None:
    """Each output in a file of its own (the name: the command or request, made a file name)."""
    folder.mkdir(exist_ok=True)
    for name, data in outputs.items():
        (folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".txt")).write_bytes(data)


def collect(work: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(artefacts, decrypted views) of a finished run's folder."""
    arts = files_of(work)
    arts.update(file_bytes(sorted((work / "out").glob("*")), work))
    arts["engine.stdout"] = (work / "engine.stdout").read_bytes()
    arts["engine.stderr"] = (work / "engine.stderr").read_bytes()
    return arts, file_bytes(sorted((work / "decrypted").glob("*")), work)


def stored_as_is(work: Path) -> set[str]:
    """What docs/security.md says is stored as it is: each deal's reference, party, amount, currency and
    deal keys (and the parts of a key), whatever its format classifies (numbers canonical: ``_number``)."""
    import duckdb
    con = duckdb.connect(str(work / "bsp.duckdb"), read_only=True)
    try:
        out: set[str] = set()
        for row in con.execute("SELECT reference, party, CAST(amount AS VARCHAR), currency FROM deals").fetchall():
            out.update(str(c) for c in row if c is not None)
            if row[2] is not None:
                out.add(_number(row[2]) or row[2])
        for (key,) in con.execute("SELECT key FROM deal_keys").fetchall():
            out.add(key)
            out.update(re.split(r"[|/]", key))
        return out
    finally:
        con.close()


def configuration_text(services: Iterable[str]) -> str:
    """The shipped route folders' files (routes, route tests, reference tables, schemas): a value the
    simulators share with them (a test's sample account, a reference table's name) is configuration,
    kept in the ledger's configuration versions and the capture's sources by design."""
    from engine.sim.services.catalog import ROUTES_DIR
    parts = []
    for folder in [*services, "common"]:
        for p in sorted((ROUTES_DIR / folder).rglob("*")):
            if p.is_file() and p.suffix not in (".xsd",):
                parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


@dataclass
class Triage:
    searched: dict[str, tuple[str, str]]
    plain: int
    documented: int
    configuration: int
    short: int


def triage(harvest: Harvest, work: Path, services: Iterable[str], min_len: int = 6) -> Triage:
    """The values to search for, and how many were set aside and why."""
    only = harvest.classified()
    documented = stored_as_is(work)
    config = configuration_text(services)
    out: dict[str, tuple[str, str]] = {}
    n_doc = n_conf = n_short = 0
    for v, t in only.items():
        if v in documented or (_number(v) or v) in documented:
            n_doc += 1
        elif len(v) < min_len:
            n_short += 1
        elif v in config:
            n_conf += 1
        else:
            out[v] = t
    return Triage(out, len(harvest.values) - len(only), n_doc, n_conf, n_short)


async def wait_ready(proc: Any, stderr_path: Path, timeout: float = 60.0) -> tuple[dict[str, int], str]:
    with trio.move_on_after(timeout):
        while True:
            text = stderr_path.read_text(errors="replace")
            if "bsp: serving" in text:
                ports = {m.group(1): int(m.group(2))
                         for m in re.finditer(r"^channel (\S+): listen \S+:(\d+)", text, re.M)}
                admin = re.search(r"^admin API: (\S+)", text, re.M)
                return ports, admin.group(1) if admin else ""
            if proc.returncode is not None or proc.poll() is not None:
                break
            await trio.sleep(0.1)
    raise SystemExit("leak scan: bsp run did not start:\n" + stderr_path.read_text(errors="replace")[-3000:])


def read_admin(url: str, token: str, sample: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in ("/status", "/ready", "/metrics", "/openapi.json", "/deals?limit=1000",
                 "/deals?status=rejected&limit=1000", "/deals?status=failed&limit=1000", "/dead-letters?limit=1000"):
        out[f"admin GET {path}"] = admin_get(url, token, path)
    deals = json.loads(out["admin GET /deals?limit=1000"] or b"{}")
    deals = deals.get("deals", deals) if isinstance(deals, dict) else deals
    picked = pick_ids(deals, sample)
    out["admin GET /deals/{id} (each)"] = b"\n".join(admin_get(url, token, f"/deals/{i}") for i in picked)
    dead = json.loads(out["admin GET /dead-letters?limit=1000"] or b"{}")
    dead = dead.get("dead_letters", dead.get("items", dead)) if isinstance(dead, dict) else dead
    out["admin GET /dead-letters/{id} (each)"] = b"\n".join(admin_get(url, token, f"/dead-letters/{i}")
                                                            for i in pick_ids(dead, sample))
    return out


def pick_ids(rows: Any, sample: int) -> list[str]:
    """Up to ``sample`` ids: the first two of each route and status, then the others."""
    if not isinstance(rows, list):
        return []
    seen: dict[tuple[str, str], int] = {}
    ranked = []
    for r in rows:
        ident = r.get("deal_id") or r.get("id") if isinstance(r, dict) else None
        if ident:
            k = (str(r.get("route")), str(r.get("status")))
            seen[k] = seen.get(k, 0) + 1
            ranked.append((seen[k], str(ident)))
    return [i for _, i in sorted(ranked)[:sample]]


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> bytes:
    import subprocess
    p = subprocess.run([BSP, *args], env=env, cwd=str(cwd), capture_output=True, timeout=300)
    return p.stdout + b"\n--- stderr ---\n" + p.stderr


def exports(work: Path, dep: Path, env: dict[str, str], sample: int,
            formats: Iterable[str] = FORMATS) -> tuple[dict[str, bytes], dict[str, bytes]]:
    import duckdb
    out: dict[str, bytes] = {}
    decrypted: dict[str, bytes] = {}
    d = ["--deployment", str(dep)]
    out["bsp deals --limit 0"] = run_cli(["deals", *d, "--limit", "0"], env, work)
    out["bsp deals --json --limit 0"] = run_cli(["deals", *d, "--limit", "0", "--json"], env, work)
    out["bsp dead list --limit 0"] = run_cli(["dead", "list", *d, "--limit", "0"], env, work)
    out["bsp dead list --json"] = run_cli(["dead", "list", *d, "--limit", "0", "--json"], env, work)
    out["bsp audit verify"] = run_cli(["audit", "verify", *d], env, work)
    con = duckdb.connect(str(work / "bsp.duckdb"), read_only=True)
    try:
        deals = con.execute("SELECT deal_id, status FROM (SELECT deal_id, status, route, received_at, row_number() "
                            "OVER (PARTITION BY route, status ORDER BY received_at) AS n FROM deals) WHERE n <= 2 "
                            "ORDER BY n, route, status LIMIT ?", [sample]).fetchall()
        dead = [r[0] for r in con.execute("SELECT id FROM dead_letters LIMIT ?", [sample]).fetchall()]
        parties = [r[0] for r in con.execute("SELECT DISTINCT party FROM deals WHERE party IS NOT NULL "
                                             "AND party <> '' LIMIT 5").fetchall()]
        stmt = con.execute("SELECT reference, amount, currency, CAST(received_at AS DATE) FROM deals "
                           "WHERE status = 'committed' AND reference IS NOT NULL AND amount IS NOT NULL "
                           "ORDER BY received_at LIMIT 200").fetchall()
    finally:
        con.close()
    out["bsp deals show (each)"] = b"\n".join(run_cli(["deals", "show", str(i), *d], env, work) for i, _ in deals)
    out["bsp deals show --json (each)"] = b"\n".join(run_cli(["deals", "show", str(i), *d, "--json"], env, work)
                                                     for i, _ in deals[:min(10, sample)])
    out["bsp dead show (each)"] = b"\n".join(run_cli(["dead", "show", str(i), *d], env, work) for i in dead)
    out["bsp dead show --json (each)"] = b"\n".join(run_cli(["dead", "show", str(i), *d, "--json"], env, work)
                                                    for i in dead[:min(10, sample)])
    decrypted["bsp dead show --reveal (each)"] = b"\n".join(run_cli(["dead", "show", str(i), *d, "--reveal"], env, work)
                                                            for i in dead)
    decrypted["bsp deals show --reveal (some)"] = b"\n".join(
        run_cli(["deals", "show", str(i), *d, "--reveal"], env, work) for i, _ in deals[:min(5, sample)])
    reports = work / "reports"
    reports.mkdir(exist_ok=True)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    for name in ("daily-summary", "rejections", "counterparty-statement", "operator-actions"):
        for party in (parties[:max(1, min(2, sample // 10))] if name == "counterparty-statement" else [None]):
            extra = ["--party", party] if party else []
            tag = f"{name}{'-' + re.sub(r'[^A-Za-z0-9]+', '_', party) if party else ''}"
            out[f"bsp report {tag} (table)"] = run_cli(["report", name, *d, "--from", today, *extra], env, work)
            for fmt in formats:
                run_cli(["report", name, *d, "--from", today, *extra, "--format", fmt,
                         "--out", str(reports / f"{tag}.{fmt}")], env, work)
    statement = work / "statement.csv"
    lines = ["reference,amount,currency,date,text"]
    for i, (ref, amount, ccy, day) in enumerate(stmt):
        amt = amount + 1 if i % 10 == 0 else amount          # some differences, some missing lines
        if i % 7 != 3:
            lines.append(f"{ref},{amt},{ccy or 'CNY'},{day},statement line {i}")
    lines.append(f"UNKNOWN{today},10.00,CNY,{today},no such deal")
    statement.write_text("\n".join(lines) + "\n")
    out["bsp reconcile (table)"] = run_cli(["reconcile", *d, "--against", str(statement), "--type", "csv"], env, work)
    for fmt in formats:
        run_cli(["reconcile", *d, "--against", str(statement), "--type", "csv", "--format", fmt, "-q",
                 "--out", str(reports / f"reconciliation.{fmt}")], env, work)
    return out, decrypted


def files_of(work: Path) -> dict[str, bytes]:
    """The files bsp wrote: the ledger, its .wal, journal and txn log, the capture, the log file, the
    reports and reconciliation files (xlsx unzipped), the file channels' .reason.txt files."""
    out: dict[str, bytes] = {}
    ledger = work / "bsp.duckdb"
    out.update(duckdb_text(ledger))
    out.update(duckdb_text(work / "capture.duckdb"))
    bsp_files = [p for p in work.rglob("*") if p.is_file() and (p.name.startswith(("bsp.duckdb", "capture.duckdb"))
                                                              or ".journal" in str(p) or p.name == "engine.log")]
    out.update(file_bytes(bsp_files, work))
    out.update(file_bytes((p for p in (work / "files").rglob("*.reason.txt")), work))
    for p in sorted((work / "reports").glob("*")):
        if p.suffix == ".xlsx":
            import zipfile
            with zipfile.ZipFile(p) as z:
                out[str(p.relative_to(work))] = b"\n".join(z.read(n) for n in z.namelist())
        elif p.suffix == ".parquet":
            import duckdb
            con = duckdb.connect()
            rows = con.execute("SELECT * FROM read_parquet(?)", [str(p)]).fetchall()
            out[str(p.relative_to(work))] = "\n".join("|".join(map(str, r)) for r in rows).encode()
            con.close()
        else:
            out.update(file_bytes([p], work))
    return out


# ---------------------------------------------------------------- the command

def main(argv: list[str] | None = None) -> int:
    from engine.sim.services.catalog import SERVICES
    every = [BILL] + list(dict.fromkeys(s.name for s in SERVICES))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="a new folder for the run's files")
    ap.add_argument("--services", default=",".join(every), help="comma-separated; default: every service")
    ap.add_argument("--per-service", type=int, default=200)
    ap.add_argument("--bill", type=int, default=500)
    ap.add_argument("--min-len", type=int, default=6, help="shortest value searched (shorter ones collide "
                    "with codes and words: a 3-digit CVV is checked where it is quoted, tests/engine)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sample", type=int, default=40, help="deals and dead letters read one by one (admin API, "
                    "bsp deals show, bsp dead show); failed and rejected first")
    ap.add_argument("--rescan", action="store_true", help="scan the folder of an earlier run again, without running")
    args = ap.parse_args(argv)
    services = [s for s in args.services.split(",") if s]
    t0 = time.perf_counter()
    if args.rescan:
        saved = json.loads((args.work / "harvest.json").read_text())
        harvest = Harvest({k: tuple(v) for k, v in saved["values"].items()}, saved["messages"], set(saved["plain"]))
        res = RunResult(args.work, args.work / "platform.yaml", harvest, saved["sent"])
        res.engine_exit = saved["engine_exit"]
        res.artefacts, res.decrypted_view = collect(args.work)
    else:
        res = run_platform(args.work, services, per_service=args.per_service, bill=args.bill, seed=args.seed,
                           sample=args.sample)
    tri = triage(res.harvest, args.work, services, args.min_len)
    values = tri.searched
    leaks = scan(values, res.artefacts, min_len=args.min_len)
    shown = scan(values, res.decrypted_view, min_len=args.min_len)
    size = sum(len(b) for b in res.artefacts.values())
    print(f"leak scan: {res.sent} requests, {res.harvest.messages} messages tapped, {len(res.harvest.values)} "
          f"distinct classified values; searched for {len(values)} ({count_tags(values)}) in {len(res.artefacts)} "
          f"artefacts, {size:,} bytes, {time.perf_counter() - t0:.0f}s; engine exit {res.engine_exit}")
    print(f"set aside: {tri.plain} also seen in a field no format classifies (a route copied it into a classified "
          f"one, or the same text); {tri.documented} kept as they are by design (a deal's reference, party, "
          f"amount, currency, key: docs/security.md); {tri.configuration} in the shipped route folders "
          f"(route tests, reference tables); {tri.short} shorter than {args.min_len} characters")
    print(f"decrypted views (bsp dead show --reveal, deals show --reveal: clear by design): {len(shown)} value(s) shown")
    for leak in leaks:
        print(f"LEAK {leak.artefact}: {leak.value!r} ({leak.tag}, first seen in {leak.source}) as {leak.how}: "
              f"...{leak.context}...")
    print(f"leak scan: {len(leaks)} leak(s)")
    return 1 if leaks else (2 if res.engine_exit not in (0, None) else 0)


def count_tags(values: dict[str, tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for _, (tag, _) in values.items():
        counts[tag] = counts.get(tag, 0) + 1
    return ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
