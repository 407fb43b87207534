"""``peer``: who sent the request, as the receiving channel authenticated it (docs/language.md).

Every route reads ``peer.cn`` (the verified client certificate's subject common name), ``peer.san`` (its
subject alternative names, each written as an access list's ``san:`` rule without the ``san:``:
``"dns:partner-a.example"``, ``"uri:spiffe://bank/pa"``, ``"email:..."``, ``"ip:..."``) and ``peer.address``
(the client's ``ip:port``).  A ``tcp listen`` or ``http listen`` channel fills them once per connection,
after its TLS handshake (``engine.tls.peer_values``, from the same extraction its ``allow`` list matches
on); without mutual TLS ``peer.cn`` is null and ``peer.san`` empty, and a channel kind that has no
connection of its own (file watch, nats consume, timer, ...) leaves all three null or empty.
"""
from __future__ import annotations

PEER_FIELDS = ("cn", "san", "address")
CERT_FIELDS = ("cn", "san")                   # only a client certificate gives them
CERT_MODES = ("optional", "required")         # the ``client_cert`` options under which one can be sent


def no_peer() -> dict:
    """The values of a request no peer authenticated (a file's record, a timer's tick)."""
    return {"cn": None, "san": [], "address": None}


NO_PEER = no_peer()


def peer_address(text: object) -> tuple[str, int] | None:
    """``"10.20.30.40:51234"`` (an http listen's ``http.peer``, a connection's ``peer.address``: HOST:PORT, as
    the channel writes the client's address) -> (host, port); None for text that is not one."""
    if not isinstance(text, str):
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535 \
            or any(c.isspace() for c in host):
        return None
    return host, int(port)
