"""``tcp.listen``: accept connections from a client (e.g. the mainframe) and answer on each."""
from __future__ import annotations

import itertools
import logging
import socket
from decimal import Decimal
from typing import Any

import trio

from engine.channels.base import ConnInfo, ExchangeHandler, serve_stream
from engine.channels.churn import ConnectChurn
from engine.channels.conn_room import Activity, Room, cap_place
from engine.channels.idle import IdleStream
from engine.channels.listen_handoff import ListenSockets
from engine.channels.retire import SEND_WAIT, GentleClose, StopReading
from engine.channels.staged import Staging
from engine.channels.options import ADDRESS, ChannelConfigError, built_check, parse_address, seconds
from engine.channels.tcp_tls import TLS_LISTEN_OPTIONS, Gate, read_listen_tls
from engine.channels.per_client import ClientCap, per_client_option
from engine.faultlog import FaultLog
from engine.tls import peer_values
from formats.component import ComponentSpec, OptionSpec
from formats.framing import FRAMING_OPTIONS, check_framing, framer_factory

log = logging.getLogger("bsp.channel.tcp")

_CONN_NUMBERS = itertools.count(1)
MAX_CONNECTIONS = 1000      # option max_connections
PER_CLIENT = 0              # option max_connections_per_client: off (a mainframe's connections share its address)
FRAME_TIMEOUT = 30.0        # option frame_timeout (not for framing = eof: there the frame is the connection)


def set_nodelay(stream: trio.SocketStream) -> None:
    """TCP_NODELAY on every socket: a reply must not wait for Nagle (~40 ms spikes)."""
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)


class TcpListener:
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any], *, load_tls: bool = True) -> None:
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))
        self._new_framer = framer_factory(name, options, echo_header=True)
        self.framing, self.max_frame = self._new_framer.framing, self._new_framer.max_frame
        self.backlog = int(options.get("backlog", 128))
        self.max_connections = options.get("max_connections", MAX_CONNECTIONS)
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int) \
                or self.max_connections < 1:
            raise ChannelConfigError(f"channel {name}: option max_connections: expected a positive whole number, "
                                     f"got {self.max_connections!r}")
        self.idle_timeout = seconds(options.get("idle_timeout"), 0.0)   # 0: wait for ever
        self.frame_timeout = seconds(options.get("frame_timeout"), 0.0 if self.framing == "eof" else FRAME_TIMEOUT)
        if self.idle_timeout < 0 or self.frame_timeout < 0:
            raise ChannelConfigError(f"channel {name}: options idle_timeout and frame_timeout: expected a "
                                     f"duration of 0s (no limit) or more")
        # bad input (malformed frames, failed handshakes, refused clients): the first of each kind in full,
        # a flood counted and summed up every REPEAT_EVERY seconds (engine/faultlog.py)
        self.faults = FaultLog(log, f"channel {name}", clock=trio.current_time)
        self.gate = Gate.from_options(name, options, load_tls=load_tls, faults=self.faults)   # TLS / mutual TLS / access list, or None
        self._options = options
        self._accept_scope: trio.CancelScope | None = None
        # bound at serve, or handed over by the channel this one replaces on the same address (a reload)
        self.sockets = ListenSockets()
        self._read_scopes: set[StopReading] = set()
        self._draining = False
        self.retire_send_wait = SEND_WAIT    # once retired, a send waits this long for a client not reading
        self.connections = 0
        self.room = Room(name, self.max_connections, backlog=self.backlog, faults=self.faults)     # the slots; at the cap one that can spare it makes room
        # off by default: a mainframe opens its many connections from one or two addresses
        # (engine/channels/per_client.py); over it a connection is closed as accepted
        self.clients = ClientCap(per_client_option(name, options, PER_CLIENT), self.faults, channel=name,
                                 hint=f"if that counterpart needs more connections at once, raise "
                                      f"max_connections_per_client of channel {name}")
        self._client_of: dict[Any, str] = {}    # accepted, not yet served: its client (ClientCap.leave at its end)
        self.churn = ConnectChurn(self.faults, channel=name)    # a peer reconnecting in a storm: said once a minute
        self.metrics: Any = None
        self.staging = Staging()        # what bind_codecs takes from a configuration bound meanwhile

    def bind_codecs(self, ctx: Any) -> None:
        """The switchboard's binder: the channel's declaration in this configuration fixes the place the
        warnings at max_connections name (a reload that keeps the channel may have moved it); a configuration
        bound while another runs takes effect at the swap (``adopt``), a dry run's never."""
        program = getattr(ctx, "program", None)
        decl = program.channels.get(self.name) if program is not None else None
        if decl is None:
            return
        place = cap_place(decl)
        self.staging.bind(ctx, lambda: setattr(self.room, "place", place))

    def adopt(self, ctx: Any) -> None:
        """The configuration bound by ``ctx`` runs now (a reload kept this channel): its place."""
        self.staging.adopt(ctx)

    def attach_metrics(self, metrics: Any) -> None:
        """Count connections closed for room (``bsp_channel_evictions_total``) and pauses at the cap
        (``bsp_channel_capped_total``) in ``engine.metrics.Metrics`` (None: stop)."""
        self.metrics = self.room.metrics = self.clients.metrics = metrics

    @property
    def capped(self) -> int:
        """Times accepting paused at max_connections (no connection could be closed to make room)."""
        return self.room.capped

    @property
    def evicted(self) -> int:
        """Connections closed to make room for a new one at max_connections (engine/channels/conn_room.py)."""
        return self.room.evicted

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen; ``task_status.started(port)`` once the socket accepts connections."""
        raw = await self.sockets.open(self.host, self.port, self.backlog)
        self.port = raw[0].socket.getsockname()[1]
        listeners = [_Capped(lst, self) for lst in raw]
        try:
            async with trio.open_nursery() as ticker:
                ticker.start_soon(self.faults.run)      # summaries of repeated bad input, when due
                async with trio.open_nursery() as conns:
                    with trio.CancelScope() as self._accept_scope:
                        if self._draining:
                            self._accept_scope.cancel()
                        task_status.started(self.port)
                        log.info("channel %s listening on %s%s", self.name, self.address,
                                 " (the socket handed over by the channel it replaces)" if self.sockets.adopted else "")
                        await trio.serve_listeners(
                            lambda stream: self._connection(stream, handler), listeners, handler_nursery=conns)
                    # not accepting any more: the sockets close, or stay open for the channel replacing this
                    # one on the same address (engine/channels/listen_handoff.py); connections already open
                    # finish what they read
                    await self.sockets.release()
                ticker.cancel_scope.cancel()
        finally:
            self.sockets.close_now()                    # a failure: nothing stays open
            self.faults.flush()                         # the counts not yet written

    async def _connection(self, stream: trio.SocketStream, handler: ExchangeHandler) -> None:
        served: list[Activity] = []
        client = self._client_of.pop(stream, None)
        try:
            await self._serve_connection(stream, handler, served)
        finally:
            self.room.leave(served[0] if served else None)      # the slot _Capped.accept took
            self.clients.leave(client)

    async def _serve_connection(self, stream: trio.SocketStream, handler: ExchangeHandler,
                                served: list[Activity]) -> None:
        set_nodelay(stream)
        try:
            peer = "%s:%s" % stream.socket.getpeername()[:2]
        except OSError:
            peer = "?"
        self.churn.connected(peer)
        stream = gentle = GentleClose(stream, channel=self.name)  # type: ignore[assignment]  # retired: FIN, no reset
        activity = self.room.arrive(peer, gentle)
        served.append(activity)
        if self.gate is not None:
            secured = None
            with activity.handshake:        # type: ignore[union-attr]  # cancelled: closed for room at the cap
                secured = await self.gate.admit(stream, peer)
            if activity.evicted:            # (logged and counted by the room)
                await trio.aclose_forcefully(secured or stream)
                return
            if secured is None:
                return                      # handshake failed or refused: logged and counted by the gate
            stream = secured  # type: ignore[assignment]
        self.connections += 1
        cert = stream.getpeercert() if isinstance(stream, trio.SSLStream) else None
        conn = ConnInfo(channel=self.name, peer=peer, number=next(_CONN_NUMBERS), who=peer_values(cert, peer))
        stop = StopReading(self.retire_send_wait)
        if self._draining:
            stop.cancel()
        self._read_scopes.add(stop)
        try:
            framer = self._new_framer()
            self.room.enter(activity, conn, framer, stop)
            if self.idle_timeout > 0 or self.frame_timeout > 0:
                stream = IdleStream(stream, framer, self.idle_timeout, channel=self.name, conn=conn,  # type: ignore[assignment]
                                    frame=self.frame_timeout)
            await serve_stream(stream, framer, handler, conn, stop, activity, self.faults)
        finally:
            self._read_scopes.discard(stop)

    def read_tls(self) -> Any:
        """A server context from the certificate files as they are now (``engine.channels.tcp_tls``)."""
        return read_listen_tls(self.name, self._options)

    def renew_tls(self, context: Any) -> None:
        """Connections accepted from now on get ``context``; those open keep theirs; the socket stays."""
        if self.gate is not None:
            self.gate.ssl_context = context

    def stop_accepting(self) -> None:
        """Drain: close the listening socket; every connection stops reading at its next frame boundary,
        sends the replies it owes, then ends cleanly (engine/channels/retire.py)."""
        self._draining = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for scope in list(self._read_scopes):
            scope.cancel()


class _Capped(trio.abc.Listener[trio.SocketStream]):
    """A listener that accepts only while the channel has fewer than ``max_connections`` open: at the cap,
    a peer waiting in the OS backlog makes one connection close (in its handshake, idle, or its client not
    reading: engine/channels/conn_room.py); with none to close, accepting pauses until one ends or can go."""

    def __init__(self, inner: trio.SocketListener, channel: "TcpListener") -> None:
        self.inner = inner
        self.channel = channel
        self.socket = inner.socket

    async def accept(self) -> trio.SocketStream:
        room, clients = self.channel.room, self.channel.clients
        while True:
            await room.take(self.socket)
            try:
                stream = await self.inner.accept()
            except BaseException:
                room.leave(None)
                raise
            try:
                peer = stream.socket.getpeername()
            except OSError:
                peer = None
            client = clients.enter(peer)
            if client is not None:
                self.channel._client_of[stream] = client
                return stream
            # its client holds max_connections_per_client: closed at once, unread; its slot is free again
            room.leave(None)
            await trio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        """Nothing (``trio.serve_listeners`` calls it as it stops): the channel's ``ListenSockets`` closes the
        socket, or keeps it open for the channel that adopts it (engine/channels/listen_handoff.py)."""
        await trio.lowlevel.checkpoint()


def check(decl: Any, base_dir: Any = None) -> list[Any]:
    """``bsp check``: the framing, then every other option as the listener checks it when built
    (without reading its TLS files)."""
    return check_framing(decl, base_dir) or built_check(TcpListener, load_tls=False)(decl, base_dir)


def build(decl: Any) -> TcpListener:
    lst = TcpListener(decl.name, dict(decl.options))
    lst.room.place = cap_place(decl)          # named by the warnings at the cap
    return lst


COMPONENT = ComponentSpec(
    category="channel",
    name="tcp.listen",
    check=check,
    doc=(
        "Accept TCP connections and answer each request on the connection it came on, in order. "
        "Every connection is read in chunks; the frames of one chunk are handled as a batch and "
        "their replies leave in one write. TCP_NODELAY is set on every socket. A frame over "
        "max_frame, or a connection closed mid-frame, gets the channel's `on error reply` "
        "(error kind `malformed`) and the connection is closed; other connections are unaffected. "
        "In the `on error reply`, `msg` is the request as far as it was read (whole when no route takes it, "
        "what the decoder read before a decode error: an ISO 8583 MTI and the fields before the bad one; null "
        "when nothing was), so a host answers `t = response_mti(msg.t)` with the STAN echoed. "
        "A reply the framing cannot carry (over max_frame, or holding the delimiter without an `escape`) "
        "is not sent and is logged, naming its deal; the replies before it are "
        "sent, then the connection is closed, so that no later reply is taken for its answer. Its deal stays as "
        "the route ended it (what it did at a counterpart happened: nothing is rolled back) and gets an event "
        "`reply_not_sent` with the reason (`bsp deals show`), as do the deals whose replies were behind it on "
        "that connection; each is counted in `bsp_channel_errors_total{kind=\"reply_not_sent\"}`. "
        "On SIGTERM, or when a reload changes or removes the channel, the listener stops accepting, "
        "each connection stops reading at a frame boundary (an idle one first reads, for up to 50 ms, what has "
        "already arrived), every request already read is answered, "
        "and only then the connection is closed cleanly (TLS close_notify, then FIN; never a reset), so "
        "a client knows that a request it got no reply to before the close was not read and may send it "
        "again. A reload that changes the channel but not its address hands the listening socket, open, to "
        "the new channel (the port never closes: no connect refused, connections waiting to be accepted "
        "are accepted by the new one). A reload that finds only its `cert` / `ca` file rewritten (a certificate renewed at the same "
        "path) keeps the socket and the open connections; connections accepted from then on get the new "
        "certificate. With `cert` the channel speaks TLS (1.2 minimum; "
        "`client_cert = \"required\"` for mutual TLS) and `allow` admits peers by client certificate "
        "CN/SAN and source address; failed handshakes and refused peers are logged, counted and closed. "
        "A frame not complete within frame_timeout of its first byte (a peer that stalls or trickles "
        "inside a frame) is a framing error too. At max_connections a new peer takes the slot of the "
        "connection longest in its TLS handshake, else of the one idle longest, else of the one whose client "
        "has taken no reply for 10s (never one with a request being read or handled)."
    ),
    options=(
        ADDRESS,
        *FRAMING_OPTIONS,
        OptionSpec("backlog", "int", "Listen backlog (pending connections the OS queues).", default=128),
        OptionSpec("max_connections", "int", "Connections open at once at most. At the cap a new peer takes "
                   "the slot of the connection longest in its TLS handshake, else of the one idle longest "
                   "(nothing held, handled or owed), else of the one whose client has taken no reply for 10s; "
                   "it is closed with a warning and counted (bsp_channel_evictions_total); with every "
                   "connection busy the new peer waits in the backlog until one ends or falls idle.",
                   default=MAX_CONNECTIONS),
        OptionSpec("max_connections_per_client", "int", "Connections one client address may hold open at once "
                   "(an IPv4-mapped IPv6 address counts as its IPv4 address, other IPv6 addresses by their /64); "
                   "a connection over it is closed as accepted, before a byte is read, counted "
                   "(bsp_channel_client_refused_total, `client_refused` in bsp status) and logged once per client "
                   "per 30s. 0 (the default): no limit, since a mainframe or switch opens all its connections "
                   "from one or two addresses; set it on a channel open to many counterparts.",
                   default=PER_CLIENT),
        OptionSpec("idle_timeout", "duration",
                   "Close a connection that sends nothing for this long; inside a half-read frame "
                   "this is a framing error (error reply, deal malformed). None: wait for ever.",
                   default=None),
        OptionSpec("frame_timeout", "duration",
                   "A frame must be complete within this long of its first byte; a peer that stalls or "
                   "trickles inside a frame gets a framing error (error reply, deal malformed, connection "
                   "closed). Quiet between frames is not limited by it. 0s: no limit; framing = eof: no limit "
                   "unless given.", default=Decimal(30)),
        *TLS_LISTEN_OPTIONS,
    ),
    build=build,
    examples=(
        'channel mainframe = tcp listen {\n'
        '    address   = "127.0.0.1:7001"\n'
        '    framing   = length2\n'
        '    max_frame = 4096\n'
        '    on error reply BillPayRsp {\n'
        '        resp_code = error.code\n'
        '        message   = error.text\n'
        '    }\n'
        '}',
    ),
)
