"""formats/mac.py against published test vectors."""
from __future__ import annotations

import pytest

from formats import mac
from formats.mac import MacError

DES2 = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
AES128 = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_M = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")


@pytest.mark.parametrize("data, expected", [
    # ISO 9797-1 annex B.4 / ANSI X9.19: K = 0123456789ABCDEF, K' = FEDCBA9876543210, padding method 1
    (b"Now is the time for all ", "A1C72E74EA3FA9B6"),
    (b"Now is the time for it", "2E2B1428CC78254F"),
])
def test_retail_des_published_vectors(data, expected):
    assert mac.compute("retail-des", DES2, data).hex().upper() == expected


def test_single_length_key_is_ansi_x99():
    # FIPS 113 / ANSI X9.9 example
    assert mac.compute("retail-des", DES2[:8], b"Now is the time for all ").hex().upper() == "70A30640CC76DD8B"


@pytest.mark.parametrize("length, expected", [
    # RFC 4493 section 4, examples 1-4
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
])
def test_cmac_aes_rfc4493(length, expected):
    assert mac.compute("cmac-aes", AES128, RFC4493_M[:length]).hex() == expected


def test_hmac_sha256_rfc4231_case2():
    assert mac.compute("hmac-sha256", b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_truncation_and_verify():
    full = mac.compute("cmac-aes", AES128, b"0200")
    assert mac.compute("cmac-aes", AES128, b"0200", 8) == full[:8]
    assert mac.verify("cmac-aes", AES128, b"0200", full[:8])
    assert not mac.verify("cmac-aes", AES128, b"0201", full[:8])
    assert not mac.verify("cmac-aes", AES128, b"0200", full[:3])   # too short to mean anything
    with pytest.raises(MacError, match="4..8"):
        mac.compute("retail-des", DES2, b"x", 9)


def test_parse_key_hex_and_secret():
    assert mac.parse_key("retail-des", "0123 4567 89AB CDEF FEDC BA98 7654 3210\n") == DES2
    assert mac.parse_key("hmac-sha256", "s3cr3t\n") == b"s3cr3t"
    assert mac.parse_key("hmac-sha256", "hex:4a656665") == b"Jefe"


@pytest.mark.parametrize("algorithm, text, match", [
    ("retail-des", "0123456789ABCDEF0123", "16 bytes"),
    ("cmac-aes", "00" * 15, "16, 24 or 32"),
    ("retail-des", "not-a-key-at-all-zz", "hex digits"),
    ("hmac-sha256", "\n", "empty"),
])
def test_bad_keys_are_refused_without_quoting_them(algorithm, text, match):
    with pytest.raises(MacError, match=match) as info:
        mac.parse_key(algorithm, text)
    assert "not-a-key" not in str(info.value)


def test_unknown_algorithm_suggests():
    with pytest.raises(MacError, match="did you mean 'cmac-aes'"):
        mac.compute("cmac_aes", AES128, b"")


def test_retail_des_contexts_are_reused_safely_across_calls_and_threads():
    """The key's cipher contexts are made once per thread and reused: answers stay the published ones,
    whatever came before, in any thread."""
    import threading
    want = {b"Now is the time for all ": "A1C72E74EA3FA9B6", b"Now is the time for it": "2E2B1428CC78254F"}
    got: list[bool] = []

    def run() -> None:
        for _ in range(50):
            for data, expected in want.items():
                got.append(mac.compute("retail-des", DES2, data).hex().upper() == expected)
                got.append(mac.compute("retail-des", DES2[:8], b"Now is the time for all ").hex().upper()
                           == "70A30640CC76DD8B")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    run()
    for t in threads:
        t.join()
    assert len(got) == 5 * 50 * 4 and all(got)
