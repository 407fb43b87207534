"""How a shared deal-key store (``nats consume`` with ``keys``) names a deal key in its bucket.

Bucket keys allow few characters, and a deal key may carry a card or account number, so the deal key
(``route|value``) is never a bucket key itself:

    with a field keyring   HMAC-SHA256 of the deal key under a key derived from one key of the ring
                           ("kid"): a reader of the bucket without the keyring cannot test guesses
    without                SHA-256 of the deal key, unkeyed: a low-entropy value (a card number of a known
                           BIN, a short reference) can be found by hashing guesses

Every engine sharing the bucket must name a key the same way, or a repeat on another engine is not
recognised.  So the bucket says how its keys are named, in its entry ``_bsp_names``
(``{"names": "hmac-sha256", "kid": "k1", "check": ...}`` or ``{"names": "sha256"}``), written by the
engine that finds it missing (the first one, normally when it creates the bucket) and followed by every
other one: an engine whose keyring's *current* key is another (the keyring was rotated) still names with
the bucket's ``kid`` as long as that key is in its ring.  ``check`` (an HMAC of a constant under the
derived key) tells an engine whose key ``kid`` is not the same key.  A bucket holding entries but no
``_bsp_names`` was made by an engine before names were keyed: SHA-256.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from engine.channels.options import ChannelConfigError

MARKER = "_bsp_names"
_INFO = b"bsp nats consume keys: bucket key names v1"


def sha256_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Names:
    """A way of naming deal keys in a bucket: ``mac`` None is unkeyed SHA-256."""

    mac: bytes | None = None
    kid: str | None = None

    def __call__(self, key: str) -> str:
        if self.mac is None:
            return sha256_name(key)
        return hmac.new(self.mac, key.encode(), hashlib.sha256).hexdigest()

    @property
    def check(self) -> str:
        return hmac.new(self.mac or b"", b"check", hashlib.sha256).hexdigest()[:16]

    def marker(self) -> dict[str, Any]:
        if self.mac is None:
            return {"names": "sha256"}
        return {"names": "hmac-sha256", "kid": self.kid, "check": self.check}

    def describe(self) -> str:
        return "unkeyed SHA-256" if self.mac is None else f"HMAC-SHA256 under field key {self.kid!r}"


def keyed(keyring: Any, kid: str) -> Names:
    """The names made with key ``kid`` of ``keyring`` (its own derived key, not the key that seals)."""
    return Names(hmac.new(keyring.keys[kid], _INFO, hashlib.sha256).digest(), kid)


def choose(keyring: Any) -> Names:
    """How this engine names keys in a bucket that does not say yet: keyed with the current key when it
    has a keyring."""
    return keyed(keyring, keyring.current) if keyring is not None else Names()


def follow(marker: dict[str, Any], keyring: Any, *, channel: str, where: str) -> Names:
    """The names a bucket's ``_bsp_names`` entry asks for; a ``ChannelConfigError`` saying how to fix it
    when this engine cannot make them."""
    kind = marker.get("names")
    if kind == "sha256":
        return Names()
    if kind != "hmac-sha256" or not isinstance(marker.get("kid"), str):
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys in a way this engine does not "
                                 f"know ({MARKER} = {marker!r}); run the same bsp version on every engine "
                                 f"sharing the bucket")
    kid = marker["kid"]
    if keyring is None:
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {kid!r}, and this engine has no field keyring; give it the keyring of the "
                                 f"other engines sharing the bucket (ledger.field_keys in platform.yaml, or "
                                 f"BSP_FIELD_KEYS(_FILE))")
    if kid not in keyring.keys:
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {kid!r}, which is not in this engine's field keyring (it has "
                                 f"{', '.join(sorted(keyring.keys))}); keep key {kid!r} in the ring after a "
                                 f"rotation, or move every engine to a new bucket (option keys)")
    names = keyed(keyring, kid)
    if not hmac.compare_digest(names.check, str(marker.get("check", ""))):
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {kid!r}, but this engine's key {kid!r} is another key (the bucket's "
                                 f"check value differs); give every engine sharing the bucket the same field "
                                 f"keyring")
    return names
