"""``http.listen``: receive requests over HTTP/1.1 (h11 on trio, optional TLS and client certificates).

One method and path template per channel (``path = "/payments/{id}"``).  The
request body is the frame the route's receive format decodes (JSON, XML, or a
form, which arrives as a JSON object of its fields).  The route sees
``http.method``, ``http.path``, ``http.params``, ``http.query`` (last value of
each parameter) and ``http.headers`` (lower-case names).  The answer's status
follows the deal: a reply of a committed deal is 200 (``status_ok``); a
failure maps by error kind, then by deal status, through ``status_map``.  A
failure without a reply body answers RFC 7807 problem details (with ``field``, the request field, when
the failure is about one: ``StepFailure.field``).

With ``check_content_type`` (on by default) a Content-Type the routes' formats do not read, a form
whose body is JSON (curl -d's default), or a charset the body is not read in (JSON and forms: UTF-8 only;
XML: the document's own encoding), is answered 415 with ``accepted``: a rejected deal of kind
``malformed`` and a dead letter, as a body the format cannot decode (``engine/channels/http_media.py``).
Over TLS, plain HTTP sent to the port is answered 400 by the server (``engine/http/server.py``), no deal.

With ``signature_header`` the body of every request must carry the partner's
signature (``engine/http/signature.py``), checked before anything is decoded:
a request without a good one is answered 401 (kind ``unauthenticated``),
recorded as a rejected deal and stored as a dead letter; no route runs.  Every
answer then carries the channel's signature of its own body.
"""
from __future__ import annotations

import itertools
import logging
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import orjson
import trio

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.conn_room import cap_place
from engine.channels.http_listen_dispatch import dispatch_one, refuse_one
from engine.channels.http_media import accepted_types, charset_of, refusal as media_refusal
from engine.channels.staged import Staging
from engine.channels.listen_handoff import ListenSockets
from engine.channels.options import ADDRESS, ChannelConfigError, built_check, parse_address, seconds
from engine.channels.tcp_tls import (HANDSHAKE_TIMEOUT, handshake_timeout, listen_security, listen_tls_reason,
                                     read_listen_tls)
from engine.faultlog import FaultLog
from engine.http import HTTPError, HTTPLimits, Request, Response, Router, serve_http
from engine.http.server import PlainHTTP
from engine.http.room import http_room, peer_text as _peer_text
from engine.channels.per_client import ClientCap, per_client_option
from engine.http.signature import BodySignature, signature_options
from engine.runtime.exchange import StepFailure
from engine.tls import CLIENT_CERT_MODES, ContextHolder
from formats.classify import mask_digit_runs
from formats.component import ComponentSpec, OptionSpec

log = logging.getLogger("bsp.channel.http")

# every answer to a request that was recorded as a deal names it: the id `bsp deals show` takes
DEAL_ID_HEADER = "bsp-deal-id"

_NUMBERS = itertools.count(1)

DEFAULT_STATUS = {
    "malformed": 400, "unauthenticated": 401, "unrouted": 404, "rejected": 422, "refused": 502, "unreachable": 502,
    "timeout": 504, "lost": 502, "internal": 500, "failed": 502,
    # a repeat of a key with no answer to repeat (past the key store's retention, or an original that ended
    # without one, code 94): not run again; the caller's key conflicts with an earlier request, not a bank error
    "duplicate": 409,
    # a deal key repeated with another amount, currency or party (engine/txn/fingerprint.py): the request is
    # not the one the key was first used for (422, as for an idempotency key reused with another payload)
    "key_conflict": 422,
    # a `screen` step holding a hit for a compliance officer (deal rejected, kind held): 422 as a rejection
    # unless the channel says otherwise (claims payout answers 202: pending, not refused)
    "held": 422,
}


def status_kind(kind: str | None, deal_status: str) -> str:
    """The ``status_map`` key of a failure.  ``unauthenticated`` is the caller's own bad signature only when
    the deal was rejected for it; a *failed* one is a bank counterpart's answer that did not verify (a signed
    ``http call``, a MAC'd reply: in doubt), which is the bank's failure, answered as ``failed`` (502), not 401:
    a 401 would tell the caller to fix a signature that was right."""
    if kind == "unauthenticated" and deal_status == "failed":
        return "failed"
    return kind or ""


def parse_status_map(channel: str, entries: Any) -> dict[str, int]:
    """``["rejected:422", "timeout:504"]`` over the defaults."""
    out = dict(DEFAULT_STATUS)
    if entries is None:
        return out
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ChannelConfigError(f"channel {channel}: option status_map: expected a list such as "
                                 f'["rejected:422", "failed:502"], got {entries!r}')
    for i, e in enumerate(entries, 1):
        key, _, code = str(e).partition(":")
        if key not in DEFAULT_STATUS or not code.isdigit() or not 100 <= int(code) <= 599:
            raise ChannelConfigError(
                f"channel {channel}: option status_map: entry {i} ({e!r}): expected KIND:STATUS with KIND one "
                f"of {', '.join(DEFAULT_STATUS)} and STATUS 100..599 (e.g. \"rejected:422\")")
        out[key] = int(code)
    return out


def _sniff_type(body: bytes) -> str:
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return "application/json"
    if head == b"<":
        return "application/xml"
    return "application/octet-stream"


def _secret_headers(name: str, value: Any) -> tuple[str, ...]:
    """``secret_headers``: header names, lower case (a capture never holds their values)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ChannelConfigError(f"channel {name}: option secret_headers: expected a list of header names "
                                 f"(secret_headers = [\"x-api-key\"]), got {value!r:.60}")
    return tuple(v.strip().lower() for v in value)


class HttpListener:
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any], *, load_tls: bool = True) -> None:
        """``load_tls=False`` (``bsp check``): every option checked, the TLS files and the signature key
        not read."""
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))
        self.method = str(options.get("method") or "POST").upper()
        self.path = options.get("path") or "/"
        self.status_ok = int(options.get("status_ok") or 200)
        self.status_map = parse_status_map(name, options.get("status_map"))
        self.content_type = options.get("content_type")
        check = options.get("check_content_type", True)
        if not isinstance(check, bool):
            raise ChannelConfigError(f"channel {name}: option check_content_type: expected true or false, "
                                     f"got {check!r}")
        self.check_content_type = check
        self.secret_headers = _secret_headers(name, options.get("secret_headers"))
        self.staging = Staging()        # what bind_codecs takes from a configuration bound meanwhile
        # the media types the routes' formats read (bind_codecs); None: not checked (engine/channels/http_media.py)
        self.accepted: tuple[str, ...] | None = None
        cap = options.get("max_connections", HTTPLimits.max_connections)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ChannelConfigError(f"channel {name}: option max_connections: expected a positive whole number, "
                                     f"got {cap!r}")
        per_client = per_client_option(name, options, HTTPLimits.max_connections_per_client)
        self.limits = HTTPLimits(
            max_connections=cap, max_connections_per_client=per_client,
            max_body=int(options.get("max_body") or HTTPLimits.max_body),
            idle_timeout=seconds(options.get("idle_timeout"), HTTPLimits.idle_timeout),
            read_timeout=seconds(options.get("read_timeout"), HTTPLimits.read_timeout),
            handshake_timeout=handshake_timeout(name, options),
        )
        self.router = Router()
        try:
            self.router.add(self.method, self.path, self._request)
        except ValueError as exc:
            raise ChannelConfigError(f"channel {name}: option path: {exc}") from None
        # refused clients, failed handshakes, bad signatures, connections closed for room: the first of each
        # kind in full, a flood counted and summed up (engine/faultlog.py)
        self.faults = FaultLog(log, f"channel {name}", clock=trio.current_time)
        # at the cap, a connection in its TLS handshake or idle makes room (engine/channels/conn_room.py)
        self.room = http_room(cap, channel=name, logger=log, faults=self.faults)
        # one client address holds max_connections_per_client at most; over it closed at once (engine/channels/per_client.py)
        self.clients = ClientCap(per_client, self.faults, channel=name,
                                 hint=f"if partners share that address (a NAT, a proxy) and need more connections at "
                                      f"once, raise max_connections_per_client of channel {name}")
        context, self.access, _ = listen_security(name, options, load_tls=load_tls)
        # read for each connection accepted: a reload that renewed the certificate files swaps it (renew_tls)
        self.tls = ContextHolder(context) if context is not None else None
        self._options = options
        self.signature = BodySignature.from_options(name, options, load=load_tls)
        self._handler: ExchangeHandler | None = None
        self._stop = trio.Event()
        # bound at serve, or handed over by the channel this one replaces on the same address (a reload)
        self.sockets = ListenSockets()
        self._draining = False
        self._inflight = 0
        self.requests = 0
        self.refused = 0
        self.tls_failures = 0
        self.unauthenticated = 0
        self.bad_requests = 0          # refused before they were whole (engine.http.server on_bad_request)
        self.metrics: Any = None

    def bind_codecs(self, ctx: Any) -> None:
        """The switchboard's binder: the receive formats of the routes on this channel fix the request
        Content-Types it reads (``check_content_type``), and its declaration the place the warnings at the cap
        name; a configuration bound while another runs takes effect at the swap (``adopt``)."""
        program = getattr(ctx, "program", None)
        if program is None:
            return
        decl = program.channels.get(self.name)
        # where max_connections is declared in this configuration (the warnings at the cap name it): a reload
        # that keeps the channel may have moved its declaration
        place = cap_place(decl) if decl is not None else self.room.place
        accepted = self.accepted
        if self.check_content_type:
            routes = program.routes_for(self.name)
            kinds = [getattr(program.formats.get(r.format or ""), "kind", None) for r in routes]
            accepted = accepted_types(kinds) if kinds else None

        def apply() -> None:
            self.accepted = accepted
            self.room.place = place
        # a configuration bound while another runs on this channel: in force from the swap (``adopt``)
        self.staging.bind(ctx, apply)

    def adopt(self, ctx: Any) -> None:
        """The configuration bound by ``ctx`` runs now (a reload kept this channel): its Content-Types."""
        self.staging.adopt(ctx)

    def attach_metrics(self, metrics: Any) -> None:
        """Count connections closed for room (``bsp_channel_evictions_total``) and pauses at the cap
        (``bsp_channel_capped_total``) in ``engine.metrics.Metrics`` (None: stop)."""
        self.metrics = self.room.metrics = self.clients.metrics = metrics

    @property
    def evicted(self) -> int:
        """Connections closed to make room for a new one at max_connections."""
        return self.room.evicted

    @property
    def capped(self) -> int:
        """Times accepting paused at max_connections (no connection could be closed to make room)."""
        return self.room.capped

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``stop_accepting`` (a drain, or a reload that changed or removed the channel) and the
        last connection ended: see ``engine.http.server`` (retirement)."""
        self._handler = handler
        try:
            await self._serve(handler, task_status)
        finally:
            self.faults.flush()                         # the counts not yet written

    async def _serve(self, handler: ExchangeHandler, task_status: Any) -> None:
        async with trio.open_nursery() as ticker:
            ticker.start_soon(self.faults.run)         # summaries of repeated bad input, when due
            await self._serve_http(task_status)
            ticker.cancel_scope.cancel()

    async def _serve_http(self, task_status: Any) -> None:
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(partial(
                serve_http, self.router, self.host, self.port, self.tls,
                limits=self.limits, access=None if self.access.open else self.access,
                on_refused=self._on_refused, on_tls_failure=self._on_tls_failure,
                on_bad_request=self._on_bad_request,
                reply_headers=self.signature.headers_for if self.signature is not None else None,
                retire=self._stop, room=self.room, sockets=self.sockets, clients=self.clients))
            log.info("channel %s: http %s %s on %s", self.name, self.method, self.path, self.address)
            task_status.started(self.port)

    @property
    def ssl_context(self) -> Any:
        """The server context new connections get (None: plain HTTP)."""
        return self.tls.context if self.tls is not None else None

    def read_tls(self) -> Any:
        """A server context from the certificate files as they are now (``engine.channels.tcp_tls``)."""
        return read_listen_tls(self.name, self._options)

    def renew_tls(self, context: Any) -> None:
        """Connections accepted from now on get ``context``; those open keep theirs; the socket stays."""
        if self.tls is not None:
            self.tls.context = context

    def stop_accepting(self) -> None:
        """Drain: close the listening socket; each connection answers the request it is reading or running
        (``Connection: close``), reads no other, then ends cleanly (no reset)."""
        self._draining = True
        self._stop.set()

    def _on_refused(self, peer: Any, reason: str) -> None:
        self.refused += 1
        who = _peer_text(peer)
        self.faults.occurred("refused", f"request from {who} refused by the access list: {reason}",
                             noun="requests refused by the access list", source=who, reason=reason)

    def _on_bad_request(self, peer: Any, status: int, reason: str) -> None:
        """A request refused before it was whole (malformed, smuggling, too large, too slow): no deal (nothing
        was read to record), so the log says it, the first of each status in full, a flood counted."""
        self.bad_requests += 1
        who = _peer_text(peer)
        self.faults.occurred(("bad request", status), f"bad HTTP request from {who}: {status} {reason}; "
                             "answered and closed", noun=f"bad HTTP requests ({status})", source=who,
                             reason=reason)

    def _on_tls_failure(self, peer: Any, exc: BaseException) -> None:
        self.tls_failures += 1
        why = (f"no handshake within {self.limits.handshake_timeout:g}s" if isinstance(exc, trio.TooSlowError)
               else str(exc) if isinstance(exc, PlainHTTP) else listen_tls_reason(exc))
        who = _peer_text(peer)
        self.faults.occurred(("TLS handshake", why), f"TLS handshake with {who} failed: {why}; connection closed",
                             noun="failed TLS handshakes", source=who, reason=why)

    async def _request(self, request: Request) -> Response:
        if self._handler is None:
            raise HTTPError(503, f"channel {self.name} is not serving yet; retry later",
                            headers=[("retry-after", "1")])
        # retired (a drain, a reload): a request read to its end is still run and answered, with
        # Connection: close (engine.http.server); no other is read on this connection
        self.requests += 1
        refusal = None
        if self.signature is not None:      # before anything reads the body
            refusal = (self.signature.repeated([k for k, _ in request.headers])
                       or self.signature.check(request.header, request.body))
        body = request.body
        bad_form = None
        unsupported = (media_refusal(request.content_type, body, self.accepted,
                                     charset_of(request.header("content-type")))
                       if refusal is None and self.accepted is not None else None)
        if unsupported is None and refusal is None and request.content_type == "application/x-www-form-urlencoded":
            try:
                form = request.form()
            except HTTPError as exc:        # recorded as a malformed deal with its dead letter, as any bad body
                bad_form = mask_digit_runs(exc.detail)      # the body cannot be classified: as a format error's
            else:
                body = orjson.dumps({k: v[-1] if len(v) == 1 else v for k, v in form.items()})
        peer_text = _peer_text(request.peer)
        http = {
            "method": request.method,
            "path": request.path,
            "params": dict(request.path_params),
            "query": {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()},
            "headers": dict(request.headers),
            "peer": peer_text,
        }
        # ``deals``: the dispatcher puts (deal id, reason) there once the deal is recorded (Bsp-Deal-Id)
        deals: list[tuple[str | None, str | None]] = []
        # ``answered``: a recording tap (engine.replay.tap) leaves there what to call with the status answered,
        # so the capture keeps it beside the body (a replay compares it: frames.status)
        answered: list[Any] = []
        conn = ConnInfo(channel=self.name, peer=peer_text, number=next(_NUMBERS),
                        extra={"http": http, "deals": deals, "answered": answered}, who=request.who)
        self._inflight += 1
        try:
            if refusal is not None:
                self.unauthenticated += 1
                self.faults.occurred("unauthenticated", f"request from {peer_text} refused: {refusal}",
                                     noun="requests refused (signature)", source=peer_text, reason=refusal)
                failure = StepFailure("unauthenticated", f"channel {self.name}: {refusal}",
                                      where=f"{request.method} {request.path} from {peer_text}")
                out = await refuse_one(self._handler, conn, body, http, failure)
            elif unsupported is not None:       # a rejected deal of kind malformed, as a body the format cannot read
                failure = StepFailure("malformed", f"channel {self.name}: {unsupported}",
                                      where=f"{request.method} {request.path} from {peer_text}")
                out = await refuse_one(self._handler, conn, body, http, failure)
            elif bad_form is not None:
                failure = StepFailure("malformed", f"channel {self.name}: {bad_form}",
                                      where=f"{request.method} {request.path} from {peer_text}")
                out = await refuse_one(self._handler, conn, body, http, failure)
            else:
                out = await dispatch_one(self._handler, conn, body, http)
        finally:
            self._inflight -= 1
        deal_id = deals[0][0] if deals else None
        answer: Response | None = None
        try:
            answer = self._answer(request, out, deal_id, unsupported=unsupported is not None)
        finally:
            for tell in answered:
                tell(answer.status if answer is not None else None)
        if deal_id is not None:     # the id a caller quotes to the bank: `bsp deals show ID` finds it
            answer.headers.append((DEAL_ID_HEADER, deal_id))
        return answer

    def status_for(self, out: Any, *, unsupported: bool = False) -> int:
        """The HTTP status ``_answer`` gives the outcome ``out`` (a replay answers with it too)."""
        if not out.recorded:
            return 503
        if out.status in ("committed", "unknown"):
            if out.reply is None:
                return (204 if self.status_ok == 200 else self.status_ok) if out.status == "committed" else 500
            return self.status_ok
        if unsupported:
            return 415
        return self.status_map.get(status_kind(out.kind, out.status), self.status_map.get(out.status, 500))

    def _answer(self, request: Request, out: Any, deal_id: str | None, *, unsupported: bool = False) -> Response:
        if not out.recorded:        # a full disk: nothing is acknowledged that is not stored (docs/ledger.md)
            return Response.problem(503, "the deal could not be written to the ledger, so it is not "
                                         "acknowledged: treat it as a time-out (the engine's log says why)",
                                    instance=request.raw_path, headers=[("retry-after", "5")],
                                    kind="unrecorded", deal_status=out.status)
        if out.status in ("committed", "unknown"):
            if out.reply is None:
                if out.status == "committed":
                    return Response(204 if self.status_ok == 200 else self.status_ok, [], b"")
                return Response.problem(500, "the route gave no answer; see the deal's reason in the ledger",
                                        instance=request.raw_path)
            return Response(self.status_ok, [("content-type", self.content_type or _sniff_type(out.reply))],
                            out.reply)
        status = self.status_for(out, unsupported=unsupported)
        extra: dict[str, Any] = {}
        if unsupported and out.recorded:        # a Content-Type the routes' formats do not read: 415, whatever the map
            extra = {"accepted": list(self.accepted or ())}
        if out.reply is not None:
            return Response(status, [("content-type", self.content_type or _sniff_type(out.reply))], out.reply)
        # an internal failure's detail is the engine's own (file paths, OS errors): it stays in the deal's reason
        # and the log; the client gets its short text (``error.text``).  Any other detail names no route file:
        # a failure's place is its ``where`` (in the deal's reason, "(at pay.route:9:1)")
        shown = out.text if out.kind == "internal" else out.detail or out.text
        return Response.problem(status, shown or out.status, instance=request.raw_path,
                                kind=out.kind, code=out.code, deal_status=out.status,
                                **({"field": out.field} if getattr(out, "field", None) else {}), **extra,
                                **({"deal_id": deal_id} if deal_id is not None else {}))


def build(decl: Any) -> HttpListener:
    lst = HttpListener(decl.name, dict(decl.options))
    lst.room.place = cap_place(decl)
    return lst


COMPONENT = ComponentSpec(
    category="channel",
    name="http.listen",
    provides=("http",),
    doc=(
        "Receive requests over HTTP/1.1 (h11 on trio), plain or TLS with optional client certificates "
        "and an access list. One method and path template per channel; path parameters, the query "
        "and the headers are visible to the route as `http.params`, `http.query`, `http.headers` "
        "(also `http.method`, `http.path`, `http.peer`). The body is decoded by the route's receive "
        "format; a form body (application/x-www-form-urlencoded) arrives as a JSON object. A committed "
        "deal's reply is answered with `status_ok`; a failure with the status of its error kind or "
        "deal status (`status_map`), with the route's error reply as body, or RFC 7807 problem "
        "details when there is none (a body the format cannot decode: 400, deal rejected; a Content-Type the "
        "format does not read, or JSON sent as a form: 415, deal rejected, `check_content_type`). Plain HTTP sent "
        "to a TLS port is answered 400 naming the https:// address (no deal). A client "
        "refused by `allow` gets 403. Retired (a drain, or a reload that changed the channel), it stops accepting and closes its listening socket (a reload that keeps its address hands the socket, open, to the new channel: the port never closes, no connect is refused); a connection answers the request it is reading or running with `Connection: close` (one waiting for a request first answers one already arrived, up to 50 ms), reads no other and ends cleanly (FIN, no reset; over TLS a close_notify first, as on every end the server chooses). A reload that finds only its `cert` / `ca` file rewritten (a certificate renewed at the same path) keeps the socket and the open connections; connections accepted from then on get the new certificate. With `signature_header`, "
        "a request whose body does not carry a good signature (HMAC-SHA256, AES-CMAC or retail DES "
        "over the body, or TIMESTAMP.body) gets 401 before anything is decoded: a rejected deal of kind "
        "`unauthenticated` and a dead letter, no route runs; every answer carries the signature of its body."
    ),
    check=built_check(HttpListener, load_tls=False),
    options=(
        ADDRESS,
        OptionSpec("method", "string", "The HTTP method served.", default="POST"),
        OptionSpec("path", "string", "Path template, literal segments and {name} parameters "
                   "(e.g. \"/payments/{id}\").", default="/"),
        OptionSpec("status_ok", "int", "Status of a committed deal's reply (204 when there is no body).",
                   default=200),
        OptionSpec("status_map", "list",
                   "KIND:STATUS entries over the defaults malformed:400, unauthenticated:401, unrouted:404, rejected:422, "
                   "refused:502, unreachable:502, timeout:504, lost:502, internal:500, failed:502, duplicate:409, key_conflict:422, held:422; "
                   "KIND is an error kind or a deal status (rejected, failed).", default=None),
        OptionSpec("content_type", "string", "Content-Type of replies (default: guessed from the body: "
                   "JSON, XML or octet-stream).", default=None),
        OptionSpec("check_content_type", "bool", "A request whose Content-Type the routes' formats do not read "
                   "is answered 415 (problem details, `accepted` lists the types; a rejected deal of kind "
                   "malformed): a JSON format reads application/json, application/*+json and a form (unless "
                   "the form's body is JSON: curl -d's default type), an XML format application/xml, text/xml, "
                   "application/*+xml. Its charset must be what the format reads: JSON and forms UTF-8 only "
                   "(another declared charset is a 415 naming charset=utf-8), XML the document's own encoding "
                   "(a charset naming another is a 415). A request without Content-Type, and a channel with a "
                   "route of another format, are not checked. false: any type is read by the format (a form "
                   "as a form).",
                   default=True),
        OptionSpec("secret_headers", "list", "Request headers whose values are secrets (an API key: "
                   "[\"x-api-key\"]): a capture (`bsp run --record`, masked or not) writes them `***`, as it always "
                   "writes Authorization, Proxy-Authorization and Cookie; the route still reads them.",
                   default=None),
        OptionSpec("max_body", "int", "Largest request body in bytes (413 beyond).", default=1 << 20),
        OptionSpec("idle_timeout", "duration", "Keep-alive wait for the next request.", default=Decimal(60)),
        OptionSpec("max_connections", "int", "Connections open at once. At the cap a new one takes the slot of "
                   "the one longest in its TLS handshake, else of the one idle longest (closed with a warning, "
                   "counted in bsp_channel_evictions_total); with every one reading or running a request, "
                   "accepting pauses until one ends or falls idle (bsp_channel_capped_total).", default=512),
        OptionSpec("max_connections_per_client", "int", "Connections one client address may hold open at once "
                   "(an IPv4-mapped IPv6 address counts as its IPv4 address, other IPv6 addresses by their /64). "
                   "A connection over it is closed as accepted, before a byte is read (no answer), takes no slot "
                   "of max_connections and closes no other; counted (bsp_channel_client_refused_total, "
                   "`client_refused` in bsp status) and logged once per client per 30s. Partners behind one "
                   "NAT or proxy share it: raise it for them. 0: no limit.", default=64),
        OptionSpec("read_timeout", "duration", "Time from a request's first byte to its last (408 beyond).",
                   default=Decimal(10)),
        OptionSpec("cert", "path", "Server certificate (PEM): turns TLS on (1.2 minimum).", default=None),
        OptionSpec("key", "path", "Private key of `cert` (PEM; a secret: not kept in the ledger's configuration versions, need not exist for bsp check).", default=None, secret=True),
        OptionSpec("ca", "path", "CA bundle client certificates must chain to.", default=None),
        OptionSpec("client_cert", "string", "Client certificate: none, optional or required.", default="none",
                   choices=tuple(CLIENT_CERT_MODES)),
        OptionSpec("allow", "list", "Access list: \"cn:NAME\", \"san:dns:HOST\", \"ip:CIDR\", ... "
                   "(see docs/channels.md); empty: everyone.", default=None),
        HANDSHAKE_TIMEOUT,
        *signature_options("Requests must carry it; answers carry it too."),
    ),
    build=build,
    examples=(
        'channel payments_api = http listen {\n'
        '    address    = "127.0.0.1:8443"\n'
        '    method     = "POST"\n'
        '    path       = "/payments/{id}"\n'
        '    status_map = ["rejected:422", "failed:502", "unrouted:404"]\n'
        '}',
        'channel partner_api = http listen {\n'
        '    address                    = "127.0.0.1:8081"\n'
        '    path                       = "/transfers"\n'
        '    signature_header           = "X-Signature"\n'
        '    signature_prefix           = "sha256="\n'
        '    signature_key_env          = "PARTNER_SIGNING_KEY"\n'
        '    signature_timestamp_header = "X-Timestamp"\n'
        '}',
    ),
)
