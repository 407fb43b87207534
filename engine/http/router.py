"""Routing by method and path template: ``/deals/{id}``.

A template is literal segments and ``{name}`` segments (one path segment
each, matched after percent-decoding).  A path no template matches is a 404;
a path that matches with another method is a 405 with an ``Allow`` header.
The router is itself a handler: ``await router(request) -> Response``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator
from urllib.parse import unquote

from engine.http.messages import HTTPError, Request, Response

Handler = Callable[[Request], Awaitable[Response]]

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class RouteError(ValueError):
    """A template that cannot be used (raised when routes are added)."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    segments: tuple[tuple[bool, str], ...]     # (is_param, literal-or-name)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for (is_param, text), part in zip(self.segments, parts):
            if is_param:
                if not part:
                    return None
                params[text] = unquote(part)
            elif unquote(part) != text:
                return None
        return params


def _split(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def _compile(template: str) -> tuple[tuple[bool, str], ...]:
    if not template.startswith("/"):
        raise RouteError(f"path template {template!r} must start with '/'")
    segments: list[tuple[bool, str]] = []
    seen: set[str] = set()
    for seg in _split(template):
        m = _PARAM.match(seg)
        if m:
            if m.group(1) in seen:
                raise RouteError(f"path template {template!r}: parameter {{{m.group(1)}}} appears twice")
            seen.add(m.group(1))
            segments.append((True, m.group(1)))
        elif "{" in seg or "}" in seg:
            raise RouteError(f"path template {template!r}: segment {seg!r} must be a literal or a whole "
                             "{name} parameter, e.g. /deals/{id}")
        else:
            segments.append((False, seg))
    return tuple(segments)


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        method = method.upper()
        segments = _compile(template)
        shape = tuple("{}" if is_param else text for is_param, text in segments)
        for r in self._routes:
            if r.method == method and tuple("{}" if p else t for p, t in r.segments) == shape:
                raise RouteError(f"{method} {template} is already routed (to {r.handler.__name__})")
        self._routes.append(Route(method, template, handler, segments))

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, template, fn)
            return fn
        return deco

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method path`` and its parameters; ``HTTPError`` 404/405 otherwise."""
        parts = _split(path)
        allowed: list[str] = []
        for r in self._routes:
            params = r.match(parts)
            if params is None:
                continue
            if r.method == method or (method == "HEAD" and r.method == "GET"):
                return r, params
            allowed.append(r.method)
        if allowed:
            allow = ", ".join(sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set())))
            raise HTTPError(405, f"{method} is not allowed on {path}; allowed: {allow}",
                            headers=[("allow", allow)])
        known = ", ".join(sorted({r.template for r in self._routes})) or "none"
        raise HTTPError(404, f"no resource at {path}; known paths: {known}")

    async def __call__(self, request: Request) -> Response:
        route, params = self.resolve(request.method, request.raw_path)
        request.path_params = params
        return await route.handler(request)      # the server drops the body of a HEAD answer
