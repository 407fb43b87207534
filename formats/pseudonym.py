"""Made-up stand-ins for classified values that a route checks (an IBAN's check digits, a card number's
Luhn digit), for route tests written from recorded traffic (``bsp replay --to-tests``, docs/testing.md).

A masked IBAN (``D***``) fails ``iban_valid``, so the route that checks it rejects the test's request
where it took the recorded one.  ``Pseudonyms`` gives such a value a stand-in of the same shape instead:

* an IBAN (ISO 13616, MOD 97-10 right; spaces and lower case as written, ``DE89 3704 ...``): the same
  country and length, every other letter or digit made up (a letter for a letter, a digit for a digit),
  the check digits computed, laid out as the real one (its spaces, its case); its electronic form (no
  spaces, upper case) is given the stand-in's electronic form, so a route that normalises it finds it;
* a card number (12 to 19 digits, Luhn right): the same length, Luhn right; classified ``pan``, its first
  six and last four digits kept (what ``411111******1111`` shows: a route looks the BIN up), classified
  ``personal`` only its first digit.

The made-up characters come from HMAC-SHA256 under a key drawn for each ``Pseudonyms`` (one output
file), so the same real value gets the same stand-in within that output and nothing links a stand-in to
its real value across outputs; a stand-in is never the real value nor another real value's stand-in.
Secrets and values of no such shape are left to the usual masks.  Pure: no engine, no I/O.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import Mapping

_IBAN_CHARS = frozenset(string.digits + string.ascii_uppercase)
SHAPED_TAGS = ("pan", "personal")


def _iban_number(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text))


def iban_form(text: str) -> str | None:
    """The electronic form of ``text`` when it is a valid IBAN (as ``iban_valid`` of it), else None."""
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34 or not set(compact) <= _IBAN_CHARS:
        return None
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return None
    return compact if _iban_number(compact[4:] + compact[:4]) % 97 == 1 else None


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def is_pan(text: str) -> bool:
    return text.isascii() and text.isdigit() and 12 <= len(text) <= 19 and luhn_ok(text)


class Pseudonyms:
    """Real value -> stand-in, for one output; ``mapping`` is what ``formats.classify.mask`` takes."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.mapping: dict[str, str] = {}
        self._taken: set[str] = set()

    def add(self, found: Mapping[str, str]) -> dict[str, str]:
        """Give each value of ``found`` (``{text: tag}``, as ``classified_values`` gives them) that has a
        checkable shape its stand-in; returns the other forms of those values to mask too (an IBAN's
        electronic form), ``{text: tag}``."""
        extra: dict[str, str] = {}
        for text, tag in found.items():
            if tag not in SHAPED_TAGS or text in self.mapping:
                continue
            compact = iban_form(text)
            if compact is not None:
                fake = self.mapping.get(compact) or self._new(compact, self._iban)
                self.mapping[compact] = fake
                self.mapping[text] = _layout(text, fake)
                if compact != text and compact not in found:
                    extra[compact] = tag
            elif is_pan(text):
                self.mapping[text] = self._new(text, lambda t, n: self._pan(t, n, 6 if tag == "pan" else 1))
        self._taken.update(self.mapping.values())
        return extra

    def _new(self, real: str, make) -> str:
        for n in range(1000):
            fake = make(real, n)
            if fake != real and fake not in self._taken and fake not in self.mapping:
                self._taken.add(fake)
                return fake
        raise ValueError("no stand-in found")      # pragma: no cover - 1000 draws never all collide

    def _stream(self, real: str, n: int, size: int) -> bytes:
        out = b""
        block = 0
        while len(out) < size:
            out += hmac.new(self._key, f"{n}:{block}:{real}".encode(), hashlib.sha256).digest()
            block += 1
        return out[:size]

    def _iban(self, compact: str, n: int) -> str:
        rnd = self._stream(compact, n, len(compact))
        bban = "".join(string.digits[b % 10] if c.isdigit() else string.ascii_uppercase[b % 26]
                       for c, b in zip(compact[4:], rnd))
        country = compact[:2]
        check = 98 - _iban_number(bban + country + "00") % 97
        return f"{country}{check:02d}{bban}"

    def _pan(self, real: str, n: int, head: int) -> str:
        tail = 4 if head == 6 else 0
        rnd = self._stream(real, n, len(real))
        middle = len(real) - head - tail
        digits = list(real[:head] + "".join(string.digits[b % 10] for b in rnd[:middle]) + real[len(real) - tail:])
        fix = head + middle - 1                   # the last made-up digit makes the Luhn sum right
        for d in string.digits:
            digits[fix] = d
            if luhn_ok("".join(digits)):
                break
        return "".join(digits)


def _layout(written: str, fake: str) -> str:
    """``fake`` (an electronic IBAN) laid out as ``written``: its spaces where they were, lower case where
    it had lower case."""
    chars = iter(fake)
    out = []
    for c in written:
        if c.isspace():
            out.append(c)
        else:
            f = next(chars, "")
            out.append(f.lower() if c.islower() else f)
    return "".join(out)
