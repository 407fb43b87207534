"""Who did it, for an operator action written to the ledger without the admin API.

The admin API records the name of the token a request came with (``by`` of a ``resolved`` event, the
``(admin API, token 'NAME')`` of a dead letter's retry outcome).  ``bsp deals resolve`` and ``bsp dead
retry`` working on the ledger file record instead ``--by NAME`` when given, else the operating system's
user running ``bsp`` (``os_user``): the same place, so an auditor reads one field whichever way it was done.
"""
from __future__ import annotations

import getpass
import os

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
