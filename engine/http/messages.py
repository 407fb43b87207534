"""HTTP request and response values, and RFC 7807 problem details.

A ``Request`` holds the whole body (the server bounds its size); helpers
parse it as JSON, a form or XML and turn a bad body into a 400 problem that
says where it broke.  A handler returns a ``Response``, or raises
``HTTPError`` to answer with ``application/problem+json``.  A large answer
(a ledger snapshot) is a ``Response`` with a ``stream`` (``BodyStream``):
the server sends its chunks as they come and closes it however the answer
ends (sent, client gone, cancelled).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, AsyncIterator, Iterable, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

PROBLEM_TYPE = "about:blank"
JSON_TYPE = "application/json"
PROBLEM_JSON_TYPE = "application/problem+json"

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    507: "Insufficient Storage",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)            # money stays exact: "120.50", never a float
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dump_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


class HTTPError(Exception):
    """Raise from a handler to answer with a problem-details body (RFC 7807).

    ``detail`` says what was wrong and, where possible, how to fix it;
    ``extra`` adds members (e.g. ``{"parameter": "since"}``).
    """

    def __init__(self, status: int, detail: str, *, title: str | None = None, type: str = PROBLEM_TYPE,
                 headers: Iterable[tuple[str, str]] = (), extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or REASONS.get(status, "Error")
        self.type = type
        self.headers = list(headers)
        self.extra = extra or {}

    def to_response(self, instance: str | None = None) -> "Response":
        return Response.problem(self.status, self.detail, title=self.title, type=self.type,
                                instance=instance, headers=self.headers, **self.extra)


class BodyStream(Protocol):
    """A body sent chunk by chunk (``Response.stream``); ``aclose`` is called once, whatever happened."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: BodyStream | None = None     # instead of ``body``: sent chunk by chunk (Content-Length if given)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, [("content-type", JSON_TYPE), *headers], dump_json(value))

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, [("content-type", content_type), *headers], text.encode())

    @classmethod
    def problem(cls, status: int, detail: str, *, title: str | None = None, type: str = PROBLEM_TYPE,
                instance: str | None = None, headers: Iterable[tuple[str, str]] = (), **extra: Any) -> "Response":
        doc: dict[str, Any] = {"type": type, "title": title or REASONS.get(status, "Error"),
                               "status": status, "detail": detail}
        if instance:
            doc["instance"] = instance
        doc.update(extra)
        return cls(status, [("content-type", PROBLEM_JSON_TYPE), *headers], dump_json(doc))

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass
class Request:
    method: str
    target: str                                   # as sent: path + "?" + query
    headers: list[tuple[str, str]]                # names lower-cased, in order
    body: bytes = b""
    peer: Any = None                              # (host, port, ...) of the client
    peercert: dict[str, Any] | None = None        # verified client certificate (getpeercert()), if any
    who: dict[str, Any] | None = None             # the peer as routes read it (engine.tls.peer_values), per connection
    http_version: str = "1.1"
    path_params: dict[str, str] = field(default_factory=dict)
    template: str | None = None                   # the route template the path resolved to (set by a router's app)
    token: Any = None                             # the admin API's NamedToken that authenticated it (engine/admin)

    def __post_init__(self) -> None:
        if self.target.startswith("/"):     # origin form: all up to "?" is the path ("//x/y" too: no host in it)
            raw_path, _, query = self.target.partition("#")[0].partition("?")
        else:                               # absolute form (http://host/path?q), or "*"
            parts = urlsplit(self.target)
            raw_path, query = parts.path, parts.query
        self.path = unquote(raw_path) or "/"
        self.raw_path = raw_path or "/"
        self.query_string = query

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, each with every value given (``?a=1&a=2`` -> ``{"a": ["1", "2"]}``)."""
        return parse_qs(self.query_string, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    def text(self) -> str:
        charset = "utf-8"
        for param in (self.header("content-type") or "").split(";")[1:]:
            k, _, v = param.strip().partition("=")
            if k.lower() == "charset" and v:
                charset = v.strip('"')
        try:
            return self.body.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise HTTPError(400, f"request body is not valid {charset} text: {exc}") from None

    def json(self) -> Any:
        """The body as JSON; numbers with a fraction become ``Decimal`` (money stays exact)."""
        self._expect_type("application/json", "+json")
        import json  # stdlib: orjson has no parse_float hook and would give floats
        try:
            return json.loads(self.body.decode("utf-8"), parse_float=Decimal)
        except UnicodeDecodeError as exc:
            raise HTTPError(400, f"request body is not UTF-8 at byte offset {exc.start}",
                            extra={"offset": exc.start}) from None
        except json.JSONDecodeError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                 f"column {exc.colno} (char offset {exc.pos})",
                            extra={"line": exc.lineno, "column": exc.colno, "offset": exc.pos}) from None
        except RecursionError:
            # json's scanner recurses per [ and {: thousands deep escaped as a 500 with a traceback in the log
            raise HTTPError(400, "request body is not valid JSON: arrays and objects nest too deep") from None
        except ValueError as exc:     # an integer of more than 4300 digits (Python's int conversion limit)
            raise HTTPError(400, f"request body is not valid JSON: {str(exc).split(';')[0]}") from None

    def form(self) -> dict[str, list[str]]:
        """An ``application/x-www-form-urlencoded`` body."""
        self._expect_type("application/x-www-form-urlencoded")
        try:
            text = self.body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, f"request body is not a valid urlencoded form: byte {exc.start} is not ASCII "
                                 f"(a form's bytes are ASCII, others %-escaped)", extra={"offset": exc.start}) from None
        try:
            # errors="strict": %-escapes that are not UTF-8 (a Latin-1 %E9) are refused, not read as U+FFFD
            return parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=1000,
                            errors="strict") if self.body else {}
        except UnicodeDecodeError:
            raise HTTPError(400, f"request body is not a valid urlencoded form: {_form_not_utf8(text)}") from None
        except ValueError as exc:
            raise HTTPError(400, f"request body is not a valid urlencoded form: {_form_problem(self.body, exc)}") from None

    def xml(self) -> Any:
        """The body as an ``lxml`` element; entities are not resolved and nothing is fetched."""
        self._expect_type("application/xml", "text/xml", "+xml")
        from lxml import etree
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            return etree.fromstring(self.body, parser)
        except etree.XMLSyntaxError as exc:
            line, col = exc.position
            raise HTTPError(400, f"request body is not well-formed XML: {exc.msg} (line {line}, column {col})",
                            extra={"line": line, "column": col}) from None

    def _expect_type(self, *accepted: str) -> None:
        ct = self.content_type
        if any(ct == a or (a.startswith("+") and ct.endswith(a)) for a in accepted):
            return
        raise HTTPError(415, f"expected Content-Type {' or '.join(a if not a.startswith('+') else '*/*' + a for a in accepted)}, "
                             f"got {ct or 'none'!r}", extra={"accepted": list(accepted)})


def _form_not_utf8(text: str) -> str:
    """Which field's %-escapes are not UTF-8, by its place (never its value: it may be a name or an account)."""
    from urllib.parse import unquote_to_bytes

    pos = 0
    for i, name_value in enumerate(text.split("&"), 1):
        try:
            for part in name_value.split("=", 1):
                unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            return (f"field {i} (bytes {pos}..{pos + len(name_value) - 1}) has %-escapes that are not UTF-8 (a "
                    f"form's %-escaped bytes are UTF-8: é is %C3%A9, not the Latin-1 %E9); send the form in UTF-8")
        pos += len(name_value) + 1
    return "its %-escapes are not UTF-8; send the form in UTF-8"


def _form_problem(body: bytes, exc: ValueError) -> str:
    """Why ``parse_qs`` refused a form, by the field's place: its message quotes the whole field
    (``bad query field: '...'``), which may hold a card number or a name the channel cannot classify."""
    pos = 0
    for i, name_value in enumerate(body.decode("ascii").split("&"), 1):
        if not name_value:
            return f"field {i} (at byte {pos}) is empty (expected name=value pairs joined by '&')"
        if "=" not in name_value:
            return (f"field {i} (bytes {pos}..{pos + len(name_value) - 1}) has no '=' (expected name=value "
                    f"pairs joined by '&'; is the body another format? the content-type header says it is a form)")
        pos += len(name_value) + 1
    text = str(exc)
    return text if not text.startswith("bad query field") else "a field is not name=value"
