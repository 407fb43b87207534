"""``--tolerance``: the largest amount difference reconciliation still matches, per currency.

A bare amount (``0.01``) is one amount for every currency, as it always was.  ``minor:N`` is N minor units of
each currency (ISO 4217, ``formats/currencies.py``): ``minor:1`` is 0.01 EUR, 1 JPY, 0.001 BHD.  ``CCY=AMOUNT``
(``JPY=1``, ``EUR=0.01``, ``978=0.01``) sets one currency's, over the default.  A currency no option names and
no default covers (or, under ``minor:N``, one the table does not list) is compared exactly::

    Tolerance.parse(["minor:1", "KWD=0.005"]).of("JPY")   # Decimal("1")
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable, Union

from engine.reports.model import ReportError
from formats.currencies import alpha_code, minor_units

__all__ = ["Tolerance", "ToleranceError"]

_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")
_MINOR = re.compile(r"minor:([0-9]+)", re.I)
_PAIR = re.compile(r"([A-Za-z]{3}|[0-9]{3})=(.*)")
_HOW = ("a bare amount for every currency (0.01), minor:N for N minor units of each currency (minor:1 is "
        "0.01 EUR, 1 JPY), or CCY=AMOUNT for one currency (JPY=1, EUR=0.01)")


class ToleranceError(ReportError):
    """A ``--tolerance`` that cannot be read: a usage error (exit 2)."""


def _key(currency: str) -> str:
    return alpha_code(currency) or currency.strip().upper()


def _amount(text: str, given: str) -> Decimal:
    if text.startswith("-") and text.isascii() and _AMOUNT.fullmatch(text[1:]):
        raise ToleranceError(f"--tolerance {given!r}: must be zero or more (an absolute amount, e.g. 0.01)")
    if not text.isascii() or not _AMOUNT.fullmatch(text):
        raise ToleranceError(f"--tolerance {given!r}: expected a decimal amount such as 0.01 ({text!r} is not one); "
                             f"give {_HOW}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern rules it out
        raise ToleranceError(f"--tolerance {given!r}: {text!r} is not an amount") from None


@dataclass(frozen=True)
class Tolerance:
    default: Decimal = Decimal("0")      # every currency no other part names
    minor: int | None = None             # minor:N: the default is N minor units of each currency
    per: dict[str, Decimal] = field(default_factory=dict)    # by ISO 4217 letters (or the code as given)

    @classmethod
    def parse(cls, values: Iterable[str] | str | None) -> "Tolerance":
        """The ``--tolerance`` options given (each may list parts separated by commas)."""
        if values is None:
            return cls()
        if isinstance(values, str):
            values = [values]
        default: Decimal | None = None
        minor: int | None = None
        per: dict[str, Decimal] = {}
        for given in values:
            for part in (p.strip() for p in given.split(",")):
                if not part:
                    continue
                pair, m = _PAIR.fullmatch(part), _MINOR.fullmatch(part)
                if pair:
                    key = _key(pair[1])
                    if key in per:
                        raise ToleranceError(f"--tolerance {given!r}: {key} is given twice; give one amount for it")
                    per[key] = _amount(pair[2].strip(), given)
                    continue
                if default is not None or minor is not None:
                    raise ToleranceError(f"--tolerance {given!r}: a default for every currency is given twice; "
                                         f"give one bare amount or minor:N, and CCY=AMOUNT for the others")
                if m:
                    minor = int(m[1])
                else:
                    default = _amount(part, given)
        return cls(default if default is not None else Decimal("0"), minor, per)

    @classmethod
    def coerce(cls, value: Union["Tolerance", Decimal, int, str, None]) -> "Tolerance":
        """A ``Tolerance`` from what the library functions accept: a ``Decimal`` (one amount for every
        currency, as before), option text, or a ``Tolerance``."""
        if isinstance(value, Tolerance):
            return value
        if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
            amount = Decimal(value)
            if not amount.is_finite() or amount < 0:
                raise ToleranceError(f"--tolerance {value}: must be zero or more (an absolute amount, e.g. 0.01)")
            return cls(amount)
        return cls.parse(value)

    def of(self, currency: str | None) -> Decimal:
        """The tolerance for amounts in ``currency`` (letters or ISO 4217 number)."""
        if currency is not None:
            found = self.per.get(_key(currency))
            if found is not None:
                return found
            if self.minor is not None:
                places = minor_units(currency)
                return Decimal(0) if places is None else Decimal(self.minor).scaleb(-places)
        return Decimal(0) if self.minor is not None else self.default

    def __str__(self) -> str:
        """As the form's parameters show it: ``0.01`` for a bare amount (as before), else every part."""
        head = f"minor:{self.minor} (of each currency)" if self.minor is not None else f"{self.default:f}"
        if not self.per:
            return head
        return ", ".join([*(f"{c}={a:f}" for c, a in sorted(self.per.items())), f"others {head}"])
