"""TLS contexts for channels, the HTTP server and the admin API (stdlib ``ssl``).

``server_context(cert, key, ca=None, client_cert="none")`` and
``client_context(ca=None, cert=None, key=None, server_hostname=None)`` build
``ssl.SSLContext`` objects with TLS 1.2 as the minimum, forward-secret AEAD
ciphers only for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults, all good),
no compression and no renegotiation.

Files are checked before OpenSSL sees them, so a missing, unreadable or
non-PEM file gives a ``TLSConfigError`` that names the file, says what was
expected there and how to fix it (``bsp certs dev DIR`` writes a working set).

Each file is read once, through ``formats.versioned.read_bytes``: while the engine binds a configuration
(``versioned`` around the channels' build, and around a renewed certificate's read) a ``cert`` or ``ca``
file is the text the configuration's version holds, not the file read again, so the running TLS is the
recorded one even when the file is rewritten meanwhile (a certificate file holding its private key is read
and must still match the version, else the bind is refused naming it: reload again).  OpenSSL is then given
exactly those bytes (``_private_files``: anonymous memory files, or private temporary files removed right
after), never the path to read again.  A key file is a secret, never versioned: it is read once too.
"""
from __future__ import annotations

import os
import ssl
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from formats.versioned import FileChanged, read_bytes

CLIENT_CERT_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

# TLS 1.2 only; TLS 1.3 suites are configured separately by OpenSSL.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"

_FIX = "create a development set with `bsp certs dev DIR`, or point the option at a PEM file"


class TLSConfigError(ValueError):
    """A certificate, key or CA file (or a TLS option) that cannot be used.

    ``path`` is the file concerned (None for a bad option), ``role`` what the
    file is for ("certificate", "private key", "CA bundle").
    """

    def __init__(self, message: str, *, path: str | None = None, role: str | None = None,
                 hint: str | None = None) -> None:
        self.path = path
        self.role = role
        self.hint = hint
        super().__init__(message + (f" (hint: {hint})" if hint else ""))


def _read_pem(path: str | os.PathLike[str], role: str, marker: str, option: str) -> tuple[Path, bytes]:
    """The file's path and bytes: the configuration version's while the engine binds (see the module)."""
    p = Path(path)
    try:
        data = read_bytes(p)
    except FileChanged:
        raise TLSConfigError(f"{option}: {role} file {str(p)!r} changed after the configuration was read (while "
                             f"it was being loaded); nothing of it is used", path=str(p), role=role,
                             hint="reload again: the next configuration version holds the file as it is now") from None
    except OSError as exc:
        if not p.exists():
            raise TLSConfigError(f"{option}: {role} file {str(p)!r} does not exist", path=str(p), role=role,
                                 hint=_FIX) from None
        if p.is_dir():
            raise TLSConfigError(f"{option}: {role} path {str(p)!r} is a directory; expected a PEM file",
                                 path=str(p), role=role, hint=_FIX) from None
        raise TLSConfigError(f"{option}: {role} file {str(p)!r} cannot be read: {exc.strerror or exc}",
                             path=str(p), role=role,
                             hint="check the file's permissions for the user running bsp") from None
    if marker.encode() not in data:
        raise TLSConfigError(
            f"{option}: {role} file {str(p)!r} holds no PEM block containing {marker!r}",
            path=str(p), role=role,
            hint="the file must be PEM (text starting with -----BEGIN ...); convert DER with "
                 "`openssl x509 -inform der -in FILE -out FILE.pem`")
    return p, data


@contextmanager
def _private_files(*files: tuple[bytes, Path] | None) -> Iterator[list[str | None]]:
    """Paths OpenSSL reads the bytes of ``files`` (``(bytes, the file they were read from)``; None stays
    None) from, gone when the block ends: anonymous memory files where the system has them (Linux
    ``memfd``: never on a disk, reached through this process's own /proc/self/fd), else temporary files
    created 0600 and removed right after -- but never a private key on a disk: bytes holding one are then
    read from their own file (checked against the version a moment before).  What OpenSSL loads is the
    bytes read (and checked) once, not a file that may have been rewritten since."""
    fds: list[int] = []
    temps: list[str] = []
    paths: list[str | None] = []
    try:
        for item in files:
            if item is None:
                paths.append(None)
                continue
            blob, origin = item
            fd = _memfd()
            if fd is not None:
                fds.append(fd)
                os.write(fd, blob)
                paths.append(f"/proc/self/fd/{fd}")
            elif b"PRIVATE KEY" in blob:
                paths.append(str(origin))
            else:
                fd, name = tempfile.mkstemp(prefix="bsp-tls-", suffix=".pem")     # 0600
                temps.append(name)
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                paths.append(name)
        yield paths
    finally:
        for fd in fds:
            os.close(fd)
        for name in temps:
            try:
                os.unlink(name)
            except OSError:
                pass


def _memfd() -> int | None:
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.memfd_create("bsp-tls", os.MFD_CLOEXEC)
    except OSError:
        return None


def _load_chain(ctx: ssl.SSLContext, cert: str | os.PathLike[str], key: str | os.PathLike[str] | None,
                password: str | None, side: str) -> None:
    cert_p, cert_data = _read_pem(cert, "certificate", "CERTIFICATE-----", f"{side} tls cert")
    key_p, key_data = (_read_pem(key, "private key", "PRIVATE KEY-----", f"{side} tls key") if key is not None
                       else (None, None))
    try:
        key_file = (key_data, key_p) if key_p is not None and key_data is not None else None
        with _private_files((cert_data, cert_p), key_file) as (cert_f, key_f):
            ctx.load_cert_chain(cert_f, key_f, password=password)
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if reason == "KEY_VALUES_MISMATCH" and not _on_disk(cert_p, cert_data):
            raise TLSConfigError(
                f"{side} tls cert: certificate file {str(cert_p)!r} changed after the configuration was read "
                f"(while it was being loaded): the version holds a certificate that private key "
                f"{str(key_p)!r} does not belong to; nothing of it is used", path=str(cert_p), role="certificate",
                hint="reload again: the next configuration version holds the certificate as it is now") from None
        if reason == "KEY_VALUES_MISMATCH":
            raise TLSConfigError(
                f"{side} tls key: private key {str(key_p)!r} does not belong to certificate {str(cert_p)!r}",
                path=str(key_p), role="private key",
                hint="use the key file generated together with this certificate") from None
        raise TLSConfigError(
            f"{side} tls cert: OpenSSL refused certificate {str(cert_p)!r} / key {str(key_p)!r}: {reason}",
            path=str(cert_p), role="certificate", hint=_FIX) from None


def _on_disk(path: Path, data: bytes) -> bool:
    """Whether the file still holds ``data``: a key that does not belong to the version's certificate is a
    certificate and its key rewritten after the configuration was read when it does not."""
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _load_ca(ctx: ssl.SSLContext, ca: str | os.PathLike[str], side: str) -> None:
    ca_p, data = _read_pem(ca, "CA bundle", "CERTIFICATE-----", f"{side} tls ca")
    try:
        with _private_files((data, ca_p)) as (ca_f,):
            ctx.load_verify_locations(cafile=ca_f)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{side} tls ca: OpenSSL refused CA bundle {str(ca_p)!r}: {exc}",
                             path=str(ca_p), role="CA bundle", hint=_FIX) from None


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)


def server_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str] | None,
    ca: str | os.PathLike[str] | None = None,
    client_cert: str = "none",
    *,
    password: str | None = None,
) -> ssl.SSLContext:
    """A server-side context.  ``client_cert``: "none", "optional" or "required"
    (the last two need ``ca``, the bundle client certificates must chain to)."""
    if client_cert not in CLIENT_CERT_MODES:
        raise TLSConfigError(
            f"tls client_cert: expected one of {', '.join(CLIENT_CERT_MODES)}, got {client_cert!r}",
            hint='e.g. client_cert = "required" for mutual TLS')
    if client_cert != "none" and ca is None:
        raise TLSConfigError(
            f"tls client_cert = {client_cert!r} needs a CA bundle to verify client certificates",
            hint="add `ca = \"clients-ca.pem\"` (the CA that issued the client certificates)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    _load_chain(ctx, cert, key, password, "server")
    if ca is not None:
        _load_ca(ctx, ca, "server")
    ctx.verify_mode = CLIENT_CERT_MODES[client_cert]
    return ctx


class ContextHolder:
    """A server context that can be replaced while serving: ``serve_http`` reads ``context`` for each
    connection it accepts, so a new one applies to the next connection and those open keep the one
    they were made with (the admin API's certificate renewed by a reload: engine/ops/admintls.py)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context


def context_of(source: "ssl.SSLContext | ContextHolder | None") -> ssl.SSLContext | None:
    """The context to give a connection accepted now."""
    return source.context if isinstance(source, ContextHolder) else source


class ClientContext(ssl.SSLContext):
    """An ``SSLContext`` that remembers the host name to verify.

    When ``server_hostname`` is set it is used for SNI and certificate
    checking whatever address is dialled (connect to 10.0.0.5 but verify
    ``biller.example``).  trio's ``SSLStream`` and ``open_ssl_over_tcp_stream``
    go through ``wrap_bio``, so both honour it.
    """

    server_hostname: str | None = None
    has_cert = False           # a client certificate is loaded (mutual TLS)

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False,  # type: ignore[override]
                 server_hostname: Any = None, session: Any = None) -> ssl.SSLObject:
        if not server_side and self.server_hostname:
            server_hostname = self.server_hostname
        return super().wrap_bio(incoming, outgoing, server_side=server_side,
                                server_hostname=server_hostname, session=session)


def client_context(
    ca: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    server_hostname: str | None = None,
    *,
    password: str | None = None,
    check_hostname: bool = True,
) -> ClientContext:
    """A client-side context that verifies the server.

    ``ca``: the bundle the server certificate must chain to (None: the
    system's trusted roots).  ``cert``/``key``: our client certificate for
    mutual TLS.  ``server_hostname``: the name to verify (see ``ClientContext``).
    """
    if key is not None and cert is None:
        raise TLSConfigError("client tls key given without a client certificate",
                             hint="add the matching `cert = \"client.pem\"`, or drop `key`")
    ctx = ClientContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca is not None:
        _load_ca(ctx, ca, "client")
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None:
        _load_chain(ctx, cert, key, password, "client")
        ctx.has_cert = True
    ctx.server_hostname = server_hostname
    return ctx


def peer_identity(peercert: dict[str, Any] | None) -> dict[str, Any]:
    """The parts of ``SSLObject.getpeercert()`` we match on: CN and SANs by kind.

    ``{"cn": [..], "dns": [..], "email": [..], "uri": [..], "ip": [..]}``;
    every list is empty when there is no (verified) certificate.
    """
    out: dict[str, list[str]] = {"cn": [], "dns": [], "email": [], "uri": [], "ip": []}
    if not peercert:
        return out
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                out["cn"].append(value)
    kinds = {"DNS": "dns", "email": "email", "URI": "uri", "IP Address": "ip"}
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in kinds:
            out[kinds[kind]].append(value.strip() if kind == "IP Address" else value)
    return out


def peer_values(peercert: dict[str, Any] | None, address: str | None) -> dict[str, Any]:
    """What a route reads as ``peer.*`` (dsl/peer.py) of a connection: ``cn``, the verified client
    certificate's subject common name (the last, most specific one when the subject has several; None
    without a certificate), ``san``, its subject alternative names as an access list writes them after
    ``san:`` (``"dns:partner-a.example"``, ``"uri:spiffe://bank/pa"``), and ``address`` (``ip:port``).
    Built from ``peer_identity``, the one extraction the ``allow`` lists match on, once per connection."""
    ident = peer_identity(peercert)
    return {"cn": ident["cn"][-1] if ident["cn"] else None,
            "san": [f"{kind}:{v}" for kind in ("dns", "email", "uri", "ip") for v in ident[kind]],
            "address": address}


# -- why a calling channel's TLS failed, and what to fix --------------------------------------------

_CHAIN_CODES = frozenset({2, 18, 19, 20, 21})     # X509_V_ERR_*: no path to a CA in `ca`
_SERVER_VERIFY_HINTS = {
    9: "the counterpart's certificate is not valid yet: check its notBefore and both clocks",
    10: "the counterpart's certificate has expired: the counterpart must renew it (or a clock is wrong)",
}
# the certificate is not for the host dialled (62: a name, 64: an IP address); the hint names the option
_NAME_CODES = (62, 64)
_NAME_HINT = ("the certificate is not for the host dialled: set {option} to a name it carries (DNS or IP "
              "subjectAltName), or dial that name in {where}")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
            "UNKNOWN_PROTOCOL")


# how the calling channels name their TLS options in a hint: (no ca given, not TLS on this port)
TCP_TLS_WORDS = ("with `tls = true` and no `ca`", "drop ca / tls, or fix address")
HTTP_TLS_WORDS = ("without `ca`", "use an http:// url, or fix url")
NATS_TLS_WORDS = ("without `tls_ca`", "use a nats:// url and no tls_* option, or fix url")
NATS_TLS_NAMES = ("tls_ca", "tls_cert", "tls_key")       # a NATS channel's names for ca, cert and key
NATS_TLS_HOST = ("tls_server_name", "url")      # its option for the name to verify, and where the host is dialled


def client_tls_reason(exc: BaseException, *, has_cert: bool = False,
                      words: tuple[str, str] = TCP_TLS_WORDS,
                      names: tuple[str, str, str] = ("ca", "cert", "key"),
                      host: tuple[str, str] = ("server_name", "address")) -> str:
    """One line for a TLS failure met by the calling side (handshake or a later read): OpenSSL's reason
    and what to fix, without OpenSSL's source file and line.  ``has_cert``: we sent a client
    certificate (mutual TLS); ``words``: how the channel kind names its options (TCP_TLS_WORDS,
    HTTP_TLS_WORDS); ``names``: its options for the CA bundle, the client certificate and its key; ``host``:
    its option for the name to verify and the one holding the host dialled (NATS_TLS_HOST)."""
    no_ca, not_tls = words
    ca, cert, key = names
    if not isinstance(exc, ssl.SSLError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reason = getattr(exc, "reason", None) or type(exc).__name__
    code = getattr(exc, "verify_code", None)
    message = getattr(exc, "verify_message", None)
    if message:
        hint = _SERVER_VERIFY_HINTS.get(code) if code is not None else None
        if hint is None and code in _NAME_CODES:
            hint = _NAME_HINT.format(option=host[0], where=host[1])
        if hint is None and code in _CHAIN_CODES:
            hint = f"`{ca}` must hold the CA that issued the counterpart's certificate ({no_ca}: the system's roots)"
        if hint is None:
            hint = "check the counterpart's certificate with `openssl s_client -connect HOST:PORT -CAfile CA`"
        return f"{reason}: {message} ({hint})"
    if any(k in str(reason) for k in _NOT_TLS):
        return f"{reason} (the counterpart does not speak TLS on this port: plain TCP? {not_tls})"
    if isinstance(exc, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(reason):
        who = (f"it may refuse our client certificate ({cert}): it must chain to the CA the counterpart trusts "
               "and be valid" if has_cert else
               f"it may require a client certificate: set {cert} and {key} on this channel")
        return f"{reason}: the counterpart closed the TLS session ({who}; the counterpart's log says why)"
    if "CERTIFICATE_REQUIRED" in str(reason) and not has_cert:
        return f"{reason} (the counterpart requires a client certificate: set {cert} and {key} on this channel)"
    if "ALERT" in str(reason):
        return f"{reason} (the counterpart refused the TLS session; the alert names why)"
    return str(reason)
