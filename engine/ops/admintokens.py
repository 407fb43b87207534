"""The admin API's named tokens, read again by a reload: rotated, added, revoked without a restart.

    tokens = AdminTokens(read)        # read(admin settings of the deployment file read again) -> the new set
    tokens.auth = app.auth            # the admin app's TokenAuth (engine/ops/serve.py)
    change = tokens.prepare(settings) # None: the same set; else the new set, checked (AdminTokensRefused)
    tokens.swap(change)               # at the reload's swap: the next request is checked against it

``read`` reads the tokens as ``bsp run`` read them at start (engine/ops/runopts.py ``read_token_set``): each
from its file (``admin.tokens``, ``admin.token``, ``--admin-named-token``, ``--admin-token-file``) or its
environment variable.  A set that cannot be used -- a file missing or unreadable, a token too short, two
tokens alike, an unknown role, or a token added or changed whose file group or others can read
(``engine.filemodes.exposed``) -- is an ``AdminTokensRefused`` naming the token and its file, and the whole
reload is refused: the set in force stays.  A request already let in keeps the token it was let in with;
the next one is checked against the new set (``TokenAuth.replace``: one assignment, no await).  Token
text is never logged nor kept elsewhere; the log says which names were added, removed or changed.
An environment variable of the running process cannot change: a token given as one needs a restart.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine import filemodes


class AdminTokensRefused(ValueError):
    """The admin tokens read again cannot be used; the message names the token, its file and the fix."""


@dataclass(frozen=True)
class TokenChange:
    tokens: tuple[Any, ...]                  # engine.admin.auth.NamedToken: the new set
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()            # "NAME (token)", "NAME (roles: monitor -> monitor, read)"

    def summary(self) -> str:
        """Names only, never a token's text: ``added ops-bob; removed ops-alice; changed prometheus (token)``."""
        parts = [f"{what} {', '.join(names)}" for what, names in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if names]
        return "; ".join(parts)


def _exposed(path: str | None) -> int | None:
    """The mode of ``path`` when group or others can read it, else None."""
    if path is None:
        return None
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return None
    return mode if filemodes.exposed(mode) else None


def _roles(roles: Any) -> str:
    return ", ".join(sorted(roles)) or "none"


class AdminTokens:
    def __init__(self, read: Callable[[Any], tuple[Any, ...]], auth: Any = None) -> None:
        self.read = read
        self.auth = auth                      # engine.admin.auth.TokenAuth, set once the admin API is made
        self.on_secret: Callable[[str], Any] | None = None    # a new token's text: the log scrubber's add

    def prepare(self, settings: Any) -> TokenChange | None:
        """The token set read again (``settings``: the deployment file's ``admin`` read again, None without
        one) compared with the set in force: None when the same, else the change (not yet in use)."""
        if self.auth is None:
            return None
        try:
            new = tuple(self.read(settings))
        except AdminTokensRefused:
            raise
        except Exception as exc:          # AdminConfigError, SecretError, OpsConfigError: each names its place
            raise AdminTokensRefused(f"admin API tokens: {str(exc).removeprefix('admin API: ')}") from None
        old = {t.name: t for t in self.auth.tokens}
        now = {t.name: t for t in new}
        added = tuple(n for n in now if n not in old)
        removed = tuple(n for n in old if n not in now)
        changed: list[str] = []
        fresh = set(added)                       # tokens this reload puts in force: their files are checked
        for name, t in now.items():
            was = old.get(name)
            if was is None:
                continue
            what = (["token"] if t.secret != was.secret else []) + \
                   ([f"roles: {_roles(was.roles)} -> {_roles(t.roles)}"] if t.roles != was.roles else [])
            if what:
                changed.append(f"{name} ({'; '.join(what)})")
            if what or t.file != was.file:      # also a token moved to another file: that file is checked
                fresh.add(name)
        for t in new:
            mode = _exposed(t.file) if t.name in fresh else None
            if mode is not None:
                raise AdminTokensRefused(
                    f"admin API tokens: token {t.name!r}: its file {t.file} is readable by group/others (mode "
                    f"{mode:04o}): whoever reads it could use the admin API with its roles; chmod 600 {t.file}, "
                    f"then reload again")
        if not (added or removed or changed):
            return None
        return TokenChange(new, added, removed, tuple(changed))

    def swap(self, change: TokenChange) -> None:
        assert self.auth is not None
        if self.on_secret is not None:        # the log scrubs the new tokens' text too (never logged anyway)
            for t in change.tokens:
                self.on_secret(t.secret)
        self.auth.replace(change.tokens)
