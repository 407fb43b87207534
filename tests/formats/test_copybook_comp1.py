"""COMP-1 (4-byte float) values: the shortest decimal of the item's own 4 bytes, written back exactly."""
from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from hypothesis import given, settings, strategies as st

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError

CPY = """\
       01  R.
           05  F1      COMP-1.
           05  F2      COMP-2.
"""
IEEE = CopybookCodec.from_text(CPY, CopybookOptions(float_format="ieee"))
IBM = CopybookCodec.from_text(CPY, CopybookOptions(float_format="ibm"))
D8 = bytes(8)


def test_comp1_shows_the_digits_it_holds() -> None:
    # cobrix test6 record 1: 4 bytes holding -30503.93 as a 32-bit float
    raw = bytes.fromhex("c6ee4fdc")
    v = IEEE.decode(raw + D8)["F1"]
    assert repr(v) == "-30503.93"
    assert IEEE.encode({"F1": v, "F2": 0.0}) == raw + D8
    # a subnormal holds fewer digits: -1.0388e-41, not -1.03878e-41
    assert repr(IEEE.decode(bytes.fromhex("80001cf5") + D8)["F1"]) == "-1.0388e-41"
    ibm = IBM.encode({"F1": 0.1, "F2": 0.0})[:4]
    assert repr(IBM.decode(ibm + D8)["F1"]) == "0.1"


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=4, max_size=4))
def test_any_ieee_comp1_round_trips(raw: bytes) -> None:
    v = IEEE.decode(raw + D8)["F1"]
    if math.isnan(v):
        return
    assert IEEE.encode({"F1": v, "F2": 0.0})[:4] == raw
    assert v == _shortest(v, lambda y: IEEE.encode({"F1": y, "F2": 0.0})[:4] == raw)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 1), st.integers(0, 127), st.integers(1 << 20, (1 << 24) - 1))
def test_any_normalized_ibm_comp1_round_trips(sign: int, exp: int, frac: int) -> None:
    raw = bytes([sign << 7 | exp]) + frac.to_bytes(3, "big")
    v = IBM.decode(raw + D8)["F1"]
    assert IBM.encode({"F1": v, "F2": 0.0})[:4] == raw
    assert v == _shortest(v, lambda y: IBM.encode({"F1": y, "F2": 0.0})[:4] == raw)


def _shortest(v: float, same) -> float:
    """The float of the fewest significant digits that ``same`` accepts, searched from 1 digit among the
    decimals either side of ``v`` (nearer first)."""
    exact = Decimal(v)
    for digits in range(1, 18):
        down = Context(prec=digits, rounding=ROUND_FLOOR).plus(exact)
        up = Context(prec=digits, rounding=ROUND_CEILING).plus(exact)
        for d in ((down, up) if exact - down <= up - exact else (up, down)):
            try:
                if same(float(d)):
                    return float(d)
            except FormatError:              # rounded out of the IBM range (the smallest exponents)
                continue
    return v
