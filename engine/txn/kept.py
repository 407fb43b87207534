"""A recorded deal's key in the key store (``TxnLog.ends``): what answers a repeat, in as little memory as it takes.

Once a keyed deal's ledger row is committed, the key store keeps of its ``end`` only what answers a repeat and
expires the key (``log._answer_only``): id, key, status, code, reply, fin, held, kind, fp.  A key is kept for the
key retention (35 days by default), so an engine holds millions of them: each is a ``Kept``, a read-only mapping
of those fields with ``__slots__`` (no per-entry dict).  Its reply is held as bytes, not as the hex text the log
writes (half the size); sealed with a field keyring, as ``KID:`` and the bytes of the token's base64 (three
quarters of its size, no ``{"k": token}`` dict); a deal id of ``engine.deal.new_deal_id``'s 32 hex digits as its
16 bytes; status, code and kind interned (a few distinct values shared by every key).  Read as a mapping it is
the entry as logged, field for field and character for character (``end.get("reply")``: the hex text or
``{"k": token}``, which ``TxnManager.unseal`` turns into the original bytes; ``end["id"]``: the id's text), so a
repeat gets the original answer byte for byte and a compaction writes the same entry as before
(``log._default``).  A value of another shape (a reply neither lower-case hex nor a token that comes back the
same) is not packed: ``kept`` returns None and the log keeps that entry as a dict.
bench/bench_key_memory.py measures it: 1,241 -> 715 bytes a key live, 1,463 -> 715 after a restart (300-byte
replies, no keyring; docs/benchmarks.md, Soak).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from sys import intern
from typing import Any, Iterator

from engine.fieldcrypt import PREFIX


_FIELDS = ("id", "key", "status", "code", "reply", "fin", "held", "kind", "fp")
_NAMES = frozenset(_FIELDS) | {"t", "recorded"}


class Kept(Mapping):
    """A recorded ``end`` as the key store holds it: a read-only mapping equal to the logged entry."""

    __slots__ = _FIELDS

    def __getitem__(self, name: str) -> Any:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def get(self, name: str, default: Any = None) -> Any:
        if name == "reply":
            r = self.reply
            if r is None:
                return default
            return _reply(r)
        if name == "id":
            i = self.id
            return i.hex() if type(i) is bytes else i
        if name == "t":
            return "end"
        if name == "recorded":
            return True
        if name not in _NAMES:
            return default
        v = getattr(self, name)
        return default if v is None else v

    def __contains__(self, name: object) -> bool:
        return name in _NAMES and self.get(name) is not None     # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        yield "t"
        for name in _FIELDS:
            if getattr(self, name) is not None:
                yield name
        yield "recorded"

    def __len__(self) -> int:
        return 2 + sum(getattr(self, name) is not None for name in _FIELDS)

    def entry(self) -> dict[str, Any]:
        """The entry as the log writes it (a compaction: one call per key, so written out, ~1 us)."""
        i = self.id
        e: dict[str, Any] = {"t": "end", "id": i.hex() if type(i) is bytes else i, "key": self.key}
        if self.status is not None:
            e["status"] = self.status
        if self.code is not None:
            e["code"] = self.code
        r = self.reply
        if r is not None:
            e["reply"] = _reply(r)
        if self.fin is not None:
            e["fin"] = self.fin
        if self.held is not None:
            e["held"] = self.held
        if self.kind is not None:
            e["kind"] = self.kind
        if self.fp is not None:
            e["fp"] = self.fp
        e["recorded"] = True
        return e

    def __repr__(self) -> str:
        return f"Kept({self.entry()!r})"


def kept(end: Mapping[str, Any]) -> Kept | None:
    """A recorded deal's ``end`` as a ``Kept`` (its other fields are left out); None when its reply is not of
    the shape this bsp logs (neither hex nor ``{"k": token}``): the caller keeps it as a dict, as it is."""
    if type(end) is Kept:
        return end
    reply = end.get("reply")
    if isinstance(reply, str):
        try:
            raw = bytes.fromhex(reply)
        except ValueError:
            return None
        if raw.hex() != reply:            # upper-case hex, spaces: not what ``TxnManager.seal`` writes
            return None
        reply = raw
    elif isinstance(reply, dict):
        token = reply.get("k")
        if len(reply) != 1 or not isinstance(token, str):
            return None
        reply = _pack(token)
    elif reply is not None:
        return None
    k = Kept()
    get = end.get
    i = get("id")
    if type(i) is str and len(i) == 32:     # engine.deal.new_deal_id: 32 hex digits, kept as their 16 bytes
        try:
            raw = bytes.fromhex(i)
        except ValueError:
            raw = None
        if raw is not None and raw.hex() == i:
            i = raw
    k.id, k.key, k.fin, k.held, k.fp, k.reply = i, get("key"), get("fin"), get("held"), get("fp"), reply
    status, code, kind = get("status"), get("code"), get("kind")
    k.status = intern(status) if type(status) is str else status
    k.code = intern(code) if type(code) is str else code
    k.kind = intern(kind) if type(kind) is str else kind
    return k


class Sealed(bytes):
    """A reply sealed with a field keyring (``enc:v1:KID:BASE64``) as ``KID:`` and the bytes the base64 text
    stands for (three quarters of its size); ``_reply`` writes the same token again."""

    __slots__ = ()


def _pack(token: str) -> Any:
    """A keyring token as a ``Sealed``, or the token itself when it does not come back the same."""
    body = token[len(PREFIX):] if token.startswith(PREFIX) else None
    kid, sep, b64 = body.partition(":") if body is not None else ("", "", "")
    if not sep or ":" in b64:
        return token
    try:
        packed = Sealed(kid.encode("ascii") + b":" + base64.urlsafe_b64decode(b64))
    except (ValueError, binascii.Error):
        return token
    return packed if _reply(packed)["k"] == token else token


def _reply(r: Any) -> Any:
    """A kept reply as the log writes it: hex, or ``{"k": token}``."""
    if type(r) is bytes:
        return r.hex()
    if type(r) is Sealed:
        kid, _, raw = r.partition(b":")
        return {"k": f"{PREFIX}{kid.decode('ascii')}:{base64.urlsafe_b64encode(raw).decode('ascii')}"}
    return {"k": r}
