"""Message authentication codes: the algorithms banks put on messages.

Pure functions (bytes in, bytes out; no trio, no engine), used by the ISO 8583
format's MAC field and by the HTTP channels' signatures:

- ``hmac-sha256``: HMAC with SHA-256 (RFC 2104 / RFC 4231); the usual
  signature of a partner's HTTP API.  Any key length.
- ``cmac-aes``: AES-CMAC (NIST SP 800-38B, RFC 4493); 16, 24 or 32-byte keys.
- ``retail-des``: ISO 9797-1 MAC algorithm 3 with DES (ANSI X9.19, the "retail
  MAC" of card networks): single-DES CBC-MAC with the key's left half, the last
  block decrypted with the right half and encrypted with the left again.
  ISO 9797-1 padding method 1 (zeros; none when the data fills whole blocks).
  A 16-byte key (double length); an 8-byte key gives ANSI X9.9 (single DES).

``compute`` truncates to the leftmost ``length`` bytes when asked (ISO 8583's
DE 64 / DE 128 carry 8).  ``verify`` compares in constant time.

Keys are software keys read from an environment variable or a file by the
engine (``parse_key``); there is no HSM integration.
"""
from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import threading

from formats.errors import FormatError

ALGORITHMS = ("hmac-sha256", "cmac-aes", "retail-des")

# full output length of each algorithm, in bytes
OUTPUT_LENGTH = {"hmac-sha256": 32, "cmac-aes": 16, "retail-des": 8}

_HEX = re.compile(r"[0-9A-Fa-f]+")


class MacError(FormatError):
    """A MAC that does not verify, or a key or algorithm that cannot be used."""


def _tdes():
    try:  # cryptography >= 43 keeps (Triple)DES among its "decrepit" algorithms
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - older cryptography
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    return TripleDES


def check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        close = difflib.get_close_matches(str(algorithm), ALGORITHMS, n=1, cutoff=0.6)
        raise MacError(f"unknown MAC algorithm {algorithm!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                       hint=f"one of: {', '.join(ALGORITHMS)}")


def check_key(algorithm: str, key: bytes) -> None:
    """Raise MacError when ``key`` cannot be used with ``algorithm``."""
    check_algorithm(algorithm)
    if algorithm == "hmac-sha256":
        if not key:
            raise MacError("empty MAC key", hint="set the key's variable or file to the shared secret")
        return
    if algorithm == "cmac-aes" and len(key) not in (16, 24, 32):
        raise MacError(f"an AES-CMAC key has 16, 24 or 32 bytes, not {len(key)}",
                       hint="write the key as 32, 48 or 64 hex digits")
    if algorithm == "retail-des" and len(key) not in (8, 16):
        raise MacError(f"a retail (DES) MAC key has 16 bytes (double length) or 8 (single), not {len(key)}",
                       hint="write the key as 32 hex digits (or 16 for ANSI X9.9)")


def parse_key(algorithm: str, text: str) -> bytes:
    """The key bytes from the text of a key variable or file.

    Block cipher keys (``cmac-aes``, ``retail-des``) are written in hex, as key
    components are exchanged; spaces are ignored.  An ``hmac-sha256`` secret is
    used as its UTF-8 bytes, as partners hand it out, unless written ``hex:...``.
    A byte-order mark (a file saved by a Windows editor) and trailing line
    breaks (LF or CRLF) are dropped either way, so that one key file gives the
    same key to an ISO 8583 format and to an HTTP channel.  Other spaces of an
    ``hmac-sha256`` secret are part of it.
    """
    check_algorithm(algorithm)
    text = text.removeprefix("\ufeff").rstrip("\r\n")
    if algorithm == "hmac-sha256" and not text.startswith("hex:"):
        key = text.encode("utf-8")
    else:
        digits = "".join(text[4:].split()) if text.startswith("hex:") else "".join(text.split())
        if not _HEX.fullmatch(digits or "-") or len(digits) % 2:
            # never quote the text: it is a key
            raise MacError(f"a {algorithm} key is written in hex digits (an even number of 0-9, A-F); "
                           f"this one has {len(digits)} characters that are not all hex",
                           hint="write the key as hex, e.g. 32 digits for a double-length DES key")
        key = bytes.fromhex(digits)
    check_key(algorithm, key)
    return key


class _DesKey:
    """One retail-MAC key's cipher objects, made once: the CBC cipher (a context per MAC, for its
    chaining state) and the ECB contexts of the final step (stateless between whole blocks, so
    reused).  Contexts are not thread-safe: each thread has its own (``_local``)."""

    __slots__ = ("cbc", "enc1", "dec2")

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
        tdes = _tdes()
        k1, k2 = key[:8], key[8:] or key[:8]
        self.cbc = Cipher(tdes(k1 * 3), modes.CBC(b"\x00" * 8))      # TripleDES with K|K|K is DES
        self.enc1 = Cipher(tdes(k1 * 3), modes.ECB()).encryptor() if k2 != k1 else None
        self.dec2 = Cipher(tdes(k2 * 3), modes.ECB()).decryptor() if k2 != k1 else None

    def mac(self, data: bytes) -> bytes:
        """ISO 9797-1 MAC algorithm 3, padding method 1 (zeros; none for whole blocks)."""
        if len(data) % 8 or not data:
            data = data + b"\x00" * (8 - len(data) % 8)
        enc = self.cbc.encryptor()
        out = (enc.update(data) + enc.finalize())[-8:]
        if self.enc1 is not None:
            out = self.enc1.update(self.dec2.update(out))
        return out


_local = threading.local()


def _des_key(key: bytes) -> _DesKey:
    cache = getattr(_local, "des", None)
    if cache is None:
        cache = _local.des = {}
    k = cache.get(key)
    if k is None:
        if len(cache) >= 16:            # a handful of keys in practice; never grow without bound
            cache.clear()
        k = cache[key] = _DesKey(key)
    return k


def compute(algorithm: str, key: bytes, data: bytes, length: int | None = None) -> bytes:
    """The MAC of ``data``, its leftmost ``length`` bytes when given."""
    check_key(algorithm, key)
    if algorithm == "hmac-sha256":
        mac = hmac.new(key, data, hashlib.sha256).digest()
    elif algorithm == "cmac-aes":
        from cryptography.hazmat.primitives import cmac
        from cryptography.hazmat.primitives.ciphers import algorithms
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        mac = c.finalize()
    else:
        mac = _des_key(key).mac(data)
    if length is not None:
        if not 4 <= length <= len(mac):
            raise MacError(f"a {algorithm} MAC can be cut to 4..{len(mac)} bytes, not {length}")
        mac = mac[:length]
    return mac


def verify(algorithm: str, key: bytes, data: bytes, mac: bytes) -> bool:
    """True when ``mac`` is the MAC of ``data`` (cut to ``len(mac)`` bytes); constant time."""
    if not 4 <= len(mac) <= OUTPUT_LENGTH.get(algorithm, 0):
        return False
    return hmac.compare_digest(compute(algorithm, key, data, len(mac)), mac)
