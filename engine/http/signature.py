"""Message signatures on HTTP bodies: the ``signature_*`` options of ``http listen`` and ``http call``.

A partner and the bank share a secret; the sender puts a MAC of the body in a
header (``signature_header``), the receiver computes it again and compares in
constant time (``formats.mac``).  What is signed is the body exactly as sent,
byte for byte.  With ``signature_timestamp_header`` the sender also writes the
Unix time (whole seconds) in that header and the signed data is
``TIMESTAMP + "." + body`` (as Stripe signs webhooks): a receiver refuses a
time further than ``signature_max_age`` from its clock, so a captured request
cannot be played again later.

The value is the MAC in ``hex`` (lower case; either case is read) or
``base64`` (standard alphabet, with padding), after ``signature_prefix`` when
one is set (``"sha256="`` as GitHub webhooks write it).  A signature must be
the algorithm's full length (32 bytes for hmac-sha256): a cut one is refused.

The key is a software key: ``signature_key_env`` (an environment variable) or
``signature_key_file`` (a file), read as ``formats.mac.parse_key`` reads it
(an hmac-sha256 secret as its UTF-8 text, or ``hex:...``; block cipher keys
in hex) when the channel is built.  ``bsp check`` checks the options without
reading the key.  No message of this module quotes the key, nor the signature
a request should have carried.
"""
from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from engine.channels.options import ChannelConfigError, read_secret, seconds
from formats import mac
from formats.component import OptionSpec

ENCODINGS = ("hex", "base64")
DEFAULT_MAX_AGE = 300.0
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")       # an HTTP header name (RFC 9110 token)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")                  # ASCII digits: \d takes any script's


def signature_options(timestamp_note: str) -> tuple[OptionSpec, ...]:
    """The options both HTTP channel kinds take; ``timestamp_note`` ends the timestamp option's doc
    (who sends the signing time)."""
    return (
        OptionSpec("signature_header", "string",
                   "Header carrying the signature of the body (e.g. \"X-Signature\"); setting it turns "
                   "signatures on (see docs/channels.md, Signatures).", default=None),
        OptionSpec("signature_algorithm", "string", "MAC algorithm of the signature (formats/mac.py).",
                   default="hmac-sha256", choices=mac.ALGORITHMS),
        OptionSpec("signature_key_env", "string", "Environment variable holding the shared secret "
                   "(read when the channel is built; give this or signature_key_file).", default=None),
        OptionSpec("signature_key_file", "path", "File holding the shared secret (give this or "
                   "signature_key_env), relative to the route file; read when the channel is built, not by bsp "
                   "check, and never kept in the ledger's configuration versions.", default=None, secret=True),
        OptionSpec("signature_encoding", "string", "How the signature is written in its header: hex or base64.",
                   default="hex", choices=ENCODINGS),
        OptionSpec("signature_prefix", "string", "Text before the signature in its header (e.g. \"sha256=\").",
                   default=None),
        OptionSpec("signature_timestamp_header", "string",
                   "Header carrying the signing time (Unix seconds); the signed data is then "
                   "TIMESTAMP + \".\" + body and a time further than signature_max_age from the clock is "
                   f"refused (replay protection). {timestamp_note}", default=None),
        OptionSpec("signature_max_age", "duration", "How far the signing time may be from the clock "
                   "(with signature_timestamp_header).", default=Decimal(300)),
    )


def _seconds(value: Any) -> float:
    if value is None:
        return DEFAULT_MAX_AGE
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return seconds(value, DEFAULT_MAX_AGE)


@dataclass(frozen=True)
class BodySignature:
    """How one channel signs and checks bodies.  ``key`` is never shown (not in ``repr``)."""

    channel: str
    header: str
    algorithm: str
    key: bytes = field(repr=False)
    encoding: str = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    max_age: float = DEFAULT_MAX_AGE

    @classmethod
    def from_options(cls, channel: str, options: dict[str, Any], *, load: bool = True) -> "BodySignature | None":
        """The channel's signature, None when ``signature_header`` is not set.  ``load=False`` (``bsp
        check``): every option checked, the key not read (its value is then empty)."""
        header = options.get("signature_header")
        env, path = options.get("signature_key_env"), options.get("signature_key_file")
        prefix = options.get("signature_prefix")
        ts_header = options.get("signature_timestamp_header")
        max_age = options.get("signature_max_age")
        if header is None:
            given = [n for n, v in (("signature_key_env", env), ("signature_key_file", path),
                                    ("signature_prefix", prefix), ("signature_timestamp_header", ts_header))
                     if v is not None]
            if given:
                raise ChannelConfigError(
                    f"channel {channel}: option {given[0]} needs signature_header (the header that carries the "
                    f"signature, e.g. signature_header = \"X-Signature\"), which turns signatures on")
            return None
        for option, value in (("signature_header", header), ("signature_timestamp_header", ts_header)):
            if value is not None and (not isinstance(value, str) or not _TOKEN.match(value)):
                raise ChannelConfigError(f"channel {channel}: option {option}: expected a header name such as "
                                           f"\"X-Signature\", got {value!r}")
        if ts_header is not None and ts_header.lower() == header.lower():
            raise ChannelConfigError(f"channel {channel}: option signature_timestamp_header: {ts_header} is "
                                       f"already the signature_header; the time needs a header of its own")
        algorithm = options.get("signature_algorithm") or "hmac-sha256"
        try:
            mac.check_algorithm(algorithm)
        except mac.MacError as exc:
            raise ChannelConfigError(f"channel {channel}: option signature_algorithm: {exc}") from None
        encoding = options.get("signature_encoding") or "hex"
        if encoding not in ENCODINGS:
            raise ChannelConfigError(f"channel {channel}: option signature_encoding: expected hex or base64, "
                                       f"got {encoding!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise ChannelConfigError(f"channel {channel}: option signature_prefix: expected text such as "
                                       f"\"sha256=\", got {prefix!r}")
        try:
            age = _seconds(max_age)
        except (ValueError, TypeError):
            age = -1.0
        if not age > 0:
            raise ChannelConfigError(f"channel {channel}: option signature_max_age: expected a positive "
                                       f"duration such as 5m or 300s, got {max_age!r}")
        if ts_header is None and age != DEFAULT_MAX_AGE:
            raise ChannelConfigError(f"channel {channel}: option signature_max_age needs "
                                       f"signature_timestamp_header (the header carrying the signing time)")
        if env is not None and path is not None:
            raise ChannelConfigError(f"channel {channel}: option signature_key_file: give signature_key_env or "
                                       f"signature_key_file, not both")
        if env is None and path is None:
            raise ChannelConfigError(f"channel {channel}: option signature_header is set but there is no key; "
                                       f"give signature_key_env = \"VARIABLE\" or signature_key_file = \"PATH\"")
        option = "signature_key_env" if env is not None else "signature_key_file"
        if env is not None and (not isinstance(env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env)):
            raise ChannelConfigError(f"channel {channel}: option signature_key_env: expected the name of an "
                                       f"environment variable such as \"PARTNER_SIGNING_KEY\", got {env!r}")
        key = b""
        if load:
            text = read_secret(channel, option, "env" if env is not None else "file", env if env is not None else str(path))
            try:
                key = mac.parse_key(algorithm, text)
            except mac.MacError as exc:     # its message never quotes the key
                raise ChannelConfigError(f"channel {channel}: option {option}: {exc}") from None
        return cls(channel, header, algorithm, key, encoding, prefix or "", ts_header, age)

    # ------------------------------------------------------------------ signing
    def _data(self, body: bytes, timestamp: str | None) -> bytes:
        return body if timestamp is None else timestamp.encode("ascii") + b"." + body

    def _text(self, value: bytes) -> str:
        return value.hex() if self.encoding == "hex" else base64.b64encode(value).decode("ascii")

    def headers_for(self, body: bytes, now: float | None = None) -> list[tuple[str, str]]:
        """The headers that sign ``body``: the signature, and the signing time when configured."""
        out: list[tuple[str, str]] = []
        timestamp = None
        if self.timestamp_header is not None:
            timestamp = str(int(time.time() if now is None else now))
            out.append((self.timestamp_header, timestamp))
        value = mac.compute(self.algorithm, self.key, self._data(body, timestamp))
        out.append((self.header, self.prefix + self._text(value)))
        return out

    # ------------------------------------------------------------------ checking
    def repeated(self, names: list[str]) -> str | None:
        """Which signature header a request carries more than once (``names``: its header names in lower
        case, one per field line), in words; None when each is there at most once.  Which copy was meant
        is ambiguous (a proxy may read the last one, ``check`` reads the first): the request is refused."""
        for header in (self.header, self.timestamp_header):
            if header is not None:
                n = names.count(header.lower())
                if n > 1:
                    return f"{header} appears {n} times; a signed message carries it once"
        return None

    def check(self, header: Callable[[str], str | None], body: bytes, now: float | None = None) -> str | None:
        """None when ``body`` carries a good signature; else which check failed, in words (never the
        signature it should have had).  ``header(name)`` reads a header of the message."""
        got = header(self.header)
        if got is None:
            return f"no {self.header} header: the message is not signed"
        got = got.strip()
        if self.prefix:
            if not got.startswith(self.prefix):
                return f"{self.header} does not start with {self.prefix!r} (signature_prefix)"
            got = got[len(self.prefix):]
        try:
            if self.encoding == "hex":
                if not re.fullmatch(r"[0-9A-Fa-f]+", got) or len(got) % 2:
                    raise ValueError
                value = bytes.fromhex(got)
            else:
                value = base64.b64decode(got, validate=True)
                if not value:
                    raise ValueError
        except (ValueError, binascii.Error):
            return f"{self.header} is not {self.encoding} ({len(got)} characters after the prefix)" if self.prefix \
                else f"{self.header} is not {self.encoding} ({len(got)} characters)"
        full = mac.OUTPUT_LENGTH[self.algorithm]
        if len(value) != full:
            return f"{self.header} holds {len(value)} bytes; a {self.algorithm} signature has {full}"
        timestamp = None
        if self.timestamp_header is not None:
            timestamp = header(self.timestamp_header)
            if timestamp is None:
                return f"no {self.timestamp_header} header (signature_timestamp_header): the signing time is missing"
            timestamp = timestamp.strip()
            if not _TIMESTAMP.fullmatch(timestamp):
                return (f"{self.timestamp_header} {timestamp[:24]!r} is not a Unix time in whole seconds")
        if not mac.verify(self.algorithm, self.key, self._data(body, timestamp), value):
            signed = f"the {len(body)}-byte body" + (f" and {self.timestamp_header}" if timestamp is not None else "")
            return (f"{self.header} does not verify over {signed} ({self.algorithm}): the message was changed "
                    f"or signed with another key")
        if timestamp is not None:
            skew = (time.time() if now is None else now) - int(timestamp)
            if abs(skew) > self.max_age:
                when = f"{int(skew)}s old" if skew > 0 else f"{int(-skew)}s in the future"
                return (f"{self.timestamp_header} is {when}, beyond signature_max_age {self.max_age:g}s "
                        f"(a replay, or a clock that is off)")
        return None
