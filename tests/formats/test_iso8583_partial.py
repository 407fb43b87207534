"""A decode error carries what was read before it (``FormatError.partial``): the MTI and the fields before
the bad one, so a listen channel's `on error reply` can answer the request's response MTI echoing DE 11 / 37 /
41 (docs/formats-iso8583.md#answering-what-cannot-be-read). With MACs on, only what the MAC vouches for."""
from __future__ import annotations

import pytest

from formats.errors import FormatError
from formats.iso8583 import codec_for
from formats.mac import MacError
from test_iso8583_mac import mac_codec

REQ = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001050", "7": "1125210000",
       "11": "000123", "37": "RRN000000001", "41": "TERM0001", "49": "840"}


def error_of(codec, data: bytes) -> FormatError:
    with pytest.raises(FormatError) as info:
        codec.decode(data)
    return info.value


def test_an_unreadable_mti_leaves_nothing() -> None:
    assert error_of(codec_for("iso8583_1987_ascii"), b"02X0" + b"0" * 30).partial is None


def test_a_bad_bitmap_leaves_the_mti() -> None:
    c = codec_for("iso8583_1987_ascii")
    assert error_of(c, b"0200ZZZZ").partial == {"t": "0200"}
    assert error_of(c, c.encode(REQ)[:10]).partial == {"t": "0200"}       # ends inside the bitmap


def test_a_field_cut_short_leaves_the_fields_before_it() -> None:
    c = codec_for("iso8583_1987_ascii")
    data = c.encode(REQ)
    cut = data[:data.index(b"RRN000000001") + 4]                          # inside DE 37
    err = error_of(c, cut)
    assert err.field == "37"
    assert err.partial == {k: REQ[k] for k in ("t", "2", "3", "4", "7", "11")}


def test_a_content_error_leaves_every_other_field() -> None:
    c = codec_for("iso8583_1987_ascii")
    data = c.lenient().encode({**REQ, "7": "1325210000"})                  # month 13: structure holds
    err = error_of(c, data)
    assert err.field == "7"
    assert err.partial == {k: v for k, v in REQ.items() if k != "7"}


def test_bytes_left_over_leave_the_whole_message() -> None:
    c = codec_for("iso8583_1987_ascii")
    assert error_of(c, c.encode(REQ) + b"XX").partial == REQ


def test_with_macs_only_a_verified_message_leaves_values() -> None:
    c = mac_codec()
    good = c.lenient().encode({**REQ, "7": "1325210000"})                 # MAC'd, DE 7 out of range
    err = error_of(c, good)
    assert not isinstance(err, MacError) and err.partial["11"] == "000123" and "7" not in err.partial
    forged = good.replace(b"TERM0001", b"TERM0002")                        # MAC no longer verifies
    err = error_of(c, forged)
    assert isinstance(err, MacError) and err.partial is None
    # the bitmap cannot be read, so the MAC cannot be checked: not even the MTI is vouched for
    assert error_of(c, b"0200ZZZZ").partial is None
