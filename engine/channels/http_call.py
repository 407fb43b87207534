"""``http.call``: a `call` target over HTTP(S) with httpx (pooled, TLS/mTLS, secrets from env or files).

Same interface as ``tcp.connect`` for the ``call`` step: ``request_many(payloads,
timeout) -> list[bytes | ChannelError]``.  Each payload (the call's encoded
fields) is the body of one request; the requests of a batch run concurrently on
the pooled client.  A 2xx answer gives its body (an ``HttpReply``: bytes with
``.status`` and ``.headers``; a text answer in a declared charset other than
UTF-8 is transcoded to UTF-8, ``http_media.answer_in_utf8``); so does a status listed in ``answer_status``
(e.g. ``["2xx", "404"]``: a 404 that carries a business answer).  Any other
status fails the call with kind ``refused`` naming the status and the start of
the body (a 3xx: its Location; redirects are never followed).  A route reads the
status with ``http_status(NAME)``.  Cannot connect (the TLS reason included) or
no pooled connection free within the timeout (the request was not sent) ->
``unreachable``; no answer within the timeout -> ``timeout``; the connection
broke or the answer is not HTTP -> ``lost``.  Each request is sent once: httpx
retries nothing, and neither does this channel.

Secrets never appear in the route file: ``auth_bearer_env`` / ``auth_bearer_file``
and header values written ``env:NAME`` or ``file:PATH`` are read when the
channel is built; a literal value for a header whose name looks secret
(authorization, *key*, *token*, *secret*, *password*) is refused.

With ``signature_header`` every request body is signed with the shared secret
(``engine/http/signature.py``; plus the signing time with
``signature_timestamp_header``); with ``signature_verify_answer = true`` an
answer whose body is taken must carry a good signature too, else the call
fails with kind ``unauthenticated`` naming the URL and the check that failed.
"""
from __future__ import annotations

import logging
import re
import socket
from decimal import Decimal
from typing import Any

import httpx
import trio

from engine.channels.base import CallTimeout, ChannelError, ConnectionLost, Unreachable, io_reason, request_one
from engine.channels.failure_log import FailureLog
from engine.outage_log import masked_url
from engine.channels.http_inflate import BadCoding, Inflater, Over
from engine.channels.http_media import answer_in_utf8
from engine.channels.options import ChannelConfigError, built_check, read_secret, seconds
from engine.http.signature import BodySignature, signature_options
from engine.tls import HTTP_TLS_WORDS, client_context
from formats.component import ComponentSpec, OptionSpec

log = logging.getLogger("bsp.channel.http")
MAX_REPLY = 64 << 20          # the largest answer body read (option max_reply)

_SECRET_NAME = re.compile(r"authorization|key|token|secret|password|cookie", re.I)


class HttpReply(bytes):
    """A response body that also carries the HTTP status and headers."""

    status: int = 200
    headers: dict[str, str] = {}

    @property
    def http_status(self) -> int:       # what the language's http_status(NAME) reads
        return self.status

    @property
    def http_headers(self) -> dict[str, str]:     # http_header(NAME, "name"): names in lower case
        return self.headers


class Refused(ChannelError):
    kind = "refused"


class Unauthenticated(ChannelError):
    kind = "unauthenticated"


_STATUS = re.compile(r"^[1-5](xx|\d\d)$")


def answer_statuses(channel: str, value: Any) -> tuple[frozenset[int], frozenset[int]]:
    """``answer_status = ["2xx", "404"]`` -> (status classes, single statuses) whose body is the
    call's answer; without the option, 2xx.  ``ChannelConfigError`` naming the option otherwise."""
    if value is None:
        return frozenset({2}), frozenset()
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ChannelConfigError(f"channel {channel}: option answer_status: an empty list takes no answer; "
                                 f"leave the option out for 2xx")
    classes: set[int] = set()
    codes: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if isinstance(item, bool) or not _STATUS.match(text):
            raise ChannelConfigError(f"channel {channel}: option answer_status: {item!r} is not an HTTP status "
                                     f"or class; expected e.g. answer_status = [\"2xx\", \"404\"]")
        if text.endswith("xx"):
            classes.add(int(text[0]))
        else:
            codes.add(int(text))
    return frozenset(classes), frozenset(codes)


def http_answer(channel: str, method: str, url: Any, accept: tuple[frozenset[int], frozenset[int]],
                status: int, headers: dict[str, str], body: bytes) -> HttpReply | Refused:
    """The call's result for an HTTP answer: its body (an ``HttpReply``) when ``accept`` takes the
    status, else ``Refused`` naming the status and the start of the body."""
    if status // 100 in accept[0] or status in accept[1]:
        body, _ = answer_in_utf8(headers.get("content-type"), body)
        reply = HttpReply(body)
        reply.status = status
        reply.headers = headers
        return reply
    excerpt = body[:200].decode("utf-8", "replace")
    if 300 <= status < 400:         # httpx follows no redirect: say where it pointed and how to take it
        where = headers.get("location")
        excerpt = (f"a redirect{' to ' + where if where else ''}, not followed (point url there, or list "
                   f"{status} in answer_status and read http_header(NAME, \"location\")){': ' + excerpt if excerpt else ''}")
    return Refused(f"channel {channel}: {method} {url} answered HTTP {status}: {excerpt}", channel=channel)


def _secret(channel: str, option: str, spec: str, load: bool = True) -> str:
    """``env:NAME`` or ``file:PATH`` -> the value (stripped of a trailing newline); with ``load``
    false (``bsp check``) only the form is checked and the value is empty."""
    how, _, where = spec.partition(":")
    if not load and how in ("env", "file") and where:
        return ""
    if how in ("env", "file"):
        return read_secret(channel, option, how, where)
    raise ChannelConfigError(f"channel {channel}: option {option}: expected env:NAME or file:PATH, got {spec!r}")


def parse_headers(channel: str, entries: Any, load: bool = True) -> dict[str, str]:
    """``["Accept:application/json", "X-Api-Key:env:BILLER_KEY", "X-Sig:file:/run/secrets/sig"]``."""
    out: dict[str, str] = {}
    if entries is None:
        return out
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ChannelConfigError(f"channel {channel}: option headers: expected a list such as "
                                 f'["X-Api-Key:env:BILLER_KEY"], got {entries!r}')
    for i, e in enumerate(entries, 1):
        name, sep, value = str(e).partition(":")
        name = name.strip()
        if not sep or not name or not value:
            raise ChannelConfigError(f"channel {channel}: option headers: entry {i} ({e!r}) is not NAME:VALUE")
        if value.startswith(("env:", "file:")):
            value = _secret(channel, f"headers entry {i}", value, load)
        elif _SECRET_NAME.search(name):
            raise ChannelConfigError(
                f"channel {channel}: option headers: entry {i}: header {name} looks secret but its value is "
                f"written in the route file; write \"{name}:env:VARIABLE\" or \"{name}:file:PATH\"")
        out[name] = value
    return out


class HttpConnector:
    role = "connect"

    def __init__(self, name: str, options: dict[str, Any], *, load: bool = True) -> None:
        """``load=False`` (``bsp check``): every option checked, no secret and no TLS file read."""
        self.name = name
        url = options.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/]+", url):
            raise ChannelConfigError(f"channel {name}: option url: expected \"http://host:port/path\" or "
                                     f"\"https://...\", got {url!r}")
        self.url = url
        self.address = self.shown_url = masked_url(url)    # what logs, errors and bsp status show: no credentials
        self.method = str(options.get("method") or "POST").upper()
        self.accept = answer_statuses(name, options.get("answer_status"))
        self.timeout = seconds(options.get("timeout"), 30.0)
        self.max_reply = options.get("max_reply", MAX_REPLY)
        if isinstance(self.max_reply, bool) or not isinstance(self.max_reply, int) or self.max_reply <= 0:
            raise ChannelConfigError(f"channel {name}: option max_reply: expected a positive number of bytes, "
                                     f"got {self.max_reply!r}")
        self.connect_timeout = seconds(options.get("connect_timeout"), 3.0)
        self.max_connections = int(options.get("max_connections") or 100)
        self.headers = {"content-type": options.get("content_type") or "application/json"}
        self.headers.update(parse_headers(name, options.get("headers"), load))
        if not any(k.lower() == "accept-encoding" for k in self.headers):
            # the codings the channel inflates itself within max_reply (engine/channels/http_inflate.py), not
            # those httpx would add when brotli or zstandard are installed
            self.headers["accept-encoding"] = "gzip, deflate"
        bearer_env, bearer_file = options.get("auth_bearer_env"), options.get("auth_bearer_file")
        if bearer_env and bearer_file:
            raise ChannelConfigError(f"channel {name}: give auth_bearer_env or auth_bearer_file, not both")
        if bearer_env:
            self.headers["authorization"] = "Bearer " + _secret(name, "auth_bearer_env", f"env:{bearer_env}", load)
        elif bearer_file:
            self.headers["authorization"] = "Bearer " + _secret(name, "auth_bearer_file", f"file:{bearer_file}", load)
        ca, cert, key = options.get("ca"), options.get("cert"), options.get("key")
        self.has_cert = cert is not None
        self.verify: Any = True
        if ca is not None or cert is not None:
            if not url.startswith("https"):
                given = "ca" if ca is not None else "cert"
                raise ChannelConfigError(f"channel {name}: option {given} (TLS, like ca / cert / key) needs an "
                                         f"https:// url, not {url.split(':', 1)[0]}://")
            try:
                self.verify = client_context(ca=ca, cert=cert, key=key) if load else True
            except ValueError as exc:
                raise ChannelConfigError(f"channel {name}: {exc}") from None
        self.signature = BodySignature.from_options(name, options, load=load)
        self.verify_answer = options.get("signature_verify_answer") or False
        if not isinstance(self.verify_answer, bool):
            raise ChannelConfigError(f"channel {name}: option signature_verify_answer: expected true or false, "
                                     f"got {self.verify_answer!r}")
        if self.verify_answer and self.signature is None:
            raise ChannelConfigError(f"channel {name}: option signature_verify_answer needs signature_header "
                                     f"(and a key): the answer's signature is read from that header")
        self._client: httpx.AsyncClient | None = None
        self._slots: trio.Semaphore | None = None     # one per pooled connection: a call waits here, not in httpx
        self.calls = 0
        self.errors: dict[str, int] = {}
        # a streak of failed calls: logged once, not once a call (timeouts: by engine/ops/health.CallHealth)
        self.failures = FailureLog(log, name, quiet=frozenset({"timeout"}), peer=self.shown_url)
        self.tls = url.startswith("https")
        self.peer_cert: Any = None          # engine.certexpiry.CertExpiry of the counterpart's last certificate
        self._peer_stream: Any = None       # the connection it was read on
        self.metrics: Any = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        async with httpx.AsyncClient(verify=self.verify, limits=limits, timeout=timeout,
                                     headers=self.headers) as client:
            self._client = client
            self._slots = trio.Semaphore(self.max_connections)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._client = None

    request = request_one

    async def request_many(self, payloads: list[bytes], timeout: float | None = None) -> list[bytes | ChannelError]:
        if not payloads:
            return []
        limit = self.timeout if timeout is None else timeout
        client = self._client
        if client is None:
            return [Unreachable(f"channel {self.name}: not running", channel=self.name)] * len(payloads)
        out: list[bytes | ChannelError | None] = [None] * len(payloads)

        async def one(i: int, body: bytes) -> None:
            out[i] = await self._one(client, body, limit)

        if len(payloads) == 1:
            await one(0, payloads[0])
        else:
            async with trio.open_nursery() as n:
                for i, p in enumerate(payloads):
                    n.start_soon(one, i, p)
        return out  # type: ignore[return-value]

    async def _exchange(self, client: httpx.AsyncClient, body: bytes) -> tuple[int, dict[str, str], bytes | str]:
        """One request: (status, headers in lower case, body), the body a text saying why it was not read when
        it is over max_reply (by its Content-Length, or as it streams in, inflated: a gzip or deflate body is
        inflated here, never past max_reply, ``http_inflate``): a counterpart cannot make the engine hold an
        answer of any size, nor inflate one (a decompression bomb) until the call's timeout."""
        signed = self.signature.headers_for(body) if self.signature is not None else None
        async with client.stream(self.method, self.url, content=body, headers=signed) as resp:
            if self.tls:
                self._note_peer(resp)
            headers = {k.lower(): v for k, v in resp.headers.items()}
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_reply:
                return resp.status_code, headers, f"Content-Length {declared}"
            inflater = Inflater(headers.get("content-encoding"), self.max_reply)
            content = bytearray()
            raw = 0
            why = None
            # The raw body, inflated here within max_reply.  Past it (or not inflating) nothing more is inflated and
            # the connection under the answer is closed: the read then ends on its error (a counterpart streaming
            # on is not read until the timeout).  Leaving the loop instead would abandon httpcore's stream
            # generators half-way (they warn as they are collected); what they had buffered is read, not kept.
            try:
                async for chunk in resp.aiter_raw():
                    raw += len(chunk)
                    if why is not None:
                        continue
                    try:
                        content += inflater.feed(chunk)
                    except Over:
                        why, content = self._inflated_over(inflater, raw), bytearray()
                    except BadCoding as exc:
                        why, content = f"bad:{exc}", bytearray()
                    if why is not None:
                        await _cut(resp)
            except (httpx.TransportError, OSError):
                if why is None:
                    raise
            if why is None:
                try:
                    content += inflater.end()
                except Over:
                    why = self._inflated_over(inflater, raw)
                except BadCoding as exc:
                    why = f"bad:{exc}"
            if why is not None:
                return resp.status_code, headers, why
            if inflater.coding is not None:     # the body as the route reads it: no longer encoded
                headers = {k: v for k, v in headers.items() if k not in ("content-encoding", "content-length")}
            return resp.status_code, headers, bytes(content)

    def _inflated_over(self, inflater: Inflater, raw: int) -> str:
        return (f"{inflater.coding} body inflating past it after {raw} bytes as sent" if inflater.coding
                else f"{raw} bytes read")

    def _note_peer(self, resp: httpx.Response) -> None:
        """The counterpart's certificate expiry, read once per connection (a response on the connection
        the last one came on reads nothing); a new certificate expiring within WARN_DAYS is logged once."""
        stream = resp.extensions.get("network_stream")
        if stream is None or stream is self._peer_stream:
            return
        self._peer_stream = stream
        sslobj = stream.get_extra_info("ssl_object")
        from engine.certexpiry import noted_peer
        entry = noted_peer(self.name, self.address, sslobj.getpeercert() if sslobj is not None else None,
                           self.peer_cert, log)
        if entry is None:
            return
        self.peer_cert = entry
        if self.metrics is not None:
            self.metrics.peer_cert(entry)

    def attach_metrics(self, metrics: Any) -> None:
        """Report the counterpart's certificate expiry to ``engine.metrics.Metrics`` (role peer)."""
        self.metrics = metrics

    async def _one(self, client: httpx.AsyncClient, body: bytes, limit: float) -> bytes | ChannelError:
        self.calls += 1
        deadline = trio.current_time() + limit
        slots = self._slots
        assert slots is not None
        # Wait for a connection here, not in httpx's pool: a call that gets none within its timeout was
        # never sent, so it is `unreachable` (nothing to undo), not a `timeout` whose call is in doubt.
        acquired = False
        with trio.move_on_at(deadline):
            await slots.acquire()
            acquired = True
        if not acquired:
            return self._failed(Unreachable(
                f"channel {self.name}: {self.method} {self.shown_url} not sent: all {self.max_connections} connections "
                f"(max_connections) stayed busy for {limit:g}s; raise max_connections or the timeout",
                channel=self.name))
        try:
            return await self._sent(client, body, limit, deadline)
        finally:
            slots.release()

    def _failed(self, err: ChannelError) -> ChannelError:
        self.errors[err.kind] = self.errors.get(err.kind, 0) + 1
        self.failures.failure(err.kind, str(err))
        return err

    async def _sent(self, client: httpx.AsyncClient, body: bytes, limit: float, deadline: float) -> bytes | ChannelError:
        err: ChannelError
        with trio.move_on_at(deadline):
            try:
                status, headers, content = await self._exchange(client, body)
            except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                what = (f"connect timed out after {self.connect_timeout:g}s" if isinstance(exc, httpx.ConnectTimeout)
                        else "no pooled connection came free; not sent")
                err = Unreachable(f"channel {self.name}: cannot connect to {self.shown_url}: {what}", channel=self.name)
            except httpx.TimeoutException as exc:
                err = CallTimeout(f"channel {self.name}: no answer from {self.shown_url} within {limit:g}s "
                                  f"({type(exc).__name__})", channel=self.name)
            except httpx.ConnectError as exc:
                err = Unreachable(f"channel {self.name}: cannot connect to {self.shown_url}: "
                                  f"{io_reason(exc, has_cert=self.has_cert, words=HTTP_TLS_WORDS)}", channel=self.name)
            except httpx.RemoteProtocolError as exc:
                err = ConnectionLost(f"channel {self.name}: {self.shown_url} did not answer valid HTTP: {io_reason(exc)}",
                                     channel=self.name)
            except (httpx.TransportError, OSError) as exc:
                err = ConnectionLost(f"channel {self.name}: connection to {self.shown_url} broke: "
                                     f"{io_reason(exc, has_cert=self.has_cert, words=HTTP_TLS_WORDS)}", channel=self.name)
            else:
                if isinstance(content, str) and content.startswith("bad:"):
                    err = Refused(f"channel {self.name}: {self.method} {self.shown_url} answered {status} with a body "
                                  f"that is not its Content-Encoding ({content[4:]}); not read", channel=self.name)
                elif isinstance(content, str):      # not kept: memory stays bounded, nothing inflated past it
                    err = Refused(f"channel {self.name}: {self.method} {self.shown_url} answered {status} with a body "
                                  f"over max_reply ({self.max_reply} bytes; {content}); not read",
                                  channel=self.name)
                else:
                    got = http_answer(self.name, self.method, self.shown_url, self.accept, status, headers, content)
                    if isinstance(got, HttpReply):
                        failed = (self.signature.check(lambda n: headers.get(n.lower()), content)  # type: ignore[union-attr]
                                  if self.verify_answer else None)
                        if failed is None:
                            self.failures.answered()
                            return got
                        err = Unauthenticated(f"channel {self.name}: {self.method} {self.shown_url} answered {status} "
                                              f"without a good signature: {failed}", channel=self.name)
                    else:
                        err = got
            return self._failed(err)
        return self._failed(CallTimeout(f"channel {self.name}: no answer from {self.shown_url} within {limit:g}s",
                                        channel=self.name))


async def _cut(resp: httpx.Response) -> None:
    """Shut the connection an answer is being read on down (an answer not read on: over max_reply): the next
    read of it ends (the answer cut short: an error), and the pool drops it as expired if the answer had
    ended anyway.  Closing the stream itself would leave the pool a closed socket it then polls."""
    stream = resp.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:          # already gone: nothing more comes from it either
            pass


def build(decl: Any) -> HttpConnector:
    return HttpConnector(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="http.call",
    doc=(
        "Call a counterpart over HTTP(S) with a pooled httpx client, used by `call` steps like "
        "`tcp connect`. The call's encoded fields are the request body; a 2xx answer's body (or "
        "one of a status in `answer_status`) is decoded by the call's reply format, and the route "
        "reads `http_status(NAME)` and `http_header(NAME, \"name\")`. A JSON, form or text answer whose "
        "Content-Type declares another charset than UTF-8 (`iso-8859-1`, `windows-1252`, `utf-16`) is read in "
        "that charset (the counterpart has acted on it: it is not refused); XML follows its own declaration. "
        "Another status fails the deal with kind `refused` "
        "(the status and the start of the body in the reason; redirects are not followed); cannot connect: `unreachable`; no "
        "answer in `timeout`: `timeout`; a broken connection or an answer that is not HTTP: `lost`. "
        "Secrets come from the environment or files (`auth_bearer_env`, `auth_bearer_file`, header "
        "values `env:NAME` / `file:PATH`); a literal value for a secret-looking header is refused. "
        "With `signature_header` each request body is signed (HMAC-SHA256, AES-CMAC or retail DES over "
        "the body, or TIMESTAMP.body); `signature_verify_answer` checks the answer's signature "
        "(a missing or bad one fails the call as `unauthenticated`)."
    ),
    options=(
        OptionSpec("url", "string", "The endpoint, \"http(s)://host:port/path\".", required=True),
        OptionSpec("method", "string", "HTTP method of each call.", default="POST"),
        OptionSpec("timeout", "duration", "Time allowed for the whole answer (a call's own timeout wins).",
                   default=Decimal(30)),
        OptionSpec("connect_timeout", "duration", "Time allowed to connect.", default=Decimal(3)),
        OptionSpec("answer_status", "list", "HTTP statuses whose body is the call's answer, as classes or "
                   "codes (e.g. [\"2xx\", \"404\", \"409\"]); any other status fails the call (`refused`).",
                   default=None),
        OptionSpec("max_connections", "int", "Pooled connections at most; a call that gets none within its "
                   "timeout is not sent (`unreachable`).", default=100),
        OptionSpec("max_reply", "int", "Largest answer body read, in bytes; a bigger one (by its Content-Length, "
                   "or as it streams in) is not read and fails the call as `refused`.", default=MAX_REPLY),
        OptionSpec("content_type", "string", "Content-Type of the request body.", default="application/json"),
        OptionSpec("headers", "list", "Extra headers, \"Name:value\", \"Name:env:VARIABLE\" or "
                   "\"Name:file:PATH\".", default=None),
        OptionSpec("auth_bearer_env", "string", "Environment variable holding a bearer token.", default=None),
        OptionSpec("auth_bearer_file", "path", "File holding a bearer token (a secret: not kept in the ledger's configuration versions, need not exist for bsp check).", default=None, secret=True),
        OptionSpec("ca", "path", "CA bundle the server certificate must chain to (default: system roots).",
                   default=None),
        OptionSpec("cert", "path", "Client certificate for mutual TLS (PEM).", default=None),
        OptionSpec("key", "path", "Private key of `cert` (a secret, as auth_bearer_file).", default=None, secret=True),
        *signature_options("Answers carry it too when signature_verify_answer is on."),
        OptionSpec("signature_verify_answer", "bool", "Check the signature of each answer taken (2xx or "
                   "`answer_status`) with the same header, key and timestamp rules; a missing or bad one fails "
                   "the call (`unauthenticated`).", default=False),
    ),
    build=build,
    check=built_check(HttpConnector, load=False),
    examples=(
        'channel biller_api = http call {\n'
        '    url             = "https://biller.example:8443/payments"\n'
        '    timeout         = 3s\n'
        '    auth_bearer_env = "BILLER_TOKEN"\n'
        '    headers         = ["X-Api-Key:env:BILLER_KEY"]\n'
        '}',
    ),
)
