"""Property tests: any bytes give values or FormatError (with offset and field); valid
messages round-trip byte for byte."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.errors import FormatError
from formats.iso8583 import Iso8583Codec, codec_for
from formats.iso8583.spec import FieldSpec

SPECS = ["iso8583_1987_ascii", "iso8583_1987_bcd"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _value(f: FieldSpec) -> st.SearchStrategy:
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
    chars = string.ascii_letters + string.digits + " .,/-*"
    text = st.text(chars, min_size=lo, max_size=hi)
    if f.subfields:
        return st.fixed_dictionaries({s.name: st.text(chars, min_size=s.length, max_size=s.length)
                                      for s in f.subfields})
    return text


def messages(codec: Iso8583Codec) -> st.SearchStrategy:
    fields = sorted(codec.spec.fields.values(), key=lambda f: f.number)
    return st.lists(st.sampled_from(fields), min_size=1, max_size=12, unique_by=lambda f: f.number).flatmap(
        lambda chosen: st.fixed_dictionaries({"t": st.text("0123456789", min_size=4, max_size=4),
                                              **{f.key: _value(f) for f in chosen}}))


def _only_format_errors(codec: Iso8583Codec, data: bytes) -> None:
    try:
        values = codec.decode(data)
    except FormatError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(data), exc
        assert exc.field, exc
        return
    # whatever decodes must encode again, and mean the same thing
    assert codec.decode(codec.encode(values)) == values


@pytest.mark.parametrize("spec", SPECS)
def test_random_bytes_only_raise_format_error(spec: str) -> None:
    codec = codec_for(spec)

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
