"""An ``http listen`` request's line and headers in a capture (``frames.http``), so a replay gives them back.

The route of an http listen channel reads ``http.method``, ``http.path``, ``http.params``, ``http.query`` and
``http.headers`` (and ``http.peer``, the client's address); a route may be chosen on them (``when http.params.kind == "fx"``, ``when
http.headers["x-priority"] == "high"``).  The tap stores them with the request row of every exchange an http
listen received: a JSON object ``{"method", "path", "params", "query", "headers", "peer"}``; a replay gives them back
to the candidate's route as ``http.*``, and ``--to-tests`` writes them as the test's ``http { ... }``.

Secrets never reach the capture, masked or not (``--no-mask`` too): the values of ``Authorization``,
``Proxy-Authorization``, ``Cookie`` and of every header the channel names in ``secret_headers`` are written
``***`` (an ``Authorization`` keeps its scheme: ``Bearer ***``), so a bearer token, a session cookie or an
API key is not in the file.  A route that reads one gets ``***`` on replay.  With ``--mask`` the other values
are masked as the body is: a classified value of the request (an IBAN in the body and in the path) is
masked wherever it is.

A capture written before this column holds NULL: the replay gives ``http.*`` as it did then (null), and its
report says so.  Pure: no engine.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Mapping

from formats.classify import mask_text, mask_value

ALWAYS_SECRET = ("authorization", "proxy-authorization", "cookie")
HIDDEN = "***"
KEYS = ("method", "path", "params", "query", "headers")
# framing headers: they describe the recorded bytes, not the request; a route test sends its own body
_FRAMING = ("content-length", "transfer-encoding", "connection")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+\S")


def hidden(name: str, value: str) -> str:
    """A secret header's value as a capture holds it: ``***``, an authorization's scheme kept."""
    m = _SCHEME.match(value) if name in ("authorization", "proxy-authorization") else None
    return f"{m.group(1)} {HIDDEN}" if m else HIDDEN


def secret_names(channel: Any) -> tuple[str, ...]:
    """The headers of ``channel`` (an http listen) whose values are never recorded: the standard ones and
    its ``secret_headers``, lower case."""
    own = getattr(channel, "secret_headers", None) or ()
    return tuple(dict.fromkeys([*ALWAYS_SECRET, *(str(h).lower() for h in own)]))


def dump(http: Mapping[str, Any] | None, secrets: Iterable[str] = ALWAYS_SECRET,
         known: Mapping[str, str] | None = None) -> str | None:
    """The request row's ``http`` (None: not an http request): secret headers hidden; ``known`` (``--mask``):
    the exchange's classified values, masked wherever a value holds one."""
    if not isinstance(http, Mapping):
        return None
    secret = set(secrets)

    def text(v: Any) -> str:
        return masked("" if v is None else str(v), known)

    headers = {}
    for k, v in (http.get("headers") or {}).items():
        name = str(k).lower()
        headers[name] = hidden(name, str(v)) if name in secret else text(v)
    out = {"method": str(http.get("method") or ""), "path": text(http.get("path")),
           "params": {str(k): text(v) for k, v in (http.get("params") or {}).items()},
           "query": {str(k): text(v) for k, v in (http.get("query") or {}).items()},
           "headers": headers, "peer": None if http.get("peer") is None else str(http.get("peer"))}
    return json.dumps(out, sort_keys=True)


def masked(value: str, known: Mapping[str, str] | None, fakes: Mapping[str, str] | None = None) -> str:
    """``value`` (a path, a query parameter, a header) with the exchange's classified values masked: a value
    that is one whole (however short: a header ``x-account: 1234``), else wherever it holds one."""
    if not known:
        return value
    if value in known:
        return str(mask_value(value, known[value], fakes))
    return mask_text(value, known, fakes)


def load(stored: str | None) -> dict[str, Any] | None:
    """The stored request line and headers (None: none stored); ``ValueError`` saying what is wrong for a
    value that is not one (a capture edited by hand, or damaged)."""
    if stored is None:
        return None
    try:
        data = json.loads(stored)
    except ValueError as exc:
        raise ValueError(f"the request's http line is not JSON ({exc}), expected an object with "
                         f"{', '.join(KEYS)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the request's http line is a JSON {type(data).__name__}, expected an object")
    for k in ("method", "path"):
        if not isinstance(data.get(k), str):
            raise ValueError(f"the request's http line has {k} = {data.get(k)!r:.60}, expected a text")
    for k in ("params", "query", "headers"):
        v = data.get(k)
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise ValueError(f"the request's http line has {k} = {v!r:.60}, expected an object of texts")
    peer = data.get("peer")
    if peer is not None and not isinstance(peer, str):
        raise ValueError(f"the request's http line has peer = {peer!r:.60}, expected a text or null")
    return {**{k: data[k] for k in KEYS}, "peer": peer}


def scope(stored: str | None) -> dict[str, Any] | None:
    """What the route reads as ``http`` on replay (``http.peer``: the client's address as recorded), or None."""
    return load(stored)


def clause(stored: str | None, literal: Callable[[Any], str], target: Callable[[str], str],
           shown: Callable[[str], str] | None = None) -> str:
    """`` http { method = "POST"  path = "/x/1"  query.a = "1"  headers["x-y"] = "z"  peer = "10.1.2.3:5000" }``: the recorded
    request line as a route test gives it, or "" (none recorded).  The path carries the params (the channel's
    router reads them from it); framing headers (content-length ...) are left out: the test sends its body.
    ``shown``: each value as the test writes it (masked as the request's body is)."""
    got = load(stored)
    if got is None:
        return ""
    show = shown or (lambda v: v)
    parts = [f"method = {literal(got['method'])}", f"path = {literal(show(got['path']))}"]
    parts += [f"{target('query.' + k) if _word(k) else 'query[' + literal(k) + ']'} = {literal(show(v))}"
              for k, v in got["query"].items()]
    parts += [f"headers[{literal(k)}] = {literal(show(v))}" for k, v in got["headers"].items() if k not in _FRAMING]
    if got["peer"]:                 # the client's address (http.peer): a test gives it, so a copy of it is expected
        parts.append(f"peer = {literal(show(got['peer']))}")
    return f" http {{ {'  '.join(parts)} }}"


def _word(k: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) is not None
