"""The digest a ``limit`` step keeps for a classified key (an investor's account): never the key in clear.

A classified key is kept, in the engine's totals, the ledger's ``counted`` events, a deal's ``begin`` entry and
a refusal's reason, as a digest of ``TOTAL|KEY``.  Until 2026-11-27 that was ``#`` and the first 10 bytes of
its unkeyed BLAKE2b digest (hex): an account number could be found from it by trying guesses.  With a field
keyring it is keyed, ``#KID:HEX``: the first 10 bytes of HMAC-SHA256 under a key derived from field key
``KID`` (HMAC(field key, "bsp limit key digest v1"), not the key that seals), as a deal's fingerprint digests
are (engine/txn/fingerprint.py).  Without a keyring it stays as before.

A total counted before the upgrade (or under a key since rotated) is in a bucket of the other digest: the
``limit`` step adds what such buckets hold for the same key (``Totals.versions`` says which there are, so a
deployment with none pays nothing) and moves their figure into the current digest's bucket, with an event
``rekeyed`` on its deal (``Totals.carry``); a bucket under a key id no longer in the keyring cannot be matched
(the rebuild warns of it): keep a rotated key until the periods of its totals end.
"""
from __future__ import annotations

import hmac
from hashlib import blake2b, sha256
from typing import Any

_INFO = b"bsp limit key digest v1"


def version(key: str) -> str | None:
    """How a kept key was digested: its key id, "" unkeyed, None when it is no digest (a key in clear)."""
    if not key.startswith("#"):
        return None
    kid, sep, _ = key[1:].rpartition(":")
    return kid if sep else ""


class LimitKeys:
    __slots__ = ("current", "macs")

    def __init__(self, keyring: Any = None) -> None:
        keys = getattr(keyring, "keys", None) or {}
        self.macs = {kid: hmac.new(hmac.digest(k, _INFO, "sha256"), digestmod=sha256) for kid, k in keys.items()}
        self.current: str = getattr(keyring, "current", "") if keys else ""

    def __call__(self, total: str, key: str) -> str:
        """The digest a new reservation keeps."""
        return self.like(total, key, self.current) or ""

    def like(self, total: str, key: str, v: str) -> str | None:
        """The digest ``key`` had under version ``v`` ("" unkeyed, or a key id); None for a key id not held."""
        text = f"{total}|{key}".encode("utf-8")
        if not v:
            return "#" + blake2b(text, digest_size=10).hexdigest()
        mac = self.macs.get(v)
        if mac is None:
            return None
        h = mac.copy()
        h.update(text)
        return f"#{v}:{h.digest()[:10].hex()}"
