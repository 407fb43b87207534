"""``max_connections_per_client``: connections one client address may hold open at once on one listener.

One policy for ``http listen``, the admin API and ``tcp listen``.  The global cap (``max_connections``,
engine/channels/conn_room.py) makes room by closing idle connections, but a client whose connections all
trickle a request (slowloris) or sit in a TLS handshake holds every slot until its timeouts; reconnecting,
it holds them again.  The per-client cap bounds what one address can take: a connection over it is closed
at once, as accepted, before a byte is read or written (no TLS handshake, no answer: a 503 would cost a
write and, with the client's request unread, often arrive as a reset anyway); it never takes a slot of the
global cap, so it never makes another connection close for room.

The client is the source address: an IPv4-mapped IPv6 address (``::ffff:10.1.2.3``, a dual-stack listener)
is the IPv4 address it maps; any other IPv6 address counts by its /64 (one host holds a whole /64).
Partners behind one NAT or proxy share one address, hence the cap: it is a trade-off between them and an
attacker from one address (docs/security.md).  Many attacking addresses are not stopped by it.

O(1) per accept: a dict of counts by client, the entry removed when its count returns to 0 (no leak: the
caller pairs every ``enter`` that returned a key with one ``leave``, in a ``finally``).  Each connection
refused is counted (``refused``, ``bsp status``; ``bsp_channel_client_refused_total`` for a channel) and
logged through the listener's ``FaultLog``: the first of each client in full, a loop of them counted and
summed up once per window (engine/faultlog.py), never a line per connect.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from engine.channels.options import ChannelConfigError
from engine.faultlog import FaultLog

__all__ = ["ClientCap", "client_key", "per_client_option"]


def per_client_option(channel: str, options: dict[str, Any], default: int) -> int:
    """The channel's ``max_connections_per_client``: a whole number, 0 for no limit."""
    value = options.get("max_connections_per_client", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChannelConfigError(f"channel {channel}: option max_connections_per_client: expected a whole number "
                                 f"(0: no limit per client), got {value!r}")
    return value


def client_key(peer: Any) -> str:
    """The client a peer address counts as: ``("::ffff:10.1.2.3", port, ...)`` -> ``10.1.2.3``, an IPv6
    address -> its /64 (``2001:db8:1:2::/64``); anything else (a memory stream in tests) as its text."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    try:
        addr = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
    return str(addr)


class ClientCap:
    """The per-client counts of one listener.  ``cap`` 0: no limit (counted all the same: ``open``).

    ``who``: the listener in the warning ("channel api", "admin API on 127.0.0.1:8089"); ``hint``: what to
    change; ``faults``: the listener's ``FaultLog``; ``channel``: the metrics label (None: no metrics)."""

    def __init__(self, cap: int, faults: FaultLog, *, hint: str, channel: str | None = None,
                 option: str = "max_connections_per_client") -> None:
        self.cap = cap
        self.faults = faults
        self.hint = hint
        self.channel = channel
        self.option = option
        self.open: dict[str, int] = {}      # client -> connections open
        self.refused = 0                    # connections closed at once: their client was at the cap
        self.metrics: Any = None

    def enter(self, peer: Any) -> str | None:
        """A connection accepted from ``peer``: its client's key (then ``leave(key)`` once it ends), or None
        when its client already holds ``cap`` connections (the caller closes it at once)."""
        key = client_key(peer)
        held = self.open.get(key, 0)
        if self.cap and held >= self.cap:
            self._refuse(key)
            return None
        self.open[key] = held + 1
        return key

    def leave(self, key: str | None) -> None:
        if key is None:
            return
        held = self.open.get(key, 0) - 1
        if held > 0:
            self.open[key] = held
        else:
            self.open.pop(key, None)

    def _refuse(self, key: str) -> None:
        self.refused += 1
        if self.metrics is not None and self.channel is not None:
            self.metrics.channel_client_refused.labels(self.channel).inc()
        self.faults.occurred(
            ("over client cap", key),
            lambda: (f"client {key} holds {self.cap} connections ({self.option}): closing its new connection at "
                     f"once, unread; {self.hint}"),
            noun=f"connections from {key} closed over {self.option}", source=key,
            reason=f"{self.cap} connections open")
