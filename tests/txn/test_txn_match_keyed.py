"""The digests of a deal's party and ``match`` (claims payout: the beneficiary IBAN) are keyed with the field
keyring (engine/txn/fingerprint.py, docs/security.md): until 2026-11-27 they were unkeyed 8-byte BLAKE2b
digests in the transaction log's key store, its ``begin`` entries and a NATS key bucket, and a bank's account
numbers could be tried against them (~750,000 a second in one thread).  Digests written before the upgrade
(unkeyed) must still compare during the retention: a repeat of a claim paid before the upgrade is a duplicate
with the same IBAN and a key_conflict with another one.

Real engine in process, a real JSON counterpart over TCP on 127.0.0.1 port 0, a real DuckDB ledger and
transaction log.  "The old code" is the engine with its digests made as before (``TxnManager.digests`` set to
``fingerprint.UNKEYED``: what bsp wrote until this change, byte for byte)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from engine.fieldcrypt import Keyring
from engine.txn import fingerprint, manager_for
from test_txn_key_conflict import ask
from test_txn_key_conflict_match import IBAN, OTHER, ROUTE, claim
from txnkit import Counterpart, Unwritable, compile_text, deals, json_counterpart, running

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
KEYS = "k1:" + base64.b64encode(K1).decode()
THIRD = "FR1420041010050500013M02606"


def _old(sb) -> None:
    """The engine as it was before keyed digests: unkeyed BLAKE2b for party and match."""
    manager_for(sb.ledger).digests = fingerprint.UNKEYED


def _unkeyed_in(path: Path, *values: str) -> list[str]:
    """The ``values`` whose unkeyed digest is in the file at ``path``."""
    data = path.read_bytes()
    return [v for v in values if fingerprint.unkeyed(v).encode() in data]


async def test_a_repeat_of_a_claim_paid_before_the_upgrade_is_still_a_duplicate_or_a_conflict(
        nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    credit = Counterpart()
    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, credit.answer))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:                    # before the upgrade
        _old(sb)
        (first,) = await ask(sb.channel("front").port, claim("C1"))
        old_fp = manager_for(sb.ledger).log.ends["payout|C1"]["fp"]
    assert first == {"ref": "C1", "code": "00", "conf": "C-C1-post"}
    assert old_fp == f"100.00|EUR|{fingerprint.unkeyed('HEALTH01')}|{fingerprint.unkeyed(IBAN)}"
    async with running(program, ledger) as sb:                    # upgraded: keyed digests
        again, other, spaced = await ask(sb.channel("front").port, claim("C1"), claim("C1", OTHER),
                                         claim("C1", "de89 3704 0044 0532 0130 00"))
        (new,) = await ask(sb.channel("front").port, {**claim("C2", THIRD), "product": "LIFE02"})
        ends = manager_for(sb.ledger).log.ends
        new_fp = ends["payout|C2"]["fp"]
        assert ends["payout|C1"]["fp"] == old_fp                  # the original's, as it was written
    assert again == spaced == first                               # the same claim: the original's answer
    assert other == {"ref": "C1", "code": "12", "kind": "key_conflict"}
    assert new == {"ref": "C2", "code": "00", "conf": "C-C2-post"}
    assert credit.counts[("post", "C1")] == 1
    # a deal made after the upgrade keeps keyed digests only, under the key id that made them
    amount, currency, party, match = new_fp.split("|")
    assert (amount, currency) == ("100.00", "EUR")
    assert party.startswith("k1:") and match.startswith("k1:") and len(match) == len("k1:") + 16
    # (the party is a ledger column, in clear in the deal's values: only its digest is checked)
    txn = Path(str(ledger) + ".txn")
    assert _unkeyed_in(txn, THIRD, "LIFE02") == [] and _unkeyed_in(ledger, THIRD, "LIFE02") == []
    assert THIRD.encode() not in txn.read_bytes()       # (this test's format classifies nothing: the ledger
    #                                                     keeps the request as it came, IBAN included)


async def test_a_claim_answered_before_the_upgrade_while_the_log_could_not_be_written(
        nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its ``begin`` holds the old unkeyed match digest (``m``); the upgraded restart writes its ``end`` from
    its ledger row (party digested now, keyed) and that ``m``: a fingerprint of two versions, each compared
    its own way."""
    monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    state: dict = {}
    credit = Counterpart()

    def answer(req: dict) -> dict:
        if req.get("op") == "post" and "broken" not in state:
            state["broken"] = Unwritable(state["mgr"].log)     # the call went out: the log cannot take the end
        return credit.answer(req)

    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, answer))
    ledger = tmp_path / "l.duckdb"
    try:
        async with running(program, ledger) as sb:
            _old(sb)
            state["mgr"] = manager_for(sb.ledger)
            (first,) = await ask(sb.channel("front").port, claim("C8"))
    finally:
        if "broken" in state:
            state["broken"].restore()
    assert first == {"ref": "C8", "code": "00", "conf": "C-C8-post"}
    assert [d["status"] for d in deals(ledger)] == ["committed"]
    async with running(program, ledger) as sb:         # upgraded; recovery: the row says it was answered
        other, same = await ask(sb.channel("front").port, claim("C8", OTHER), claim("C8"))
        fp = manager_for(sb.ledger).log.ends["payout|C8"]["fp"]
    assert fp.endswith("|" + fingerprint.unkeyed(IBAN)) and "|k1:" in fp, fp
    assert other == {"ref": "C8", "code": "12", "kind": "key_conflict"}
    assert same == first
    assert credit.counts[("post", "C8")] == 1


def test_digests_name_their_key_and_compare_across_rotation() -> None:
    ring1 = Keyring("k1", {"k1": K1})
    ring2 = Keyring("k2", {"k1": K1, "k2": K2})        # rotated: k1 kept to read what it made
    dropped = Keyring("k2", {"k2": K2})                 # k1 no longer held
    d1, d2, d3 = fingerprint.Digests(ring1), fingerprint.Digests(ring2), fingerprint.Digests(dropped)
    assert d1(IBAN).startswith("k1:") and d2(IBAN).startswith("k2:") and d1(IBAN) != d2(IBAN)
    assert fingerprint.unkeyed(IBAN) not in d1(IBAN)
    assert d1(None) == "" and fingerprint.Digests(None)(IBAN) == fingerprint.unkeyed(IBAN)
    # the same key id with another key (another environment's ring) never makes the same digest
    assert fingerprint.Digests(Keyring("k1", {"k1": K2}))(IBAN) != d1(IBAN)

    def raw(value: str):
        return lambda field: "HEALTH01" if field == "party" else value

    for old_digests in (fingerprint.UNKEYED, d1):           # made before the upgrade; under the rotated key
        old = fingerprint.of("10.00", "EUR", "HEALTH01", old_digests(IBAN), old_digests)
        same = fingerprint.of("10.0", "EUR", "HEALTH01", d2(IBAN), d2)
        other = fingerprint.of("10.00", "EUR", "HEALTH01", d2(OTHER), d2)
        assert old != same
        assert fingerprint.differs(old, same, raw(IBAN), d2) == []
        assert fingerprint.differs(old, other, raw(OTHER), d2) == [("match", None, None)]
    # made under a key the keyring no longer holds: no verdict on that part (never a wrong one)
    old = fingerprint.of("10.00", "EUR", "HEALTH01", d1(IBAN), d1)
    assert fingerprint.differs(old, fingerprint.of("10.00", "EUR", "HEALTH01", d3(OTHER), d3),
                               raw(OTHER), d3) == []
    assert fingerprint.differs(old, fingerprint.of("99.00", "EUR", "HEALTH01", d3(IBAN), d3),
                               raw(IBAN), d3) == [("amount", "10.00", "99.00")]
