"""Property tests: any bytes give values or FormatError (with offset and field); valid
messages (field contents and per-MTI rules respected) round-trip byte for byte."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.errors import FormatError
from formats.iso8583 import Iso8583Codec, codec_for
from formats.iso8583.content import CLASS_CHARS, parse_date_format
from formats.iso8583.spec import FieldSpec

SPECS = ["iso8583_1987_ascii", "iso8583_1987_bcd"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_TOKEN_VALUES = {"MM": st.integers(1, 12), "DD": st.integers(1, 28), "hh": st.integers(0, 23),
                 "mm": st.integers(0, 59), "ss": st.integers(0, 59), "YY": st.integers(0, 99),
                 "CCYY": st.integers(1900, 2099), "YYYY": st.integers(1900, 2099)}


def _date(fmt: str) -> st.SearchStrategy:
    parts = parse_date_format(fmt)
    assert parts
    return st.tuples(*(_TOKEN_VALUES[t].map(lambda v, w=b - a: str(v).zfill(w)) for t, a, b in parts)).map("".join)


def _track2(f: FieldSpec) -> st.SearchStrategy:
    return st.tuples(st.text("0123456789", min_size=12, max_size=19), st.sampled_from("=D"), _date("YYMM"),
                     st.text("0123456789", min_size=3, max_size=3), st.text("0123456789", max_size=8)).map(
        lambda p: "".join(p)[:f.max]).filter(lambda t: len(t) >= 20)


def _value(f: FieldSpec) -> st.SearchStrategy:
    if f.format == "track2":
        return _track2(f).map(lambda t: t.replace("D", "="))
    if f.format:
        return _date(f.format)
    lo = f.length if f.length is not None else 0
    hi = f.length if f.length is not None else min(f.max, 40)
    if f.tlv:
        tag = st.sampled_from(["9F02", "9F03", "5F2A", "95", "9A", "82", "9F26", "5A", "DF8101"])
        return st.dictionaries(tag, st.binary(min_size=0, max_size=20).map(lambda b: b.hex().upper()),
                               max_size=6).filter(lambda d: len(bytes.fromhex("".join(
                                   k + "%02X" % (len(v) // 2) + v for k, v in d.items()))) <= f.max)
    if f.type == "b":
        return st.binary(min_size=lo, max_size=hi).map(lambda b: b.hex().upper())
    if f.type == "n":
        return st.text("0123456789", min_size=lo, max_size=hi)
    if f.type == "z":
        return st.text("0123456789=", min_size=lo, max_size=hi)
    if f.type == "xn":
        return st.tuples(st.sampled_from("CD"), st.text("0123456789", min_size=lo, max_size=hi)).map("".join)
    chars = "".join(sorted(CLASS_CHARS.get(f.type, set(string.ascii_letters + string.digits + " .,/-*^"))))
    text = st.text(chars, min_size=lo, max_size=hi)
    if f.subfields:
        return st.fixed_dictionaries({s.name: st.text(chars, min_size=s.length, max_size=s.length)
                                      for s in f.subfields})
    return text


def messages(codec: Iso8583Codec) -> st.SearchStrategy:
    """Any MTI without rules with any fields, or a ruled MTI with its mandatory and conditional fields
    plus others it does not forbid."""
    spec = codec.spec
    fields = sorted(spec.fields.values(), key=lambda f: f.number)
    free = st.text("0123456789", min_size=4, max_size=4).filter(lambda t: t not in spec.messages)
    mti = st.one_of(free, st.sampled_from(sorted(spec.messages))) if spec.messages else free

    def build(t: str) -> st.SearchStrategy:
        rule = spec.messages.get(t)
        must = set(rule.mandatory) | {c.field for c in rule.conditional} if rule else set()
        banned = set(rule.forbidden) if rule else set()
        pool = [f for f in fields if f.key not in must and f.key not in banned
                and (rule is None or not rule.closed or f.key in rule.allowed)]
        required = [spec.fields[int(k)] for k in sorted(must, key=int)]
        extra = st.lists(st.sampled_from(pool), min_size=0 if required else 1, max_size=10,
                         unique_by=lambda f: f.number) if pool else st.just([])
        return extra.flatmap(lambda chosen: st.fixed_dictionaries(
            {"t": st.just(t), **{f.key: _value(f) for f in required + chosen},
             **({"39": st.sampled_from(["00", "05"])} if "39" in must else {})}))
    return mti.flatmap(build)


def _only_format_errors(codec: Iso8583Codec, data: bytes) -> None:
    try:
        values = codec.decode(data)
    except FormatError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(data), exc
        assert exc.field, exc
        return
    # whatever decodes must encode again, and mean the same thing
    assert codec.decode(codec.encode(values)) == values


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("spec", SPECS)
def test_random_bytes_only_raise_format_error(spec: str, lenient: bool) -> None:
    codec = codec_for(spec).lenient() if lenient else codec_for(spec)

    @FAST
    @given(st.binary(max_size=300))
    def run(data: bytes) -> None:
        _only_format_errors(codec, data)
    run()


@pytest.mark.parametrize("spec", SPECS)
def test_valid_messages_round_trip_and_mutations_fail_cleanly(spec: str) -> None:
    codec = codec_for(spec)

    @FAST
    @given(messages(codec), st.data())
    def run(values: dict, data: st.DataObject) -> None:
        raw = codec.encode(values)
        decoded = codec.decode(raw)
        assert codec.encode(decoded) == raw
        assert codec.decode(codec.encode(decoded)) == decoded
        # mutate: flip a byte, truncate, or append
        i = data.draw(st.integers(0, len(raw) - 1))
        b = data.draw(st.integers(0, 255))
        for mutated in (raw[:i] + bytes([b]) + raw[i + 1:], raw[:i], raw + bytes([b])):
            _only_format_errors(codec, mutated)
    run()
