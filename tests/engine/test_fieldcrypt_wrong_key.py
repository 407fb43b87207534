"""A field keyring whose key id is right but whose key is not (a key id given to a new key, another
environment's ring) is named, with where the ring came from, when a value does not decrypt."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from engine import fieldcrypt
from engine.fieldcrypt import Keyring, KeyringError, load_keyring
from engine.ledger import open_ledger
from tests.engine.test_fieldcrypt import K1, PAN, card_deal, cli

OTHER = bytes([9]) * 32


def b64(k: bytes) -> str:
    return base64.b64encode(k).decode()


def test_the_decrypt_error_names_the_ring_and_a_wrong_key(tmp_path: Path) -> None:
    token = Keyring("k1", {"k1": K1}).encrypt(b'"x"', b"D1|request.a")
    ring = load_keyring({"BSP_FIELD_KEYS": f"k1:{b64(OTHER)}"})
    assert ring is not None and ring.source == "BSP_FIELD_KEYS"
    with pytest.raises(KeyringError) as err:
        ring.decrypt(token, b"D1|request.a")
    text = str(err.value)
    assert "key 'k1' of the field keyring from BSP_FIELD_KEYS" in text
    assert "not the one it was encrypted with" in text and b64(OTHER) not in text
    f = tmp_path / "keys.json"
    f.write_text('{"current": "k1", "keys": {"k1": "%s"}}' % b64(OTHER))
    ring = load_keyring({"BSP_FIELD_KEYS_FILE": str(f)})
    assert ring is not None and ring.source == f"BSP_FIELD_KEYS_FILE={f}"
    assert Keyring("k1", {"k1": K1}) == Keyring("k1", {"k1": K1}, source="elsewhere")    # not part of equality


def test_deals_show_reveal_with_a_wrong_key_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    rec = card_deal(1)

    async def write() -> None:
        async with open_ledger(path, keyring=Keyring("k1", {"k1": K1}), audit_key=None) as ledger:
            await ledger.commit(rec)

    trio.run(write)
    monkeypatch.delenv(fieldcrypt.ENV_FILE, raising=False)
    monkeypatch.setenv(fieldcrypt.ENV_KEYS, f"k1:{b64(OTHER)}")
    res = cli("show", rec.deal_id, "--ledger", str(path), "--reveal")
    # the ledger's check value for k1 does not open with this key: refused before a field is tried
    assert res.exit_code == 2 and PAN not in res.output
    assert (f"error: {path}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key this ledger's "
            f"values under that id were sealed with") in res.output, res.output
    # a ledger without a check value (written before schema 8): each field that does not open is named
    import duckdb
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM field_key_checks").fetchall()
    res = cli("show", rec.deal_id, "--ledger", str(path), "--reveal")
    assert res.exit_code == 0 and PAN not in res.output
    assert ("request.card.number: ciphertext does not authenticate under key 'k1' of the field keyring from "
            "BSP_FIELD_KEYS") in res.output, res.output
