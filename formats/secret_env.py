"""The environment variables that hold secrets, which a route's ``env()`` never reads.

``ENGINE``: the engine's own (the admin token, the audit key, the field keyring), refused by ``bsp check``
(E151) and when a route runs.  ``mark(name)``: a variable the engine read a secret from while it ran (a
channel's ``token_env`` / ``password_env`` / ``signature_key_env``, a format's ``mac_key_env``, a
deployment's ``{env: NAME}``), refused from then on.  Pure: no I/O, no engine imports."""
from __future__ import annotations

ENGINE = frozenset({"BSP_ADMIN_TOKEN", "BSP_AUDIT_KEY", "BSP_FIELD_KEYS"})

_READ: set[str] = set()


def mark(name: str | None) -> None:
    """``name`` holds a secret the engine read."""
    if name:
        _READ.add(name)


def forget(name: str) -> None:
    _READ.discard(name)


def is_secret(name: str) -> bool:
    return name in ENGINE or name in _READ
