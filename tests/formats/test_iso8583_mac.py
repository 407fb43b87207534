"""Message MACs on ISO 8583 formats (DE 64 / DE 128): the codec and the format kind's options.

The MAC input is written out by hand here (MTI, bitmap with the MAC bit, fields) and MAC'd with
``formats.mac`` (itself tested against published vectors in test_mac.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from formats import mac
from formats.errors import SpecError
from formats.iso8583 import codec_for, load_spec
from formats.iso8583.component import COMPONENT, build, check
from formats.iso8583.macs import MacPolicy, plan_mac
from formats.mac import MacError

KEYS = {"retail-des": bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
        "cmac-aes": bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"),
        "hmac-sha256": b"a shared secret"}
PAN = "4111111111111111"
REQ = {"t": "0200", "2": PAN, "3": "000000", "4": "000000001050", "7": "1125210000", "11": "000123",
       "49": "840"}


def mac_codec(spec: str = "iso8583_1987_ascii", algorithm: str = "retail-des", number: int | None = None,
              exempt: tuple[str, ...] = ()) -> Any:
    c = codec_for(spec)
    return c.with_mac(MacPolicy(algorithm, KEYS[algorithm], plan_mac(c.spec, algorithm, number), number,
                                frozenset(exempt)))


def bitmap_hex(*bits: int) -> bytes:
    size = 16 if max(bits) > 64 else 8
    value = sum(1 << (size * 8 - b) for b in bits) | ((1 << 127) if size == 16 else 0)
    return value.to_bytes(size, "big").hex().upper().encode()


def ascii_body(extra: dict[str, str] | None = None) -> bytes:
    """Fields 2, 3, 4, 7, 11, 49 (and ``extra``: LLLVAR ans) as the ASCII spec puts them on the wire."""
    out = b"16" + PAN.encode() + b"000000" + b"000000001050" + b"1125210000" + b"000123" + b"840"
    for _no, v in (extra or {}).items():
        out += b"%03d" % len(v) + v.encode()
    return out


# ------------------------------------------------------------------ encode: what is MAC'd

@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_de64_is_the_mac_of_the_bytes_before_it(algorithm: str) -> None:
    data = mac_codec(algorithm=algorithm).encode(REQ)
    head = b"0200" + bitmap_hex(2, 3, 4, 7, 11, 49, 64) + ascii_body()
    expected = mac.compute(algorithm, KEYS[algorithm], head, 8)
    assert data == head + expected.hex().upper().encode()       # ASCII spec: b 8 travels as 16 hex chars


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_de128_when_the_message_has_a_secondary_bitmap(algorithm: str) -> None:
    values = dict(REQ, **{"102": "ACCOUNT-1"})
    data = mac_codec(algorithm=algorithm).encode(values)
    head = b"0200" + bitmap_hex(2, 3, 4, 7, 11, 49, 102, 128) + ascii_body() + b"09ACCOUNT-1"
    assert data == head + mac.compute(algorithm, KEYS[algorithm], head, 8).hex().upper().encode()
    msg = mac_codec(algorithm=algorithm).decode(data)
    assert "64" not in msg and msg["128"] == mac.compute(algorithm, KEYS[algorithm], head, 8).hex().upper()


@pytest.mark.parametrize("algorithm", sorted(KEYS))
@pytest.mark.parametrize("number", [64, 128])
def test_bcd_spec_binary_mac_round_trip_and_position(algorithm: str, number: int) -> None:
    codec = mac_codec("iso8583_1987_bcd", algorithm, number)
    data = codec.encode(REQ)
    plain = codec_for("iso8583_1987_bcd")
    # the bytes before the MAC are what the plain codec writes for the same message with the MAC bit set
    head = plain.encode(dict(REQ, **{str(number): "00" * 8}))[:-8]
    assert data == head + mac.compute(algorithm, KEYS[algorithm], head, 8)
    msg = codec.decode(data)
    assert msg[str(number)] == data[-8:].hex().upper()
    assert {k: v for k, v in msg.items() if k != str(number)} == REQ


def test_route_given_mac_is_replaced_and_exempt_mtis_carry_none() -> None:
    codec = mac_codec(exempt=("0800", "0810"))
    assert codec.encode(dict(REQ, **{"64": "FFFFFFFFFFFFFFFF"})) == codec.encode(REQ)
    echo = {"t": "0800", "7": "1125210000", "11": "000001", "70": "301"}
    assert codec.encode(echo) == codec_for("iso8583_1987_ascii").encode(echo)
    assert codec.decode(codec.encode(echo)) == echo          # exempt: not MAC'd, not verified


def test_mac_field_64_cannot_be_followed_by_fields_65_128() -> None:
    with pytest.raises(MacError) as e:
        mac_codec(number=64).encode(dict(REQ, **{"102": "ACCOUNT-1"}))
    assert e.value.field == "102" and "would follow the MAC field 64" in str(e.value)


def test_decoded_message_re_encodes_byte_for_byte() -> None:
    codec = mac_codec()
    data = codec.encode(REQ)
    assert codec.encode(codec.decode(data)) == data


# ------------------------------------------------------------------ decode: verification

@pytest.mark.parametrize("spec", ["iso8583_1987_ascii", "iso8583_1987_bcd"])
@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_a_changed_byte_does_not_verify(spec: str, algorithm: str) -> None:
    codec = mac_codec(spec, algorithm)
    data = codec.encode(REQ)
    good = data[-16:] if spec.endswith("ascii") else data[-8:]
    for at in (0, 5, len(data) // 2, len(data) - len(good) - 1, len(data) - 1):
        bad = bytearray(data)
        bad[at] = bad[at] ^ 0x01
        with pytest.raises(MacError) as e:
            codec.decode(bytes(bad))
        start = len(data) - len(good)
        # the bitmap changed: the MAC is looked for where the new bitmap puts it
        if at == 5:
            continue
        assert (e.value.field, e.value.offset) == ("64", start), (at, str(e.value))
        assert "does not verify" in str(e.value)
        text = str(e.value)
        assert good.hex().upper() not in text.upper() and KEYS[algorithm].hex().upper() not in text.upper()
        assert PAN not in text


def test_a_mac_made_with_another_key_does_not_verify() -> None:
    c = codec_for("iso8583_1987_ascii")
    other = c.with_mac(MacPolicy("retail-des", bytes(range(16)), plan_mac(c.spec, "retail-des", None), None))
    with pytest.raises(MacError, match="does not verify"):
        mac_codec().decode(other.encode(REQ))


def test_missing_mac_names_the_field_and_the_bitmap_offset() -> None:
    plain = codec_for("iso8583_1987_ascii").encode(REQ)
    with pytest.raises(MacError) as e:
        mac_codec().decode(plain)
    assert (e.value.field, e.value.offset) == ("64", 4)
    assert "MTI 0200: the MAC (field 64) is missing" in str(e.value)
    # a secondary bitmap: the MAC belongs in 128; a DE 64 there is named
    values = dict(REQ, **{"64": "0011223344556677", "102": "ACCOUNT-1"})
    with pytest.raises(MacError, match=r"field 128\) is missing.*carries field 64 instead"):
        mac_codec().decode(codec_for("iso8583_1987_ascii").encode(values))


def test_mac_that_is_not_the_last_field_is_refused() -> None:
    values = dict(REQ, **{"64": "0011223344556677", "102": "ACCOUNT-1"})
    with pytest.raises(MacError) as e:
        mac_codec(number=64).decode(codec_for("iso8583_1987_ascii").encode(values))
    assert e.value.field == "64" and "must be the message's last field, but field 102 follows it" in str(e.value)


def test_mac_in_hex_characters_of_an_an_field(tmp_path: Path) -> None:
    text = (Path(codec_for("iso8583_1987_ascii").spec.path).read_text()
            .replace('64: {name: "Message authentication code (MAC)", type: b, length: 8}',
                     '64: {name: "MAC as hex text", type: an, length: 16}'))
    assert "type: an, length: 16" in text
    path = tmp_path / "net.yaml"
    path.write_text(text)
    c = codec_for(path)
    codec = c.with_mac(MacPolicy("cmac-aes", KEYS["cmac-aes"], plan_mac(c.spec, "cmac-aes", None), None))
    data = codec.encode(REQ)
    head = b"0200" + bitmap_hex(2, 3, 4, 7, 11, 49, 64) + ascii_body()
    assert data == head + mac.compute("cmac-aes", KEYS["cmac-aes"], head, 8).hex().upper().encode()
    assert codec.decode(data)["64"] == data[-16:].decode()
    with pytest.raises(MacError, match="does not verify"):
        codec.decode(data[:-16] + data[-16:].lower().replace(b"a", b"g"))


def test_lenient_mac_codec_still_verifies() -> None:
    codec = mac_codec().lenient()
    assert not codec.validate
    with pytest.raises(MacError):
        codec.decode(codec_for("iso8583_1987_ascii").encode(REQ))


def test_without_mac_reads_the_message_unverified() -> None:
    codec = mac_codec()
    bad = bytearray(codec.encode(REQ))
    bad[-1] ^= 1
    assert codec.without_mac().decode(bytes(bad))["11"] == "000123"


# ------------------------------------------------------------------ the format kind's options

@dataclass
class Decl:
    options: dict[str, Any]
    name: str = "Net"
    kind: str = "iso8583"
    fields: tuple = ()
    pos: Any = field(default=None)


def decl(**opts: Any) -> Decl:
    return Decl({"spec": "iso8583_1987_ascii", "validate": True, **opts})


def test_options_are_declared_for_check_and_docs() -> None:
    names = COMPONENT.option_names
    assert {"mac_algorithm", "mac_key_env", "mac_key_file", "mac_field", "mac_exempt"} <= set(names)
    assert COMPONENT.option("mac_algorithm").choices == mac.ALGORITHMS
    assert COMPONENT.option("mac_key_file").secret


@pytest.mark.parametrize("opts, message", [
    ({"mac_algorithm": "retail-dess", "mac_key_env": "K"}, "unknown MAC algorithm 'retail-dess'; did you mean "
                                                           "'retail-des'?"),
    ({"mac_algorithm": "retail-des"}, "MACs need exactly one of mac_key_env and mac_key_file"),
    ({"mac_algorithm": "retail-des", "mac_key_env": "K", "mac_key_file": "/k"}, "not both"),
    ({"mac_key_env": "K"}, "option mac_key_env needs mac_algorithm"),
    ({"mac_algorithm": "retail-des", "mac_key_env": "K", "mac_field": 65}, "field 64 or 128, not 65"),
    ({"mac_algorithm": "retail-des", "mac_key_env": "K", "mac_exempt": ["800"]}, "entry 1 ('800') is not a "
                                                                                 "4-digit MTI"),
])
def test_check_reports_bad_options_without_the_key(opts: dict, message: str) -> None:
    errors = check(decl(**opts))
    assert len(errors) == 1 and message in errors[0].message, errors


def test_check_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_TEST_NO_SUCH_KEY", raising=False)
    assert check(decl(mac_algorithm="retail-des", mac_key_env="BSP_TEST_NO_SUCH_KEY")) == []
    assert check(decl(mac_algorithm="cmac-aes", mac_key_file="/nonexistent/net.mac")) == []


def test_check_mac_field_the_spec_cannot_carry(tmp_path: Path) -> None:
    base = Path(codec_for("iso8583_1987_ascii").spec.path).read_text()
    path = tmp_path / "wide.yaml"
    path.write_text(base.replace('64: {name: "Message authentication code (MAC)", type: b, length: 8}',
                                 '64: {name: "MAC", type: b, length: 20}'))
    load_spec(path)
    (err,) = check(Decl({"spec": str(path), "mac_algorithm": "retail-des", "mac_key_env": "K", "mac_field": 64}))
    assert "holds a 20-byte MAC; retail-des gives 4 to 8 bytes" in err.message
    assert check(Decl({"spec": str(path), "mac_algorithm": "hmac-sha256", "mac_key_env": "K",
                       "mac_field": 64})) == []
    path.write_text(base.replace('  64: {name: "Message authentication code (MAC)", type: b, length: 8}\n', ""))
    (err,) = check(Decl({"spec": str(path), "mac_algorithm": "retail-des", "mac_key_env": "K"}))
    assert "defines no field 64 to carry the MAC" in err.message


def test_build_reads_the_key_from_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_TEST_MAC_KEY", KEYS["retail-des"].hex())
    codec = build(decl(mac_algorithm="retail-des", mac_key_env="BSP_TEST_MAC_KEY", mac_exempt=["0800"]))
    assert codec.name == "Net" and codec.decode(mac_codec().encode(REQ))["11"] == "000123"
    assert codec.mac.exempt == {"0800"}
    assert KEYS["retail-des"].hex() not in repr(codec.mac)


def test_build_reads_the_key_from_a_file(tmp_path: Path) -> None:
    key = tmp_path / "net.mac"
    key.write_text(KEYS["cmac-aes"].hex() + "\n")
    codec = build(decl(mac_algorithm="cmac-aes", mac_key_file=str(key)))
    assert codec.decode(mac_codec(algorithm="cmac-aes").encode(REQ))["4"] == "000000001050"


def test_build_errors_name_the_option_never_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(MacError) as e:
        build(decl(mac_algorithm="retail-des", mac_key_env="BSP_TEST_NO_SUCH_KEY"))
    assert str(e.value) == ("option mac_key_env: environment variable BSP_TEST_NO_SUCH_KEY is not set "
                            "(export it before `bsp run`)")
    with pytest.raises(MacError, match=r"option mac_key_file: cannot read key file .*missing\.mac"):
        build(decl(mac_algorithm="retail-des", mac_key_file=str(tmp_path / "missing.mac")))
    secret = "0123456789ABCDEFFEDCBA987654321Z"
    monkeypatch.setenv("BSP_TEST_MAC_KEY", secret)
    with pytest.raises(MacError) as e:
        build(decl(mac_algorithm="retail-des", mac_key_env="BSP_TEST_MAC_KEY"))
    assert "option mac_key_env: environment variable BSP_TEST_MAC_KEY: a retail-des key is written in hex" \
        in str(e.value)
    assert secret[:12] not in str(e.value)
    monkeypatch.setenv("BSP_TEST_MAC_KEY", "00" * 24)
    with pytest.raises(MacError, match="16 bytes .double length. or 8 .single., not 24"):
        build(decl(mac_algorithm="retail-des", mac_key_env="BSP_TEST_MAC_KEY"))


def test_without_mac_options_build_is_unchanged() -> None:
    assert build(decl()).mac is None


def test_spec_error_type_for_check() -> None:
    errs = check(decl(mac_algorithm="nope", mac_key_env="K"))
    assert errs and all(isinstance(e, SpecError) for e in errs)


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "retail-des"])
def test_a_key_file_with_a_byte_order_mark_and_crlf_lines_gives_the_key(tmp_path: Path, algorithm: str) -> None:
    """Notepad writes a BOM and CRLF: the BOM made a hex key 'not all hex' and, worse, became part of an
    hmac-sha256 secret (every MAC then failed to verify, with nothing to say why); two line breaks left one
    in the key, where the HTTP channels' reader (engine/channels/options.read_secret) dropped both."""
    text = KEYS[algorithm].decode() if algorithm == "hmac-sha256" else KEYS[algorithm].hex().upper()
    key = tmp_path / "net.mac"
    key.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\r\n\r\n")
    codec = build(decl(mac_algorithm=algorithm, mac_key_file=str(key)))
    assert codec.mac.key == KEYS[algorithm]
    assert codec.decode(mac_codec(algorithm=algorithm).encode(REQ))["11"] == "000123"
