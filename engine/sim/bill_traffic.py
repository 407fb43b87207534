"""Bill payment traffic for an engine you started yourself (``bsp run routes/platform.yaml``).

    .venv/bin/python -m engine.sim.bill_traffic                      # 300 requests to 127.0.0.1:7001
    .venv/bin/python -m engine.sim.bill_traffic --count 1000 --mainframe 127.0.0.1:7001 --biller 127.0.0.1:7002
    .venv/bin/python -m engine.sim.bill_traffic --rate 50 --duration 120   # 2 minutes of traffic, to reload under

Plays both of the bill payment service's counterparts, so a newcomer can watch
(`bsp status`, `bsp top`), record (`bsp run --record`) and then replay real
traffic without a mainframe: it serves the biller on ``--biller`` (the route's
`biller` channel connects there; it refuses traces ending in 7) and sends
``--count`` requests of the mainframe simulator's mix (good payments,
enquiries, over-limit, unknown biller, bad currency, unrouted, malformed) to
``--mainframe``.  Unpaced, 3,000 requests take about a second; ``--rate N``
sends at most N a second across the connections and ``--duration SECONDS``
stops sending after that long (with ``--rate`` and no ``--count``: rate x
duration requests), so a reload or a SIGTERM can be put in the middle of
traffic by hand.  On a terminal a bar shows the replies as they come.  It
prints what it sent, how fast, and the reply codes it got, then stops (the
biller too).  When the engine closes the connection (it drained or
stopped) or leaves requests unanswered for ``--reply-timeout`` seconds
(default 10), it stops at once and says how many requests went unanswered and
how many were never sent.  Payments answered 91 (the engine did not reach the
biller: after a previous run's biller went away it retries every 2 s at most)
get a ``note:`` on stderr saying why.  Exit 0; 1 when a request got no reply or could not
be sent (or the TLS handshake failed); 2 a usage error (a bad option, a
certificate, key or CA file that cannot be used).

When the engine's mainframe channel speaks TLS (its `cert`/`key`, e.g. from
`bsp certs dev`), give ``--ca`` (the CA its certificate chains to) and, for
mutual TLS (`client_cert = "required"`), ``--cert``/``--key`` (the mainframe's
client certificate):

    .venv/bin/python -m engine.sim.bill_traffic --ca certs/ca.pem --cert certs/client.pem --key certs/client.key

A plain run against such a channel has its connection closed before any reply, as a draining engine would
close it: the simulator then tries a TLS handshake there, and only when it is answered says so (``hint: a
mainframe channel with TLS ...``); after a drain it says the engine drained or stopped.
"""
from __future__ import annotations

import argparse
import functools
import math
import ssl
import sys
from contextlib import nullcontext
from typing import Any, Callable

import trio
from rich.console import Console

from engine.sim.biller import BillerSim
from engine.sim.framed import CLOSED, TIMED_OUT, host_port
from engine.sim.mainframe import MainframeResult, MainframeSim
from engine.sim.progress import load_progress
from engine.sim.services.catalog import ROUTES_DIR

ROUTE = ROUTES_DIR / "bill_payment" / "bill_payment.route"


def request_codec() -> Any:
    """The route's own ``BillPayReq`` codec, so the requests are what the route expects."""
    from dsl.load import compile_paths
    from engine.registry import default_registry
    from engine.runtime.binder import Binder

    registry = default_registry()
    res = compile_paths([ROUTE], registry)
    if res.program is None:
        raise SystemExit(f"error: {ROUTE} does not compile; run `bsp check {ROUTE.parent}`")
    return Binder(res.program, registry).codec("BillPayReq")


REPLY_TIMEOUT = 10.0
COUNT = 300


async def drive(mainframe: tuple[str, int], biller: tuple[str, int] | None, count: int, *,
                connections: int = 2, seed: int = 7, codec: Any = None,
                reply_timeout: float = REPLY_TIMEOUT, tls: ssl.SSLContext | None = None,
                server_name: str | None = None, rate: float | None = None, duration: float | None = None,
                progress: Callable[[int], None] | None = None,
                started: Callable[[MainframeSim], None] | None = None,
                mix: dict[str, int] | None = None, repeats: float = 0.0) -> MainframeResult:
    """Serve the biller (unless ``biller`` is None) while ``count`` requests go to ``mainframe``
    (over TLS with ``tls``, the engine's certificate checked for ``server_name``, default its host),
    at most ``rate`` a second across the connections (None: as fast as the engine answers), sending
    for ``duration`` seconds at most (None: until all are sent); ``progress(k)`` sees each reply.

    A connection stops when the engine closes it, or leaves its requests unanswered for
    ``reply_timeout`` seconds (``result.stopped``).  When ``duration`` ends the sending, the replies
    to what was sent are still waited for (10 s at most).  ``started(sim)`` gets the simulator before it
    sends (its ``result`` so far is what a Ctrl-C reports).  ``mix``: weights of the mainframe simulator's
    kinds (default its DEFAULT_MIX); ``repeats``: the share of good payments sent again after their reply."""
    sim = MainframeSim(codec if codec is not None else request_codec(), seed=seed, mix=mix)
    if started is not None:
        started(sim)
    async with trio.open_nursery() as nursery:
        if biller is not None:
            await nursery.start(BillerSim().serve, biller[0], biller[1])
        await sim.run(mainframe[1], host=mainframe[0], total=count, connections=connections,
                      deadline=math.inf if duration is None else duration, reply_timeout=reply_timeout,
                      tls=tls, server_name=server_name, rate=rate, progress=progress, repeats=repeats)
        nursery.cancel_scope.cancel()
    return sim.result


def summary(res: MainframeResult) -> str:
    codes = ", ".join(f"{c} {n:,}" for c, n in sorted(res.by_code.items()))
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(res.by_kind.items()))
    pace = f" in {res.elapsed:.1f} s ({res.sent / res.elapsed:,.0f}/s)" if res.elapsed > 0 else ""
    return (f"sent {res.sent:,} bill payment request(s) ({kinds}){pace}; {res.replies:,} replies, "
            f"by code: {codes or '-'}"
            + ("" if res.replies == res.sent else f"; {res.sent - res.replies:,} got no reply"))


def problem(res: MainframeResult, count: int, reply_timeout: float = REPLY_TIMEOUT,
            duration: float | None = None, *, plain_to_tls: bool = False) -> str | None:
    """None when every request sent was answered and all ``count`` were sent (with ``duration``:
    those its end left unsent are not missed), else one ``error:`` line: how many went unanswered
    or unsent, and why the simulator stopped (``plain_to_tls``: the closed connection was plain TCP to a
    channel that speaks TLS, ``speaks_tls``, not a drain)."""
    if res.replies == res.sent and not res.stopped and (res.sent == count or duration is not None):
        return None
    text = f"error: {res.sent - res.replies:,} of {res.sent:,} request(s) sent got no reply"
    if count > res.sent and duration is None:
        text += f", and {count - res.sent:,} of --count {count:,} were not sent"
    why = []
    if CLOSED in res.stopped and plain_to_tls:
        why.append("the engine closed the connection: its mainframe channel speaks TLS, and this run spoke plain TCP")
    elif CLOSED in res.stopped:
        why.append("the engine closed the connection (it drained or stopped: see its log, or `bsp status`)")
    if TIMED_OUT in res.stopped:
        why.append(f"no reply came for {reply_timeout:g} s (--reply-timeout) while requests were waiting "
                   f"(is the engine stuck, or its biller channel unable to connect?)")
    return text + (f": {'; and '.join(why)}" if why else "")


def speaks_tls(where: tuple[str, int], timeout: float = 3.0) -> bool:
    """Does ``where`` answer a TLS handshake?  Asked only when a plain TCP run got its connection closed
    before any reply: a channel with TLS ends a plain connection at once, as a draining or stopping engine
    does, and only this tells the two apart (a drained engine no longer listens; a plain one does not answer
    a TLS hello).  Its certificate is not checked: only whether the other end speaks TLS."""
    async def probe() -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with trio.move_on_after(timeout):
            try:
                stream = await trio.open_tcp_stream(*where)
            except OSError:
                return False
            tls = trio.SSLStream(stream, ctx, server_hostname=where[0])
            try:
                await tls.do_handshake()
                return True
            except trio.BrokenResourceError as exc:        # a TLS alert (a client certificate required) is TLS too
                return isinstance(exc.__cause__, ssl.SSLError) and not isinstance(exc.__cause__, ssl.SSLEOFError)
            finally:
                await trio.aclose_forcefully(tls)
        return False

    return trio.run(probe)


def unreachable_note(res: MainframeResult, biller: tuple[str, int] | None) -> str | None:
    """A ``note:`` when payments were answered 91 (counterpart unreachable): why, and what to do.  None else.

    The usual cause: a run started soon after another ended.  The engine lost the biller the previous run served,
    retries it in the background (every 2 s at most, ``reconnect_max``) and fails payments at once meanwhile, so a
    whole run can be answered 91 although this run's biller is up."""
    n = res.by_code.get("91", 0)
    if not n:
        return None
    text = f"note: {n:,} payment(s) answered 91 (counterpart unreachable): the engine did not reach its biller"
    if biller is None:
        return text + ("; this simulator serves none (--no-biller): start the one that should run "
                       "(`python -m engine.sim.biller` serves it alone), or drop --no-biller")
    return (text + f" on {biller[0]}:{biller[1]}, which this simulator served. After a biller goes away (a previous "
            f"run ended) the engine retries it in the background, every 2 s at most, and fails payments meanwhile "
            f"(`bsp status`: channel biller down; its log: `retrying every 2s at most`): run again in a few seconds. "
            f"If it stays so, the route's biller channel connects elsewhere: give that address as --biller")


def _first(group: BaseExceptionGroup, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, kinds):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kinds)
            if found is not None:
                return found
    return None


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The client context for ``--ca``/``--cert``/``--key`` (None: plain TCP); ``TLSConfigError`` naming
    the file and what to fix."""
    if ca is None and cert is None and key is None:
        return None
    from engine.tls import TLSConfigError, client_context
    if key is not None and cert is None:
        raise TLSConfigError("--key given without --cert", hint="add --cert client.pem (its certificate), or drop --key")
    if cert is not None and key is None:
        try:
            with open(cert, "rb") as f:
                has_key = b"PRIVATE KEY" in f.read()
        except OSError:
            has_key = True                    # client_context names the file and the system's reason
        if not has_key:
            raise TLSConfigError(f"--cert {cert}: holds no private key, and no --key was given",
                                 hint="add --key client.key (the certificate's private key)")
    return client_context(ca, cert, key)


def tls_failure(exc: BaseException, ctx: ssl.SSLContext, where: tuple[str, int]) -> str:
    """One ``error:`` line for a TLS handshake the engine's mainframe channel refused or we refused."""
    from engine.tls import client_tls_reason
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    words = ("without --ca", "drop --ca/--cert/--key (the channel is plain TCP), or fix --mainframe")
    reason = client_tls_reason(cause, has_cert=bool(getattr(ctx, "has_cert", False)), words=words)
    reason = reason.replace("`ca`", "--ca").replace("set cert and key on this channel",
                                                   "give --cert and --key (the mainframe's client certificate)")
    return f"error: --mainframe {where[0]}:{where[1]}: TLS handshake failed: {reason}"


def main(argv: list[str] | None = None, *, console: Console | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.sim.bill_traffic",
                                 description="Send bill payment requests to a running engine and play its biller.",
                                 epilog="Exit 0 every request sent got a reply (whatever its code: a payment answered "
                                        "91 only adds a note); 1 a request got none (the engine closed the "
                                        "connection: it drained, stopped, or speaks TLS to this plain run; or "
                                        "--reply-timeout passed), no engine listens on --mainframe, or a TLS "
                                        "handshake was refused; 2 a usage error; 130 Ctrl-C.")
    ap.add_argument("--count", type=_count, metavar="N",
                    help=f"requests to send (default {COUNT}; with --rate and --duration, rate x duration); "
                         f"with --duration, the most it sends")
    ap.add_argument("--rate", type=functools.partial(_positive, "--rate 50"), metavar="N",
                    help="at most N requests a second across all connections (default: as fast as the engine "
                         "answers), e.g. --rate 50 --duration 120 to reload or stop the engine during traffic")
    ap.add_argument("--duration", type=functools.partial(_positive, "--duration 120"), metavar="SECONDS",
                    help="stop sending after SECONDS, or once --count are sent if that comes first (the replies "
                         "to what was sent are still waited for); with --rate and no --count it sends "
                         "rate x duration requests")
    ap.add_argument("--mainframe", type=host_port, default=("127.0.0.1", 7001),
                    help="the engine's mainframe channel (default 127.0.0.1:7001, as in bill_payment.route)")
    ap.add_argument("--biller", type=host_port, default=("127.0.0.1", 7002),
                    help="where to serve the biller (default 127.0.0.1:7002, as in bill_payment.route)")
    ap.add_argument("--no-biller", action="store_true", help="do not serve the biller (one already runs)")
    ap.add_argument("--connections", type=int, default=2, help="client connections (default 2)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the request mix (default 7)")
    ap.add_argument("--ca", metavar="FILE", help="TLS: the CA bundle the engine's mainframe certificate chains to "
                                             "(turns TLS on; e.g. ca.pem of `bsp certs dev`)")
    ap.add_argument("--cert", metavar="FILE", help="mutual TLS: the mainframe's client certificate (PEM); "
                                               "without --ca the system's trusted roots check the engine")
    ap.add_argument("--key", metavar="FILE", help="mutual TLS: the client certificate's private key (PEM)")
    ap.add_argument("--server-name", metavar="NAME", help="TLS: the name the engine's certificate must carry "
                                                        "(default: the host of --mainframe)")
    ap.add_argument("--reply-timeout", type=_seconds, default=REPLY_TIMEOUT, metavar="SECONDS",
                    help=f"stop when requests wait this long without any reply (default {REPLY_TIMEOUT:g}); "
                         f"a closed connection (the engine drained or stopped) stops it at once. Either way it "
                         f"says how many requests went unanswered and exits 1")
    args = ap.parse_args(argv)
    count = args.count if args.count is not None else (
        math.ceil(args.rate * args.duration) if args.rate is not None and args.duration is not None else COUNT)
    from engine.tls import TLSConfigError
    try:
        tls = tls_context(args.ca, args.cert, args.key)
    except TLSConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.server_name is not None and tls is None:
        print("error: --server-name applies to TLS: give --ca (or --cert/--key) too, or drop it", file=sys.stderr)
        return 2
    console = console if console is not None else Console()
    sims: list[MainframeSim] = []
    try:
        with (load_progress(console, plain=False) if console.is_terminal else nullcontext()) as bars:
            progress = None
            if bars is not None:
                task = bars.add_task("Bill payment (mainframe)", total=count)
                progress = functools.partial(bars.advance, task)
            res = trio.run(functools.partial(drive, args.mainframe, None if args.no_biller else args.biller,
                                             count, connections=args.connections, seed=args.seed,
                                             reply_timeout=args.reply_timeout, tls=tls, server_name=args.server_name,
                                             rate=args.rate, duration=args.duration, progress=progress,
                                             started=sims.append))
    except (KeyboardInterrupt, BaseExceptionGroup) as exc:
        if isinstance(exc, BaseExceptionGroup) and _first(exc, (KeyboardInterrupt,)) is None:
            return _failed(exc, tls, args.mainframe)
        if sims:
            print(summary(sims[0].result))
        done = sims[0].result.sent if sims else 0
        print(f"interrupted (Ctrl-C): {done:,} of {count:,} request(s) sent; the replies still on their way were "
              f"not waited for (see the engine's deals: bsp deals --live)", file=sys.stderr)
        return 130
    except (OSError, trio.BrokenResourceError) as exc:
        return _failed(exc, tls, args.mainframe)
    print(summary(res))
    note = unreachable_note(res, None if args.no_biller else args.biller)
    if note is not None:
        print(note, file=sys.stderr)
    plain_to_tls = tls is None and res.replies == 0 and CLOSED in res.stopped and speaks_tls(args.mainframe)
    err = problem(res, count, args.reply_timeout, args.duration, plain_to_tls=plain_to_tls)
    if err is not None:
        print(err, file=sys.stderr)
        if plain_to_tls:       # not after a drain: a drained engine ends a plain connection at once too
            print("hint: a mainframe channel with TLS (its cert and key) ends a plain connection at once: "
                  "give --ca (its CA), and --cert/--key for mutual TLS", file=sys.stderr)
        return 1
    return 0


def _failed(exc: BaseException, tls: ssl.SSLContext | None, mainframe: tuple[str, int]) -> int:
    """The run failed: one ``error:`` line (a TLS handshake refused, or no engine there); exit 1.  Anything
    else is a bug: raised."""
    if tls is not None:
        broken = exc if isinstance(exc, trio.BrokenResourceError) else (
            _first(exc, (trio.BrokenResourceError,)) if isinstance(exc, BaseExceptionGroup) else None)
        if broken is not None:
            print(tls_failure(broken, tls, mainframe), file=sys.stderr)
            return 1
    err = exc if isinstance(exc, OSError) else (
        _first(exc, (OSError,)) if isinstance(exc, BaseExceptionGroup) else None)
    if err is None:
        raise exc
    print(f"error: {err}; is the engine running (bsp run routes/platform.yaml) on --mainframe, and is "
          f"the biller's address free (else --no-biller)?", file=sys.stderr)
    return 1


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of requests >= 0, e.g. --count 300")
    return int(text)


def _positive(example: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0, e.g. {example}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0, e.g. --reply-timeout 10")
    return value


if __name__ == "__main__":
    sys.exit(main())
