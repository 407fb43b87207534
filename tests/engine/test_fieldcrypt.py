"""Field protection: policies per tag, AES-GCM bound to the field, key rotation, nothing plain on disk."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine import fieldcrypt
from engine.commands.deals import register
from engine.deal import DealRecord
from engine.fieldcrypt import Keyring, KeyringError, load_keyring, protect, reveal
from engine.ledger import open_ledger
from engine.ledger_query import get_deal

PAN = "4111111111111111"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
K1, K2 = bytes([1]) * 32, bytes([2]) * 32
TAGS = {"card.number": "pan", "card.cvv": "secret", "payer.name": "personal", "items.iban": "personal"}
REQUEST = {"card": {"number": PAN, "cvv": "123"}, "payer": {"name": "Jane Doe"},
           "items": [{"iban": "DE89370400440532013000"}, {"iban": "FR1420041010050500013M02606"}],
           "amount": Decimal("120.50")}


def test_policy_per_tag() -> None:
    ring = Keyring("k1", {"k1": K1})
    out = protect(REQUEST, TAGS, ring, context="D1", root="request")
    assert out["card"]["cvv"] == "***"
    assert out["card"]["number"].startswith("enc:v1:k1:") and out["card"]["number"].endswith(":411111******1111")
    assert out["payer"]["name"].startswith("enc:v1:k1:") and "Jane" not in out["payer"]["name"]
    assert all(i["iban"].startswith("enc:v1:k1:") for i in out["items"])
    assert out["amount"] == Decimal("120.50")                      # unclassified: untouched
    assert REQUEST["card"]["number"] == PAN                          # input not changed
    back = reveal(out, ring, context="D1", root="request")
    assert back["card"]["number"] == PAN and back["payer"]["name"] == "Jane Doe"
    assert back["items"][1]["iban"] == "FR1420041010050500013M02606"
    assert back["card"]["cvv"] == "***"                              # secrets are gone for good


def test_without_a_keyring_fields_are_masked_only() -> None:
    out = protect(REQUEST, TAGS, None, context="D1", root="request")
    assert out["card"] == {"number": "411111******1111", "cvv": "***"}
    assert out["payer"]["name"] == "J***"


def test_ciphertext_is_bound_to_its_field_and_deal() -> None:
    ring = Keyring("k1", {"k1": K1})
    out = protect(REQUEST, TAGS, ring, context="D1", root="request")
    problems: list[str] = []
    reveal(out, ring, context="D2", root="request", problems=problems)       # another deal
    assert problems and problems[0].startswith("request.card.number: ciphertext does not authenticate")
    moved = {"payer": {"name": out["card"]["number"]}}                       # another field
    problems = []
    assert reveal(moved, ring, context="D1", root="request", problems=problems) == moved
    assert "request.payer.name" in problems[0]


def test_keyring_from_file_and_env(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"current": "k2", "keys": {"k1": base64.b64encode(K1).decode(),
                                                       "k2": base64.b64encode(K2).decode()}}))
    ring = load_keyring({"BSP_FIELD_KEYS_FILE": str(f)})
    assert ring is not None and ring.current == "k2" and ring.keys["k1"] == K1
    ring = load_keyring({"BSP_FIELD_KEYS": f"k3:{base64.b64encode(K2).decode()},k1:{base64.b64encode(K1).decode()}"})
    assert ring is not None and ring.current == "k3" and set(ring.keys) == {"k1", "k3"}
    assert load_keyring({}) is None
    with pytest.raises(KeyringError, match="key 'k1' is 16 bytes; AES-256 needs 32"):
        load_keyring({"BSP_FIELD_KEYS": f"k1:{base64.b64encode(bytes(16)).decode()}"})
    f.write_text('{"current": "k1",\n "keys": ')
    with pytest.raises(KeyringError, match=r"keys.json:2:\d+: not JSON"):
        load_keyring({"BSP_FIELD_KEYS_FILE": str(f)})


def card_deal(i: int) -> DealRecord:
    t = T0 + timedelta(seconds=i)
    return DealRecord(deal_type="CARD", route="card", config_version="v1", channel="pos", status="committed",
                      received_at=t, finished_at=t, reference=f"R{i}", request=REQUEST, request_tags=TAGS,
                      response={"pan": PAN, "code": "00"}, response_tags={"pan": "pan"})


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


@pytest.mark.parametrize("keyring", [None, Keyring("k1", {"k1": K1})], ids=["mask-only", "encrypted"])
async def test_plaintext_pan_never_reaches_the_duckdb_file(tmp_path: Path, keyring: Keyring | None) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path, keyring=keyring, audit_key=None) as ledger:
        for i in range(20):
            await ledger.commit(card_deal(i))
        raw_wal = file_bytes(path)            # before the checkpoint: the WAL holds the rows
    data = raw_wal + file_bytes(path)
    assert b"411111******1111" in data        # the rows are there (the grep can find things)
    for secret in (PAN.encode(), b"Jane Doe", b"DE89370400440532013000", b'"123"'):
        assert secret not in data, secret


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["deals", *args])


def test_rotation_old_rows_still_decrypt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    old, new = card_deal(1), card_deal(2)

    async def write() -> None:
        async with open_ledger(path, keyring=Keyring("k1", {"k1": K1}), audit_key=None) as ledger:
            await ledger.commit(old)
        async with open_ledger(path, keyring=Keyring("k2", {"k1": K1, "k2": K2}), audit_key=None) as ledger:
            await ledger.commit(new)

    trio.run(write)
    assert get_deal(path, old.deal_id)["request"]["card"]["number"].startswith("enc:v1:k1:")
    assert get_deal(path, new.deal_id)["request"]["card"]["number"].startswith("enc:v1:k2:")
    keys = f"k2:{base64.b64encode(K2).decode()},k1:{base64.b64encode(K1).decode()}"
    monkeypatch.delenv(fieldcrypt.ENV_FILE, raising=False)
    monkeypatch.setenv(fieldcrypt.ENV_KEYS, keys)
    for rec in (old, new):
        res = cli("show", rec.deal_id, "--ledger", str(path), "--reveal", "--json")
        assert res.exit_code == 0, res.output
        story = json.loads(res.stdout)
        assert story["request"]["card"]["number"] == PAN and story["response"]["pan"] == PAN
        assert story["request"]["payer"]["name"] == "Jane Doe"
    # without --reveal the mask shows, not the PAN
    res = cli("show", old.deal_id, "--ledger", str(path))
    assert res.exit_code == 0 and PAN not in res.output and "411111******1111" in res.output
    # the old key dropped from the ring: old rows say which key they need
    monkeypatch.setenv(fieldcrypt.ENV_KEYS, f"k2:{base64.b64encode(K2).decode()}")
    res = cli("show", old.deal_id, "--ledger", str(path), "--reveal")
    assert res.exit_code == 0 and PAN not in res.output
    assert "request.card.number: key id 'k1' is not in the keyring" in res.output
    monkeypatch.delenv(fieldcrypt.ENV_KEYS)
    res = cli("show", old.deal_id, "--ledger", str(path), "--reveal")
    assert res.exit_code == 2 and "--reveal needs the field keyring" in res.output


def test_flat_record_fast_path_matches_the_general_walk() -> None:
    from engine.fieldcrypt import _rules, _walk, protect
    values = {"t": "0200", "2": "4111111111111111", "35": "4111111111111111=2812101", "52": "ABCDEF0123456789",
              "4": "000000012050", 14: "not a string key"}
    tags = {"2": "pan", "35": "secret", "52": "secret", "14": "personal"}
    # an int key forces the general walk (which compares str(key)); both must agree on what they mask
    assert protect(values, tags, None, context="d1", root="request") == \
        _walk(values, _rules(tags), "request", None, "d1")
    flat = {k: v for k, v in values.items() if isinstance(k, str)}
    fast = protect(flat, tags, None, context="d1", root="request")
    assert fast == _walk(flat, _rules(tags), "request", None, "d1")
    assert fast["2"] == "411111******1111" and fast["35"] == "***" and fast["4"] == "000000012050"
    assert flat["2"] == "4111111111111111"          # the input is not changed


@pytest.mark.parametrize("tags", [{"*.number": "personal", "card.number": "pan"},
                                  {"card.number": "pan", "*.number": "personal"}])
def test_a_field_tagged_pan_and_personal_is_protected_as_personal(tags: dict[str, str]) -> None:
    # one rule, whatever the order of the classify list: the tag whose stored form shows least
    # (formats.classify.SHOWS_LEAST); bsp check's W006 takes the same (tests/dsl/test_dsl_classflow.py)
    from formats.classify import classified_values, mask, tag_of_field

    value = {"card": {"number": PAN}}
    assert protect(value, tags, None, context="d1", root="request") == {"card": {"number": "4***"}}
    assert mask(value, tags) == {"card": {"number": "4***"}}
    assert classified_values(value, tags) == {PAN: "personal"}
    assert tag_of_field("card.number", tags) == "personal"
    sealed = protect(value, tags, Keyring("k1", {"k1": K1}), context="d1", root="request")["card"]["number"]
    assert PAN[:6] not in sealed and not sealed.endswith(PAN[-4:])     # no PAN mask beside the ciphertext


def test_a_secret_inside_a_personal_group_is_dropped_not_encrypted_with_it() -> None:
    # classify ["card:personal", "card.cvv:secret"]: the CVV takes the tag that shows least of it
    # (formats.classify.at_key), so it is stored as *** and no --reveal gives it back; the rest of the
    # group is personal, sealed under its own path (the list `extra` whole, as a group without a stricter field)
    tags = {"card": "personal", "card.cvv": "secret"}
    value = {"card": {"number": "Jane Card 0001", "cvv": "7391", "extra": [{"pin": "4455"}]}, "op": "pay"}
    assert protect(value, tags, None, context="d1", root="request") == \
        {"card": {"number": "J***", "cvv": "***", "extra": [{"pin": "4***"}]}, "op": "pay"}
    ring = Keyring("k1", {"k1": K1})
    out = protect(value, tags, ring, context="d1", root="request")
    assert out["card"]["cvv"] == "***" and out["op"] == "pay"
    assert out["card"]["number"].startswith("enc:v1:k1:") and out["card"]["extra"].startswith("enc:v1:k1:")
    assert "7391" not in json.dumps(out)
    problems: list[str] = []
    back = reveal(out, ring, context="d1", root="request", problems=problems)
    assert problems == []
    assert back == {"card": {"number": "Jane Card 0001", "cvv": "***", "extra": [{"pin": "4455"}]}, "op": "pay"}
    # a group whose tag already shows least is still sealed whole, as before
    whole = protect(value, {"card": "personal", "card.number": "pan"}, ring, context="d1", root="request")
    assert whole["card"].startswith("enc:v1:k1:")
