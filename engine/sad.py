"""Sensitive authentication data out of dead letters (PCI DSS 3.3.1: track data, card verification codes
and PIN blocks are not kept after authorization, even encrypted).

A dead letter keeps the request it was made of so that ``bsp dead retry`` can run it again.  When the
request decoded, its format says which fields are ``secret`` (ISO 8583 DE 35, 36, 45, 52, 96; a
``classify ["card.cvv:secret"]`` rule): those are taken out of the bytes kept, the rest stays as it was
(``pan`` and ``personal`` values are sealed with the rest of the message by the field keyring, and a
retry needs them).  A ``secret`` field is written ``***`` where its field can hold that (JSON, XML,
text), else left out of the message (an ISO 8583 message without its track 2 and PIN block is a valid
key-entered request); a message that cannot be written again either way is kept as received.

A retry of such a letter runs without the secret values: a card host sees no track data and no PIN.
"""
from __future__ import annotations

from typing import Any, Mapping

from formats.classify import mask

__all__ = ["kept_raw", "without_secrets"]


def without_secrets(raw: bytes, codec: Any, values: Any, tags: Mapping[str, str] | None) -> tuple[bytes, str | None]:
    """(the bytes to keep, what was taken out or None).  ``values``: ``raw`` as ``codec`` decoded it;
    ``tags``: the format's classification (``formats.classify.tags_of``)."""
    secret = {p: t for p, t in (tags or {}).items() if t == "secret"}
    if not secret or codec is None or values is None or not raw:
        return raw, None
    masked = mask(values, secret)
    if not isinstance(values, Mapping) or not isinstance(masked, Mapping):
        return raw, None
    changed = [k for k in values if masked.get(k) != values.get(k)]
    if not changed:
        return raw, None
    out = _encoded(codec, masked)
    if out is not None:
        return out, "secret " + ", ".join(str(k) for k in changed) + " as ***"
    if any(masked[k] != "***" for k in changed):     # a group holding a secret: leaving it out loses more
        return raw, None
    top = {k: v for k, v in masked.items() if k not in changed}      # the secret fields left out
    out = _encoded(codec, top)
    if out is not None:
        return out, "secret " + ", ".join(str(k) for k in changed) + " left out"
    return raw, None


def kept_raw(ex: Any) -> bytes:
    """The bytes a rejected or failed exchange's dead letter keeps: its request without its ``secret``
    fields when a format decoded it.  A request that did not decode (``malformed``) or whose MAC or
    signature did not verify (``unauthenticated``: kept as evidence, never retried) is kept as received."""
    raw = ex.raw or b""
    f = ex.failure
    if ex.msg is None or (f is not None and f.kind in ("unauthenticated", "malformed")):
        return raw
    if ex.route is not None:
        codec, tags = getattr(ex.route, "codec", None), getattr(ex.route, "request_tags", None)
        values = ex.raw_msg if ex.raw_msg is not None else ex.msg
    else:
        codec, tags, values = ex.request_codec, ex.request_tags, ex.msg
    return without_secrets(raw, codec, values, tags)[0]


def _encoded(codec: Any, values: Any) -> bytes | None:
    try:
        out = codec.encode(values)
        codec.decode(out)
    except Exception:   # noqa: BLE001 - a format that cannot write it so: the caller keeps the message
        return None
    return bytes(out)
