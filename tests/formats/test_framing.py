"""formats.framing: byte by byte, in one chunk, limits, eof, and properties."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from formats.errors import FormatError
from formats.framing import FramingError, LengthPrefixFramer, make_framer


@pytest.mark.parametrize("width", [2, 4])
def test_frame_adds_big_endian_prefix(width: int) -> None:
    f = LengthPrefixFramer(width)
    assert f.frame(b"abc") == (3).to_bytes(width, "big") + b"abc"
    assert f.frame(b"") == b"\x00" * width


@pytest.mark.parametrize("width", [2, 4])
def test_one_chunk_many_frames(width: int) -> None:
    f = LengthPrefixFramer(width)
    payloads = [b"one", b"", b"three33", bytes(range(256))]
    wire = b"".join(f.frame(p) for p in payloads)
    rx = LengthPrefixFramer(width)
    assert rx.feed(wire) == payloads
    assert rx.buffered == 0
    assert rx.offset == len(wire)
    rx.eof()


@pytest.mark.parametrize("width", [2, 4])
def test_byte_by_byte(width: int) -> None:
    f = LengthPrefixFramer(width)
    payloads = [b"hello", b"x", b"", b"world!"]
    wire = b"".join(f.frame(p) for p in payloads)
    rx = LengthPrefixFramer(width)
    out: list[bytes] = []
    for i in range(len(wire)):
        got = rx.feed(wire[i:i + 1])
        out.extend(got)
    assert out == payloads
    assert rx.buffered == 0


def test_partial_frame_is_held_and_eof_raises() -> None:
    rx = LengthPrefixFramer(2)
    assert rx.feed(b"\x00\x05ab") == []
    assert rx.buffered == 4
    with pytest.raises(FramingError) as ei:
        rx.eof()
    assert ei.value.offset == 0
    assert "4 byte(s)" in str(ei.value)


def test_oversized_frame_names_offset_and_limit() -> None:
    rx = LengthPrefixFramer(2, max_frame=10)
    good = rx.frame(b"0123456789")
    with pytest.raises(FramingError) as ei:
        rx.feed(b"\x00\x0bxxxxxxxxxxx")
    assert ei.value.offset == 0
    rx = LengthPrefixFramer(2, max_frame=10)
    # good frames before the bad one in the same chunk are returned; the error waits in .error
    assert rx.feed(good + b"\x00\x0bxxxxxxxxxxx") == [b"0123456789"]
    err = rx.error
    assert err is not None
    assert isinstance(err, FormatError)
    assert err.offset == len(good)          # the bad frame's first byte in the stream
    assert "11" in err.message and "limit of 10" in err.message
    assert err.hint
    # the stream is out of step: further feeds and eof keep failing
    with pytest.raises(FramingError):
        rx.feed(b"\x00\x01a")
    with pytest.raises(FramingError):
        rx.eof()


def test_oversized_detected_before_payload_arrives() -> None:
    rx = LengthPrefixFramer(4, max_frame=100)
    with pytest.raises(FramingError) as ei:
        rx.feed(b"\x7f\xff\xff\xff")
    assert ei.value.offset == 0


def test_frame_refuses_oversized_payload() -> None:
    with pytest.raises(FramingError, match="limit is 3 bytes"):
        LengthPrefixFramer(2, max_frame=3).frame(b"abcd")


def test_length2_limit_caps_at_65535() -> None:
    assert LengthPrefixFramer(2, max_frame=1 << 30).max_frame == 65535


def test_make_framer_names() -> None:
    assert make_framer("length2", 50).max_frame == 50
    assert make_framer("length4").width == 4
    with pytest.raises(ValueError, match="length2, length4"):
        make_framer("length3")


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        LengthPrefixFramer(3)
    with pytest.raises(ValueError):
        LengthPrefixFramer(2, max_frame=0)


@settings(max_examples=200, deadline=None)
@given(
    width=st.sampled_from([2, 4]),
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_property_any_split_gives_same_frames(width: int, payloads: list[bytes], cuts: list[int]) -> None:
    tx = LengthPrefixFramer(width)
    wire = b"".join(tx.frame(p) for p in payloads)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    rx = LengthPrefixFramer(width)
    out: list[bytes] = []
    for a, b in zip(points, points[1:]):
        out.extend(rx.feed(wire[a:b]))
    assert out == payloads
    rx.eof()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200), limit=st.integers(min_value=1, max_value=64))
def test_property_garbage_never_exceeds_limit(data: bytes, limit: int) -> None:
    rx = LengthPrefixFramer(2, max_frame=limit)
    try:
        frames = rx.feed(data)
    except FramingError as exc:
        assert exc.offset is not None and 0 <= exc.offset < len(data)
        return
    if rx.error is not None:
        assert 0 < rx.error.offset < len(data)
    assert all(len(f) <= limit for f in frames)
    assert rx.buffered < 2 + limit
