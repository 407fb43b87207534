"""One NATS connection for one channel, driven from trio through trio-asyncio.

nats-py is an asyncio library; each NATS channel opens its own trio-asyncio
loop (``session()``) and one client on it.  Trio code calls into nats-py with
``await link.aio(fn)(*args)``, from any trio task, while the session is open.

``connect()`` retries with back-off until connected (each failed attempt is
logged with the URL and the cause, and kept in ``last_error``); once
connected, nats-py reconnects by itself (forever, every ``reconnect_wait``)
and the link follows the state (``connected``, ``disconnects``,
``reconnects``).  Closing the session closes the client (bounded, shielded).
"""
from __future__ import annotations

import asyncio
import logging
import math
import ssl
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
import trio_asyncio

from engine.channels.nats_auth import NatsAuth, is_auth_error, is_cut
from engine.channels.options import ChannelConfigError, duration_above_zero, seconds
from engine.outage_log import OutageLog, masked_url
from engine.tls import NATS_TLS_HOST, NATS_TLS_NAMES, NATS_TLS_WORDS, client_tls_reason
from formats.component import OptionSpec

log = logging.getLogger("bsp.channel.nats")

URL = OptionSpec("url", "string",
                 "NATS server(s): \"nats://host:port\" (\"tls://host:port\": TLS required), several separated by "
                 "commas. Credentials go in the auth options, not here (a url is kept with the configuration's "
                 "sources).", required=True)
SUBJECT = OptionSpec("subject", "string", "The subject (a consume channel's filter may use * and >).",
                     required=True)
CONNECT_TIMEOUT = OptionSpec("connect_timeout", "duration",
                             "Time allowed for one connection attempt (the channel keeps retrying).",
                             default=Decimal(2))
RECONNECT_WAIT = OptionSpec("reconnect_wait", "duration",
                            "Pause between reconnection attempts after the connection is lost.",
                            default=Decimal("0.5"))
BACKOFF_MAX = 5.0
CLOSE_FLOOR = 0.5        # a session's close is given at least this long, whatever the grace (a close takes ms)
CANCEL_SLACK = 0.2       # and the client's other tasks, cancelled after it, at least this long to end
ABANDONED: list[Any] = []    # asyncio tasks a session left behind at its end: kept, never collected pending


def abandon(task: Any) -> None:
    """``task`` (an asyncio task that ignores its cancellation) left behind: out of its loop's
    ``all_tasks``, so trio-asyncio's loop teardown does not wait for it; kept referenced (the last 100), so
    that its coroutine is not collected, and its cleanup run on a closed loop, while bsp runs."""
    asyncio.tasks._unregister_task(task)
    task._log_destroy_pending = False      # said once, by the session's error line
    ABANDONED.append(task)
    del ABANDONED[:-100]


def _task_name(task: Any) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or task.get_name()


async def _until_done(tasks: list[Any], deadline: float) -> bool:
    """Wait until every asyncio task of ``tasks`` is done, or ``deadline`` (trio time); whether all are."""
    with trio.move_on_at(deadline):
        for t in tasks:
            if not t.done():
                done = trio.Event()
                t.add_done_callback(lambda _, done=done: done.set())
                await done.wait()
    return all(t.done() for t in tasks)


def _shown(url: str) -> str:
    """A url as an error may show it: credentials masked, also when the scheme is missing (``user:pass@host``)."""
    return masked_url(url) if "://" in url else ("***@" + url.rsplit("@", 1)[1] if "@" in url else url)


def parse_servers(channel: str, value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        shown = _shown(value) if isinstance(value, str) else value
        raise ChannelConfigError(f"channel {channel}: option url: expected \"nats://host:port\", got {shown!r} "
                                 f"(e.g. url = \"nats://127.0.0.1:4222\")")
    servers = [s.strip() for s in value.split(",") if s.strip()]
    for s in servers:
        if not s.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ChannelConfigError(
                f"channel {channel}: option url: {_shown(s)!r} has no scheme; expected nats://host:port "
                f"(e.g. url = \"nats://127.0.0.1:4222\")")
    return servers


def subject_option(channel: str, options: dict[str, Any], name: str = "subject") -> str:
    value = options.get(name)
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ChannelConfigError(f"channel {channel}: option {name}: expected a subject such as "
                                 f"\"payments.in\" (no spaces), got {value!r}")
    return value


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


class LinkStop:
    """``stop_within`` of a channel holding a ``NatsLink`` as ``self.link``: how long closing the NATS
    connection may take at the stop, the engine's grace period (the switchboard sets it); past it the
    client's stuck tasks are left behind (``NatsLink.close``)."""

    link: "NatsLink"

    @property
    def stop_within(self) -> float:
        return self.link.close_within

    @stop_within.setter
    def stop_within(self, seconds: float) -> None:
        self.link.close_within = float(seconds)


class NatsLink:
    def __init__(self, channel: str, options: dict[str, Any], *, load: bool = True) -> None:
        """``load`` false (``bsp check``): the auth and TLS options checked, no secret or file read."""
        self.channel = channel
        self.servers = parse_servers(channel, options.get("url"))
        # token, user and password, or credentials file; TLS (engine.channels.nats_auth)
        self.auth = NatsAuth.from_options(channel, options, self.servers, load=load)
        # ``url`` is what log lines, errors and ``bsp status`` show: a user and password (nats://user:pass@host)
        # or a token in it masked. The servers keep theirs for connecting.
        self.url = ",".join(masked_url(s) for s in self.servers)
        self.connect_timeout = duration_above_zero(channel, options, "connect_timeout", 2.0)
        self.reconnect_wait = seconds(options.get("reconnect_wait"), 0.5)
        self.loop: Any = None
        # how long the session's close may take: the engine's grace period (Switchboard sets it)
        self.close_within = 10.0
        self.nc: Any = None
        self.js: Any = None
        self.last_error = ""
        self.ever_connected = trio.Event()
        self.disconnects = 0
        self.reconnects = 0
        self.connect_attempts = 0
        self.down_until = -math.inf
        # the server refusing the credentials: said once per outage, not at every attempt
        self.refused = OutageLog(log, channel, self.url, unit="connect attempt")

    @property
    def connected(self) -> bool:
        return self.nc is not None and bool(self.nc.is_connected)

    def aio(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``fn`` (an asyncio coroutine function) made awaitable from trio, on this link's loop."""
        if self.loop is None:
            raise RuntimeError(f"channel {self.channel}: NATS session not open")
        return trio_asyncio.aio_as_trio(fn, loop=self.loop)

    @asynccontextmanager
    async def session(self) -> AsyncIterator["NatsLink"]:
        async with trio_asyncio.open_loop() as loop:
            self.loop = loop
            try:
                yield self
            finally:
                nc, self.nc, self.js = self.nc, None, None
                with trio.CancelScope(shield=True):
                    await self._wind_up(loop, nc)
                self.loop = None

    async def _wind_up(self, loop: Any, nc: Any) -> None:
        """Close the client and end every asyncio task of the loop within ``close_within`` (the engine's
        grace period, at least ``CLOSE_FLOOR``).  trio-asyncio waits for an asyncio task until it ends, a
        cancelled one too: a nats-py task that loses its cancellation (Python 3.11's ``wait_for``, a
        ``wait_closed()`` that never returns) held the channel's stop, and the engine's, for ever.  Those
        still running at the bound are left behind (unregistered from the loop, kept referenced), with an
        error line naming them, so that the engine stops."""
        bound = max(self.close_within, CLOSE_FLOOR)
        deadline = trio.current_time() + bound
        closing = None
        if nc is not None:
            closing = loop.create_task(nc.close())
            if not await _until_done([closing], deadline):
                closing.cancel()
            elif not closing.cancelled() and closing.exception() is not None:  # a broken client: nothing to save
                log.debug("channel %s: close: %s", self.channel, describe(closing.exception()))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            if t is not closing:
                t.cancel()
        if pending:      # a cancelled task ends within a turn or two of the loop: a moment for it, always
            await _until_done(pending, max(deadline, trio.current_time() + CANCEL_SLACK))
        stuck = [t for t in pending if not t.done()]
        if stuck:
            for t in stuck:
                abandon(t)
            names = ", ".join(sorted({_task_name(t) for t in stuck}))
            log.error("channel %s: the NATS client (%s) did not stop within %gs (the grace period, --grace, "
                      "at least %gs): %d nats-py task(s) ignored their cancellation (%s); left behind so that "
                      "the channel stops (its connection may stay open until bsp exits)", self.channel,
                      self.url, bound, CLOSE_FLOOR, len(stuck), names)

    async def connect(self) -> None:
        """Connect, retrying with back-off (0.1 s doubling to 5 s) until it works."""
        backoff = 0.1
        while True:
            err = await self._attempt()
            if err is None:
                return
            self.down_until = trio.current_time() + backoff
            if is_auth_error(err):
                err = self.auth.refused_text(self.url, err)
                self.last_error = err
                self.refused.failed(err, key="refused")
            elif self.refused.down and is_cut(err):     # a refusing server may close before its -ERR is read
                self.refused.failed(f"channel {self.channel}: NATS at {self.url}: {err}", loud=False)
            else:
                cut = is_cut(err)
                if self.auth.requires_tls and cut:     # TLS 1.3: a client certificate refused after
                    err += (" (the server closed the TLS connection: " + (     # the handshake, at the first write
                        "it may refuse our client certificate (tls_cert): it must chain to the CA the server trusts"
                        if self.auth.has_cert else
                        "it may require a client certificate: set tls_cert and tls_key on this channel") +
                        "; the server's log says why)")
                elif self.auth.method and cut:
                    # a server refusing the login writes its -ERR and closes; our PING still unread there
                    # makes that close a reset, which discards the -ERR before it is read
                    err += (f" (the server closed the connection during the login, {self.auth.method}: it may "
                            f"refuse the credentials, its reason lost with the connection; check the secret "
                            f"against the server's accounts; the server's log says why)")
                first = not self.last_error or self.last_error != err
                self.last_error = err
                hint = ("the server's log says why" if cut else
                        "is the server's certificate for this host, from tls_ca's CA?" if self.auth.requires_tls
                        else "is nats-server running there?")
                (log.error if first else log.debug)(
                    "channel %s: cannot connect to NATS at %s: %s (retrying every %gs at most; %s)",
                    self.channel, self.url, err, BACKOFF_MAX, hint)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _attempt(self) -> str | None:
        from engine.channels.nats_pong import Client     # nats-py's, letting a late PONG pass

        nc = Client()
        nc.requires_tls = self.auth.requires_tls
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, ssl.SSLError):           # what to fix, not OpenSSL's source line
                errors.append("TLS: " + client_tls_reason(exc, has_cert=self.auth.has_cert, words=NATS_TLS_WORDS,
                                                          names=NATS_TLS_NAMES, host=NATS_TLS_HOST))
            else:
                errors.append(describe(exc))
            if nc.is_connected or self.nc is nc:
                if is_auth_error(describe(exc)):        # each reconnect attempt: once per outage
                    self.refused.failed(self.auth.refused_text(self.url, describe(exc)), key="refused")
                elif self.refused.down and is_cut(describe(exc)):
                    self.refused.failed(f"channel {self.channel}: NATS at {self.url}: {describe(exc)}", loud=False)
                elif not nc.is_connected:
                    # a reconnection attempt (every reconnect_wait): said once per outage and kind of error,
                    # then a reminder a minute (engine/outage_log.py), not a warning every attempt
                    self.last_error = describe(exc)
                    self.refused.failed(f"channel {self.channel}: cannot reach NATS at {self.url}: {describe(exc)} "
                                        f"(reconnecting every {self.reconnect_wait:g}s)", key=type(exc).__name__)
                else:
                    log.warning("channel %s: NATS error: %s", self.channel, describe(exc))

        async def on_disconnected() -> None:
            if self.nc is nc:
                self.disconnects += 1
                self.refused.failed(f"channel {self.channel}: disconnected from NATS at {self.url}; reconnecting",
                                    key="disconnected")

        async def on_reconnected() -> None:
            self.reconnects += 1
            self.last_error = ""
            self.refused.end(f"channel {self.channel}: NATS at {self.url} accepted the channel's credentials again"
                             if "refused" in self.refused.said else
                             f"channel {self.channel}: reconnected to NATS at {self.url}")
            log.info("channel %s: reconnected to NATS at %s", self.channel, nc.connected_url.netloc.rsplit("@", 1)[-1]
                     if nc.connected_url else self.url)

        self.connect_attempts += 1
        failure: str | None = None
        with trio.move_on_after(self.connect_timeout) as scope:
            try:
                await self.aio(nc.connect)(
                    self.servers, name=f"bsp:{self.channel}", connect_timeout=self.connect_timeout,
                    # the first connection: two tries, then our own back-off (and a log line) takes over
                    allow_reconnect=True, max_reconnect_attempts=1, reconnect_time_wait=self.reconnect_wait,
                    error_cb=on_error, disconnected_cb=on_disconnected, reconnected_cb=on_reconnected,
                    **self.auth.connect_options())
            except Exception as exc:
                failure = errors[-1] if errors else describe(exc)
            else:
                nc.options["max_reconnect_attempts"] = -1     # once connected: reconnect forever
        if scope.cancelled_caught:
            failure = (errors[-1] if errors else "no answer") + f" (gave up after {self.connect_timeout:g}s)"
        if failure is None and nc.is_connected:
            self.nc, self.js = nc, nc.jetstream()
            self.last_error = ""
            self.down_until = -math.inf
            self.ever_connected.set()
            self.refused.end(f"channel {self.channel}: connected to NATS at {self.url}")
            log.info("channel %s: connected to NATS at %s", self.channel, self.url)
            return None
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:
                await self.aio(nc.close)()
            except Exception:  # the half-open client is being discarded
                pass
        return failure or "not connected"

    @property
    def down_reason(self) -> str:
        """Why the link is not connected, as ``bsp status`` shows it (its ``last_error``): what failed and where.
        ``last_error`` holds a failed attempt's cause as nats-py raised it (``ConnectionRefusedError: [Errno
        111] ...``), which names neither NATS nor the server; a refusal of the credentials is worded already
        (``channel NAME: NATS at ... refused ...``).  Empty: no failure since the last connection."""
        why = self.last_error
        if not why or why.startswith(f"channel {self.channel}: "):
            return why
        return f"cannot reach NATS at {self.url}: {why}"

    def unreachable_text(self) -> str:
        why = self.last_error or "not connected yet"
        return f"channel {self.channel}: NATS at {self.url} unreachable: {why}"


async def ensure_stream(link: NatsLink, stream: str, subjects: list[str], *, create: bool,
                        duplicate_window: float | None = None) -> None:
    """Check that ``stream`` exists; create it (file storage) when allowed.  Raises ChannelConfigError."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    js = link.js
    try:
        info = await link.aio(js.stream_info)(stream)
    except NotFoundError:
        pass
    else:
        have = list(info.config.subjects or [])
        missing = [s for s in subjects if not any(stream_takes(h, s) for h in have)]
        if have and missing:     # (a stream without subjects, a mirror or sourced one, is not checked)
            # nats-server accepts a consumer filtering on a subject its stream never stores: it would
            # wait for ever; a publish to it finds no stream
            raise ChannelConfigError(
                f"channel {link.channel}: JetStream stream {stream!r} on {link.url} does not take subject "
                f"{missing[0]!r} (its subjects: {', '.join(have)}); use a subject the stream takes, another "
                f"stream, or add the subject to the stream (nats stream edit {stream} --subjects ...)")
        return
    if not create:
        raise ChannelConfigError(
            f"channel {link.channel}: JetStream stream {stream!r} does not exist on {link.url}; create it "
            f"(nats stream add {stream} --subjects ...) or set create_stream = true")
    cfg = StreamConfig(name=stream, subjects=subjects)
    if duplicate_window is not None:
        cfg.duplicate_window = duplicate_window
    await link.aio(js.add_stream)(cfg)
    log.info("channel %s: created JetStream stream %s for %s", link.channel, stream, ", ".join(subjects))


def stream_takes(pattern: str, subject: str) -> bool:
    """Whether every subject matching ``subject`` (wildcards allowed) matches the stream subject ``pattern``."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or s[i] == ">" or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


async def until_set_up(attempt: Callable[[], Awaitable[Any]], failure: Callable[[Exception], str],
                       report: Callable[[str], None]) -> Any:
    """``await attempt()`` until it succeeds, and return its result.

    After a failure, ``report`` gets the text (a ``ChannelConfigError`` as it
    is, anything else as ``failure(exc)`` words it), which is also logged; the
    next attempt comes after 0.2 s, doubling up to ``BACKOFF_MAX``.  On success
    ``report("")`` clears it.
    """
    backoff = 0.2
    while True:
        try:
            result = await attempt()
        except ChannelConfigError as exc:
            text = str(exc)
        except Exception as exc:
            text = failure(exc)
        else:
            report("")
            return result
        report(text)
        log.error("%s", text)
        await trio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX)
