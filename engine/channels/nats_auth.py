"""Authentication and TLS of a NATS channel (``nats consume``, ``nats publish``).

    auth = NatsAuth.from_options(channel, options, servers, load=True)   # ChannelConfigError when unusable
    await nc.connect(servers, **auth.connect_options(), ...)            # token / user+password / creds, tls
    auth.method                                                         # "token (token_file /run/secrets/t)"

At most one method: a token (``token_env`` / ``token_file``), a user and its password (``user`` with
``password_env`` / ``password_file``), or a NATS credentials file (``creds_file``: the user's JWT and
nkey seed), or none (credentials in the url, ``nats://user:pass@host``, as before; not with the options).
Secrets never come from a route file: a variable or a file, read when the channel is built (a missing
one stops the start, naming the channel, the option and the variable or path) and read again at every
connection attempt (nats-py calls the token and password back for each CONNECT, and reads the credentials
file then), so a token rotated in its file is sent the next time the channel connects; a secret that
cannot be read then is said once, and the value read last is sent.  Every value read is added to the
log's scrubber (``engine.ops.logs.scrub_secret``).

TLS: ``tls_ca`` (the CA the server's certificate must chain to; else the system's roots), ``tls_cert`` and
``tls_key`` (a client certificate, mutual TLS), through ``engine.tls.client_context`` (TLS 1.2 minimum,
the server's host name checked: the url's, or ``tls_server_name``).  A ``tls://`` url or any of these options requires TLS: a server that
does not offer it is refused before the credentials are sent (``requires_tls``, engine/channels/nats_pong.py).
"""
from __future__ import annotations

import logging
import re
from typing import Any

from engine.channels.options import ChannelConfigError, read_secret
from formats.component import OptionSpec

log = logging.getLogger("bsp.channel.nats")

_NOT_KEPT = "a secret: not kept in the ledger's configuration versions, need not exist for bsp check"
AUTH_OPTIONS = (
    OptionSpec("token_env", "string", "Auth: environment variable holding the NATS token (one auth method at "
               "most).", default=None),
    OptionSpec("token_file", "path", f"Auth: file holding the NATS token, read again at every connection ({_NOT_KEPT}).",
               default=None, secret=True),
    OptionSpec("user", "string", "Auth: NATS user name; its password from `password_env` or `password_file`.",
               default=None),
    OptionSpec("password_env", "string", "Auth: environment variable holding `user`'s password.", default=None),
    OptionSpec("password_file", "path", f"Auth: file holding `user`'s password, read again at every connection "
               f"({_NOT_KEPT}).", default=None, secret=True),
    OptionSpec("creds_file", "path", "Auth: NATS credentials file (the user's JWT and nkey seed, as `nsc` writes "
               f"it), read at every connection ({_NOT_KEPT}).", default=None, secret=True),
    OptionSpec("tls_ca", "path", "TLS: CA bundle (PEM) the server's certificate must chain to (default: the "
               "system's roots); turns TLS on (1.2 minimum, host name checked).", default=None),
    OptionSpec("tls_cert", "path", "TLS: client certificate (PEM) for mutual TLS, with `tls_key`; turns TLS on.",
               default=None),
    OptionSpec("tls_key", "path", f"TLS: private key of `tls_cert` (PEM; {_NOT_KEPT}).", default=None, secret=True),
    OptionSpec("tls_server_name", "string", "TLS: the host name the server's certificate must carry (and sent as "
               "SNI) instead of the url's host, e.g. `nats.bank.internal` when the url gives an IP address; turns "
               "TLS on.", default=None),
)
TLS_OPTIONS = ("tls_ca", "tls_cert", "tls_key")
_HOST_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,253}|\[?[0-9A-Fa-f:.]+\]?")    # a DNS name, IPv4 or IPv6 address


def scrub_secret(value: str) -> None:
    from engine.ops.logs import scrub_secret as add
    add(value)


class Secret:
    """A secret an option names, read now and again at each ``__call__`` (a connection attempt)."""

    def __init__(self, channel: str, option: str, how: str, where: str, load: bool) -> None:
        self.channel, self.option, self.how, self.where = channel, option, how, where
        self.value = self._read() if load else ""
        self.failing = ""

    def _read(self) -> str:
        value = read_secret(self.channel, self.option, self.how, self.where)
        if not value:
            raise ChannelConfigError(f"channel {self.channel}: option {self.option}: "
                                     f"{'environment variable' if self.how == 'env' else 'secret file'} "
                                     f"{self.where if self.how == 'env' else repr(self.where)} is empty")
        scrub_secret(value)
        return value

    def __call__(self) -> str:
        try:
            self.value = self._read()
        except ChannelConfigError as exc:
            if str(exc) != self.failing:     # said once; the value read last is sent meanwhile
                self.failing = str(exc)
                log.error("%s; sending the value read before", exc)
        else:
            self.failing = ""
        return self.value

    @property
    def shown(self) -> str:
        return f"{self.option} {self.where}"


def _secret(channel: str, options: dict[str, Any], what: str, load: bool) -> Secret | None:
    env, file = options.get(f"{what}_env"), options.get(f"{what}_file")
    if env is not None and file is not None:
        raise ChannelConfigError(f"channel {channel}: give {what}_env or {what}_file, not both")
    for option, how, where in ((f"{what}_env", "env", env), (f"{what}_file", "file", file)):
        if where is not None:
            if not isinstance(where, str) or not where.strip():
                raise ChannelConfigError(f"channel {channel}: option {option}: expected "
                                         f"{'a variable name' if how == 'env' else 'a file path'}, got {where!r}")
            return Secret(channel, option, how, where, load)
    return None


def _check_creds(channel: str, path: str) -> None:
    """A credentials file nats-py can read: it loops for ever on one without a JWT block."""
    import importlib.util
    if importlib.util.find_spec("nkeys") is None:      # nats-py signs the server's nonce with it
        raise ChannelConfigError(f"channel {channel}: option creds_file: NATS credentials need the nkeys package, "
                                 f"which is not installed: pip install 'bsp[nats-creds]' (or pip install nkeys) "
                                 f"into bsp's environment")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ChannelConfigError(f"channel {channel}: option creds_file: cannot read credentials file {path!r}: "
                                 f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ChannelConfigError(f"channel {channel}: option creds_file: credentials file {path!r} is not "
                                 f"text") from None
    if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
        raise ChannelConfigError(f"channel {channel}: option creds_file: {path!r} is not a NATS credentials file "
                                 f"(expected a \"BEGIN NATS USER JWT\" and a \"BEGIN USER NKEY SEED\" block, as "
                                 f"`nsc generate creds` writes)")
    for line in text.splitlines():
        if line.strip().startswith("SU"):        # the user's nkey seed
            scrub_secret(line.strip())


class NatsAuth:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.method = ""                       # how the channel authenticates, as messages name it
        self.token: Secret | None = None
        self.user: str | None = None
        self.password: Secret | None = None
        self.creds: str | None = None
        self.tls: Any = None                   # an ssl.SSLContext (engine.tls.ClientContext)
        self.requires_tls = False
        self.has_cert = False
        self.server_name: str | None = None    # tls_server_name: the name the server's certificate must carry

    @classmethod
    def from_options(cls, channel: str, options: dict[str, Any], servers: list[str], *,
                     load: bool = True) -> "NatsAuth":
        """``load`` false (``bsp check``): every option checked, no secret, credentials or TLS file read."""
        auth = cls(channel)
        auth.token = _secret(channel, options, "token", load)
        user, auth.password = options.get("user"), _secret(channel, options, "password", load)
        creds = options.get("creds_file")
        if user is not None and (not isinstance(user, str) or not user):
            raise ChannelConfigError(f"channel {channel}: option user: expected a user name, got {user!r}")
        if (user is None) != (auth.password is None):
            raise ChannelConfigError(
                f"channel {channel}: option {'user' if user is not None else auth.password.option}: a user and its "
                f"password go together: give user with password_env or password_file")
        given = [m for m, there in (("token_env/token_file", auth.token), ("user", user), ("creds_file", creds))
                 if there is not None]
        if len(given) > 1:
            raise ChannelConfigError(f"channel {channel}: options {' and '.join(given)}: give one way to "
                                     f"authenticate at most")
        in_url = [s for s in servers if "@" in s.split("://", 1)[-1].split("/", 1)[0]]
        if given and in_url:
            raise ChannelConfigError(f"channel {channel}: option url holds credentials (user@host) and option "
                                     f"{given[0]} gives others: take them out of the url (a url is kept with the "
                                     f"configuration's sources; the options' secrets are not)")
        if creds is not None:
            if not isinstance(creds, str) or not creds:
                raise ChannelConfigError(f"channel {channel}: option creds_file: expected a file path, got {creds!r}")
            if load:
                _check_creds(channel, creds)
            auth.creds = creds
        auth.user = user
        auth.method = (f"token ({auth.token.shown})" if auth.token else
                       f"user {user} ({auth.password.shown})" if auth.password else
                       f"credentials (creds_file {creds})" if creds else
                       "credentials in the url" if in_url else "")
        auth._tls(options, servers, load)
        return auth

    def _tls(self, options: dict[str, Any], servers: list[str], load: bool) -> None:
        ca, cert, key = (options.get(o) for o in TLS_OPTIONS)
        given = [o for o in TLS_OPTIONS + ("tls_server_name",) if options.get(o) is not None]
        name = options.get("tls_server_name")
        if name is not None and (not isinstance(name, str) or not _HOST_NAME.fullmatch(name)):
            raise ChannelConfigError(f"channel {self.channel}: option tls_server_name: expected a host name as the "
                                     f"server's certificate carries it (nats.bank.internal, or an IP address), "
                                     f"without scheme or port, got {name!r}")
        self.server_name = name
        if key is not None and cert is None:
            raise ChannelConfigError(f"channel {self.channel}: option tls_key given without tls_cert: add the "
                                     f"matching tls_cert (the client certificate), or drop tls_key")
        if cert is not None and key is None:
            raise ChannelConfigError(f"channel {self.channel}: option tls_cert given without tls_key: add the "
                                     f"private key of the client certificate as tls_key")
        schemes = {s.split("://", 1)[0] for s in servers}
        if given and schemes & {"ws", "wss"}:
            raise ChannelConfigError(f"channel {self.channel}: option {given[0]}: TLS options work with nats:// "
                                     f"and tls:// urls, not websocket ones")
        self.requires_tls = bool(given) or "tls" in schemes
        self.has_cert = cert is not None
        if not self.requires_tls or not load:
            return
        from engine.tls import client_context
        try:
            self.tls = client_context(ca=ca, cert=cert, key=key, server_hostname=name)
        except ValueError as exc:
            text = str(exc)
            for side, option in (("client tls ca", "tls_ca"), ("client tls cert", "tls_cert"),
                                 ("client tls key", "tls_key")):
                text = text.replace(side, f"option {option}")
            raise ChannelConfigError(f"channel {self.channel}: {text}") from None

    def connect_options(self) -> dict[str, Any]:
        """What ``nats.aio.client.Client.connect`` takes for this auth and TLS."""
        out: dict[str, Any] = {}
        if self.token is not None:
            out["token"] = self.token
        elif self.password is not None:
            out["user"], out["password"] = self.user, self.password
        elif self.creds is not None:
            out["user_credentials"] = self.creds
        if self.tls is not None:
            out["tls"] = self.tls
            if self.server_name:
                out["tls_hostname"] = self.server_name      # checked and sent as SNI instead of the url's host
        return out

    def refused_text(self, url: str, why: str) -> str:
        """A server's refusal of the credentials, naming the channel and the method (never the secret)."""
        why = re.sub(r"^(\w+: )?nats: ", "", why).replace("'", "")     # "Error: nats: 'Authorization Violation'"
        method = self.method or "no credentials (the server requires some: set token_file, user with " \
                                "password_file, or creds_file)"
        return (f"channel {self.channel}: NATS at {url} refused the channel's credentials, {method}: {why} "
                f"(check the secret against the server's accounts; a secret in a file is read again at the next "
                f"attempt)")


def is_auth_error(text: str) -> bool:
    low = text.lower()
    return "authorization violation" in low or "authorization failed" in low or "authentication" in low \
        or "user authentication expired" in low


def is_cut(text: str) -> bool:
    """A connection cut short: what an attempt refused by the server may also end with."""
    low = text.lower()
    return "reset by peer" in low or "unexpected eof" in low or "unexpectedeof" in low or "broken pipe" in low


__all__ = ["AUTH_OPTIONS", "NatsAuth", "Secret", "is_auth_error", "is_cut"]
