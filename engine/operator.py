"""Who did it, for an operator action written to the ledger without the admin API.

The admin API records the name of the token a request came with (``by`` of a ``resolved`` event, the
``(admin API, token 'NAME')`` of a dead letter's retry outcome).  ``bsp deals resolve`` and ``bsp dead
retry`` working on the ledger file record instead ``--by NAME`` when given, else the operating system's
user running ``bsp`` (``os_user``): the same place, so an auditor reads one field whichever way it was done.

Two rules name who for a command run on this machine, and each has its own function:

``by_else_os_user``   who is ``--by``, else the OS user (the OS user kept beside a ``--by`` naming another): a
                      reveal (engine/reveal_log.py), a purge without four eyes;
``os_user_not_by``    who is the OS user, what bsp can tell (anyone can type ``--by``; it is kept beside as
                      ``stated_by``): a four-eyes request or decision on the ledger file (engine/four_eyes.py),
                      an approved purge, an archive's request.
"""
from __future__ import annotations

import getpass
import os
from typing import Any

MAX_BY = 200


def os_user() -> str:
    """The OS user running this process; ``uid N`` when the system has no name for it (a container)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):
        name = ""
    if name and name.isprintable() and len(name) <= MAX_BY:
        return name
    getuid = getattr(os, "getuid", None)
    return f"uid {getuid()}" if getuid is not None else "unknown"


def check_by(by: object, option: str = "--by") -> str:
    """``by`` stripped when it names someone (1 to ``MAX_BY`` printable characters), else ValueError."""
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY or not by.isprintable():
        raise ValueError(f"{option}: expected who did it (a name of 1 to {MAX_BY} printable characters), got {by!r}")
    return by.strip()


def by_else_os_user(by: str | None) -> tuple[str, dict[str, Any]]:
    """(who, where) of a command recorded on this machine where ``--by`` names who: ``--by`` else the OS user;
    ``where``: the host, and the OS user when ``--by`` names another (``os_user``, else None).  ValueError:
    a ``--by`` the audit trail cannot take (``check_by``)."""
    import socket

    user = os_user()
    who = check_by(by) if by is not None else user
    return who, {"host": socket.gethostname(), "os_user": user if who != user else None}


def os_user_not_by(by: str | None) -> tuple[str, dict[str, Any]]:
    """(who, where) of a command recorded on this machine where who must be what bsp can tell: the OS user
    (anyone can type ``--by``); ``where``: the host, the OS user, and ``--by`` as ``stated_by`` when it names
    another (else None).  ValueError: a ``--by`` the audit trail cannot take (``check_by``)."""
    import socket

    user = os_user()
    stated = check_by(by) if by is not None else None
    return user, {"host": socket.gethostname(), "os_user": user,
                  "stated_by": stated if stated is not None and stated != user else None}
