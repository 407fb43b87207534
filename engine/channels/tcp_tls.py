"""TLS, mutual TLS and the access list for ``tcp listen`` (the server side of a TCP channel).

    gate = Gate.from_options(name, options)     # None when neither TLS nor `allow` is configured
    stream = await gate.admit(stream, peer)     # the stream to serve (SSLStream under TLS) or None

``admit`` runs the TLS handshake (``handshake_timeout``), then checks the
access list (``engine.access``: client certificate CN / SAN and source
address).  A failed handshake (wrong CA, no client certificate when one is
required, a plain-TCP peer, too slow) and a refused peer are each logged with
the reason, counted (``tls_failures``, ``refused``) and the connection closed;
other connections are not affected.  TLS 1.2 is the minimum (engine/tls.py).
"""
from __future__ import annotations

import logging
import ssl
from decimal import Decimal
from typing import Any

import trio

from engine.access import AccessList
from engine.channels.options import ChannelConfigError, duration_above_zero
from engine.tls import CLIENT_CERT_MODES, server_context
from formats.component import OptionSpec

log = logging.getLogger("bsp.channel.tls")

# shared by ``tcp listen`` (in TLS_LISTEN_OPTIONS) and ``http listen``: one meaning, default and check
HANDSHAKE_TIMEOUT = OptionSpec("handshake_timeout", "duration",
                               "TLS: time allowed for the handshake (closed, logged and counted beyond).",
                               default=Decimal(10))
TLS_LISTEN_OPTIONS = (
    OptionSpec("cert", "path", "TLS: server certificate (PEM); turns TLS on (1.2 minimum).", default=None),
    OptionSpec("key", "path", "TLS: private key of `cert` (PEM; a secret: not kept in the ledger's configuration versions, need not exist for bsp check).", default=None, secret=True),
    OptionSpec("ca", "path", "TLS: CA bundle client certificates must chain to.", default=None),
    OptionSpec("client_cert", "string", "TLS: client certificate none, optional or required (mutual TLS).",
               default=None, choices=tuple(CLIENT_CERT_MODES)),
    OptionSpec("allow", "list", "Access list: \"cn:NAME\", \"san:dns:HOST\", \"san:email:ADDR\", "
               "\"ip:CIDR\" ...; a peer matching none is refused (logged, counted, closed). Empty: everyone.",
               default=None),
    HANDSHAKE_TIMEOUT,
)


def handshake_timeout(name: str, options: dict[str, Any]) -> float:
    """The ``handshake_timeout`` option of a listening channel (``tcp listen``, ``http listen``) in seconds:
    10 when not set; a value not above 0 names the channel and the option."""
    return duration_above_zero(name, options, HANDSHAKE_TIMEOUT.name, float(HANDSHAKE_TIMEOUT.default))


def listen_security(name: str, options: dict[str, Any], *,
                    load_tls: bool = True) -> tuple[ssl.SSLContext | None, AccessList, str]:
    """The server side's TLS context (None without ``cert``, or with ``load_tls=False``), its access
    list and its client certificate mode, from the options ``TLS_LISTEN_OPTIONS`` declares; shared
    by ``tcp listen`` and ``http listen``.  Every combination is checked even without loading."""
    cert, key, ca = options.get("cert"), options.get("key"), options.get("ca")
    client_cert = options.get("client_cert") or "none"
    if client_cert not in CLIENT_CERT_MODES:
        raise ChannelConfigError(f"channel {name}: option client_cert: expected one of "
                                 f"{', '.join(CLIENT_CERT_MODES)}, got {client_cert!r}")
    ctx = None
    if cert is not None:
        try:
            ctx = server_context(cert, key, ca, client_cert) if load_tls else None
        except ValueError as exc:
            raise ChannelConfigError(f"channel {name}: {exc}") from None
    elif key is not None or ca is not None or client_cert != "none":
        raise ChannelConfigError(f"channel {name}: options key / ca / client_cert need `cert` (TLS); "
                                 f"add cert = \"server.pem\" and key = \"server.key\"")
    try:
        access = AccessList.parse(options.get("allow"))
    except ValueError as exc:
        raise ChannelConfigError(f"channel {name}: option allow: {exc}") from None
    if access.needs_client_cert and client_cert == "none":
        raise ChannelConfigError(
            f"channel {name}: option allow has certificate rules but no client certificate is asked for; "
            f"add cert, key, ca and client_cert = \"required\"")
    return ctx, access, client_cert


def read_listen_tls(name: str, options: dict[str, Any]) -> ssl.SSLContext | None:
    """The server context the channel's ``cert`` / ``key`` / ``ca`` files give now: a reload that found
    them rewritten (a certificate renewed at the same path) hands it to the listener, which gives it to
    the connections it accepts from then on (``renew_tls``).  Raises ``ChannelConfigError`` naming the
    channel and the file when they cannot be used."""
    return listen_security(name, options)[0]


class Gate:
    def __init__(self, name: str, ssl_context: ssl.SSLContext | None, access: AccessList,
                 handshake_timeout: float, faults: Any = None) -> None:
        self.name = name
        self.faults = faults        # the channel's FaultLog: a flood of failed handshakes is counted, not one line each
        self.ssl_context = ssl_context
        self.access = access
        self.handshake_timeout = handshake_timeout
        self.tls_failures = 0
        self.refused = 0
        self.admitted = 0
        self.last_refusal = ""

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], *, load_tls: bool = True,
                     faults: Any = None) -> "Gate | None":
        """The gate the options describe, or None for a plain open listener.  ``load_tls=False``
        (``bsp check``): every option checked, the certificate files not read."""
        ctx, access, _ = listen_security(name, options, load_tls=load_tls)
        timeout = handshake_timeout(name, options)      # checked even when nothing is loaded (bsp check)
        if ctx is None and access.open:
            return None
        return cls(name, ctx, access, timeout, faults)

    async def admit(self, stream: trio.SocketStream, peer: str) -> trio.abc.Stream | None:
        served: trio.abc.Stream = stream
        peercert = None
        if self.ssl_context is not None:
            tls = trio.SSLStream(stream, self.ssl_context, server_side=True)
            try:
                with trio.fail_after(self.handshake_timeout):
                    await tls.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError) as exc:
                self.tls_failures += 1
                cause = exc.__cause__ or exc
                why = (f"no handshake within {self.handshake_timeout:g}s" if isinstance(exc, trio.TooSlowError)
                       else listen_tls_reason(cause))
                self._fault(("TLS handshake", why), f"TLS handshake with {peer} failed: {why}; connection closed",
                            "failed TLS handshakes", peer, why)
                await trio.aclose_forcefully(stream)
                return None
            peercert = tls.getpeercert()
            served = tls
        if not self.access.open:
            ok, reason = self.access.check(peer, peercert)
            if not ok:
                self.refused += 1
                self.last_refusal = reason
                self._fault("refused", f"connection from {peer} refused by the access list: {reason}",
                            "connections refused by the access list", peer, reason)
                await trio.aclose_forcefully(served)
                return None
        self.admitted += 1
        return served


    def _fault(self, kind: Any, text: str, noun: str, peer: str, reason: str) -> None:
        if self.faults is None:
            log.warning("channel %s: %s", self.name, text)
        else:
            self.faults.occurred(kind, text, noun=noun, source=peer, reason=reason, logger=log)


# OpenSSL X509_V_ERR_* codes meaning "no path to a trusted CA" (unable to get issuer, self-signed ...)
_NOT_CHAINED = frozenset({2, 18, 19, 20, 21, None})
_VERIFY_HINTS = {
    9: "the client's certificate is not valid yet: check its notBefore and both clocks",
    10: "the client's certificate has expired: the client must renew it",
    23: "the client's certificate is revoked",
    26: "the client's certificate is not for client authentication (extendedKeyUsage clientAuth)",
}


def listen_tls_reason(exc: BaseException) -> str:
    """One line for a TLS handshake that failed on the listening side: OpenSSL's reason and what to fix
    (``tcp listen`` and ``http listen``)."""
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        hints = {
            "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate, and client_cert = required",
            "CERTIFICATE_VERIFY_FAILED": "the client's certificate does not chain to `ca`",
            "HTTP_REQUEST": "the client speaks plain HTTP, not TLS",
            "WRONG_VERSION_NUMBER": "the client does not speak TLS (plain TCP?) or only an old version",
            "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions below 1.2",
            "UNEXPECTED_EOF": "the client closed during the handshake: it probably refused our certificate "
                              "(expired, not for the name it dials, or not from a CA it trusts); its log says why",
        }
        verify_code = getattr(exc, "verify_code", None)
        verify_message = getattr(exc, "verify_message", None)
        if verify_message and verify_code not in _NOT_CHAINED:
            # the certificate chains to `ca` but is refused for another reason (expired, not yet
            # valid, unusable for client auth ...): saying "does not chain" would send the operator
            # after the wrong file
            hint = _VERIFY_HINTS.get(verify_code, "the client's certificate was refused; check it with "
                                                  "`openssl verify -CAfile CA CERT`")
            return f"{reason}: {verify_message} ({hint})"
        hint = next((h for k, h in hints.items() if k in str(reason) or k in str(exc)), None)
        return f"{reason}" + (f": {verify_message}" if verify_message else "") + (f" ({hint})" if hint else "")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
