"""The start-up warning of an engine without a field keyring whose formats classify fields.

Without a keyring the deals' classified fields are masked (nothing to reveal), but what the engine keeps
of a request as it came, to retry it or to finish it after a crash, stays in clear: dead letters, the
hex of a request no format read (``deals.request`` of a malformed deal), the transaction log (requests
in flight, answers kept for repeats, queued reversals), a NATS key store's answers (docs/security.md,
"What is stored where").  PCI DSS 3.5 wants a PAN unreadable wherever it is stored: say so at start.
"""
from __future__ import annotations

from typing import Any

__all__ = ["no_keyring_warning"]


def no_keyring_warning(program: Any, registry: Any, keyring: Any) -> str | None:
    """One line naming the classified fields when there is no field keyring; None otherwise."""
    if keyring is not None:
        return None
    from engine.replay.tap import classified_fields
    fields = classified_fields(program, registry)
    if not fields:
        return None
    shown = ", ".join(fields[:3]) + (f" and {len(fields) - 3} more" if len(fields) > 3 else "")
    return (f"no field keyring: the configuration classifies fields ({shown}); the deals store them masked, "
            f"but dead letters, the hex of malformed requests and the transaction log keep the requests as "
            f"received, card numbers in clear; give the engine a keyring (ledger.field_keys, or "
            f"BSP_FIELD_KEYS_FILE): docs/security.md#the-ledgers-keys")
