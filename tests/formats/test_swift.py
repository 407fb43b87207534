"""SWIFT MT: writer/reader round trip, per-message checks, negative cases, component, properties."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.ir import FormatDecl
from formats.errors import FormatError
from formats.swift import SwiftCodec, parse_fin, write_fin
from formats.swift.component import COMPONENT

MT103 = {
    "block1": {"app": "F", "service": "01", "lt": "BANKBEBBAXXX", "session": "0000", "sequence": "000000"},
    "block2": {"io": "I", "type": "103", "receiver": "BANKDEFFXXXX", "priority": "N", "rest": ""},
    "block3": {"121": "8579f4a4-a547-463e-ae63-e7c6620d59b4"},
    "block4": [
        {"tag": "20", "value": "REF-0001"},
        {"tag": "23B", "value": "CRED"},
        {"tag": "32A", "value": {"date": dt.date(2019, 10, 14), "currency": "USD", "amount": Decimal("1814.28")}},
        {"tag": "50K", "value": "/12345678\nFOO CAPITAL MARKETS LP\n99 WALL ST"},
        {"tag": "57A", "value": {"account": None, "bic": "BANKDEFFXXX"}},
        {"tag": "59", "value": "/00123456789012345678\nMERCADOS Y GESTION"},
        {"tag": "70", "value": "INVOICE 4711"},
        {"tag": "71A", "value": "SHA"},
    ],
    "block5": {"CHK": "B3BF0D846AFD"},
    "eol": "\r\n",
}


def _text() -> str:
    return SwiftCodec("mt103").encode(MT103).decode()


def test_write_then_parse_round_trip() -> None:
    codec = SwiftCodec("mt103")
    raw = codec.encode(MT103)
    assert raw.startswith(b"{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{3:{121:")
    assert b"\r\n:32A:191014USD1814,28\r\n" in raw and raw.endswith(b"\r\n-}{5:{CHK:B3BF0D846AFD}}")
    values = codec.decode(raw)
    assert values == MT103
    assert codec.encode(values) == raw
    assert values["block4"][2]["value"]["amount"] == Decimal("1814.28")


@pytest.mark.parametrize("old, new, tag, message", [
    (":32A:191014USD1814,28", ":32A:191314USD1814,28", "32A", "not a calendar date"),
    (":32A:191014USD1814,28", ":32A:191014US1814,28", "32A", "not YYMMDD + currency + amount"),
    (":32A:191014USD1814,28", ":32A:191014USD1814.28", "32A", "decimal comma"),
    (":23B:CRED\r\n", "", "23B", "mandatory field 23B is missing"),
    (":71A:SHA", ":71A:SHA\r\n:99:X", "99", "not part of MT103"),
    (":57A:BANKDEFFXXX", ":57F:BANKDEFFXXX", "57F", "option 57F is not allowed"),
    ("INVOICE 4711", "INVOICE #4711", "block4", "'#'"),
])
def test_negative_cases_name_tag_and_offset(old: str, new: str, tag: str, message: str) -> None:
    text = _text()
    assert old in text
    bad = text.replace(old, new, 1)
    with pytest.raises(FormatError) as info:
        SwiftCodec("mt103").decode(bad.encode())
    exc = info.value
    assert exc.field == tag and message in exc.message, str(exc)
    assert exc.offset is not None
    if new and tag not in ("block4",):
        # the offset points at the tag (or into its value)
        start = bad.index(new.split("\r\n")[-1][:5] if tag == "99" else new[:5])
        assert start <= exc.offset <= start + len(new)
    if tag == "block4":
        assert bad[exc.offset] == "#"


def test_wrong_message_type_and_trailing_text() -> None:
    with pytest.raises(FormatError, match="expected an MT202"):
        SwiftCodec("mt202").decode(_text().encode())
    with pytest.raises(FormatError, match="after the last block"):
        SwiftCodec("mt103").decode((_text() + "{X").encode())
    with pytest.raises(FormatError) as info:
        SwiftCodec("mt103").decode(_text().encode("ascii").replace(b"SHA", b"SH\xc4"))
    assert info.value.offset is not None and "not ASCII" in info.value.message


def test_encode_rejects_bad_values() -> None:
    bad = dict(MT103, block4=[dict(f) for f in MT103["block4"]])
    bad["block4"][2] = {"tag": "32A", "value": {"date": dt.date(2019, 10, 14), "currency": "usd",
                                                "amount": Decimal("1")}}
    with pytest.raises(FormatError) as info:
        SwiftCodec("mt103").encode(bad)
    assert info.value.field == "32A"
    bad["block4"][2] = {"tag": "32A", "value": "191014USD1,2,3"}
    with pytest.raises(FormatError, match="decimal comma"):
        SwiftCodec("mt103").encode(bad)
    bad["block4"][2] = {"tag": "32A", "value": {"date": dt.date(2019, 10, 14), "currency": "USD",
                                                "amount": Decimal("-1")}}
    with pytest.raises(FormatError, match="non-negative"):
        SwiftCodec("mt103").encode(bad)


def test_mt940_fin_message_typed_fields() -> None:
    text = ("{1:F01BANKBEBBAXXX0000000000}{2:O9401200190101BANKDEFFAXXX00000000001901011200N}{4:\r\n"
            ":20:STMT1\r\n:25:DE89370400440532013000\r\n:28C:1/1\r\n:60F:C190101EUR1000,\r\n"
            ":61:1901020102D12,5NTRFNONREF//B123\r\nsupplement\r\n:86:rent\r\n:62F:C190102EUR987,5\r\n-}")
    values = SwiftCodec("mt940").decode(text.encode())
    line = values["block4"][4]["value"]
    assert line["mark"] == "D" and line["amount"] == Decimal("12.5") and line["bank_reference"] == "B123"
    assert line["supplementary"] == "supplement" and line["entry_date"] == "0102"
    assert values["block4"][3]["value"] == {"mark": "C", "date": dt.date(2019, 1, 1), "currency": "EUR",
                                             "amount": Decimal("1000")}
    assert write_fin(values) == text


def test_component() -> None:
    assert COMPONENT.name == "swift" and COMPONENT.positional == "message"
    codec = COMPONENT.build(FormatDecl("Pay", "swift", {"message": "mt103"}))
    assert codec.name == "Pay" and codec.decode(codec.encode(MT103)) == MT103
    assert COMPONENT.check(FormatDecl("Pay", "swift", {"message": "mt103"})) == []
    errors = COMPONENT.check(FormatDecl("Pay", "swift", {"message": "mt999"}))
    assert errors and "mt999" in errors[0].message
    generic = COMPONENT.build(FormatDecl("Any", "swift", {}))
    assert generic.decode(_text().encode())["block2"]["type"] == "103"


# ------------------------------------------------------------------ properties

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
X_TEXT = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-?().,'+ ", min_size=1,
                 max_size=35).filter(lambda s: not s.startswith((":", "-")) and s.strip() == s and s)


@PROPS
@given(st.binary(max_size=400))
def test_random_bytes_only_format_error(data: bytes) -> None:
    try:
        SwiftCodec().decode(data)
    except FormatError as exc:
        assert exc.offset is not None or exc.field is not None


@PROPS
@given(ref=X_TEXT.filter(lambda s: len(s) <= 16 and "/" not in s), amount=st.decimals(
    min_value=0, max_value=Decimal("999999999.99"), places=2), ccy=st.sampled_from(["EUR", "USD", "CHF"]),
    date=st.dates(dt.date(1980, 1, 1), dt.date(2079, 12, 31)), lines=st.lists(X_TEXT, min_size=1, max_size=4),
    data=st.data())
def test_generated_mt103_round_trip_and_mutations(ref: str, amount: Decimal, ccy: str, date: dt.date,
                                                  lines: list[str], data: st.DataObject) -> None:
    values = dict(MT103, block4=[dict(f) for f in MT103["block4"]])
    values["block4"][0] = {"tag": "20", "value": ref}
    values["block4"][2] = {"tag": "32A", "value": {"date": date, "currency": ccy, "amount": amount}}
    values["block4"][6] = {"tag": "70", "value": "\n".join(lines)}
    codec = SwiftCodec("mt103")
    raw = codec.encode(values)
    assert codec.decode(raw) == values
    assert codec.encode(codec.decode(raw)) == raw
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255))
    for mutated in (raw[:i] + bytes([b]) + raw[i + 1:], raw[:i]):
        try:
            got = codec.decode(mutated)
        except FormatError as exc:
            assert exc.offset is not None or exc.field is not None
        else:
            assert codec.decode(codec.encode(got)) == got
