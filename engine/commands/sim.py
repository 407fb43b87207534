"""``bsp sim``: the service simulators for an engine you started yourself (``bsp run``).

``bsp sim counterparts SERVICE...`` serves the systems the services' routes call (a mainframe, a
clearing, a card host, a biller ...) on the addresses of their route files, or of a deployment file's
channel overrides, until Ctrl-C or SIGTERM.  ``bsp sim traffic SERVICE`` sends the service's simulated
requests (good, rejected, failing at the counterpart, sent again) to a running engine and sums up the
answers by code.  Both use the simulators ``bsp demo`` runs (engine/sim/services/standalone.py).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

import typer

sim_app = typer.Typer(help="Service simulators for an engine you run yourself: its counterparts, its traffic.\n\n"
                      "`bsp sim counterparts SERVICE` serves the systems a service's routes call (on the addresses "
                      "of its route files) until Ctrl-C; `bsp sim traffic SERVICE --count N` sends its simulated "
                      "requests to a running engine and prints the answers by code; `bsp sim list` names the "
                      "services. The simulators are bsp demo's; docs/testing.md has the details.",
                      no_args_is_help=True)

CONFIG_HELP = ("Route files or folders, or one deployment file, as given to bsp run (repeatable); the "
               "simulators use its channels' addresses and formats. Default: routes/SERVICE/ of each service.")


def _address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        typer.echo(f"error: {option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7380", err=True)
        raise typer.Exit(2)
    return host.strip("[]"), int(port)


def _target(services: list[str], config: Optional[list[Path]], env: Optional[str]) -> Any:
    from engine.sim.services.standalone import SimError, load_target
    try:
        return load_target(services, list(config or []), env)
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)


@sim_app.command("counterparts")
def counterparts(
    services: list[str] = typer.Argument(..., help="Services (folders of routes/), e.g. claims_payout "
                                         "card_payments; `bsp sim list` names them."),
    config: Optional[list[Path]] = typer.Option(None, "--config", help=CONFIG_HELP),
    env: Optional[str] = typer.Option(None, "--env", help="Environment of the deployment file (else $BSP_ENV)."),
    listen: Optional[list[str]] = typer.Option(None, "--listen", help="CHANNEL=HOST:PORT: serve that counterpart "
                                               "there instead (port 0: any free port, printed); repeatable."),
    ready_file: Optional[Path] = typer.Option(None, "--ready-file", help="Once every simulator listens, write "
                                              "{channel: \"host:port\"} (JSON) to this file (for scripts)."),
) -> None:
    """Serve the counterpart systems the services' routes call, until Ctrl-C or SIGTERM.

    Each simulator listens where the engine's channel connects: the route file's address, or the deployment
    file's override (--config platform.yaml --env uat). It prints what listens where; on Ctrl-C or SIGTERM it
    says how many requests each answered and exits 0. The simulators answer as in bsp demo: a request whose
    reference ends in F is refused (the route answers 05); the card host declines 666.00; the bill payment
    biller refuses references ending in 7.  Exit 1 an address is in use; 2 usage error (an unknown service,
    a configuration that does not compile or lacks the service's channels).
    """
    import os
    import sys

    import trio

    from engine.sim.services.standalone import SimError, serve_counterparts, stopped_lines

    env = env or os.environ.get("BSP_ENV") or None
    chosen: dict[str, tuple[str, int]] = {}
    for item in listen or []:
        channel, sep, where = item.partition("=")
        if not sep or not channel:
            typer.echo(f"error: --listen {item!r}: expected CHANNEL=HOST:PORT, e.g. clm_mainframe=127.0.0.1:7381",
                       err=True)
            raise typer.Exit(2)
        chosen[channel.strip()] = _address(where, f"--listen {channel}=")
    target = _target(services, config, env)
    try:
        running = trio.run(functools.partial(serve_counterparts, target, services, chosen, out=sys.stdout,
                                             ready_file=ready_file))
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1 if "cannot listen" in str(exc) else 2)
    except BaseExceptionGroup as group:
        found = group.subgroup(SimError)
        if found is None:
            raise
        exc = _first(found)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1 if "cannot listen" in str(exc) else 2)
    for line in stopped_lines(running):
        typer.echo(line)
    typer.echo("counterpart simulators stopped")


def _first(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@sim_app.command("traffic")
def traffic(
    service: str = typer.Argument(..., help="The service (a folder of routes/), e.g. claims_payout."),
    count: int = typer.Option(100, "--count", min=1, help="Requests to send to each of its inbound channels."),
    rate: Optional[float] = typer.Option(None, "--rate", min=0.001, help="At most this many requests a second "
                                         "(default: as fast as the engine answers)."),
    mix: Optional[str] = typer.Option(None, "--mix", help="Kinds to send, with weights: good=80,rejected=12,"
                                      "failing=8,duplicate=2 (names alone: equal weights). good is committed (00), "
                                      "rejected fails a validation, failing is refused by the counterpart (05), "
                                      "duplicate sends a good request again after its reply (answered with the "
                                      "original reply). bill_payment's kinds: good, enquiry, over_limit, "
                                      "unknown_biller, bad_currency, unrouted, malformed. Default: the service's "
                                      "own mix (as in bsp demo), no duplicates."),
    to: Optional[str] = typer.Option(None, "--to", help="HOST:PORT of the engine's inbound channel (default: its "
                                     "address in the configuration)."),
    config: Optional[list[Path]] = typer.Option(None, "--config", help=CONFIG_HELP),
    env: Optional[str] = typer.Option(None, "--env", help="Environment of the deployment file (else $BSP_ENV)."),
    connections: int = typer.Option(2, "--connections", min=1, help="Client connections per inbound channel."),
    seed: int = typer.Option(7, "--seed", help="Seed of the request generator."),
    at: Optional[str] = typer.Option(None, "--at", help="Date the requests (trade dates, value dates, due "
                                     "dates) by a clock started at this instant, ISO 8601 with its offset: give "
                                     "the engine's `bsp run --at`, so both reckon the same days."),
) -> None:
    """Send a service's simulated requests to a running engine; print the answers by code.

    The requests are bsp demo's: each reference is new (a run tag in it), so a second run is not answered as
    duplicates of the first. A progress bar (plain lines when not a terminal) counts the replies; the summary
    gives what was sent, how fast, the answers by code and any answer that is not the one the simulator
    expects (a good request answered 91: start `bsp sim counterparts SERVICE`). The clients speak plain TCP
    (or HTTP): an inbound channel the configuration gives a `cert` (TLS) is a usage error naming where, unless
    --to sends elsewhere (bill payment's TLS and mutual TLS: `python -m engine.sim.bill_traffic --ca ... --cert
    ... --key ...`). Exit 0 every request got the expected answer; 1 one did not, or got none, or the engine
    was not there; 2 usage error.
    """
    import os

    import trio
    from rich.console import Console

    from engine.sim.progress import load_progress
    from engine.sim.services.standalone import SimError, notes, os_error, parse_mix, send_traffic, summary_lines

    from dsl.clock import engine_clock
    from engine.commands.clockopt import parse_at
    start_at = parse_at(at)
    env = env or os.environ.get("BSP_ENV") or None
    address = _address(to, "--to") if to else None
    try:
        parse_mix(mix, service)
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    target = _target([service], config, env)
    console = Console(stderr=True)
    try:
        with load_progress(console) as bars, engine_clock(start_at):
            def progress(label: str, total: int) -> Any:
                return functools.partial(bars.advance, bars.add_task(label, total=total))
            results = trio.run(functools.partial(send_traffic, target, service, count, to=address, rate=rate,
                                                 mix=mix, connections=connections, seed=seed, progress=progress))
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except (OSError, BaseExceptionGroup) as exc:
        err = os_error(exc)
        if err is None:
            raise
        where = f"{address[0]}:{address[1]}" if address else "the inbound channel's address"
        typer.echo(f"error: cannot reach the engine at {where}: {getattr(err, 'strerror', None) or err}; is it "
                   f"running (bsp run routes/{service}/)? Else give --to HOST:PORT", err=True)
        raise typer.Exit(1)
    for line in summary_lines(results):
        typer.echo(line)
    for line in notes(results, service):
        typer.echo(line, err=True)
    if any(r.unexpected or r.replies < r.sent for r in results):
        raise typer.Exit(1)


@sim_app.command("list")
def list_services() -> None:
    """The services the simulators know, with the channels they send to and the counterparts they serve.

    Exit 0.
    """
    from engine.sim.services.standalone import BILL, service_names, services_named

    for name in service_names():
        if name == BILL:
            typer.echo(f"{name}: traffic to mainframe (TCP); counterparts: biller")
            continue
        svcs = services_named(name)
        inbound = ", ".join(f"{s.inbound} ({s.transport.upper()})" for s in svcs)
        called = sorted({cp.channel for s in svcs for cp in s.counterparts} | {c for s in svcs for c, _ in s.hosts})
        typer.echo(f"{name}: traffic to {inbound}; counterparts: {', '.join(called) or '-'}")


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
