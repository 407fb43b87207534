"""Error texts of classified fields (pan, secret, personal) never quote the value (they reach dead letters and
logs, masked or not): they name the position.  BCD digit errors point at the byte of the bad digit."""
from __future__ import annotations

import pytest

from formats.errors import FormatError
from formats.iso8583 import codec_for

BASE = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001050", "7": "0209130746",
        "11": "000042", "49": "554"}


def _raises(fn, *args) -> FormatError:
    with pytest.raises(FormatError) as ei:
        fn(*args)
    return ei.value


def test_an_ascii_pan_with_a_letter_names_the_position_not_the_pan() -> None:
    codec = codec_for("iso8583_1987_ascii")
    e = _raises(codec.decode, b"0200400000000000000016411111111111X111")
    assert e.field == "2" and e.offset == 4 + 16 + 2 + 12
    assert e.message.startswith("character 13 of 16 is not a digit (type n)")
    assert "4111" not in str(e) and "X" not in e.message.replace("classified", "")
    for bad in ("41111111111X1111", "4111 1111"):
        e = _raises(codec.encode, BASE | {"2": bad})
        assert e.field == "2" and "4111" not in str(e), str(e)
    # a field that is not classified still shows its value
    e = _raises(codec.encode, BASE | {"11": "0000A2"})
    assert "'0000A2'" in e.message


def test_bcd_digit_errors_hide_the_pan_and_point_at_the_bad_digits_byte() -> None:
    codec = codec_for("iso8583_1987_bcd")
    raw = bytearray(codec.encode(BASE))
    pan_at = raw.index(bytes.fromhex("4111111111111111"))
    raw[pan_at + 1] = 0x4A                    # digits 3-4 become '4A'
    e = _raises(codec.decode, bytes(raw))
    assert e.field == "2" and e.offset == pan_at + 1
    assert e.message.startswith("BCD digit 4 of 16 is not a decimal digit")
    assert "4111" not in str(e) and "44A" not in str(e)
    # an unclassified BCD field: the value is shown, and the offset is the bad digit's byte too
    raw = bytearray(codec.encode(BASE))
    stan_at = raw.index(bytes.fromhex("000042"))
    raw[stan_at + 2] = 0x4B
    e = _raises(codec.decode, bytes(raw))
    assert e.field == "11" and e.offset == stan_at + 2 and "BCD value 00004B: digit 6 (B)" in e.message


@pytest.mark.parametrize("spec", ["iso8583_1987_ascii", "iso8583_1987_bcd"])
def test_track2_and_pin_block_errors_do_not_echo_them(spec: str) -> None:
    codec = codec_for(spec)
    for track in ("4111111111111111=2513101", "4111111111111111=25X1101", "4111111111111111=2512X01",
                  "4111111111111111X2512101"):
        e = _raises(codec.encode, BASE | {"35": track})
        assert e.field == "35" and "4111" not in str(e) and "2513" not in str(e) and "25X1" not in str(e), str(e)
        assert "value not shown: field 35 is classified pan/secret" in e.message
    e = _raises(codec.encode, BASE | {"52": "12345678ABCDEFGZ"})
    assert e.field == "52" and "12345678" not in str(e) and "value not shown" in e.message


def test_a_personal_field_is_not_echoed_either() -> None:
    codec = codec_for("iso8583_1987_ascii")          # DE 14, the card's expiry date, is classified personal
    e = _raises(codec.encode, BASE | {"14": "25X3"})
    assert e.field == "14" and "25X3" not in str(e), str(e)
    assert "value not shown: field 14 is classified personal" in str(e)
