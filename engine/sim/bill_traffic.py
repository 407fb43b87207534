"""Bill payment traffic for an engine you started yourself (``bsp run routes/platform.yaml``).

    .venv/bin/python -m engine.sim.bill_traffic                      # 300 requests to 127.0.0.1:7001
    .venv/bin/python -m engine.sim.bill_traffic --count 1000 --mainframe 127.0.0.1:7001 --biller 127.0.0.1:7002

Plays both of the bill payment service's counterparts, so a newcomer can watch
(`bsp status`, `bsp top`), record (`bsp run --record`) and then replay real
traffic without a mainframe: it serves the biller on ``--biller`` (the route's
`biller` channel connects there; it refuses traces ending in 7) and sends
``--count`` requests of the mainframe simulator's mix (good payments,
enquiries, over-limit, unknown biller, bad currency, unrouted, malformed) to
``--mainframe``.  It prints what it sent and the reply codes it got, then stops
(the biller too).  When the engine closes the connection (it drained or
stopped) or leaves requests unanswered for ``--reply-timeout`` seconds
(default 10), it stops at once and says how many requests went unanswered and
how many were never sent.  Exit 0; 1 when a request got no reply or could not
be sent.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
from typing import Any

import trio

from engine.sim.biller import BillerSim
from engine.sim.framed import CLOSED, TIMED_OUT
from engine.sim.mainframe import MainframeResult, MainframeSim
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


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:7001")
    return host, int(port)


REPLY_TIMEOUT = 10.0


async def drive(mainframe: tuple[str, int], biller: tuple[str, int] | None, count: int, *,
                connections: int = 2, seed: int = 7, codec: Any = None,
                reply_timeout: float = REPLY_TIMEOUT) -> MainframeResult:
    """Serve the biller (unless ``biller`` is None) while ``count`` requests go to ``mainframe``.

    A connection stops when the engine closes it, or leaves its requests unanswered for
    ``reply_timeout`` seconds (``result.stopped``); there is no other time limit."""
    sim = MainframeSim(codec if codec is not None else request_codec(), seed=seed)
    async with trio.open_nursery() as nursery:
        if biller is not None:
            await nursery.start(BillerSim().serve, biller[0], biller[1])
        await sim.run(mainframe[1], host=mainframe[0], total=count, connections=connections,
                      deadline=math.inf, reply_timeout=reply_timeout)
        nursery.cancel_scope.cancel()
    return sim.result


def summary(res: MainframeResult) -> str:
    codes = ", ".join(f"{c} {n:,}" for c, n in sorted(res.by_code.items()))
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(res.by_kind.items()))
    return (f"sent {res.sent:,} bill payment request(s) ({kinds}); {res.replies:,} replies, by code: {codes or '-'}"
            + ("" if res.replies == res.sent else f"; {res.sent - res.replies:,} got no reply"))


def problem(res: MainframeResult, count: int, reply_timeout: float = REPLY_TIMEOUT) -> str | None:
    """None when all ``count`` requests were answered, else one ``error:`` line: how many went
    unanswered or unsent, and why the simulator stopped."""
    if res.replies == res.sent == count and not res.stopped:
        return None
    text = f"error: {res.sent - res.replies:,} of {res.sent:,} request(s) sent got no reply"
    if count > res.sent:
        text += f", and {count - res.sent:,} of --count {count:,} were not sent"
    why = []
    if CLOSED in res.stopped:
        why.append("the engine closed the connection (it drained or stopped: see its log, or `bsp status`)")
    if TIMED_OUT in res.stopped:
        why.append(f"no reply came for {reply_timeout:g} s (--reply-timeout) while requests were waiting "
                   f"(is the engine stuck, or its biller channel unable to connect?)")
    return text + (f": {'; and '.join(why)}" if why else "")


def _first_oserror(group: BaseExceptionGroup) -> OSError | None:
    for exc in group.exceptions:
        if isinstance(exc, OSError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_oserror(exc)
            if found is not None:
                return found
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.sim.bill_traffic",
                                 description="Send bill payment requests to a running engine and play its biller.")
    ap.add_argument("--count", type=int, default=300, help="requests to send (default 300)")
    ap.add_argument("--mainframe", type=host_port, default=("127.0.0.1", 7001),
                    help="the engine's mainframe channel (default 127.0.0.1:7001, as in bill_payment.route)")
    ap.add_argument("--biller", type=host_port, default=("127.0.0.1", 7002),
                    help="where to serve the biller (default 127.0.0.1:7002, as in bill_payment.route)")
    ap.add_argument("--no-biller", action="store_true", help="do not serve the biller (one already runs)")
    ap.add_argument("--connections", type=int, default=2, help="client connections (default 2)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the request mix (default 7)")
    ap.add_argument("--reply-timeout", type=_seconds, default=REPLY_TIMEOUT, metavar="SECONDS",
                    help=f"stop when requests wait this long without any reply (default {REPLY_TIMEOUT:g}); "
                         f"a closed connection (the engine drained or stopped) stops it at once. Either way it "
                         f"says how many requests went unanswered and exits 1")
    args = ap.parse_args(argv)
    try:
        res = trio.run(functools.partial(drive, args.mainframe, None if args.no_biller else args.biller,
                                         args.count, connections=args.connections, seed=args.seed,
                                         reply_timeout=args.reply_timeout))
    except (OSError, BaseExceptionGroup) as exc:
        err = exc if isinstance(exc, OSError) else _first_oserror(exc)
        if err is None:
            raise
        print(f"error: {err}; is the engine running (bsp run routes/platform.yaml) on --mainframe, and is "
              f"the biller's address free (else --no-biller)?", file=sys.stderr)
        return 1
    print(summary(res))
    err = problem(res, args.count, args.reply_timeout)
    if err is not None:
        print(err, file=sys.stderr)
        return 1
    return 0


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
