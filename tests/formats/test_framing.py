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


# ------------------------------------------------------------ sibling framings

from formats.framing import (  # noqa: E402
    DelimiterFramer, EofFramer, FixedFramer, FramingConfigError, STREAM_FRAMINGS, framer_factory,
)

ALL_LENGTH = ["length2", "length4", "length2le", "length4le", "ascii2", "ascii3", "ascii4", "ascii6",
              "bcd2", "bcd4"]


def _roundtrip(tx, rx_make, payloads):
    wire = b"".join(tx.frame(p) for p in payloads)
    one = rx_make()
    assert one.feed(wire) == payloads           # one chunk
    assert one.buffered == 0
    assert one.eof() == []
    byte = rx_make()
    out: list[bytes] = []
    for i in range(len(wire)):                  # byte by byte
        out.extend(byte.feed(wire[i:i + 1]))
    assert out == payloads
    return wire


@pytest.mark.parametrize("name", ALL_LENGTH)
@pytest.mark.parametrize("includes", [False, True])
def test_length_kinds_one_chunk_and_byte_by_byte(name: str, includes: bool) -> None:
    payloads = [b"one", b"", b"x" * 40, bytes(range(50))]
    _roundtrip(make_framer(name, includes_prefix=includes), lambda: make_framer(name, includes_prefix=includes),
               payloads)


@pytest.mark.parametrize("name,includes,expected", [
    ("length2", False, b"\x00\x03abc"),
    ("length2", True, b"\x00\x05abc"),
    ("length4", False, b"\x00\x00\x00\x03abc"),
    ("length2le", False, b"\x03\x00abc"),
    ("length4le", True, b"\x07\x00\x00\x00abc"),
    ("ascii4", False, b"0003abc"),
    ("ascii4", True, b"0007abc"),
    ("ascii2", False, b"03abc"),
    ("bcd2", False, b"\x00\x03abc"),
    ("bcd2", True, b"\x00\x05abc"),
])
def test_length_prefix_bytes(name: str, includes: bool, expected: bytes) -> None:
    assert make_framer(name, includes_prefix=includes).frame(b"abc") == expected


def test_bcd_is_decimal_not_binary() -> None:
    f = make_framer("bcd2")
    wire = f.frame(b"z" * 1234)
    assert wire[:2] == b"\x12\x34"
    assert make_framer("bcd2").feed(wire) == [b"z" * 1234]


@pytest.mark.parametrize("name,garbage", [("ascii4", b"00a1xxxx"), ("bcd2", b"\x0a\x01xxxx")])
def test_garbage_length_prefix_is_a_framing_error(name: str, garbage: bytes) -> None:
    rx = make_framer(name)
    good = rx.frame(b"ok")
    assert rx.feed(good + garbage) == [b"ok"]
    assert rx.error is not None and rx.error.offset == len(good)
    assert name in rx.error.message and rx.error.hint
    with pytest.raises(FramingError):
        rx.eof()


def test_length_includes_prefix_smaller_than_prefix_is_error() -> None:
    rx = make_framer("length2", includes_prefix=True)
    with pytest.raises(FramingError, match="less than its own 2-byte prefix"):
        rx.feed(b"\x00\x01")


@pytest.mark.parametrize("name", ["length2", "length2le", "ascii4", "bcd2"])
def test_length_kinds_enforce_max_frame(name: str) -> None:
    big = make_framer(name).frame(b"y" * 20)
    rx = make_framer(name, 10)
    with pytest.raises(FramingError, match="over the limit of 10"):
        rx.feed(big)
    with pytest.raises(FramingError, match="limit is 10"):
        make_framer(name, 10).frame(b"y" * 11)


def test_ascii4_caps_at_9999() -> None:
    assert make_framer("ascii4").max_frame == 9999
    assert make_framer("ascii4", includes_prefix=True).max_frame == 9995


def test_header_is_split_off_and_echoed_on_the_reply() -> None:
    tpdu1, tpdu2 = b"\x60\x00\x01\x00\x00", b"\x60\x00\x02\x00\x00"
    client = make_framer("length2", header_size=5, header=tpdu1)
    wire = client.frame(b"REQ1") + make_framer("length2", header_size=5, header=tpdu2).frame(b"REQ2")
    assert wire[:2] == b"\x00\x09" and wire[2:7] == tpdu1     # the length counts the header
    server = make_framer("length2", header_size=5, echo_header=True)
    out: list[bytes] = []
    for i in range(len(wire)):
        out.extend(server.feed(wire[i:i + 1]))
    assert out == [b"REQ1", b"REQ2"]
    assert list(server.headers) == [tpdu1, tpdu2]
    assert server.frame(b"RSP1") == b"\x00\x09" + tpdu1 + b"RSP1"
    server.skip_reply()                       # REQ2 got no reply: its header is dropped
    assert server.frame(b"X") == b"\x00\x06" + bytes(5) + b"X"   # default header when none is waiting


def test_header_on_delimiter_and_fixed() -> None:
    d = DelimiterFramer(b"\x03", header_size=2, echo_header=True)
    assert d.feed(b"HHabc\x03") == [b"abc"]
    assert d.frame(b"xyz") == b"HHxyz\x03"
    f = FixedFramer(3, header_size=2)
    assert f.feed(b"h1abch2def") == [b"abc", b"def"]
    assert list(f.headers) == [b"h1", b"h2"]


def test_frame_shorter_than_header_is_error() -> None:
    rx = make_framer("length2", header_size=5)
    with pytest.raises(FramingError, match="shorter than its 5-byte header"):
        rx.feed(b"\x00\x03abc")


@pytest.mark.parametrize("delim", [b"\x03", b"\n", b"\r\n", b"<END>"])
def test_delimiter_one_chunk_and_byte_by_byte(delim: bytes) -> None:
    payloads = [b"alpha", b"", b"b" * 30, b"\r", b"\x00\x01"]
    payloads = [p for p in payloads if delim not in p]
    _roundtrip(DelimiterFramer(delim), lambda: DelimiterFramer(delim), payloads)


def test_delimiter_without_escape_refuses_a_payload_holding_it() -> None:
    with pytest.raises(FramingError, match="holds the delimiter"):
        DelimiterFramer(b"\x03").frame(b"a\x03b")


@pytest.mark.parametrize("delim", [b"\x03", b"\r\n"])
def test_delimiter_escape_round_trip(delim: bytes) -> None:
    payloads = [b"a" + delim + b"b", b"\x10", b"\x10" + delim, delim * 3, b"\r\r\n", b"plain"]
    tx = DelimiterFramer(delim, escape=b"\x10")
    wire = _roundtrip(tx, lambda: DelimiterFramer(delim, escape=b"\x10"), payloads)
    assert tx.frame(b"a\x03") .endswith(delim)
    assert wire.count(delim) >= len(payloads)


def test_delimiter_escape_bytes() -> None:
    assert DelimiterFramer(b"\x03", escape=b"\x10").frame(b"a\x03\x10b") == b"a\x10\x03\x10\x10b\x03"


def test_delimiter_max_frame_without_delimiter() -> None:
    rx = DelimiterFramer(b"\n", max_frame=8)
    assert rx.feed(b"12345678") == []           # at the limit: still waiting
    with pytest.raises(FramingError, match="over the limit of 8") as ei:
        rx.feed(b"9")
    assert ei.value.offset == 0
    rx = DelimiterFramer(b"\n", max_frame=8)
    assert rx.feed(b"ok\n" + b"x" * 20 + b"\n") == [b"ok"]
    assert rx.error is not None and rx.error.offset == 3
    rx = DelimiterFramer(b"\x03", escape=b"\x10", max_frame=4)
    with pytest.raises(FramingError):
        rx.feed(b"\x10\x03" * 5)


def test_delimiter_partial_then_eof() -> None:
    rx = DelimiterFramer(b"\x03")
    assert rx.feed(b"abc") == []
    with pytest.raises(FramingError, match="3 byte"):
        rx.eof()


def test_fixed_size() -> None:
    payloads = [b"0123456789", b"abcdefghij"]
    _roundtrip(FixedFramer(10), lambda: FixedFramer(10), payloads)
    with pytest.raises(FramingError, match="fixed framing of 10 bytes"):
        FixedFramer(10).frame(b"short")
    rx = FixedFramer(10)
    assert rx.feed(b"01234") == []
    with pytest.raises(FramingError, match="5 byte"):
        rx.eof()


def test_eof_framing() -> None:
    rx = EofFramer(max_frame=100)
    for b in b"whole message":
        assert rx.feed(bytes([b])) == []
    assert rx.eof() == [b"whole message"]
    assert EofFramer().eof() == []               # connection closed with nothing sent
    assert EofFramer().frame(b"reply") == b"reply"
    rx = EofFramer(max_frame=4)
    with pytest.raises(FramingError, match="over the limit of 4"):
        rx.feed(b"12345")


def test_framer_factory_checks_options() -> None:
    new = framer_factory("mf", {"framing": "ascii4", "header_size": 5, "length_includes_prefix": True},
                         echo_header=True)
    f = new()
    assert f.name == "ascii4" and f.header_size == 5 and f.echo_header and f.includes_prefix
    assert new() is not f
    assert framer_factory("mf", {"framing": "delimiter", "delimiter": "ETX", "escape": "DLE"},
                          echo_header=True)().delimiter == b"\x03"
    assert framer_factory("mf", {"framing": "delimiter", "delimiter": "hex:0d0a"},
                          echo_header=True)().delimiter == b"\r\n"
    assert framer_factory("mf", {"framing": "delimiter"}, echo_header=True)().delimiter == b"\n"
    bad = [
        ({"framing": "length3"}, "unknown framing 'length3'"),
        ({"framing": "fixed"}, "needs frame_size"),
        ({"framing": "length2", "frame_size": 10}, "frame_size applies to framing = fixed"),
        ({"framing": "length2", "delimiter": "ETX"}, "delimiter applies to framing = delimiter"),
        ({"framing": "delimiter", "delimiter": "hex:zz"}, "is not hex"),
        ({"framing": "delimiter", "escape": "ab"}, "escape must be exactly one byte"),
        ({"framing": "eof", "length_includes_prefix": True}, "applies to length framings"),
        ({"framing": "length2", "header": "6000"}, "needs header_size"),
        ({"framing": "length2", "header_size": 5, "header": "6000"}, "2 byte(s), but header_size = 5"),
        ({"framing": "length2", "max_frame": 0}, "positive byte count"),
        ({"framing": "fixed", "frame_size": 100, "max_frame": 10}, "over max_frame"),
    ]
    for opts, msg in bad:
        with pytest.raises(FramingConfigError) as ei:
            framer_factory("mf", opts, echo_header=False)
        assert msg in str(ei.value) and "channel mf" in str(ei.value), (opts, str(ei.value))


def test_every_stream_framing_is_listed() -> None:
    assert set(ALL_LENGTH) <= set(STREAM_FRAMINGS)
    assert {"delimiter", "fixed", "eof"} <= set(STREAM_FRAMINGS)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(ALL_LENGTH + ["delimiter-esc"]),
    payloads=st.lists(st.binary(max_size=90), max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_property_every_kind_any_split(name: str, payloads: list[bytes], cuts: list[int]) -> None:
    def mk():
        if name == "delimiter-esc":
            return DelimiterFramer(b"\r\n", escape=b"\x10")
        return make_framer(name, header_size=3, echo_header=True)
    tx = mk()
    wire = b"".join(tx.frame(p) for p in payloads)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    rx = mk()
    out: list[bytes] = []
    for a, b in zip(points, points[1:]):
        out.extend(rx.feed(wire[a:b]))
    assert out == payloads
    assert rx.eof() == []


def test_tpdu_reply_with_addresses_swapped() -> None:
    server = make_framer("length2", header_size=5, echo_header=True, swap_header=True)
    assert server.feed(b"\x00\x08" + bytes.fromhex("6000030011") + b"REQ") == [b"REQ"]
    assert server.frame(b"RSP") == b"\x00\x08" + bytes.fromhex("6000110003") + b"RSP"
    with pytest.raises(ValueError, match="5-byte TPDU"):
        make_framer("length2", header_size=4, echo_header=True, swap_header=True)


def test_a_calling_side_keeps_only_the_latest_reply_headers() -> None:
    # nobody takes the headers of replies on a calling channel: they must not pile up
    rx = make_framer("length2", header_size=5)
    wire = b"".join(make_framer("length2", header_size=5, header=bytes([0x60, 0, i % 256, 0, 0])).frame(b"x")
                    for i in range(1000))
    assert len(rx.feed(wire)) == 1000
    assert len(rx.headers) == 64 and rx.headers[-1] == bytes([0x60, 0, 999 % 256, 0, 0])


def test_a_file_ending_inside_a_frame_says_so_with_the_prefix_claim():
    from formats.framing import make_framer
    f = make_framer("length2")
    assert f.feed(b"\x00\x03abc\x00\x20{") == [b"abc"]
    with pytest.raises(FramingError) as ei:
        f.eof("file")
    assert ei.value.offset == 5
    assert ei.value.message == "the file ends inside a frame: the length2 prefix at byte 5 claims 32 bytes, 1 remain"
    g = make_framer("length4")
    g.feed(b"\x00\x00")
    with pytest.raises(FramingError) as ei:
        g.eof("file")
    assert "the length4 prefix at byte 0 has 2 of its 4 bytes" in ei.value.message
    h = make_framer("length2")
    h.feed(b"\x00\x20{")
    with pytest.raises(FramingError) as ei:
        h.eof()                                          # a connection: the peer closed
    assert "connection closed inside a frame" in ei.value.message
    assert ei.value.kind == "closed"                     # how a channel's fault log counts it
    assert make_framer("length2").fail("stalled", kind="stalled").kind == "stalled"
    with pytest.raises(FramingError) as ei:
        LengthPrefixFramer(2, max_frame=256).feed(b"\xff\xff" + b"x" * 10)
    assert ei.value.kind == "malformed"


@pytest.mark.parametrize("name, opening, says", [
    ("length2", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "the peer speaks TLS"),    # ClientHello: eof
    ("length4", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "the peer speaks TLS"),    # ClientHello: too big
    ("ascii4", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "the peer speaks TLS"),     # not digits
    ("length4", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "the peer speaks HTTP"),
    ("ascii4", b"POST /pay HTTP/1.1\r\n\r\n", "the peer speaks HTTP"),
])
def test_another_protocol_at_the_start_of_a_stream_is_named(name: str, opening: bytes, says: str) -> None:
    f = make_framer(name)
    with pytest.raises(FramingError) as info:
        f.feed(opening)
        f.eof()
    assert info.value.offset == 0 and says in str(info.value), info.value


def test_the_protocol_hint_is_only_for_the_start_of_a_stream() -> None:
    f = make_framer("length4", max_frame=100)
    f.feed(f.frame(b"ok"))
    with pytest.raises(FramingError) as info:
        f.feed(b"GET / HTTP/1.1\r\n")
    assert "speaks" not in str(info.value) and "over the limit of 100" in str(info.value)


def test_llzz_as_docs_channels_describe_it(corpus) -> None:
    """docs/channels.md: a mainframe's LLZZ prefix is length2 + length_includes_prefix + header_size 2
    (a cobrix test7 record: LL 64 in; a 75-byte answer goes back with LL 79 and the request's ZZ)."""
    rec = (corpus / "copybook" / "cobrix_test7_fillers" / "input" / "TEST.FILLERS.DEC07.DATA.dat").read_bytes()[:60]
    server = make_framer("length2", header_size=2, includes_prefix=True, echo_header=True)
    wire = b"\x00\x40\x00\x00" + rec
    out: list[bytes] = []
    for i in range(len(wire)):
        out.extend(server.feed(wire[i:i + 1]))
    assert out == [rec]
    assert server.frame(b"A" * 75) == b"\x00\x4f\x00\x00" + b"A" * 75


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"z", b"\x10")), max_size=6),
       st.sampled_from([b"\x03", b"\r\n", b"ab"]), st.lists(st.integers(1, 7), min_size=1, max_size=8))
def test_delimiter_escape_any_split_gives_the_same_frames(payloads, delim, cuts) -> None:
    wire = b"".join(DelimiterFramer(delim, escape=b"\x10").frame(p) for p in payloads)
    rx, out, i, k = DelimiterFramer(delim, escape=b"\x10"), [], 0, 0
    while i < len(wire):
        n = cuts[k % len(cuts)]
        out.extend(rx.feed(wire[i:i + n]))
        i, k = i + n, k + 1
    assert out == payloads and rx.buffered == 0


def test_delimiter_escape_frame_read_in_pieces_takes_linear_time() -> None:
    # each feed scanned the whole buffered frame again, byte by byte in Python: a 1 MiB frame (the
    # default max_frame) read in 1 KiB pieces took 97 s of CPU, 64 KiB pieces 2 s; the engine stalled
    import time
    rx = DelimiterFramer(b"\x03", escape=b"\x10")
    piece = (b"a" * 500 + b"\x10\x03") * 2
    t = time.perf_counter()
    for _ in range((1 << 20) // len(piece)):
        assert rx.feed(piece) == []
    assert rx.feed(b"\x03") and time.perf_counter() - t < 2.0
    with pytest.raises(FramingError, match="over the limit"):
        DelimiterFramer(b"\x03", escape=b"\x10", max_frame=1000).feed(b"\x10\x10" * 1001)
