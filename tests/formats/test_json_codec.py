"""json codec: exact Decimals both ways, schema validation with JSON paths."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from dsl.ir import FormatDecl
from formats import json_codec
from formats.errors import FormatError, SpecError
from formats.json_codec import loads


def codec(**opts):
    return json_codec.build(FormatDecl("J", "json", opts))


def test_numbers_are_exact():
    v = codec().decode(b'{"amount": 120.50, "n": 3, "e": 1e3, "big": 123456789012345678901234567890, "s": "v1.2"}')
    assert v["amount"] == Decimal("120.50") and str(v["amount"]) == "120.50"
    assert type(v["n"]) is int and v["e"] == Decimal("1000") and v["big"] == 123456789012345678901234567890
    assert codec().decode(b'{"n": 3, "s": "x"}') == {"n": 3, "s": "x"}  # orjson fast path
    out = codec().encode({"amount": Decimal("120.50"), "due": dt.date(2024, 1, 31), "t": (1, 2)})
    assert out == b'{"amount":120.50,"due":"2024-01-31","t":[1,2]}'


@pytest.mark.parametrize("data, offset, words", [
    (b'{"a": ', 6, "Expecting value"),
    (b'{"a": 1.5,}', 10, "property name"),
    (b'[NaN]', None, "NaN is not a JSON number"),
    (b'[Infinity]', None, "Infinity"),
    (b'{"a": "\xff"}', 7, "not valid UTF-8"),
    (b'{"\xc3\xa9": 1.0 x}', 11, "Expecting"),  # byte offset, not character offset
])
def test_decode_errors(data, offset, words):
    with pytest.raises(FormatError) as e:
        codec().decode(data)
    assert e.value.offset == offset
    assert words in str(e.value)


def test_encode_refuses_float_and_names_path():
    with pytest.raises(FormatError) as e:
        codec().encode({"items": [{"amount": Decimal("1")}, {"amount": 1.5}]})
    assert e.value.field == "$.items[1].amount" and "never float" in str(e.value)
    with pytest.raises(FormatError) as e:
        codec().encode({"a": Decimal("NaN")})
    assert e.value.field == "$.a"
    with pytest.raises(FormatError) as e:
        codec().encode({"a": object()})
    assert e.value.field == "$.a"


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["amount", "items"],
    "properties": {
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "due": {"type": "string", "format": "date"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"ref": {"type": "string"}}}},
    },
}


def test_schema_validation_on_decode_and_encode(tmp_path):
    p = tmp_path / "post.schema.json"
    p.write_text(json.dumps(SCHEMA))
    c = codec(schema=str(p))
    assert c.decode(b'{"amount": 1.25, "items": []}')["amount"] == Decimal("1.25")
    with pytest.raises(FormatError) as e:
        c.decode(b'{"amount": 1.25, "items": [{"ref": "a"}, {"ref": 7}]}')
    assert e.value.field == "$.items[1].ref" and "is not of type 'string'" in str(e.value)
    with pytest.raises(FormatError) as e:
        c.encode({"amount": Decimal("-1"), "items": []})
    assert e.value.field == "$.amount" and "schema" in str(e.value)
    assert c.encode({"amount": Decimal("0.10"), "due": dt.date(2024, 2, 1), "items": []}) == \
        b'{"amount":0.10,"due":"2024-02-01","items":[]}'
    assert json_codec.COMPONENT.fields(FormatDecl("J", "json", {"schema": str(p)})) == ["amount", "due", "items"]


def test_bad_schema_is_spec_error(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"type": "object",\n "properties": 3}')
    errors = json_codec.check(FormatDecl("J", "json", {"schema": str(p)}))
    assert len(errors) == 1 and "not a valid JSON Schema" in str(errors[0]) and str(p) in str(errors[0])
    p.write_text('{"type": ')
    (err,) = json_codec.check(FormatDecl("J", "json", {"schema": str(p)}))
    assert err.line == 1 and "not valid JSON" in err.message
    (err,) = json_codec.check(FormatDecl("J", "json", {"schema": str(tmp_path / "missing.json")}))
    assert "cannot read" in err.message
    with pytest.raises(SpecError):
        codec(schema=str(p))


# ------------------------------------------------------------------ properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_roundtrip(value):
    c = codec()
    assert c.decode(c.encode(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_only_format_error(data):
    try:
        codec().decode(data)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(0, 255))
def test_mutated_document_only_format_error(pos, byte):
    doc = bytearray(b'{"amount": 120.50, "ref": "A-1", "n": [1, 2.5e3]}')
    doc[pos] = byte
    try:
        codec().decode(bytes(doc))
    except FormatError:
        pass


# the fast path (orjson, then each float's digits read at its key) against the stdlib parser
# with parse_float=Decimal: the same values, the same Decimal digits (120.50 stays 120.50)
_numbers = (st.integers(0, 4).flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p))
            | st.integers(-(2**70), 2**70) | st.text(alphabet="0123456789.e-", max_size=6))
_docs = st.recursive(
    _numbers | st.none(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "amount", 'x"amount', "é"]), children, max_size=3),
    max_leaves=12,
)


def _exact_repr(value):
    return json.dumps(value, default=repr, sort_keys=False)


@settings(max_examples=400, deadline=None)
@given(_docs, st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]), st.booleans())
def test_fast_path_agrees_with_stdlib_digits(value, separators, ascii_only):
    doc = json.dumps(value, default=str, separators=separators, ensure_ascii=ascii_only)
    # a Decimal rendered by default=str is a string: write it as a bare number instead
    for d in _decimals_in(value):
        doc = doc.replace(json.dumps(str(d)), str(d), 1)
    expected = json_codec._DECODER.decode(doc)
    got = json_codec.loads(doc.encode("utf-8"))
    assert _exact_repr(got) == _exact_repr(expected)


def _decimals_in(value):
    if isinstance(value, Decimal):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _decimals_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _decimals_in(v)


def test_fast_path_cases_by_hand():
    stdlib = json_codec._DECODER.decode
    for doc in [b'{"a":1.50}', b'{"a":[1.5,2]}', b'{"a":{"b":1.5},"b":2.5}', b'{"a\\"amount":1.5,"amount":2.5}',
                b'{"amount" : 1.5}', b'{"x":-123456789012345678901234}', b'{"x":1e400}', b'{"x":-0.0}', b'1.5',
                b'{"\\u0061":1.25}', b'{"x":1E2,"y":{"z":-3.000e-2}}']:
        assert repr(json_codec.loads(doc)) == repr(stdlib(doc.decode())), doc
    with pytest.raises(FormatError):            # the stdlib keeps the last "a"; we refuse a duplicated key
        json_codec.loads(b'{"a":"s","b":1.5,"a":2.5}')


@pytest.mark.parametrize("doc,key,path,offset,first", [
    (b'{"a":1,"a":2}', "a", "$", 7, 1),                                        # orjson path
    (b'{"amount":1.50,"amount":150.00}', "amount", "$", 15, 1),                 # stdlib path (fraction)
    (b'{"p":{"c":"x:y","c":2}}', "c", "$.p", 16, 6),                            # nested, colon in a string
    (b'{"l":[{"k":1},{"k":2, "k" :3}]}', "k", "$.l[]", 22, 15),                 # in an array, spaces
    (b'{"a":"\\u003a","a":1}', "a", "$", 14, 1),                                # an escaped colon
    (b'{"a\\u0041":1,"aA":2}', "aA", "$", 13, 1),                               # the same key, escaped
    (b' {"t":"10:00", "n":1.5, "t":"11:00"} ', "t", "$", 24, 2),                # whitespace around
])
def test_a_duplicated_key_is_refused_with_its_byte_offset(doc, key, path, offset, first):
    with pytest.raises(FormatError) as ei:
        loads(doc)
    e = ei.value
    assert e.offset == offset and e.field == f"{path}.{key}"
    assert f"duplicate key {key!r} in {path} (first at byte {first})" in e.message


@pytest.mark.parametrize("doc", [b'{"t":"10:00:00","u":"a:b","n":{"x":"1:2"}}', b'{"a":"\\u003a","b":1.5}',
                                 b'[{"a":1},{"a":1}]', b'{"a":{"a":{"a":1}}}', b'{"k":"\\":"}', b'"a:b"', b'{}'])
def test_colons_in_strings_and_repeated_keys_in_different_objects_are_fine(doc):
    assert loads(doc) == json.loads(doc, parse_float=Decimal)


def test_a_utf8_bom_gets_its_own_message():
    with pytest.raises(FormatError) as ei:
        loads(b'\xef\xbb\xbf{"a":1}')
    assert ei.value.offset == 0 and "byte order mark" in ei.value.message and "Expecting value" not in str(ei.value)


@pytest.mark.parametrize("doc, offset", [
    (b'{"a":"\\ud800"}', 5),                          # a lone high half (the stdlib parser let it through)
    (b'[1.5, "ok", "x\\udc00y"]', 12),               # a lone low half, on the Decimal path
    (b'{"k\\uDBFF": 1}', 1),                          # in a key, upper-case hex
])
def test_a_lone_utf16_surrogate_is_refused_with_its_byte(doc, offset):
    # such a string cannot be written as UTF-8: the deal it reached was neither stored nor answered
    with pytest.raises(FormatError) as e:
        loads(doc)
    assert e.value.offset == offset and "half of a UTF-16 surrogate pair without its other half" in str(e.value)
    assert loads(b'["\\ud83d\\ude00", "\\\\ud800", 1.5]') == ["\U0001F600", "\\ud800", Decimal("1.5")]


@pytest.mark.parametrize("inner", [b"1", b"1.5", b'{"b":1,"b":2}'])
def test_nesting_deeper_than_the_bound_is_refused_on_every_path(inner):
    # 300 levels: orjson read it (its limit is 1024) and then could not write it again (254): a TypeError
    # escaped the codec with a duplicate key inside; 129 levels is the first one refused
    for depth in (json_codec.MAX_DEPTH + 1, 300, 100_000):
        doc = b'{"a":' * depth + inner + b"}" * depth
        with pytest.raises(FormatError, match=f"nest more than {json_codec.MAX_DEPTH} deep"):
            loads(doc)
    for leaf in (b"1", b"1.5"):                                # at the bound: read, on both paths
        assert loads(b"[" * json_codec.MAX_DEPTH + leaf + b"]" * json_codec.MAX_DEPTH) is not None
    wide = b"[" + b",".join([b'{"a":[1]}'] * 5000) + b"]"     # many brackets, shallow: no refusal
    assert len(loads(wide)) == 5000


def test_an_over_long_integer_is_refused_in_plain_words():
    with pytest.raises(FormatError) as e:
        loads(b'{"amount": ' + b"9" * 100_000 + b"}")
    assert "an integer of more than 4300 digits" in str(e.value) and "sys." not in str(e.value)


@pytest.mark.parametrize("value, text", [
    (Decimal("1E+3"), b"1000"), (Decimal("1.2E+3"), b"1200"), (Decimal("1E-7"), b"0.0000001"),
    (Decimal("120.50"), b"120.50"), (Decimal("0E-8"), b"0.00000000"), (Decimal("-5E+2"), b"-500"),
])
def test_an_amount_is_written_in_plain_digits(value: Decimal, text: bytes) -> None:
    # str(Decimal) writes 1E+3 (a JSON "amount": 1e3 read in, round(x, -2) computed) and 1E-7: valid JSON that a
    # counterparty's decimal parser, a COBOL bridge or a spreadsheet may read as text or misread as a float
    assert json_codec.dumps({"amount": value}) == b'{"amount":' + text + b"}"
    assert json_codec.loads(json_codec.dumps({"amount": value}))["amount"] == value


def test_an_absurd_exponent_stays_short() -> None:
    # 1E+999999 in plain digits would be a megabyte; it is no amount (the deal step refuses it) and stays as read
    assert json_codec.dumps({"x": Decimal("1E+999999")}) == b'{"x":1E+999999}'


def test_a_number_whose_digits_written_out_would_fill_the_memory_is_refused():
    # 1e999999999 is 23 bytes; read as Decimal("1E+999999999") it was let through, and written out in plain
    # digits (a route's len() or pad, an XML or CSV reply, the journal) it made a gigabyte string
    from formats.json_codec import MAX_EXPONENT
    for body, at in ((b'{"a": 1, "b": 1e999999999}', 14), (b' [1.5, -2E-999999999]', 7),
                     (b'{"x": "1e9999", "a": 0.1e5000}', 21)):
        with pytest.raises(FormatError) as e:
            loads(body)
        assert f"has more than {MAX_EXPONENT} digits written out" in str(e.value)
        assert e.value.offset == at, body
    assert loads(b'{"a": 1e4300, "b": 1.5e-4299, "c": 12.5e3}') == {
        "a": Decimal("1E+4300"), "b": Decimal("1.5E-4299"), "c": Decimal("12.5E+3")}
