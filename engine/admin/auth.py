"""Admin API authentication: named bearer tokens, each with roles (engine/admin/roles.py).

    token = load_token(token_file)            # or load_token(None): $BSP_ADMIN_TOKEN
    auth = TokenAuth(token)                   # one token named "admin" with every role
    auth = TokenAuth(None, tokens=[NamedToken("prometheus", secret, frozenset({"monitor"}))])
    who = auth.check(request)                 # HTTPError 401 unless "Authorization: Bearer <token>"
    auth.allow(who, "operate", request)       # HTTPError 403 naming the role needed

The token presented is compared with every configured one (``hmac.compare_digest`` of SHA-256 digests:
constant time, all of them, no early exit), so the time taken says nothing of which one matched.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from engine import filemodes
from engine.admin.roles import ALL_ROLES, LEGACY_NAME
from engine.defaults import ADMIN_TOKEN_ENV
from engine.http.messages import HTTPError, Request

log = logging.getLogger("bsp.admin")

TOKEN_ENV = ADMIN_TOKEN_ENV
MIN_TOKEN_LENGTH = 16
_MAKE = "create one with `bsp admin token FILE` or `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"


class AdminConfigError(ValueError):
    """The admin API cannot start as configured; the message says what to change."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_token(path: str | os.PathLike[str]) -> str:
    """Write a fresh token to ``path`` (mode 0600) and return it."""
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def check_token(token: str, where: str) -> str:
    """``token`` when it is fit to guard the admin API, else AdminConfigError naming ``where`` it came from."""
    if not token:
        raise AdminConfigError(f"admin token {where} is empty; {_MAKE}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise AdminConfigError(f"admin token {where} has {len(token)} characters; at least "
                               f"{MIN_TOKEN_LENGTH} are required; {_MAKE}")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise AdminConfigError(f"admin token {where} contains spaces or control characters; {_MAKE}")
    return token


def load_token(token_file: str | os.PathLike[str] | None = None, *, env: str = TOKEN_ENV,
               environ: Mapping[str, str] | None = None, option: str = "--admin-token-file") -> str:
    """The token from ``token_file`` (surrounding whitespace stripped) or else from ``$env``;
    ``option``: how the caller's user gives a token file (named when there is no token)."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        p = Path(token_file)
        try:
            text = p.read_text("utf-8")
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise AdminConfigError(f"admin token file {str(p)!r} does not exist; {_MAKE}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AdminConfigError(f"admin token file {str(p)!r} cannot be read: {exc}") from None
        if filemodes.exposed(mode):
            log.warning("admin token file %s is readable by group/others; chmod 600 %s", p, p)
        return check_token(text.strip(), f"in file {str(p)!r}")
    value = environ.get(env)
    if value is None:
        raise AdminConfigError(f"no admin token: set ${env} or give a token file ({option}); {_MAKE}")
    return check_token(value.strip(), f"in ${env}")


@dataclass(frozen=True)
class NamedToken:
    """One admin token: its ``name`` (in the log and the audit trail, never the secret), the ``secret``
    itself, and the ``roles`` it grants (engine/admin/roles.py)."""

    name: str
    secret: str = field(repr=False)
    roles: frozenset[str] = ALL_ROLES
    where: str = field(default="", repr=False, compare=False)     # where it was configured, for errors
    file: str | None = field(default=None, repr=False, compare=False)   # the file it was read from, if one


def check_tokens(tokens: Iterable[NamedToken]) -> tuple[NamedToken, ...]:
    """``tokens`` when each is fit (``check_token``) and no two share a name or a secret, else
    AdminConfigError naming both (never a secret)."""
    out = tuple(tokens)
    names: dict[str, NamedToken] = {}
    secrets_seen: dict[str, NamedToken] = {}
    for t in out:
        check_token(t.secret, f"{t.name!r}" + (f" ({t.where})" if t.where else ""))
        if t.name in names:
            raise AdminConfigError(f"admin tokens: two are named {t.name!r}; give each token its own name")
        first = secrets_seen.get(t.secret)
        if first is not None:
            raise AdminConfigError(f"admin tokens {first.name!r} and {t.name!r} are the same token; each needs its "
                                   f"own (a log line or a refusal must say which was used); {_MAKE}")
        names[t.name] = t
        secrets_seen[t.secret] = t
    return out


def token_set(token: str | None, tokens: Iterable[NamedToken], *, file: str | None = None) -> tuple[NamedToken, ...]:
    """The token set ``TokenAuth`` checks against: ``token`` (the single-token setup; ``file``: the file it was
    read from) as one named ``admin`` with every role, then ``tokens``; each fit and no two alike
    (``check_tokens``), at least one."""
    entries = ([NamedToken(LEGACY_NAME, check_token(token, "given"), ALL_ROLES, file=file)]
               if token is not None else [])
    out = check_tokens(entries + list(tokens))
    if not out:
        raise AdminConfigError(f"no admin token: give --admin-token-file, admin.token or admin.tokens; {_MAKE}")
    return out


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` against the named tokens; on failure raises 401 and
    reports the reason; ``allow`` raises 403 when the token lacks the role an endpoint needs.

    ``token`` (the single-token setup: ``--admin-token-file``, ``admin.token``, ``$BSP_ADMIN_TOKEN``) is a
    token named ``admin`` with every role; ``tokens`` adds named ones.
    ``on_failure(reason)`` is called with "missing", "malformed", "wrong" or "forbidden".
    """

    def __init__(self, token: str | None = None, on_failure: Callable[[str], None] | None = None, *,
                 tokens: Iterable[NamedToken] = ()) -> None:
        self._use(token_set(token, tokens))
        self.on_failure = on_failure

    def _use(self, tokens: tuple[NamedToken, ...]) -> None:
        # one assignment: a request being checked reads either the whole old set or the whole new one
        self._state = (tokens, [(hashlib.sha256(t.secret.encode()).digest(), t) for t in tokens])

    @property
    def tokens(self) -> tuple[NamedToken, ...]:
        return self._state[0]

    def replace(self, tokens: Iterable[NamedToken]) -> None:
        """Use ``tokens`` from now on (a reload: engine/ops/admintokens.py), checked as at start; a request
        already let in keeps the token it was let in with, the next one is checked against the new set."""
        self._use(token_set(None, tokens))

    def _refuse(self, reason: str, detail: str) -> HTTPError:
        if self.on_failure is not None:
            self.on_failure(reason)
        return HTTPError(401, detail, headers=[("www-authenticate", 'Bearer realm="bsp-admin"')],
                         extra={"reason": reason})

    def _match(self, presented: str) -> NamedToken | None:
        digest = hashlib.sha256(presented.encode()).digest()
        # every token compared, the result kept aside: no early exit telling by its timing which one matched
        digests = self._state[1]          # read once: a reload swapping the set meanwhile changes nothing here
        hits = [hmac.compare_digest(digest, d) for d, _ in digests]
        found = [t for hit, (_, t) in zip(hits, digests) if hit]
        return found[0] if found else None

    def check(self, request: Request) -> NamedToken:
        """The token the request carries (401 when none of the configured ones)."""
        header = request.header("authorization")
        if header is None:
            raise self._refuse("missing", "this endpoint needs `Authorization: Bearer <token>`; the token is in "
                                          f"the engine's admin token file or ${TOKEN_ENV}")
        if sum(1 for name, _ in request.headers if name == "authorization") > 1:
            # one field only (RFC 9110): a proxy that reads another of them than we do must not decide who is let in
            raise self._refuse("malformed", "the request has more than one Authorization header; send one, "
                                            "`Authorization: Bearer <token>`")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            # the scheme is quoted only when it cannot be a token (shorter than one): a token sent without
            # `Bearer ` would be its first word, and a refusal never quotes a secret back
            got = (f"scheme {scheme!r}" if len(scheme) < MIN_TOKEN_LENGTH
                   else f"a value of {len(scheme)} characters without a scheme")
            raise self._refuse("malformed", f"expected `Authorization: Bearer <token>`, got {got}")
        who = self._match(credentials.strip())
        if who is None:
            raise self._refuse("wrong", "the bearer token is not the admin token of this engine (nor one of its named tokens)")
        return who

    def allow(self, who: NamedToken, role: str | None, what: str) -> None:
        """Nothing when ``who`` has ``role`` (None: any token will do), else a 403 naming the role ``what``
        (``POST /reload``) needs; the names of other tokens, or which have it, are never said."""
        if role is None or role in who.roles:
            return
        if self.on_failure is not None:
            self.on_failure("forbidden")
        raise HTTPError(403, f"{what} needs a token with the role {role!r}; the token sent does not have it. "
                             f"Use a token that has it (the engine's admin.tokens list its roles: "
                             f"docs/admin-api.md#roles)", extra={"role": role, "reason": "forbidden"})
