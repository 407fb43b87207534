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
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from hashlib import blake2b
from typing import Any

FIELDS = ("amount", "currency", "party", "match")
SEP = "|"


def digest(v: Any) -> str:
    """The first 8 bytes of the BLAKE2b digest of a value's text, in hex ("" for null)."""
    return "" if v is None else blake2b(str(v).encode("utf-8"), digest_size=8).hexdigest()


def of(amount: Any, currency: Any, party: Any, match: str | None = None) -> str | None:
    """The fingerprint of a deal's values, or None when it has none of them (a deal of a ``ref`` only:
    nothing to compare, its repeats are plain duplicates).  ``match``: the digest (``digest``) of the
    deal's ``match`` value, None when the route names none (then three parts, as before it existed)."""
    if amount is None and currency is None and party is None and match is None:
        return None
    fp = f"{'' if amount is None else amount}{SEP}{'' if currency is None else currency}{SEP}{digest(party)}"
    return fp if match is None else f"{fp}{SEP}{match}"


def of_exchange(ex: Any, match: str | None = None) -> str | None:
    """The fingerprint of the deal an exchange's ``deal`` step named (``match``: its digest, kept by the
    transaction manager)."""
    return of(ex.amount, ex.currency, ex.party, match)


def differs(old: str | None, new: str | None) -> list[tuple[str, str | None, str | None]]:
    """The fields in which two fingerprints differ: ``(field, original, repeat)``; the party's and the
    match's values are never given (None, None).  Empty when they are the same deal, or when either is
    unknown (a key recorded before fingerprints, a route whose ``deal`` step comes after its first call).
    The match is compared only when both have one."""
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
    if a[2] != b[2]:
        out.append(("party", None, None))
    if len(a) == 4 and len(b) == 4 and a[3] != b[3]:
        out.append(("match", None, None))
    return out


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
