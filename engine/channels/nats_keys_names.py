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
import json
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


QUOTE_LIMIT = 200


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``value`` (an entry of the bucket, bytes or decoded) as a log line or an error may show it: control
    characters escaped (``repr``), at most ``limit`` characters of it, and how long it was when cut.  The
    bucket is shared: whatever another engine, or a damaged store, put there must not flood a log."""
    if isinstance(value, (bytes, bytearray)):
        size = f"{len(value)} bytes"
        value = bytes(value).decode("utf-8", errors="replace")
    else:
        size = None
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({size or f'{len(text)} characters'} in all)"


def parse_marker(raw: bytes | None, *, channel: str, where: str) -> dict[str, Any]:
    """The ``_bsp_names`` entry's JSON object; a ``ChannelConfigError`` quoting it (bounded) when it is not one."""
    try:
        marker = json.loads(raw or b"{}")
    except ValueError:
        marker = None
    if not isinstance(marker, dict):
        raise ChannelConfigError(f"channel {channel}: {where}: its {MARKER} entry is not a JSON object "
                                 f"({quoted(raw or b'')}); it was damaged or written by something other than "
                                 f"bsp: delete it (nats kv del BUCKET {MARKER}) only if every engine sharing "
                                 f"the bucket names keys the same way, or move every engine to a new bucket "
                                 f"(option keys)")
    return marker


def follow(marker: dict[str, Any], keyring: Any, *, channel: str, where: str) -> Names:
    """The names a bucket's ``_bsp_names`` entry asks for; a ``ChannelConfigError`` saying how to fix it
    when this engine cannot make them (the entry is quoted bounded and escaped: ``quoted``)."""
    kind = marker.get("names")
    if kind == "sha256":
        return Names()
    if kind != "hmac-sha256" or not isinstance(marker.get("kid"), str):
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys in a way this engine does not "
                                 f"know ({MARKER} = {quoted(marker)}); run the same bsp version on every engine "
                                 f"sharing the bucket")
    kid = marker["kid"]
    shown = quoted(kid, 64)               # the bucket's text: bounded and escaped like the entry
    if keyring is None:
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {shown}, and this engine has no field keyring; give it the keyring of the "
                                 f"other engines sharing the bucket (ledger.field_keys in platform.yaml, or "
                                 f"BSP_FIELD_KEYS(_FILE))")
    if kid not in keyring.keys:
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {shown}, which is not in this engine's field keyring (it has "
                                 f"{', '.join(sorted(keyring.keys))}); keep key {shown} in the ring after a "
                                 f"rotation, or move every engine to a new bucket (option keys)")
    names = keyed(keyring, kid)
    if not hmac.compare_digest(names.check, str(marker.get("check", ""))):
        raise ChannelConfigError(f"channel {channel}: {where} names its deal keys with HMAC-SHA256 under field "
                                 f"key {shown}, but this engine's key {shown} is another key (the bucket's "
                                 f"check value differs); give every engine sharing the bucket the same field "
                                 f"keyring")
    return names
