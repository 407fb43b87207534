"""What a deal is about, kept with its deal key: a repeat of the key must be the same deal.

A deal key (``deal { key = ... }``) says "the same business request": a repeat is answered with the
original answer and nothing runs again (``TxnManager._duplicate``).  A repeat whose *content* differs
(the same biller reference with another amount, currency or account) is no retry: it is an error or
a fraud signal, and answering it with the first deal's answer would tell the sender that its other
deal was done.  So the key store keeps, with each key, the fingerprint of the deal's own values, the
``deal`` step's ``amount``, ``currency`` and ``party`` (not the raw bytes: a legitimate retry may carry
another timestamp or message id), and a repeat whose fingerprint differs is refused with kind
``key_conflict`` (docs/transactions.md#a-repeat-that-is-another-deal-key_conflict).

The fingerprint is one short string, ``AMOUNT|CURRENCY|PARTY-DIGEST``: the amount as recorded (its
digits), the currency, and the first 8 bytes of the BLAKE2b digest of the party (hex), so that a long
party name costs 16 characters in the key store and the party is never written out again.  Amount and
currency are kept as they are: they are in the deal's ledger row already, and a refusal names them.
It is made where the values are at hand (``of``: ~0.6 us) and compared as a string (~30 ns); only
when the strings differ are the fields compared one by one (``differs``), so that ``12.5`` and
``12.50``, or ``eur`` and ``EUR``, stay the same deal.

A route may name more that a repeat must carry unchanged, its ``deal { match = ... }``: a value that is
not a ledger column and may be personal (claims payout's beneficiary IBAN: a claim posted again with
another account is a fraud signal, and its ``party``, the product, cannot say so). It is kept only as
its digest, a fourth part ``AMOUNT|CURRENCY|PARTY-DIGEST|MATCH-DIGEST``, and never written out in clear.
A fingerprint of three parts (a key recorded before the route named a ``match``, or read back from a
ledger row past the retention, which has no such column) is compared on its three parts only.

**Keyed digests.** An unkeyed digest of a guessable value is not one-way: 750,000 BLAKE2b digests a second
in one thread try the ~10^8 account numbers of one bank code in about 2 minutes.  So with a field keyring
(``ledger.field_keys``) the party's and the match's digests are keyed: ``KID:HEX``, the first 8 bytes of
HMAC-SHA256 under a key derived from field key ``KID`` (HMAC(field key, "bsp deal fingerprint digest v1"):
its own key, never the key that seals), so that only who holds the keyring can test a guess.  The field
keyring, not the audit key: it is the key that already guards these values (the log's sealed requests hold
the IBAN itself), it is held by every engine sharing a key store, and it rotates with a key id kept with each
value.  Without a keyring a digest stays the unkeyed BLAKE2b hex of before (the log then holds the request in
clear anyway; ``bsp run`` warns).  Each digest says how it was made: 16 hex digits (no ``:``) is the unkeyed
digest of before this change, ``KID:HEX`` the keyed one.  Two digests made alike compare as strings; when the
original's was made otherwise (before the upgrade, or under a key since rotated) the repeat's value is digested
again the original's way (``differs``'s ``raw``), so that a repeat of a deal made before the upgrade is still a
duplicate, or a key_conflict; an original under a key id the keyring no longer holds cannot be compared (no
verdict on that part, as for a fingerprint of three parts), never compared wrongly.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
import hmac
from hashlib import blake2b, sha256
from typing import Any, Callable

FIELDS = ("amount", "currency", "party", "match")
SEP = "|"


_INFO = b"bsp deal fingerprint digest v1"


def unkeyed(v: Any) -> str:
    """The first 8 bytes of the BLAKE2b digest of a value's text, in hex ("" for null): the digest of
    before keyed digests, and the one made without a field keyring."""
    return "" if v is None else blake2b(str(v).encode("utf-8"), digest_size=8).hexdigest()


class Digests:
    """How the digests of a deal's party and match are made: keyed with the current key of a field keyring
    (``KID:HEX``), or unkeyed without one; and how a value is digested again as a stored digest was."""

    __slots__ = ("current", "macs")

    def __init__(self, keyring: Any = None) -> None:
        keys = getattr(keyring, "keys", None) or {}
        # one HMAC state per key id with its key already absorbed: a digest is a copy and one update (~1.4 us)
        self.macs = {kid: hmac.new(hmac.digest(key, _INFO, "sha256"), digestmod=sha256) for kid, key in keys.items()}
        self.current = getattr(keyring, "current", None) if keys else None

    def __call__(self, v: Any) -> str:
        """A value's digest as new deals keep it ("" for null)."""
        if v is None:
            return ""
        if self.current is None:
            return unkeyed(v)
        return f"{self.current}:{_mac(self.macs[self.current], v)}"

    def like(self, v: Any, stored: str) -> str | None:
        """``v`` digested as ``stored`` was (its version: unkeyed, or keyed under its key id); None when
        that key id is not in the keyring (no verdict)."""
        if v is None:
            return ""
        kid, sep, _ = stored.rpartition(":")
        if not sep:
            return unkeyed(v)
        mac = self.macs.get(kid)
        if mac is None:
            return None
        return f"{kid}:{_mac(mac, v)}"


def _mac(state: Any, v: Any) -> str:
    h = state.copy()
    h.update(str(v).encode("utf-8"))
    return h.digest()[:8].hex()


UNKEYED = Digests()


def digest(v: Any, digests: Digests = UNKEYED) -> str:
    """A value's digest as ``digests`` makes it for a new deal ("" for null)."""
    return digests(v)


def of(amount: Any, currency: Any, party: Any, match: str | None = None, digests: Digests = UNKEYED) -> str | None:
    """The fingerprint of a deal's values, or None when it has none of them (a deal of a ``ref`` only:
    nothing to compare, its repeats are plain duplicates).  ``match``: the digest (``digest``) of the
    deal's ``match`` value, None when the route names none (then three parts, as before it existed)."""
    if amount is None and currency is None and party is None and match is None:
        return None
    fp = f"{'' if amount is None else amount}{SEP}{'' if currency is None else currency}{SEP}{digests(party)}"
    return fp if match is None else f"{fp}{SEP}{match}"


def of_exchange(ex: Any, match: str | None = None, digests: Digests = UNKEYED) -> str | None:
    """The fingerprint of the deal an exchange's ``deal`` step named (``match``: its digest, kept by the
    transaction manager)."""
    return of(ex.amount, ex.currency, ex.party, match, digests)


def differs(old: str | None, new: str | None, raw: Callable[[str], Any] | None = None,
            digests: Digests = UNKEYED) -> list[tuple[str, str | None, str | None]]:
    """The fields in which two fingerprints differ: ``(field, original, repeat)``; the party's and the
    match's values are never given (None, None).  Empty when they are the same deal, or when either is
    unknown (a key recorded before fingerprints, a route whose ``deal`` step comes after its first call).
    The match is compared only when both have one.  ``raw(field)``: the repeat's own value of ``party`` or
    ``match``, asked for only when the original's digest was made otherwise than the repeat's (unkeyed
    before the upgrade, another key id): digested again the original's way by ``digests``."""
    if old is None or new is None or old == new:
        return []
    a, b = old.split(SEP), new.split(SEP)
    if len(a) not in (3, 4) or len(b) not in (3, 4):
        return []                               # not a fingerprint this bsp made: no verdict
    out: list[tuple[str, str | None, str | None]] = []
    if not _same_amount(a[0], b[0]):
        out.append(("amount", a[0] or None, b[0] or None))
    if a[1].upper() != b[1].upper():
        out.append(("currency", a[1] or None, b[1] or None))
    if a[2] != b[2] and _differ(a[2], b[2], "party", raw, digests):
        out.append(("party", None, None))
    if len(a) == 4 and len(b) == 4 and a[3] != b[3] and _differ(a[3], b[3], "match", raw, digests):
        out.append(("match", None, None))
    return out


def _version(d: str) -> str | None:
    """How a digest was made: its key id, "" unkeyed, None for no value."""
    if not d:
        return None
    kid, _, _ = d.rpartition(":")
    return kid


def _differ(old: str, new: str, field: str, raw: Callable[[str], Any] | None, digests: Digests) -> bool:
    """Two digests of a field that are not the same string: differ, unless they were made otherwise (another
    version) and the repeat's value digested the original's way is the original's."""
    if raw is None or not old or not new or _version(old) == _version(new):
        return True
    again = digests.like(raw(field), old)
    if again is None:
        return False                            # made under a key the keyring no longer holds: no verdict
    return again != old


def _same_amount(x: str, y: str) -> bool:
    if x == y:
        return True
    if not x or not y:
        return False
    try:
        return Decimal(x) == Decimal(y)
    except InvalidOperation:
        return False


def describe(diffs: list[tuple[str, str | None, str | None]]) -> str:
    """``amount 12.50 (the original: 10.00), party (not shown)``: what a refusal says."""
    parts = []
    for name, old, new in diffs:
        if name in ("party", "match"):
            parts.append(f"{name} (a different value; not shown)")
        else:
            parts.append(f"{name} {new if new is not None else 'none'} (the original: "
                         f"{old if old is not None else 'none'})")
    return ", ".join(parts)
