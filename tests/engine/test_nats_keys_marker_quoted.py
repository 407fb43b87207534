"""A shared deal-key bucket's ``_bsp_names`` entry is written by whoever can write the bucket: when bsp cannot
follow it, the error quotes it bounded (200 characters, then its full length) with control characters
escaped, so a hostile or damaged entry cannot put megabytes or terminal escapes into a log line; an entry
that is not a JSON object is told the same way (engine/channels/nats_keys_names.py)."""
from __future__ import annotations

import json

import pytest

from engine.channels.nats_keys_names import MARKER, follow, parse_marker, quoted
from engine.channels.options import ChannelConfigError
from engine.fieldcrypt import Keyring

WHERE = "key-value bucket K at nats://127.0.0.1:4222"


def _error(marker, keyring=None) -> str:
    with pytest.raises(ChannelConfigError) as exc:
        follow(marker, keyring, channel="c", where=WHERE)
    return str(exc.value)


def test_a_huge_unknown_entry_is_quoted_bounded_and_escaped() -> None:
    marker = {"names": "md5\x1b[2J\n" + "x" * 5_000_000}
    msg = _error(marker)
    assert len(msg) < 600, len(msg)
    assert "\x1b" not in msg and "\n" not in msg and "\\x1b[2J\\n" in msg
    assert f"{MARKER} = {{'names': 'md5" in msg and "characters in all)" in msg
    assert msg.startswith(f"channel c: {WHERE} names its deal keys in a way this engine does not know")


def test_a_huge_key_id_is_quoted_bounded() -> None:
    msg = _error({"names": "hmac-sha256", "kid": "k\r" * 1_000_000, "check": "0"})
    assert len(msg) < 600 and "\r" not in msg and "characters in all)" in msg
    keyring = Keyring("k1", {"k1": bytes(32)})
    msg = _error({"names": "hmac-sha256", "kid": "k\u202e" * 1_000_000, "check": "0"}, keyring)
    assert len(msg) < 600 and "\u202e" not in msg and "not in this engine's field keyring" in msg


def test_a_short_entry_is_quoted_whole() -> None:
    assert "(_bsp_names = {'names': 'md5'});" in _error({"names": "md5"})
    assert quoted("abc") == "'abc'"


def test_an_entry_that_is_not_a_json_object_is_told_bounded() -> None:
    raw = b"\x00\xff garbage " * 100_000
    with pytest.raises(ChannelConfigError) as exc:
        parse_marker(raw, channel="c", where=WHERE)
    msg = str(exc.value)
    assert len(msg) < 800 and "\x00" not in msg and f"{len(raw)} bytes in all" in msg
    assert f"its {MARKER} entry is not a JSON object" in msg
    with pytest.raises(ChannelConfigError, match="not a JSON object"):
        parse_marker(json.dumps(["names"]).encode(), channel="c", where=WHERE)
    assert parse_marker(b'{"names": "sha256"}', channel="c", where=WHERE) == {"names": "sha256"}
