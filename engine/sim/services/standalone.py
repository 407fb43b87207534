"""The service simulators for an engine you started yourself (``bsp sim counterparts``, ``bsp sim traffic``).

    target = load_target(["claims_payout"], config=[], env=None)     # routes/claims_payout/, its addresses
    trio.run(serve_counterparts, target, ["claims_payout"], {})      # until SIGINT/SIGTERM
    results = trio.run(send_traffic, target, "claims_payout", 100)   # to the engine's inbound channel

The simulators are the ones ``bsp demo`` runs in-process (``engine.sim.services.sims.service_sims``, the
bill payment biller ``engine.sim.biller.BillerSim``, the bill payment mainframe
``engine.sim.mainframe.MainframeSim``); here they listen on, and send to, the addresses the configuration
gives: the route files' own (``address = ...`` of each channel), or a deployment file's ``channels:``
override of them (with its ``--env``), so they meet a ``bsp run`` of the same configuration.

A ``Target`` is the compiled configuration: the formats the simulators encode and decode with come
from it, as in the demo, so simulators and routes cannot drift apart.
"""
from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, TextIO

import trio

from engine.sim.services.catalog import ROUTES_DIR, SERVICES
from engine.sim.services.common import using_calendars
from engine.sim.services.model import KINDS, Service

BILL = "bill_payment"
BILL_INBOUND = "mainframe"
BILL_BILLER = "biller"
DUPLICATE = "duplicate"         # --mix: the share of good requests to keyed routes sent again (engine.sim.repeats)
BILL_KINDS = ("good", "enquiry", "over_limit", "unknown_biller", "bad_currency", "unrouted", "malformed")


class SimError(ValueError):
    """A problem the user fixes (a service not known, a channel the configuration lacks, a port in use)."""


def service_names() -> list[str]:
    """Every service the simulators know, bill payment first, in port-plan order."""
    out = [BILL]
    for svc in SERVICES:
        if svc.name not in out:
            out.append(svc.name)
    return out


def services_named(name: str) -> list[Service]:
    """The catalog entries of one service (account consolidation has two inbound sides); [] for bill payment."""
    if name == BILL:
        return []
    found = [svc for svc in SERVICES if svc.name == name]
    if not found:
        raise SimError(f"no service {name!r}; known: {', '.join(service_names())} (the folders of routes/)")
    return found


@dataclass
class Target:
    program: Any
    registry: Any
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    label: str = ""                              # what was compiled, for messages
    _binder: Any = None
    _calendars: Any = None

    @property
    def calendars(self) -> Any:
        """The configuration's calendars the simulators date requests by (``common.SimCalendars``); its
        ``notes`` say a calendar it does not declare, for which the shipped one was read."""
        if self._calendars is None:
            from engine.sim.services.common import SimCalendars
            self._calendars = SimCalendars(dict(self.program.tables), self.label or "the configuration")
        return self._calendars

    def codec(self, fmt: str) -> Any:
        if self._binder is None:
            from engine.runtime.binder import Binder
            self._binder = Binder(self.program, self.registry)
        return self._binder.codec(fmt)

    def channel(self, name: str, service: str) -> Any:
        decl = self.program.channels.get(name)
        if decl is None:
            raise SimError(f"{service}: its routes use channel {name!r}, which {self.label} does not declare; "
                           f"give --config routes/{service}/ (or the deployment file that runs it)")
        return decl

    def require(self, service: str, *, counterparts: bool) -> None:
        """``SimError`` naming every channel and format the service's simulators need (its counterparts', or
        its inbound traffic's) that this configuration does not declare: said before anything listens or
        sends, instead of failing on the first codec asked for."""
        if service == BILL:
            channels, formats = [BILL_BILLER if counterparts else BILL_INBOUND], []
        else:
            svcs = services_named(service)
            if counterparts:
                channels = [cp.channel for s in svcs for cp in s.counterparts] + [c for s in svcs for c, _ in s.hosts]
                formats = [f for s in svcs for cp in s.counterparts for f in (*cp.request_formats, cp.reply_format)]
            else:
                channels = [s.inbound for s in svcs]
                formats = [f for s in svcs for f in (s.request_format, s.reply_format)]
        lacks = [f"channel {c}" for c in dict.fromkeys(channels) if c not in self.program.channels]
        lacks += [f"format {f}" for f in dict.fromkeys(formats) if f and f not in self.program.formats]
        if lacks:
            raise SimError(f"{service}: its routes use {', '.join(lacks)}, which {self.label} does not declare: "
                           f"is it the configuration that runs {service}? Give --config routes/{service}/ (or "
                           f"the deployment file whose routes include it)")

    def address(self, name: str, service: str) -> tuple[str, int]:
        """(host, port) of a channel: the deployment file's override of its address, else the route file's."""
        decl = self.channel(name, service)
        text = str((self.overrides.get(name) or {}).get("address") or decl.options.get("address") or "")
        where = self.where(name)
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit():
            raise SimError(f"{where}: channel {name}: address {text!r}: expected HOST:PORT")
        return host.strip("[]"), int(port)

    def where(self, name: str, option: str = "address") -> str:
        place = getattr(self.overrides, "place", None)
        if option in (self.overrides.get(name) or {}) and callable(place):
            return place(name, option)[0]
        if option == "address" and name in self.overrides and callable(place):
            return place(name, "address")[0]
        pos = getattr(self.program.channels[name], "option_pos", {}).get(option) or self.program.channels[name].pos
        return f"{pos.file}:{pos.line}:{pos.col}" if pos is not None else self.label

    def option(self, name: str, option: str) -> Any:
        """A channel option: the deployment file's override of it, else the route file's (None: not given)."""
        found = (self.overrides.get(name) or {}).get(option)
        return found if found not in (None, "") else self.program.channels[name].options.get(option)

    def listen_tls(self, name: str) -> str:
        """How the engine's listening channel ``name`` speaks: "" plain, "TLS" (its ``cert``), "mutual TLS"
        (``client_cert`` required or optional too)."""
        if not self.option(name, "cert"):
            return ""
        return "mutual TLS" if str(self.option(name, "client_cert") or "none") != "none" else "TLS"

    def connect_tls(self, name: str) -> tuple[str, str | None]:
        """How the engine's calling channel ``name`` speaks, and the option that turns its TLS on: ("", None)
        plain, ("TLS", "ca" or "tls"), ("mutual TLS", ...) when it presents a client certificate (``cert``)."""
        on = next((o for o in ("ca", "tls") if self.option(name, o) not in (None, False, "false")), None)
        if on is None:
            return "", None
        return ("mutual TLS" if self.option(name, "cert") else "TLS"), on

    def check_traffic_tls(self, name: str, service: str, tls: Any) -> None:
        """``SimError`` when the engine's inbound channel ``name`` and the simulated clients would not speak
        alike: the channel speaks TLS (its ``cert``, in the route file or the deployment file's override) and
        no --tls-ca/--tls-cert was given (the engine would refuse every handshake, no request answered), or a
        client certificate is required and none was given, or TLS was given for a plain channel."""
        self.channel(name, service)
        speaks = self.listen_tls(name)
        if not speaks and tls is not None:
            raise SimError(f"{self.where(name)}: channel {name} does not speak TLS (no `cert`), but --tls-ca/--tls-cert/"
                           f"--tls-key make `bsp sim traffic` speak it (the engine would take the handshake for a "
                           f"malformed request): drop them, or give the channel its cert and key")
        if not speaks:
            return
        cert = self.option(name, "cert")
        required = str(self.option(name, "client_cert") or "none") == "required"
        if tls is None:
            raise SimError(f"{self.where(name, 'cert')}: channel {name} speaks {speaks} (cert {cert}); "
                           f"`bsp sim traffic` without TLS options sends plain TCP, which the engine refuses at "
                           f"the handshake (no request would be answered): add --tls-ca CA.pem (the CA that issued "
                           f"{cert})" + (" and --tls-cert CLIENT.pem --tls-key CLIENT.key (a client certificate "
                                         "issued by the channel's ca)" if required else "")
                           + "; or give --to HOST:PORT of a plain channel")
        if required and not getattr(tls, "has_cert", False):
            raise SimError(f"{self.where(name, 'client_cert')}: channel {name} requires a client certificate "
                           f"(client_cert = \"required\"): add --tls-cert CLIENT.pem --tls-key CLIENT.key (one "
                           f"issued by the CA in the channel's ca)")

    def _verified_name(self, name: str) -> str:
        """The name the engine's calling channel verifies, as a hint says it."""
        server_name = self.option(name, "server_name")
        if server_name:
            return f"{server_name} (its server_name)"
        host = str(self.option(name, "address") or "").rpartition(":")[0].strip("[]")
        return f"{host} (its address's host)" if host else "its address's host"

    def check_counterpart_tls(self, name: str, service: str, tls: Any, mutual: bool) -> str:
        """How the counterpart of the engine's calling channel ``name`` must be served ("", "TLS", "mutual
        TLS"); ``SimError`` when the channel speaks TLS and no --tls-cert was given (the engine's handshakes
        would fail on a plain port), or --tls-ca asks a client certificate the channel has none to give."""
        self.channel(name, service)
        speaks, option = self.connect_tls(name)
        if not speaks:
            return ""
        if tls is None:
            raise SimError(f"{self.where(name, option or 'ca')}: channel {name} speaks {speaks} ({option} = "
                           f"{self.option(name, option or 'ca')}): its counterpart must too, else every handshake "
                           f"of the engine fails on a plain port; add --tls-cert SERVER.pem --tls-key SERVER.key "
                           f"(a certificate for {self._verified_name(name)}, issued by the CA in the channel's "
                           f"ca; `bsp certs dev DIR` writes a set)"
                           + (" and --tls-ca CA.pem to require the engine's client certificate"
                              if speaks == "mutual TLS" else ""))
        if mutual and speaks != "mutual TLS":
            raise SimError(f"{self.where(name, option or 'ca')}: channel {name} presents no client certificate (no "
                           f"`cert`), but --tls-ca makes its counterpart require one: drop --tls-ca, or give the "
                           f"channel its cert and key")
        return "mutual TLS" if mutual else "TLS"


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.rglob("*.route")) if p.is_dir() else [p])
    return out


def load_target(services: list[str], config: list[Path], env: str | None = None) -> Target:
    """Compile ``config`` (route files or folders, or one deployment file, as ``bsp run`` takes them;
    default: each service's folder of the shipped routes/) with the channel overrides of the deployment
    file's ``env``.  ``SimError`` when it does not compile or names a missing path."""
    from dsl.diagnostics import render
    from dsl.load import compile_paths
    from engine.sim.services.registry import services_registry

    for name in services:
        if name != BILL:
            services_named(name)
    overrides: dict[str, dict[str, Any]] = {}
    if not config:
        config = [ROUTES_DIR / name for name in services]
    missing = [p for p in config if not p.exists()]
    if missing:
        raise SimError(f"no such file or directory: {', '.join(map(str, missing))}")
    if len(config) == 1 and config[0].suffix in (".yaml", ".yml"):
        from engine.deploy import DeploymentError, load_deployment
        try:
            dep = load_deployment(config[0], env=env)
        except DeploymentError as exc:
            raise SimError(str(exc)) from None
        files, overrides = list(dep.route_files), dep.channel_overrides
    else:
        files = _expand(config)
    label = " ".join(map(str, config))
    registry = services_registry()
    res = compile_paths(files, registry)
    if res.program is None:
        raise SimError(f"{label} does not compile (run `bsp check {label}`):\n"
                       + "\n".join(render(d, {}) for d in res.diagnostics))
    return Target(res.program, registry, overrides, label)


# ------------------------------------------------------------------ counterparts

@dataclass
class Running:
    service: str
    channel: str
    sim: Any
    host: str
    what: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.sim.port}"


def counterpart_sims(target: Target, services: list[str]) -> list[tuple[str, str, Any, str]]:
    """(service, channel, simulator, what it is) of every system the services' routes call, each channel once."""
    from engine.sim.biller import BillerSim
    from engine.sim.services.sims import service_sims

    for name in services:
        target.require(name, counterparts=True)
    out: list[tuple[str, str, Any, str]] = []
    seen: set[str] = set()
    for name in services:
        if name == BILL:
            target.channel(BILL_BILLER, name)
            made = [(BILL_BILLER, BillerSim(), "biller, JSON; refuses references ending in 7 (05)")]
        else:
            made = []
            for svc in services_named(name):
                formats = {cp.channel: f"{' or '.join(cp.request_formats)} -> {cp.reply_format}"
                           for cp in svc.counterparts}
                for channel, sim in service_sims(svc, target.codec):
                    target.channel(channel, name)
                    what = formats.get(channel) or _host_text(sim)
                    made.append((channel, sim, what + "; refuses references ending in F" if channel in formats
                                 else what))
        for channel, sim, what in made:
            if channel not in seen:
                seen.add(channel)
                out.append((name, channel, sim, what))
    return out


def _host_text(sim: Any) -> str:
    declines = getattr(sim, "decline_amounts", ())
    text = f"ISO 8583 host ({getattr(sim, 'framing', '')})"
    if declines:
        text += "; declines DE 4 " + ", ".join(declines) + " (05)"
    return text


async def serve_counterparts(target: Target, services: list[str], listen: dict[str, tuple[str, int]], *,
                             out: TextIO, ready_file: Path | None = None,
                             stop: trio.Event | None = None, tls: Any = None, mutual: bool = False) -> list[Running]:
    """Serve every counterpart of ``services`` on its configured address (``listen``: channel -> (host, port)
    instead; port 0: any free one), print where, write ``ready_file`` (JSON: channel -> "host:port") once all
    listen, and serve until SIGINT/SIGTERM (or ``stop`` is set).  Returns what ran (``sim.requests``...).

    ``tls``: a server context (``engine.tls.server_context``; ``mutual``: it requires client certificates)
    for the counterparts whose engine channel speaks TLS (its ``ca`` or ``tls = true``); those of a plain
    channel are served plain.  ``SimError`` before anything listens when a channel speaks TLS and ``tls`` is
    None, or when ``tls`` is given and no channel speaks TLS."""
    planned = counterpart_sims(target, services)
    unknown = sorted(set(listen) - {channel for _, channel, _, _ in planned})
    if unknown:
        raise SimError(f"--listen {', '.join(unknown)}: not a channel these services call; they call "
                       + ", ".join(channel for _, channel, _, _ in planned))
    speaks = {channel: target.check_counterpart_tls(channel, name, tls, mutual) for name, channel, _, _ in planned}
    if tls is not None and not any(speaks.values()):
        raise SimError(f"--tls-cert: none of the channels these services call speaks TLS ("
                       f"{', '.join(speaks)}: no `ca` or `tls = true` in {target.label}): drop --tls-cert/--tls-key"
                       f"{'/--tls-ca' if mutual else ''}, or give the channels their ca")
    for _, channel, sim, _ in planned:
        if speaks[channel]:
            sim.tls = tls
    running: list[Running] = []
    target.calendars.say = lambda note: print(note, file=out, flush=True)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, using_calendars(target.calendars):
        async with trio.open_nursery() as nursery:
            for name, channel, sim, what in planned:
                host, port = listen.get(channel) or target.address(channel, name)
                try:
                    await nursery.start(sim.serve, host, port)
                except (OSError, BaseExceptionGroup) as raised:
                    exc = os_error(raised)              # the bind, raised through the simulator's nursery
                    if exc is None:
                        raise
                    raise SimError(f"cannot listen on {host}:{port} for {name}'s channel {channel} "
                                   f"({target.where(channel)}): {exc.strerror or exc}; is another simulator (or "
                                   f"the real system) there? Stop it, or give --listen {channel}=HOST:PORT "
                                   f"(and the same address to the engine, in a deployment file)") from None
                running.append(Running(name, channel, sim, host, what + (f"; {speaks[channel]}" if speaks[channel]
                                                                          else "")))
            width = max(len(r.channel) for r in running) if running else 0
            for r in running:
                print(f"{r.service}: {r.channel:<{width}} listening on {r.address}  ({r.what})", file=out)
            if ready_file is not None:
                tmp = ready_file.with_name(ready_file.name + ".tmp")
                tmp.write_text(json.dumps({r.channel: r.address for r in running}))
                tmp.replace(ready_file)
            print(f"{len(running)} counterpart simulator(s) serving; Ctrl-C or SIGTERM stops them", file=out,
                  flush=True)

            async def until_stopped() -> None:
                if stop is not None:
                    await stop.wait()
                    nursery.cancel_scope.cancel()

            nursery.start_soon(until_stopped)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    return running


def os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` in ``exc`` (itself, or the first in a group of groups), or None."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = os_error(inner)
            if found is not None:
                return found
    return None


def stopped_lines(running: list[Running]) -> list[str]:
    out = []
    for r in running:
        refused = getattr(r.sim, "refused", None)
        bad = getattr(r.sim, "bad_requests", 0)
        text = f"{r.channel}: answered {getattr(r.sim, 'requests', 0):,} request(s)"
        if refused:
            text += f", {refused:,} refused"
        if bad:
            text += f", {bad:,} undecodable"
        failed = getattr(r.sim, "tls_failures", 0)
        if failed:
            reasons = ", ".join(dict.fromkeys(getattr(r.sim, "tls_reasons", ())))
            text += f", {failed:,} TLS handshake(s) failed ({reasons or 'closed'}: is the engine's channel's ca the CA " \
                    f"of --tls-cert, and its cert one --tls-ca trusts?)"
        out.append(text)
    return out


# ------------------------------------------------------------------ traffic

def parse_mix(text: str | None, service: str) -> tuple[dict[str, int] | None, float]:
    """``--mix good=80,rejected=12,failing=8,duplicate=2`` (or names alone: equal weights) -> (kind weights,
    repeats share); None: the service's own mix.  Bill payment's kinds are its mainframe simulator's."""
    if not text:
        return None, 0.0
    kinds = BILL_KINDS if service == BILL else KINDS
    weights: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, weight = part.partition("=")
        kind = kind.strip()
        if kind not in (*kinds, DUPLICATE):
            raise SimError(f"--mix {text}: {kind!r} is not a kind of {service}'s requests; expected "
                           f"{', '.join((*kinds, DUPLICATE))}, e.g. --mix good=90,rejected=10")
        if sep and not weight.strip().isdigit():
            raise SimError(f"--mix {text}: {part!r}: expected KIND=WEIGHT, a whole number, e.g. good=90")
        weights[kind] = weights.get(kind, 0) + (int(weight) if sep else 1)
    total = sum(weights.values())
    dup = weights.pop(DUPLICATE, 0)
    mix = {k: w for k, w in weights.items() if w > 0}
    if not mix:
        raise SimError(f"--mix {text}: no kind to send; name at least one of {', '.join(kinds)}")
    return mix, (dup / total if total else 0.0)


@dataclass
class Sent:
    """What one inbound channel was sent and answered (the summary's figures)."""
    service: str
    channel: str
    address: str
    sent: int = 0
    replies: int = 0
    elapsed: float = 0.0
    by_code: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)      # "REF: good expected 00, got 91"
    repeats: int = 0
    repeats_differ: int = 0


def _count(d: dict[str, int], key: str) -> None:
    d[key] = d.get(key, 0) + 1


async def send_traffic(target: Target, service: str, count: int, *, to: tuple[str, int] | None = None,
                       rate: float | None = None, mix: str | None = None, connections: int = 2, seed: int = 7,
                       deadline: float | None = None,
                       progress: Callable[[str, int], Callable[[int], None]] | None = None,
                       tls: Any = None) -> list[Sent]:
    """Send ``count`` of the service's simulated requests to each of its inbound channels (``to`` instead
    of the configured address), at most ``rate`` a second, and gather the answers by code.
    ``progress(label, total)`` gives the callback each reply advances.  ``tls``: a client context
    (``engine.tls.client_context``): every connection TLS (mutual when it holds a client certificate); a
    refused handshake is raised (``trio.BrokenResourceError`` from the ``ssl.SSLError``)."""
    weights, repeats = parse_mix(mix, service)
    target.require(service, counterparts=False)
    if to is None:            # to the configured address: the clients must speak as the channel does
        for inbound in ([BILL_INBOUND] if service == BILL else [s.inbound for s in services_named(service)]):
            target.check_traffic_tls(inbound, service, tls)
    if deadline is None:
        deadline = 60.0 + (count / rate if rate else 0.0)
    if service == BILL:
        return [await _bill(target, count, to, rate, weights, repeats, connections, seed, deadline, progress, tls)]
    results: list[Sent] = []
    svcs = services_named(service)
    for svc in svcs:
        if svc.transport == "file":
            raise SimError(f"{service} takes batch files (channel {svc.inbound}), not requests: `bsp sim traffic` "
                           f"sends TCP and HTTP requests; `bsp demo` and tests/services drive it")
    # the requests are dated by the configuration's calendars (target.calendars.notes: one it lacks), read now
    with using_calendars(target.calendars):
        for svc in svcs:
            _check_count(svc, count)
        async with trio.open_nursery() as nursery:
            for svc in svcs:
                nursery.start_soon(_one, target, svc, count, to, rate, weights, repeats, connections, seed,
                                   deadline, progress, results, tls)
    return results


def _check_count(svc: Service, count: int) -> None:
    """Refuse, before anything is sent, a count whose last request's reference would not fit (card_payments'
    DE 37 holds 12 characters): until 2026-11-27 the run sent what fitted and ended in a traceback."""
    import random

    from engine.sim.services.model import RUN_WIDTH
    try:
        svc.make("good", count, random.Random(0), "0" * RUN_WIDTH)
    except ValueError as exc:
        raise SimError(f"--count {count}: too many for {svc.name} ({svc.inbound}) in one run: {exc}; "
                       f"run bsp sim traffic again for more (each run's references are new)") from None


async def _one(target: Target, svc: Service, count: int, to: tuple[str, int] | None, rate: float | None,
               weights: dict[str, int] | None, repeats: float, connections: int, seed: int, deadline: float,
               progress: Any, results: list[Sent], tls: Any = None) -> None:
    from engine.sim.services.driver import ServiceClient
    from engine.sim.services.http_client import HttpServiceClient

    target.channel(svc.inbound, svc.name)
    host, port = to or target.address(svc.inbound, svc.name)
    if weights is not None:
        svc = replace(svc, mix=weights)
    cls = HttpServiceClient if svc.transport == "http" else ServiceClient
    client = cls(svc, target.codec(svc.request_format), target.codec(svc.reply_format), seed=seed)
    tick = progress(f"{svc.name} ({svc.inbound})", count) if progress is not None else None
    res = await client.run(port, host=host, total=count, connections=connections, progress=tick,
                           deadline=deadline, repeats=repeats, rate=rate, tls=tls)
    out = Sent(svc.name, svc.inbound, f"{host}:{port}", sent=len(res.outcomes), replies=res.replies,
               elapsed=res.elapsed)
    for o in res.outcomes:
        _count(out.by_code, o.code if o.code is not None else "no reply")
        if o.repeat_of is None:
            _count(out.by_kind, o.kind)
        if o.code != o.expect_code:
            out.unexpected.append(f"{o.ref}: {o.kind}{' (repeat)' if o.repeat_of else ''} expected {o.expect_code}, "
                                  f"got {o.code or 'no reply'}")
    out.repeats, out.repeats_differ = len(res.repeats), sum(1 for o in res.repeats if o.repeat_differs)
    results.append(out)


async def _bill(target: Target, count: int, to: tuple[str, int] | None, rate: float | None,
                weights: dict[str, int] | None, repeats: float, connections: int, seed: int, deadline: float,
                progress: Any, tls: Any = None) -> Sent:
    from engine.sim.bill_traffic import drive

    target.channel(BILL_INBOUND, BILL)
    host, port = to or target.address(BILL_INBOUND, BILL)
    tick = progress(f"{BILL} ({BILL_INBOUND})", count) if progress is not None else None
    res = await drive((host, port), None, count, connections=connections, seed=seed,
                      codec=target.codec("BillPayReq"), rate=rate, progress=tick, mix=weights, repeats=repeats,
                      tls=tls)
    out = Sent(BILL, BILL_INBOUND, f"{host}:{port}", sent=res.sent, replies=res.replies, elapsed=res.elapsed,
               by_code={c: n for c, n in res.by_code.items()}, by_kind=dict(res.by_kind))
    if res.sent > res.replies:
        out.by_code["no reply"] = res.sent - res.replies
    out.unexpected = [f"{r.trace}: {r.kind}{' (repeat)' if r.repeat_of else ''} expected {r.expect_code}, got "
                      f"{r.code or 'no reply'}" for r in res.unexpected]
    out.repeats, out.repeats_differ = len(res.repeats), sum(1 for r in res.repeats if r.repeat_differs)
    return out


def summary_lines(results: list[Sent]) -> list[str]:
    lines = []
    for r in results:
        pace = f" in {r.elapsed:.1f} s ({r.sent / r.elapsed:,.0f}/s)" if r.elapsed > 0 else ""
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(r.by_kind.items()))
        codes = ", ".join(f"{c} {n:,}" for c, n in sorted(r.by_code.items()))
        lines.append(f"{r.service}: sent {r.sent:,} request(s) to {r.channel} on {r.address} ({kinds}){pace}; "
                     f"{r.replies:,} replies; by code: {codes or '-'}")
        if r.repeats:
            lines.append(f"  {r.repeats:,} sent again after their reply (duplicates): "
                         f"{r.repeats - r.repeats_differ:,} answered with their original's reply bytes")
        if r.unexpected:
            lines.append(f"  {len(r.unexpected):,} answered with another code than the simulator expects, e.g. "
                         + "; ".join(r.unexpected[:3]))
        else:
            lines.append("  every reply code was the one the simulator expects")
    return lines


def notes(results: list[Sent], service: str) -> list[str]:
    """What to do about answers that say the engine is not set up for the traffic (91, no reply)."""
    out = []
    unreachable = sum(r.by_code.get("91", 0) for r in results)
    if unreachable:
        out.append(f"note: {unreachable:,} request(s) answered 91 (counterpart unreachable): the engine did not "
                   f"reach a system its routes call. Start them with `bsp sim counterparts {service}` (on the "
                   f"addresses of the same configuration as the engine's); after a counterpart came back the "
                   f"engine reconnects within 2 s, so send again after a few seconds")
    silent = sum(r.sent - r.replies for r in results)
    if silent:
        out.append(f"note: {silent:,} request(s) got no reply: is the engine running with {service}'s routes "
                   f"(bsp run routes/{service}/), on the address above (--to HOST:PORT)?")
    return out
