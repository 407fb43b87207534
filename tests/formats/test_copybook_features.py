"""Binary byte order, national (PIC N) items, continued literals."""
from __future__ import annotations

from decimal import Decimal

import pytest

from formats.copybook import CopybookCodec, CopybookOptions
from formats.errors import FormatError, SpecError

BIN = """\
       01  B.
           05  HALF        PIC S9(4) COMP.
           05  FULL        PIC 9(9) BINARY.
           05  AMT         PIC S9(7)V99 COMP-4.
           05  NAT         PIC S9(4) COMP-5.
           05  BIG         PIC 9(18) COMP-5.
"""


def bin_codec(order: str) -> CopybookCodec:
    return CopybookCodec.from_text(BIN, CopybookOptions(encoding="ascii", binary_order=order))


VALUES = {"HALF": -2, "FULL": 305419896, "AMT": Decimal("-1.50"), "NAT": 30000, "BIG": 2 ** 63 + 5}


@pytest.mark.parametrize("order,expected", [
    ("big", "fffe" "12345678" "ffffff6a" "7530" "8000000000000005"),
    ("little", "feff" "78563412" "6affffff" "3075" "0500000000000080"),
    ("native_little", "fffe" "12345678" "ffffff6a" "3075" "0500000000000080"),
])
def test_binary_order_sets_the_bytes_of_each_binary_kind(order: str, expected: str) -> None:
    c = bin_codec(order)
    raw = c.encode(VALUES)
    assert raw.hex() == expected
    assert c.decode(raw) == VALUES
    assert c.decode(bytes.fromhex(expected)) == VALUES


def test_digit_limit_still_applies_to_little_endian_comp() -> None:
    c = bin_codec("little")
    raw = bytearray(c.encode(VALUES))
    raw[0:2] = (12345).to_bytes(2, "little", signed=True)      # > 4 digits for S9(4) COMP
    with pytest.raises(FormatError) as ei:
        c.decode(bytes(raw))
    assert ei.value.field == "HALF" and ei.value.offset == 0 and "exceeds PIC S9(4)" in ei.value.message
    raw[0:2] = (9999).to_bytes(2, "big", signed=True)          # read little-endian: 3879 fits, no error
    assert c.decode(bytes(raw))["HALF"] == int.from_bytes((9999).to_bytes(2, "big"), "little", signed=True)


def test_unknown_binary_order_is_refused() -> None:
    with pytest.raises(ValueError, match="binary_order='middle': expected one of big, little, native_little"):
        CopybookOptions(binary_order="middle")
