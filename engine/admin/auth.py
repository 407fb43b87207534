"""Admin API authentication: a bearer token from a file or an environment variable.

    token = load_token(token_file)            # or load_token(None): $BSP_ADMIN_TOKEN
    auth = TokenAuth(token)
    auth.check(request)                       # HTTPError 401 unless "Authorization: Bearer <token>"

Tokens are compared with ``hmac.compare_digest`` (constant time).
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Callable, Mapping

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
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("admin token file %s is readable by group/others; chmod 600 %s", p, p)
        return check_token(text.strip(), f"in file {str(p)!r}")
    value = environ.get(env)
    if value is None:
        raise AdminConfigError(f"no admin token: set ${env} or give a token file ({option}); {_MAKE}")
    return check_token(value.strip(), f"in ${env}")


class TokenAuth:
    """Checks ``Authorization: Bearer <token>``; on failure raises 401 and reports the reason.

    ``on_failure(reason)`` is called with "missing", "malformed" or "wrong".
    """

    def __init__(self, token: str, on_failure: Callable[[str], None] | None = None) -> None:
        self._token = check_token(token, "given").encode()
        self.on_failure = on_failure

    def _refuse(self, reason: str, detail: str) -> HTTPError:
        if self.on_failure is not None:
            self.on_failure(reason)
        return HTTPError(401, detail, headers=[("www-authenticate", 'Bearer realm="bsp-admin"')],
                         extra={"reason": reason})

    def check(self, request: Request) -> None:
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
            raise self._refuse("malformed", f"expected `Authorization: Bearer <token>`, got scheme {scheme!r}")
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            raise self._refuse("wrong", "the bearer token is not the admin token of this engine")
