"""Field protection: classified fields are masked or encrypted before the ledger stores them.

Fields are classified in their format (``formats/classify.py``: ``pan``,
``secret``, ``personal`` per dotted field path).  Policy per tag:

* ``pan``: masked **and** encrypted: ``"enc:v1:<kid>:<b64 nonce+ct>:411111******1111"``
  (the mask after the last ``:`` is what a reader without the key sees);
* ``secret``: dropped, stored as ``"***"``; never recoverable;
* ``personal``: encrypted: ``"enc:v1:<kid>:<b64 nonce+ct>"``.

Without a keyring ``pan`` and ``personal`` are masked only (fail closed:
plaintext never reaches the file).  Encryption is AES-256-GCM with a random
96-bit nonce; the associated data is ``"<context>|<field path>"`` (the deal id
and the concrete path such as ``request.card.number``), so a ciphertext moved
to another field or deal does not decrypt.  The plaintext is the value's JSON
(``Decimal`` as its exact string).

Keys (a keyring: key id -> 32 bytes; the current id encrypts, every id decrypts):

* ``BSP_FIELD_KEYS_FILE``: a JSON file ``{"current": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}``;
* or ``BSP_FIELD_KEYS``: ``"k2:<base64>,k1:<base64>"``; the first entry is current.

Rotation: add a new key, make it current; keep the old ones so old rows still decrypt.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from formats.classify import TAGS, at_key, item_rules, mask_value

PREFIX = "enc:v1:"
ENV_FILE = "BSP_FIELD_KEYS_FILE"
ENV_KEYS = "BSP_FIELD_KEYS"
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

__all__ = ["Keyring", "KeyringError", "load_keyring", "keyring_from_json", "keyring_from_list", "protect", "protect_raw", "reveal", "decrypt_value",
           "is_encrypted", "PREFIX", "ENV_FILE", "ENV_KEYS"]


class KeyringError(ValueError):
    """A key file or variable that cannot be used; the message names it and the entry."""


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: Mapping[str, bytes]
    source: str = field(default="", compare=False)     # where it was read (for messages), never a key

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise KeyringError(f"field keyring: current key id {self.current!r} is not among the keys "
                               f"({', '.join(sorted(self.keys)) or 'none'})")
        for kid, key in self.keys.items():
            if not _KID.match(kid):
                raise KeyringError(f"field keyring: key id {kid!r}: use 1-32 letters, digits, '_', '-', '.'")
            if len(key) != 32:
                raise KeyringError(f"field keyring: key {kid!r} is {len(key)} bytes; AES-256 needs 32 "
                                   f"(make one with: python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\")")

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(12)
        ct = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, aad)
        return f"{PREFIX}{self.current}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, aad: bytes) -> bytes:
        """Plaintext of ``enc:v1:<kid>:<b64>[:mask]``; raises KeyringError saying why not."""
        kid, blob = _split(token)
        key = self.keys.get(kid)
        if key is None:
            raise KeyringError(f"key id {kid!r} is not in the keyring (have {', '.join(sorted(self.keys))}); "
                               f"add the old key back to decrypt rows written with it")
        try:
            raw = base64.urlsafe_b64decode(blob)
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad)
        except (InvalidTag, binascii.Error, ValueError):
            ring = f" of the field keyring from {self.source}" if self.source else ""
            raise KeyringError(f"ciphertext does not authenticate under key {kid!r}{ring}: that key is not the "
                               f"one it was encrypted with (another environment's keyring, a key id given to a "
                               f"new key), or the stored value was modified or moved from another field or "
                               f"deal") from None


def _split(token: str) -> tuple[str, str]:
    parts = token[len(PREFIX):].split(":")
    if not token.startswith(PREFIX) or len(parts) < 2:
        raise KeyringError(f"{token[:20]!r}... is not an encrypted field (expected enc:v1:<kid>:<data>)")
    return parts[0], parts[1]


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _b64key(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: not base64 (a key is 32 random bytes, base64-encoded)") from None


def load_keyring(environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The keyring from ``BSP_FIELD_KEYS_FILE`` or ``BSP_FIELD_KEYS``; None when neither is set."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_FILE)
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise KeyringError(f"{ENV_FILE}={path}: cannot read the key file: {exc.strerror}") from None
        return replace(keyring_from_json(text, path), source=f"{ENV_FILE}={path}")
    text = env.get(ENV_KEYS)
    if text:
        return keyring_from_list(text, ENV_KEYS)
    return None


def keyring_from_json(text: str, where: str) -> Keyring:
    """A keyring file's text (``{"current": "k2", "keys": {...}}``); ``where`` names it in errors."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyringError(f"{where}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}; expected "
                           f'{{"current": "k1", "keys": {{"k1": "<base64>"}}}}') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or "current" not in doc:
        raise KeyringError(f'{where}: expected {{"current": "<id>", "keys": {{"<id>": "<base64>", ...}}}}')
    keys = {str(k): _b64key(str(v), f"{where}: key {k!r}") for k, v in doc["keys"].items()}
    try:
        return Keyring(str(doc["current"]), keys, source=where)
    except KeyringError as exc:
        raise KeyringError(f"{where}: {exc}") from None


def keyring_from_list(text: str, where: str) -> Keyring:
    """``"k2:<base64>,k1:<base64>"`` (the first entry is current); ``where`` names it in errors."""
    keys: dict[str, bytes] = {}
    current = None
    for n, entry in enumerate(text.split(","), 1):
        kid, sep, b64 = entry.strip().partition(":")
        if not sep:
            raise KeyringError(f"{where}: entry {n} is not <id>:<base64>")
        keys[kid] = _b64key(b64, f"{where}: key {kid!r}")
        current = current or kid
    assert current is not None
    try:
        return Keyring(current, keys, source=where)
    except KeyringError as exc:
        raise KeyringError(f"{where}: {exc}") from None


# ------------------------------------------------------------------ walking values

def _rules(tags: Mapping[str, str]) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for path, tag in tags.items():
        if tag not in TAGS:
            raise ValueError(f"field {path}: unknown classification {tag!r}; expected one of {', '.join(TAGS)}")
        out.append((tuple(path.split(".")), tag))
    return out


_STR_ONLY = frozenset({str})
_RULES_OF: dict[int, tuple[Mapping[str, str], list[tuple[tuple[str, ...], str]], bool]] = {}


def _rules_of(tags: Mapping[str, str]) -> tuple[list[tuple[tuple[str, ...], str]], bool]:
    """``_rules(tags)`` and whether they are all flat (one key, no ``*``), cached per tags object
    (a route's tags are one dict, built when it is bound; the entry keeps it alive, so its id
    is not reused)."""
    hit = _RULES_OF.get(id(tags))
    if hit is not None and hit[0] is tags:
        return hit[1], hit[2]
    rules = _rules(tags)
    flat = all(len(r) == 1 and r[0] != "*" for r, _ in rules)
    if len(_RULES_OF) >= 1024:
        _RULES_OF.clear()
    _RULES_OF[id(tags)] = (tags, rules, flat)
    return rules, flat


def _dumps(value: Any) -> bytes:
    from engine.deal import to_json
    return (to_json(value) or "null").encode()


def _protect_one(value: Any, tag: str, path: str, keyring: Keyring | None, context: str) -> Any:
    if value is None or value == "":
        return value
    if tag == "secret" or keyring is None:
        return mask_value(value, tag)
    token = keyring.encrypt(_dumps(value), f"{context}|{path}".encode())
    if tag == "pan" and not isinstance(value, (Mapping, list, tuple)):
        return f"{token}:{mask_value(value, 'pan')}"
    return token


def protect(values: Any, tags: Mapping[str, str] | None, keyring: Keyring | None, *,
            context: str, root: str) -> Any:
    """A copy of ``values`` with classified fields masked / encrypted (the input is not changed).

    ``root`` names the value (``request``, ``response``) and starts every field
    path; ``context`` (the deal id) is bound into the associated data.
    """
    if not tags or values is None:
        return values
    rules, flat = _rules_of(tags)
    if flat and isinstance(values, Mapping) and (type(values) is dict and set(map(type, values)) <= _STR_ONLY
                                                 or all(isinstance(k, str) for k in values)):
        # flat tags over a flat-keyed record (ISO 8583 fields, fixed records): touch only the tagged keys
        out = dict(values)
        for (key,), tag in rules:
            if key in out:
                out[key] = _protect_one(out[key], tag, f"{root}.{key}", keyring, context)
        return out
    return _walk(values, rules, root, keyring, context)


def _walk(value: Any, rules: list[tuple[tuple[str, ...], str]], path: str,
          keyring: Keyring | None, context: str, inherited: str | None = None) -> Any:
    """``inherited``: the class of a group holding ``value`` that is walked into because a field inside
    it shows less (``card: personal`` with ``card.cvv: secret``): each value below takes it, or the
    class of a rule there that shows less (formats.classify.at_key)."""
    if isinstance(value, (list, tuple)):
        return [_walk(v, item_rules(v, rules), f"{path}.{i}", keyring, context, inherited)
                for i, v in enumerate(value)]
    if not isinstance(value, Mapping):
        return value if inherited is None else _protect_one(value, inherited, path, keyring, context)
    out: dict[Any, Any] = {}
    for k, v in value.items():
        tag, deeper = at_key(k, rules, inherited)     # every tag covering it: the one showing least
        sub = f"{path}.{k}"
        if deeper:
            out[k] = _walk(v, deeper, sub, keyring, context, tag)
        else:
            out[k] = v if tag is None else _protect_one(v, tag, sub, keyring, context)
    return out


def protect_raw(raw: bytes, keyring: Keyring, *, context: str, root: str) -> str:
    """An undecodable message's bytes (stored as their hex) encrypted like a ``personal`` field: its
    fields cannot be classified, and it may hold any of them (a card number in EBCDIC is still a card
    number in hex).  ``reveal`` gives the hex back."""
    return keyring.encrypt(_dumps(bytes(raw).hex()), f"{context}|{root}".encode())


AS_IS = object()          # protect_side: store the values as they are


def protect_side(values: Any, tags: Mapping[str, str] | None, keyring: Keyring | None, *,
                 context: str, root: str) -> Any:
    """A deal's request or response as the ledger stores it: classified fields masked / encrypted
    (``protect``), an undecodable message's bytes encrypted when there is a keyring (``protect_raw``),
    else ``AS_IS`` (store the values as they are, e.g. a JSON request as received)."""
    if tags:
        return protect(values, tags, keyring, context=context, root=root)
    if isinstance(values, (bytes, bytearray)) and keyring is not None:
        return protect_raw(values, keyring, context=context, root=root)
    return AS_IS


def decrypt_value(token: str, keyring: Keyring, *, context: str, path: str) -> Any:
    return orjson.loads(keyring.decrypt(token, f"{context}|{path}".encode()))


def reveal(values: Any, keyring: Keyring, *, context: str, root: str,
           problems: list[str] | None = None) -> Any:
    """Stored ``values`` with every ``enc:v1:`` field decrypted.

    A field that cannot be decrypted is left as stored and described in
    ``problems`` (``request.card.number: key id 'k0' is not in the keyring ...``).
    """
    if isinstance(values, (list, tuple)):
        return [reveal(v, keyring, context=context, root=f"{root}.{i}", problems=problems)
                for i, v in enumerate(values)]
    if isinstance(values, Mapping):
        return {k: reveal(v, keyring, context=context, root=f"{root}.{k}", problems=problems)
                for k, v in values.items()}
    if is_encrypted(values):
        try:
            return decrypt_value(values, keyring, context=context, path=root)
        except KeyringError as exc:
            if problems is not None:
                problems.append(f"{root}: {exc}")
    return values
