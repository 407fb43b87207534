"""A biller counterpart: JSON over length-prefixed TCP, one reply per request, in order.

Answers ``{"status": "OK", "confirmation": "..."}``; refuses (``{"status":
"REFUSED", ...}``) every request whose reference ends with a digit in
``refuse_digits``.  Replies to one chunk's requests leave in one write.
Counts its calls per reference in ``calls`` (``twice()``: those called more than once).

``python -m engine.sim.biller`` serves it alone, on the bill payment route's
``127.0.0.1:7002`` (``--address HOST:PORT``), until Ctrl-C or SIGTERM, then
says how many requests it answered: the biller for an engine you started
(`bsp run routes/platform.yaml`) while no ``engine.sim.bill_traffic`` runs,
e.g. to bring it back and ``bsp dead retry`` a payment that failed while it
was down.  Exit 0; 1 when the address cannot be served (in use: another
biller runs); 2 a usage error.
"""
from __future__ import annotations

import argparse
import functools
import signal
import sys
from typing import Any

import orjson
import trio

from engine.sim.framed import FramedServer, host_port

ADDRESS = ("127.0.0.1", 7002)          # the biller channel's address in routes/bill_payment/bill_payment.route


class BillerSim(FramedServer):
    def __init__(self, *, framing: str = "length4", refuse_digits: str = "7") -> None:
        self.framing = framing
        self.refuse_digits = refuse_digits
        self.requests = 0
        self.refused = 0
        self.calls: dict[str, int] = {}

    def answer(self, req: Any) -> dict[str, Any]:
        ref = str(req.get("reference", "")) if isinstance(req, dict) else ""
        self.requests += 1
        self.calls[ref] = self.calls.get(ref, 0) + 1
        if ref and ref[-1] in self.refuse_digits:
            self.refused += 1
            return {"status": "REFUSED", "confirmation": None, "reason": "account closed"}
        return {"status": "OK", "confirmation": "CF" + ref[-12:]}

    def reply_frame(self, payload: bytes) -> bytes:
        return orjson.dumps(self.answer(orjson.loads(payload)))


async def serve_until_signalled(sim: BillerSim, address: tuple[str, int], *, out: Any = None) -> None:
    """Serve ``sim`` on ``address`` until SIGINT or SIGTERM; says where once listening."""
    out = out if out is not None else sys.stdout
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.serve, address[0], address[1])
            print(f"biller listening on {address[0]}:{port} (JSON, 4-byte length prefix; refuses references "
                  f"ending in {' or '.join(sim.refuse_digits)}); Ctrl-C stops it", file=out, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def _leaves(group: BaseExceptionGroup) -> list[Any]:
    return [leaf for e in group.exceptions for leaf in (_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m engine.sim.biller",
        description="Serve the bill payment biller alone until Ctrl-C or SIGTERM (the biller engine.sim.bill_traffic "
                    "plays while it runs): e.g. to bring the biller back and `bsp dead retry` a payment that "
                    "failed while it was down. Exit 0; 1 when the address cannot be served; 2 a usage error.")
    ap.add_argument("--address", type=host_port, default=ADDRESS, metavar="HOST:PORT",
                    help=f"where to serve it (default {ADDRESS[0]}:{ADDRESS[1]}, the biller channel's address "
                         f"in bill_payment.route; the same as bill_traffic --biller)")
    ap.add_argument("--refuse-digits", default="7", metavar="DIGITS",
                    help="refuse (status REFUSED: the route answers 05) the references ending in one of these "
                         "digits (default 7, as bill_traffic's biller; '' refuses none)")
    args = ap.parse_args(argv)
    if not all(c.isdigit() for c in args.refuse_digits):
        ap.error(f"--refuse-digits {args.refuse_digits!r}: expected digits, e.g. 7 or 79 ('' refuses none)")
    sim = BillerSim(refuse_digits=args.refuse_digits)
    failed: list[OSError] = []
    try:
        trio.run(functools.partial(serve_until_signalled, sim, args.address))
    except* OSError as group:                      # the bind, raised through the nursery
        failed += _leaves(group)
    if failed:
        exc = failed[0]
        print(f"error: cannot serve the biller on {args.address[0]}:{args.address[1]}: {exc.strerror or exc}; "
              f"is another biller running there (engine.sim.bill_traffic without --no-biller, or another "
              f"engine.sim.biller)? Stop it, or give --address", file=sys.stderr)
        return 1
    print(f"biller stopped: answered {sim.requests:,} request(s), {sim.refused:,} of them refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
