"""Money arithmetic of the route language: exact, and never in the thread's ``Decimal`` context.

Python's default context rounds every ``+ - *`` result, and ``-x`` and ``abs(x)``, to 28 significant digits
(half even), silently: ``1000000000000000000000000000 + 0.01`` is ``1E+27``, and an amount times a long rate
is rounded once there and again by ``round(.., 2)`` (a double rounding that can move a cent).  Here:

* ``+ - *``, unary minus and ``abs`` are exact; a result needing more than ``MAX_DIGITS`` significant digits
  is an error (``Inexact`` is trapped), never a rounded number;
* ``/`` carries a quotient that does not end to 28 significant digits, half even (``100 / 3`` is
  ``33.33333333333333333333333333``): a route rounds it to its currency with ``round``;
* ``round`` rounds half up (away from zero) at any size;
* zero has no sign: ``-0.00`` (``-msg.fee`` of a zero fee, ``round(-0.004, 2)``) is ``0.00``, which every
  writer renders without a minus.
"""
from __future__ import annotations

from decimal import (MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, DivisionByZero,
                     Inexact, InvalidOperation, Overflow)

MAX_DIGITS = 1000          # significant digits an exact result may have; more is an error
QUOTIENT_DIGITS = 28       # significant digits of a quotient that does not end

EXACT = Context(prec=MAX_DIGITS, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN,
                traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
QUOTIENT = Context(prec=QUOTIENT_DIGITS, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN,
                   traps=[InvalidOperation, Overflow, DivisionByZero])
ROUNDING = Context(prec=MAX_DIGITS, rounding=ROUND_HALF_UP, Emax=MAX_EMAX, Emin=MIN_EMIN,
                   traps=[InvalidOperation, Overflow])


class TooLong(ArithmeticError):
    """A result that needs more than ``MAX_DIGITS`` significant digits (``+ - *`` raise ``Inexact``, trapped in
    ``EXACT``: dsl/compiler.py's ``_arith`` calls the context's methods itself, one call less per operation)."""


def unsigned(d: Decimal) -> Decimal:
    """``d`` without the sign of a negative zero."""
    return d.copy_abs() if not d and d.is_signed() else d


def remainder(a: Decimal | int, b: Decimal | int) -> Decimal:
    return unsigned(EXACT.remainder(a, b))


def negate(a: Decimal) -> Decimal:
    return unsigned(a.copy_negate())


def round_half_up(x: Decimal | int, places: int) -> Decimal:
    """``x`` to ``places`` decimals (negative: tens, hundreds ...), half away from zero; ``TooLong`` when the
    result would need more than ``MAX_DIGITS`` digits."""
    try:
        return unsigned(Decimal(x).quantize(Decimal(1).scaleb(-places), context=ROUNDING))
    except InvalidOperation:
        raise TooLong from None
