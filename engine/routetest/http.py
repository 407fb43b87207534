"""HTTP in route tests.

``given CHANNEL sends [FORMAT] { fields } http { method path params.X query.X headers["X"] peer }`` on an
``http listen`` channel: the test's request goes through the channel's own request handling (the
real ``HttpListener`` built from the declaration, no socket): its router (path template -> 404 /
405), form bodies, the ``http`` scope the route reads, and the status the answer gets from the
deal (``status_ok``, ``status_map``, problem details).  Without ``path`` the channel's template is
filled from ``params``; without ``method`` the channel's method is used; ``peer = "10.20.30.40:51234"`` is the
client's address the route reads as ``http.peer`` (without it, ``127.0.0.1:0``).

``given ENDPOINT answers STATUS [FORMAT] { fields } headers { ... }`` on an ``http call`` channel:
a 2xx status (or one the channel's ``answer_status`` takes) answers the body with that status and
headers (as the real channel does, ``http_call.http_answer``); any other status fails the call with
kind ``refused``, naming the status and the start of the body, exactly as ``http.call`` reports it.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from dsl.peer import peer_address
from engine.channels.http_call import answer_statuses, http_answer
from engine.http import HTTPError, Request, Response
from engine.replay.context import CURRENT, ExchangeCtx

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class HttpSetupError(ValueError):
    """A test's http request cannot be built (a path parameter neither in ``path`` nor ``params``)."""


def is_kind(program: Any, channel: str, kind: str) -> bool:
    decl = program.channels.get(channel)
    return decl is not None and decl.kind == kind


def _text(v: Any) -> str:
    from dsl.compiler import _text as text
    return text(v)


def build_request(listener: Any, http: dict[str, Any], body: bytes, where: str,
                  who: dict[str, Any] | None = None) -> Request:
    params = {k: _text(v) for k, v in (http.get("params") or {}).items()}
    path = http.get("path")
    if path is None:
        missing = [m for m in _PARAM.findall(listener.path) if m not in params]
        if missing:
            raise HttpSetupError(
                f"{where}: http: the channel's path {listener.path} has parameter(s) {', '.join(missing)}: "
                f"set {' and '.join(f'params.{m}' for m in missing)} or path = \"...\"")
        path = _PARAM.sub(lambda m: quote(params[m.group(1)], safe=""), listener.path)
    query = {k: _text(v) for k, v in (http.get("query") or {}).items()}
    target = _text(path) + ("?" + urlencode(query) if query else "")
    headers = {str(k).lower(): _text(v) for k, v in (http.get("headers") or {}).items()}
    if "content-type" not in headers:
        head = body.lstrip()[:1]
        headers["content-type"] = "application/json" if head in (b"{", b"[") else \
            "application/xml" if head == b"<" else "application/octet-stream"
    method = _text(http.get("method") or listener.method).upper()
    peer = ("127.0.0.1", 0)                  # a test's request comes from nowhere, unless it says where
    if http.get("peer") is not None:
        peer = peer_address(_text(http["peer"]))
        if peer is None:
            raise HttpSetupError(f"{where}: http: peer = {_text(http['peer'])!r} is not the client's address: "
                                 f"write it as the route reads it, HOST:PORT (\"10.20.30.40:51234\")")
    return Request(method, target, list(headers.items()), body, peer=peer, who=who)


async def send_http(listener: Any, handler: Any, request: Request, ctx: ExchangeCtx) -> Response:
    """Answer ``request`` through the real listener with ``handler`` (the isolated engine's dispatcher)."""
    listener._handler = handler
    token = CURRENT.set(ctx)
    try:
        try:
            resp = await listener.router(request)
        except HTTPError as exc:      # the router's 404 / 405, as the server answers them
            resp = Response.problem(exc.status, exc.detail, headers=exc.headers, instance=request.raw_path)
    finally:
        CURRENT.reset(token)
    ctx.reply = resp.body or None
    ctx.extra["http_status"] = resp.status
    ctx.extra["http_headers"] = dict(resp.headers)
    return resp


def answer(decl: Any, status: int | None, headers: dict[str, Any] | None, body: bytes) -> Any:
    """What the real ``http.call`` channel would return for this answer: an ``HttpReply`` or ``Refused``."""
    status = 200 if status is None else status
    options = dict(decl.options)
    return http_answer(decl.name, str(options.get("method") or "POST").upper(), options.get("url"),
                       answer_statuses(decl.name, options.get("answer_status")), status,
                       {str(k).lower(): _text(v) for k, v in (headers or {}).items()}, body)
