"""Packed (COMP-3), zoned (DISPLAY) and binary (COMP / COMP-5) fields, one field per record:
every value in range round-trips exactly (Decimal, same scale), encode(decode(b)) == b,
sign nibbles / zones are read liberally and written canonically, malformed bytes and values
out of range are refused with the field, the byte and what was expected - never rounded,
truncated or expanded without bound."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.copybook import CopybookCodec, CopybookOptions
from formats.errors import FormatError
from formats.iso8583 import from_decimal, to_decimal

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

USAGES = ["COMP-3", "DISPLAY", "SIGN LEADING", "SIGN LEADING SEPARATE", "SIGN TRAILING SEPARATE", "COMP",
          "COMP-5"]


def _pic(digits: int, scale: int, signed: bool) -> str:
    s = "S" if signed else ""
    return f"{s}9({digits - scale})V9({scale})" if scale else f"{s}9({digits})"


_CODECS: dict[tuple, CopybookCodec] = {}


def codec(digits: int, scale: int, signed: bool, usage: str, encoding: str = "cp037") -> CopybookCodec:
    key = (digits, scale, signed, usage, encoding)
    if key not in _CODECS:
        if "SIGN" in usage and not signed:
            usage = "DISPLAY"
        clause = "" if usage == "DISPLAY" else f" {usage}"
        text = f"       01  R.\n           05  AMT  PIC {_pic(digits, scale, signed)}{clause}.\n"
        _CODECS[key] = CopybookCodec.from_text(text, CopybookOptions(encoding=encoding))
    return _CODECS[key]


@st.composite
def fields(draw):
    usage = draw(st.sampled_from(USAGES))
    digits = draw(st.integers(1, 18))
    scale = draw(st.integers(0, digits - 1)) if digits > 1 else 0
    signed = draw(st.booleans())
    return digits, scale, signed, usage


@SETTINGS
@given(fields(), st.data(), st.sampled_from(["cp037", "ascii"]))
def test_every_value_in_range_round_trips_exactly(f, data, encoding) -> None:
    digits, scale, signed, usage = f
    c = codec(*f, encoding)
    lim = 10 ** digits - 1
    if usage == "COMP-5":     # native binary: the bytes, not the digits, bound it
        bits = 8 * c.size
        lim = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
    n = data.draw(st.integers(-lim if signed else 0, lim))
    value = Decimal(n).scaleb(-scale) if scale else n
    raw = c.encode({"AMT": value})
    back = c.decode(raw)["AMT"]
    assert back == value and type(back) is type(value)
    if scale:
        assert back.as_tuple().exponent == -scale            # the declared scale, never a float
    assert c.encode({"AMT": back}) == raw
    with pytest.raises(FormatError) as info:                  # one past the range: refused, not truncated
        c.encode({"AMT": (Decimal(lim + 1).scaleb(-scale) if scale else lim + 1)})
    assert info.value.field == "AMT" and info.value.offset == 0


@SETTINGS
@given(st.integers(1, 17).filter(lambda d: d % 2 == 1), st.booleans(), st.data())
def test_packed_sign_nibbles_read_liberally_written_canonically(digits, signed, data) -> None:
    c = codec(digits, 0, signed, "COMP-3")
    n = data.draw(st.integers(0, 10 ** digits - 1))
    body = str(n).rjust(digits, "0")
    accepted = {"c": n, "f": n, "a": n, "e": n, "d": -n, "b": -n} if signed else {"c": n, "f": n}
    for nibble in "0123456789abcdef":
        raw = bytes.fromhex(body + nibble)
        if nibble in accepted:
            v = c.decode(raw)["AMT"]
            assert v == accepted[nibble]
            canon = "d" if v < 0 else ("c" if signed else "f")
            assert c.encode({"AMT": v}) == bytes.fromhex(body + canon)
        else:
            with pytest.raises(FormatError) as info:
                c.decode(raw)
            e = info.value
            assert e.field == "AMT" and e.offset == c.size - 1 and "sign nibble" in e.message
            assert "expected " in e.message


@SETTINGS
@given(st.integers(1, 17).filter(lambda d: d % 2 == 1), st.data())
def test_invalid_digit_nibbles_name_the_field_and_their_byte(digits, data) -> None:
    c = codec(digits, 0, True, "COMP-3")
    h = list(str(data.draw(st.integers(0, 10 ** digits - 1))).rjust(digits, "0") + "c")
    i = data.draw(st.integers(0, digits - 1))
    h[i] = data.draw(st.sampled_from("abcdef"))
    with pytest.raises(FormatError) as info:
        c.decode(bytes.fromhex("".join(h)))
    e = info.value
    assert e.field == "AMT" and e.offset == i // 2, (h, i, e)
    assert f"nibble {i + 1} is {h[i].upper()}, expected a digit 0-9" in e.message


@SETTINGS
@given(st.integers(1, 9), st.booleans(), st.data())
def test_zoned_sign_zones_read_liberally_written_canonically(digits, neg, data) -> None:
    c = codec(digits, 0, True, "DISPLAY")
    n = data.draw(st.integers(0, 10 ** digits - 1))
    body = bytes(0xF0 + int(ch) for ch in str(n).rjust(digits, "0"))
    zone = data.draw(st.sampled_from([0xD0, 0xB0] if neg else [0xC0, 0xF0, 0xA0, 0xE0]))
    raw = body[:-1] + bytes([zone | (body[-1] & 0x0F)])
    v = c.decode(raw)["AMT"]
    assert v == (-n if neg else n)
    canon = 0xD0 if v < 0 else 0xC0
    assert c.encode({"AMT": v}) == body[:-1] + bytes([canon | (body[-1] & 0x0F)])


# ---------------------------------------------------------------- values no context may round

HUGE = [Decimal("1E+999999999"), Decimal("-1E+999999999"), Decimal("1E-999999999"), "1e999999999"]


@pytest.mark.parametrize("usage", USAGES)
def test_values_are_never_rounded_or_expanded_without_bound(usage: str) -> None:
    c = codec(5, 2, True, usage)
    # 88 significant digits: a precision-80 context rounded this to 1.00 and wrote it silently
    with pytest.raises(FormatError, match="more decimal places"):
        c.encode({"AMT": Decimal("1.00" + "0" * 85 + "1")})
    for v in HUGE:          # used to build a billion-digit int (minutes of CPU) before any check
        t = time.perf_counter()
        with pytest.raises(FormatError) as info:
            c.encode({"AMT": v})
        assert time.perf_counter() - t < 1 and info.value.field == "AMT"
    assert c.decode(c.encode({"AMT": Decimal("-999.990000")}))["AMT"] == Decimal("-999.99")


@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("value", [Decimal("Infinity"), Decimal("-Infinity"), "Infinity", Decimal("NaN"),
                                   Decimal("sNaN"), "nan"])
def test_non_finite_values_are_a_format_error(usage: str, value) -> None:
    # Infinity used to escape as OverflowError and sNaN as decimal.InvalidOperation (no field, no byte)
    with pytest.raises(FormatError) as info:
        codec(5, 2, True, usage).encode({"AMT": value})
    assert info.value.field == "AMT" and info.value.offset == 0 and "not a finite number" in info.value.message


def test_trailing_p_says_the_value_is_not_a_multiple() -> None:
    c = CopybookCodec.from_text("       01  R.\n           05  T  PIC 9(3)PP.\n", CopybookOptions())
    assert c.decode(c.encode({"T": 99900}))["T"] == 99900
    with pytest.raises(FormatError, match=r"150 is not a multiple of 100: PIC 9\(3\)PP stores no digits"):
        c.encode({"T": 150})
    with pytest.raises(FormatError, match="does not fit"):
        c.encode({"T": 100000})


# ---------------------------------------------------------------- ISO 8583 amount helpers

@SETTINGS
@given(st.integers(0, 10 ** 12 - 1), st.integers(0, 4))
def test_iso_amounts_round_trip_exactly(n: int, exp: int) -> None:
    d = Decimal(n).scaleb(-exp)
    text = from_decimal(d, exp)
    assert len(text) == 12 and to_decimal(text, exp) == d


@pytest.mark.parametrize("amount, message", [
    (Decimal("Infinity"), "not a finite number"), (Decimal("sNaN"), "not a finite number"),
    (Decimal("NaN"), "not a finite number"),
    # 29 significant digits: the default context (28) rounded it to 1.00 -> "000000000100"
    (Decimal("1.0000000000000000000000000001"), "more than 2 decimal places"),
    (Decimal("1E+999999999"), "needs more than the 12 digits"),
    (Decimal("-1"), "negative"),
])
def test_iso_amount_refusals(amount, message) -> None:
    t = time.perf_counter()
    with pytest.raises(FormatError, match=message) as info:
        from_decimal(amount)
    assert info.value.field == "4" and time.perf_counter() - t < 1


@pytest.mark.parametrize("digits", ["²", "١٢", "1 2", ""])
def test_iso_amount_digits_are_ascii(digits: str) -> None:
    # '²' used to escape as ValueError, '١٢' (Arabic-Indic) was read as 12
    with pytest.raises(FormatError, match="is not digits"):
        to_decimal(digits)


# ---------------------------------------------------------------- code pages

@pytest.mark.parametrize("page", ["cp037", "cp273", "cp500", "cp1047", "cp1140", "cp1141", "cp1142", "cp1143",
                                  "cp1144", "cp1145", "cp1146", "cp1147", "cp1148", "cp1149"])
def test_every_ebcdic_page_reads_and_writes_all_256_bytes_back(page: str) -> None:
    # cp1141-cp1149 read NL (0x15) as '\n' like LF (0x25) and wrote it back as 0x25:
    # 48 of the 1000 records of cobrix test9 did not round-trip in cp1141 / cp1148
    c = CopybookCodec.from_text("       01  R.\n           05  T  PIC X(256).\n",
                                CopybookOptions(encoding=page, trim="none", low_values_null=False))
    raw = bytes(range(256))
    assert c.encode(c.decode(raw)) == raw
