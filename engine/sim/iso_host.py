"""An ISO 8583 host (issuer / switch) simulator: answers 0100->0110, 0200->0210, 0400/0401->0410,
0420/0421->0430, 0800->0810 (a reversal's repeats too: bsp repeats a reversal until acknowledged).

    host = IsoHost(framing="length2", spec="iso8583_1987_ascii")
    port = await nursery.start(host.serve)            # ready once listening

Replies copy the request's key fields (DE 11, DE 41) and set DE 39 (``"00"``,
or ``decline`` for amounts in ``decline_amounts``).  Faults for tests and
benchmarks, each a predicate over the decoded request or a plain setting:

    delay            seconds before each reply (a reply task per request, so
                     replies come back in whatever order their delays end)
    reverse          answer the requests of one chunk in reverse order
    drop(values)     never answer this request
    garble(values)   answer with bytes that are not ISO 8583
    unsolicited      after each chunk, also send a 0210 nobody asked for
    echo_ok          False: ignore 0800 echo requests
    idle_close       seconds: close a connection nothing was received on for
                     that long (a switch's idle timeout), counted in idle_closed

``tls`` (an ``ssl.SSLContext``) serves over TLS.  ``mac`` (a
``formats.iso8583.macs.MacPolicy``) turns message MACs on (DE 64 / 128): the MAC
of every request whose MTI is not exempt is verified, and every answer is MAC'd.
A request whose MAC is missing or wrong is counted in ``bad_macs`` and answered
with DE 39 ``"63"`` (security violation; its fields read without the MAC check),
so the caller is not left waiting.  Counters: requests, echoes, dropped,
garbled, connections, bad_requests, bad_macs, idle_closed; ``calls`` counts the requests
(not echoes) per DE 41 + DE 37 + DE 11, ``twice()`` those seen more than once.  ``python -m engine.sim.iso_host
--port 7100`` runs one (for benchmarks in another process); ``--mac-algorithm
ALG --mac-key-env NAME`` turns MACs on there.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import ssl
from typing import Any, Callable

import trio

from engine.sim.framed import listen
from formats.errors import FormatError
from formats.framing import make_framer
from formats.iso8583 import codec_for
from formats.iso8583.macs import MacPolicy, plan_mac
from formats.mac import ALGORITHMS, MacError, parse_key

log = logging.getLogger("bsp.sim.iso_host")

ANSWERS = {"0100": "0110", "0200": "0210", "0400": "0410", "0401": "0410", "0420": "0430", "0421": "0430",
           "0800": "0810"}
# DE 4 of the amounts the card host declines (DE 39 "05"): 666.00.  The one list both the demo's card host
# (engine.sim.services.card_payments.card_host, the failing card payments) and ``python -m engine.sim.iso_host``
# (``--decline``) use, so the standalone host answers the card payments simulator's requests as the demo's does.
DECLINED_AMOUNTS: tuple[str, ...] = ("000000066600",)
COPY = ("2", "3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49", "70", "90")

Predicate = Callable[[dict[str, Any]], bool]


class IsoHost:
    def __init__(self, *, framing: str = "length2", spec: str = "iso8583_1987_ascii",
                 delay: float | Callable[[dict[str, Any]], float] = 0.0, reverse: bool = False,
                 drop: Predicate | None = None, garble: Predicate | None = None,
                 unsolicited: bool = False, echo_ok: bool = True, decline_amounts: tuple[str, ...] = (),
                 tls: ssl.SSLContext | None = None, mac: Any = None, idle_close: float = 0.0) -> None:
        self.framing = framing
        self.plain = codec_for(spec, validate=False)
        self.codec = self.plain.with_mac(mac) if mac is not None else self.plain
        self.mac = mac
        self.delay = delay
        self.reverse = reverse
        self.drop = drop
        self.garble = garble
        self.unsolicited = unsolicited
        self.echo_ok = echo_ok
        self.decline_amounts = decline_amounts
        self.tls = tls
        self.idle_close = idle_close
        self.idle_closed = 0
        self.port = 0
        self.requests = 0
        self.echoes = 0
        self.dropped = 0
        self.garbled = 0
        self.connections = 0
        self.bad_requests = 0
        self.bad_macs = 0
        self.calls: dict[str, int] = {}
        self._scope: trio.CancelScope | None = None

    # -- answers -----------------------------------------------------------
    def answer(self, req: dict[str, Any]) -> dict[str, Any] | None:
        mti = req.get("t")
        rsp_mti = ANSWERS.get(mti) if type(mti) is str else ANSWERS.get(str(mti))
        if rsp_mti is None:
            return None
        out: dict[str, Any] = {"t": rsp_mti}
        get = req.get
        for k in COPY:
            v = get(k)
            if v is not None and v != "":
                out[k] = v
        if mti == "0800":
            self.echoes += 1
        else:
            self.requests += 1
            key = f"{get('41', '')}/{get('37', '')}/{get('11', '')}"
            self.calls[key] = self.calls.get(key, 0) + 1
        declined = bool(self.decline_amounts) and str(get("4", "")) in self.decline_amounts
        out["39"] = "05" if declined else "00"
        if (mti == "0100" or mti == "0200") and not declined:
            out["38"] = "A" + str(get("11", "0"))[-5:].rjust(5, "0")
        return out

    def _reply_bytes(self, req: dict[str, Any], unauthenticated: bool = False) -> bytes | None:
        if req.get("t") == "0800" and not self.echo_ok:
            return None
        if self.drop is not None and self.drop(req):
            self.dropped += 1
            return None
        if self.garble is not None and self.garble(req):
            self.garbled += 1
            return b"\x00GARBAGE\xff" + str(req.get("11", "")).encode()
        rsp = self.answer(req)
        if rsp is not None and unauthenticated:     # security violation: the request's MAC is missing or wrong
            rsp["39"] = "63"
            rsp.pop("38", None)
        return self.codec.encode(rsp) if rsp is not None else None

    def _decode(self, frame: bytes) -> tuple[dict[str, Any], bool] | None:
        """(request, unauthenticated) of one frame; None when it is not ISO 8583 at all."""
        try:
            return self.codec.decode(frame), False
        except MacError as exc:
            self.bad_macs += 1
            log.warning("iso host: request with a bad MAC: %s", exc)
            try:
                return self.plain.decode(frame), True
            except FormatError as exc2:
                self.bad_requests += 1
                log.warning("iso host: undecodable request: %s", exc2)
                return None
        except FormatError as exc:
            self.bad_requests += 1
            log.warning("iso host: undecodable request: %s", exc)
            return None

    # -- serving -----------------------------------------------------------
    async def _conn(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        framer = make_framer(self.framing)
        send_lock = trio.Lock()

        async def send(data: bytes) -> None:
            async with send_lock:
                try:
                    await stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

        async def later(req: dict[str, Any], unauth: bool, wait: float) -> None:
            await trio.sleep(wait)
            out = self._reply_bytes(req, unauth)
            if out is not None:
                await send(framer.frame(out))

        try:
            async with trio.open_nursery() as nursery:
                while True:
                    data = None
                    try:
                        with trio.move_on_after(self.idle_close or float("inf")):
                            data = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    if data is None:           # nothing received for idle_close seconds
                        self.idle_closed += 1
                        break
                    if not data:
                        break
                    try:
                        frames = framer.feed(data)
                    except FormatError as exc:
                        log.warning("iso host: bad frame: %s; closing", exc)
                        break
                    reqs = []
                    for f in frames:
                        got = self._decode(f)
                        if got is not None:
                            reqs.append(got)
                    if self.reverse:
                        reqs.reverse()
                    out = []
                    for req, unauth in reqs:
                        wait = self.delay(req) if callable(self.delay) else self.delay
                        if wait > 0:
                            nursery.start_soon(later, req, unauth, wait)
                            continue
                        b = self._reply_bytes(req, unauth)
                        if b is not None:
                            out.append(framer.frame(b))
                    if self.unsolicited and reqs:
                        out.append(framer.frame(self.codec.encode(
                            {"t": "0210", "3": "000000", "4": "000000000001", "7": "0101000000",
                             "11": "999999", "39": "00", "41": "NOBODY01", "49": "978"})))
                    if out:
                        await send(b"".join(out))
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _tls_conn(self, stream: trio.SocketStream) -> None:
        assert self.tls is not None
        s = trio.SSLStream(stream, self.tls, server_side=True)
        try:
            await s.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(stream)
            return
        await self._conn(s)

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        handler = self._tls_conn if self.tls is not None else self._conn
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                self.port = await listen(nursery, handler, host, port)
                task_status.started(self.port)

    def stop(self) -> None:
        """Close the listener and every connection (a host going down)."""
        if self._scope is not None:
            self._scope.cancel()


def decline_amounts(given: list[str] | None) -> tuple[str, ...] | None:
    """The amounts ``--decline`` names (default ``DECLINED_AMOUNTS``; ``none``: nothing); None when one
    is not 12 digits."""
    if not given:
        return DECLINED_AMOUNTS
    if given == ["none"]:
        return ()
    if not all(len(a) == 12 and a.isdigit() for a in given):
        return None
    return tuple(given)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="ISO 8583 host simulator (0200->0210, 0800->0810)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7100)
    ap.add_argument("--framing", default="length2")
    ap.add_argument("--spec", default="iso8583_1987_ascii")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    ap.add_argument("--reverse", action="store_true", help="answer each chunk's requests in reverse order")
    ap.add_argument("--idle-close", type=float, default=0.0,
                    help="close a connection nothing was received on for this many seconds (an idle timeout)")
    ap.add_argument("--cert", help="serve TLS with this certificate (PEM)")
    ap.add_argument("--key", help="private key of --cert")
    ap.add_argument("--decline", action="append", metavar="DE4",
                    help=f"decline (DE 39 05) the 0100/0200s of this DE 4 amount, 12 digits in minor units; "
                         f"repeatable (default {', '.join(DECLINED_AMOUNTS)}: 666.00, as the demo's card host; "
                         f"--decline none declines nothing)")
    ap.add_argument("--port-file", help="write the port listened on to this file once ready")
    ap.add_argument("--mac-algorithm", choices=ALGORITHMS,
                    help="verify the MAC (DE 64/128) of each request and MAC each answer")
    ap.add_argument("--mac-key-env", help="environment variable holding the MAC key (with --mac-algorithm)")
    ap.add_argument("--mac-exempt", default="", help="MTIs without a MAC, comma-separated, e.g. 0800,0810")
    args = ap.parse_args(argv)
    tls = None
    if args.cert:
        from engine.tls import server_context
        tls = server_context(args.cert, args.key)
    mac = None
    if args.mac_algorithm or args.mac_key_env:
        if not (args.mac_algorithm and args.mac_key_env):
            ap.error("--mac-algorithm and --mac-key-env go together")
        text = os.environ.get(args.mac_key_env)
        if text is None:
            ap.error(f"environment variable {args.mac_key_env} (--mac-key-env) is not set")
        try:
            key = parse_key(args.mac_algorithm, text)
            spec = codec_for(args.spec, validate=False).spec
            exempt = frozenset(m for m in args.mac_exempt.split(",") if m)
            mac = MacPolicy(args.mac_algorithm, key, plan_mac(spec, args.mac_algorithm, None), None, exempt)
        except MacError as exc:                 # never quotes the key
            ap.error(f"--mac-key-env {args.mac_key_env}: {exc}")
    declines = decline_amounts(args.decline)
    if declines is None:
        ap.error(f"--decline {' '.join(args.decline)}: expected DE 4 amounts of 12 digits (e.g. 000000066600 for "
                 f"666.00), or none")
    sim = IsoHost(framing=args.framing, spec=args.spec, delay=args.delay, reverse=args.reverse, tls=tls, mac=mac,
                  idle_close=args.idle_close, decline_amounts=declines)

    async def run() -> None:
        async with trio.open_nursery() as n:
            port = await n.start(functools.partial(sim.serve, args.host, args.port))
            print(f"iso host listening on {args.host}:{port}", flush=True)
            if args.port_file:
                with open(args.port_file, "w") as f:
                    f.write(str(port))

    trio.run(run)


if __name__ == "__main__":
    main()
