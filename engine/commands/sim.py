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
               "simulators use its channels' addresses and formats, and date requests by its calendars. Default: "
               "routes/SERVICE/ of each service.")


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


def _server_tls(cert: Optional[Path], key: Optional[Path], ca: Optional[Path]) -> Any:
    """The counterparts' server context (engine/tls.py, hardened) for --tls-cert/--tls-key/--tls-ca, or None."""
    if cert is None and key is None and ca is None:
        return None
    if cert is None:
        typer.echo(f"error: {'--tls-key' if key is not None else '--tls-ca'} needs --tls-cert: the certificate the "
                   f"counterparts present (e.g. server.pem of `bsp certs dev DIR`)", err=True)
        raise typer.Exit(2)
    from engine.tls import TLSConfigError, server_context
    try:
        return server_context(cert, key, ca, "required" if ca is not None else "none")
    except TLSConfigError as exc:
        typer.echo(f"error: {_tls_options(str(exc), '--tls-')}", err=True)
        raise typer.Exit(2)


def _client_tls(ca: Optional[Path], cert: Optional[Path], key: Optional[Path], server_name: Optional[str]) -> Any:
    """The traffic's client context (engine/tls.py, hardened) for --tls-ca/--tls-cert/--tls-key, or None."""
    if ca is None and cert is None and key is None:
        if server_name is not None:
            typer.echo("error: --server-name applies to TLS: give --tls-ca (and --tls-cert/--tls-key for mutual "
                       "TLS) too, or drop it", err=True)
            raise typer.Exit(2)
        return None
    from engine.tls import TLSConfigError, client_context
    if key is not None and cert is None:
        typer.echo("error: --tls-key needs --tls-cert (the client certificate it belongs to)", err=True)
        raise typer.Exit(2)
    try:
        return client_context(ca, cert, key, server_name)
    except TLSConfigError as exc:
        typer.echo(f"error: {_tls_options(str(exc), '--tls-')}", err=True)
        raise typer.Exit(2)


def _tls_options(text: str, prefix: str) -> str:
    """engine/tls.py names a file's option as a channel writes it (``server tls cert``); here, the CLI's."""
    for side in ("server", "client"):
        for what in ("cert", "key", "ca"):
            text = text.replace(f"{side} tls {what}:", f"{prefix}{what}:")
    return text


def _tls_refused(exc: BaseException) -> Any:
    """The ``trio.BrokenResourceError`` raised from an ``ssl.SSLError`` in ``exc`` (a group's too), or None."""
    import ssl

    import trio
    if isinstance(exc, trio.BrokenResourceError) and isinstance(exc.__cause__, ssl.SSLError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _tls_refused(inner)
            if found is not None:
                return found
    return None


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
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", metavar="FILE", help="TLS: the certificate (PEM) "
                                            "the counterparts of channels that speak TLS (their `ca` or `tls = "
                                            "true`) present; it must carry the name the engine verifies (the "
                                            "channel's server_name, else its address's host) and chain to its ca, "
                                            "e.g. server.pem of `bsp certs dev DIR`. Plain channels' counterparts "
                                            "stay plain."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", metavar="FILE", help="TLS: the private key of "
                                           "--tls-cert (PEM; not needed when --tls-cert holds it)."),
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", metavar="FILE", help="Mutual TLS: require the engine's "
                                          "client certificate (its channels' cert and key), one issued by this CA "
                                          "(PEM)."),
) -> None:
    """Serve the counterpart systems the services' routes call, until Ctrl-C or SIGTERM.

    Each simulator listens where the engine's channel connects: the route file's address, or the deployment
    file's override (--config platform.yaml --env uat). It prints what listens where; on Ctrl-C or SIGTERM it
    says how many requests each answered and exits 0. The simulators answer as in bsp demo: a request whose
    reference ends in F is refused (the route answers 05); the card host declines 666.00; the bill payment
    biller refuses references ending in 7.  The counterpart of a channel that speaks TLS (its `ca` or
    `tls = true`) is served over TLS with --tls-cert/--tls-key (mutual TLS: --tls-ca too); without them it is
    a usage error naming the channel, where its TLS is set and the option to add.  Exit 1 an address is in
    use; 2 usage error (an unknown service, a configuration that does not compile or lacks the service's
    channels, TLS options that do not fit the channels).
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
    tls = _server_tls(tls_cert, tls_key, tls_ca)
    target = _target(services, config, env)
    try:
        running = trio.run(functools.partial(serve_counterparts, target, services, chosen, out=sys.stdout,
                                             ready_file=ready_file, tls=tls, mutual=tls_ca is not None))
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
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", metavar="FILE", help="TLS: the CA bundle (PEM) the "
                                          "engine's certificate (the inbound channel's cert) chains to; turns TLS "
                                          "on, e.g. ca.pem of `bsp certs dev DIR`."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", metavar="FILE", help="Mutual TLS: the client "
                                            "certificate (PEM) to present, one the channel's ca issued; without "
                                            "--tls-ca the system's trusted roots check the engine."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", metavar="FILE", help="Mutual TLS: the private key "
                                           "of --tls-cert (PEM; not needed when --tls-cert holds it)."),
    server_name: Optional[str] = typer.Option(None, "--server-name", metavar="NAME", help="TLS: the name the "
                                              "engine's certificate must carry (default: the host dialled)."),
) -> None:
    """Send a service's simulated requests to a running engine; print the answers by code.

    The requests are bsp demo's: each reference is new (a run tag in it), so a second run is not answered as
    duplicates of the first. A progress bar (plain lines when not a terminal) counts the replies; the summary
    gives what was sent, how fast, the answers by code and any answer that is not the one the simulator
    expects (a good request answered 91: start `bsp sim counterparts SERVICE`). The clients speak plain TCP
    (or HTTP), or TLS (HTTPS) with --tls-ca (mutual TLS: --tls-cert and --tls-key too). An inbound channel the
    configuration gives a `cert` (TLS) reached without them, one requiring a client certificate reached
    without --tls-cert, or a plain one reached with them, is a usage error naming where, unless --to sends
    elsewhere; a refused handshake says why and which option to fix (exit 1). Exit 0 every request got the
    expected answer; 1 one did not, or got none, or the engine was not there, or refused the handshake;
    2 usage error.
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
    tls = _client_tls(tls_ca, tls_cert, tls_key, server_name)
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
                                                 mix=mix, connections=connections, seed=seed, progress=progress,
                                                 tls=tls))
    except SimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except (OSError, trio.BrokenResourceError, BaseExceptionGroup) as exc:
        refused = _tls_refused(exc) if tls is not None else None
        if refused is not None:
            typer.echo(f"error: {_handshake_failed(refused, tls, address)}", err=True)
            raise typer.Exit(1)
        err = os_error(exc)
        if err is None:
            raise
        where = f"{address[0]}:{address[1]}" if address else "the inbound channel's address"
        typer.echo(f"error: cannot reach the engine at {where}: {getattr(err, 'strerror', None) or err}; is it "
                   f"running (bsp run routes/{service}/)? Else give --to HOST:PORT", err=True)
        raise typer.Exit(1)
    for line in summary_lines(results):
        typer.echo(line)
    for line in [*target.calendars.notes, *notes(results, service)]:
        typer.echo(line, err=True)
    if tls is None and address is not None and results and not any(r.replies for r in results):
        from engine.sim.bill_traffic import speaks_tls
        if speaks_tls(address):     # --to skips the configuration's check: ask the port itself
            typer.echo(f"note: the engine at {address[0]}:{address[1]} speaks TLS (it answers a TLS handshake), "
                       f"and these requests went as plain TCP: give --tls-ca CA.pem (the CA of its certificate), "
                       f"and --tls-cert CLIENT.pem --tls-key CLIENT.key when it requires a client certificate",
                       err=True)
    if any(r.unexpected or r.replies < r.sent for r in results):
        raise typer.Exit(1)


def _handshake_failed(exc: BaseException, tls: Any, address: Optional[tuple[str, int]]) -> str:
    """One line for a TLS handshake the engine refused (or we refused): OpenSSL's reason and the option to fix."""
    from engine.tls import client_tls_reason
    where = f"{address[0]}:{address[1]}" if address else "the inbound channel's address"
    reason = client_tls_reason(exc.__cause__ or exc, has_cert=bool(getattr(tls, "has_cert", False)),
                               words=("without --tls-ca", "drop --tls-ca/--tls-cert/--tls-key, or fix --to"),
                               names=("--tls-ca", "--tls-cert", "--tls-key"), host=("--server-name", "--to"))
    reason = reason.replace("on this channel", "(a client certificate the channel's ca issued)")
    return f"TLS handshake with the engine at {where} failed: {reason}"


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
