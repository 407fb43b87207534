"""Audit key rotation (engine/audit.py, docs/security.md "Rotating the audit key"), on real DuckDB files through
the real writer: a keyring with a new current key rotates the chain once (a rotation record sealed with the old
key), ``verify`` follows the rotations with the ring, says which key is missing, and still names tampering."""
from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from engine.audit import AuditError, audit_key_from_text, fingerprint, load_audit_key, verify
from engine.commands import audit as audit_cmd, ledger as ledger_cmd
from engine.deal import DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger
from engine.ledger_store import KeyMismatch, LedgerStore

A1, A2, A3 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
B64 = {k: base64.b64encode(v).decode() for k, v in {"a1": A1, "a2": A2, "a3": A3}.items()}
FP = {k: fingerprint(v) for k, v in {"a1": A1, "a2": A2, "a3": A3}.items()}
JAN = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)


def ring(*ids: str) -> bytes:
    """The keyring ``ids`` (the first is current), as BSP_AUDIT_KEY would give it."""
    return audit_key_from_text(",".join(f"{i}:{B64[i]}" for i in ids), "BSP_AUDIT_KEY")


def deal(i: int, at: datetime) -> DealRecord:
    return DealRecord(
        deal_id=f"{i:032x}", deal_type="TRANSFER", route="transfer", config_version="v1", channel="front",
        status="committed", received_at=at, finished_at=at + timedelta(milliseconds=7), reference=f"R{i}",
        amount=Decimal("120.50"), currency="EUR", request={"ref": f"R{i}"}, response={"code": "00"},
        response_code="00", steps=[DealStep("d", "call", "ok", at, 5.0)],
        events=[DealEvent(at, "received", "accepted", {"key": f"transfer|R{i}"}),
                DealEvent(at, "accepted", "committed")])


async def write(path: Path, key: bytes, first: int, n: int, *, config: bool = False,
                start: datetime = JAN) -> None:
    """``n`` deals (4 records each) numbered from ``first``, one a day from ``start``, through the writer."""
    async with open_ledger(path, audit_key=key, keyring=None) as ledger:
        if config:
            await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        for i in range(first, first + n):
            await ledger.commit(deal(i, start + timedelta(days=i - first)))


def check(path: Path, key: bytes):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, key)
    finally:
        con.close()


def sql(path: Path, *stmts: str) -> list:
    con = duckdb.connect(str(path))
    try:
        out: list = []
        for s in stmts:
            out = con.execute(s).fetchall()
        return out
    finally:
        con.close()


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def root() -> None:
        pass

    audit_cmd.register(a)
    ledger_cmd.register(a)
    return a


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``bsp(*args, ring=("a2", "a1"))``: the CLI with that keyring in BSP_AUDIT_KEY_FILE (JSON)."""
    monkeypatch.delenv("BSP_AUDIT_KEY", raising=False)

    def run(*args: str, ring: tuple[str, ...]):
        f = tmp_path / "audit-keys.json"
        f.write_text(json.dumps({"current": ring[0], "keys": {i: B64[i] for i in ring}}))
        monkeypatch.setenv("BSP_AUDIT_KEY_FILE", str(f))
        return CliRunner().invoke(app(), list(args))
    return run


async def rotated(path: Path) -> None:
    """Seq 1 config, deals 0..2 sealed with a1 (seq 2..13), the rotation record (seq 14), deals 3..4 with a2."""
    await write(path, ring("a1"), 0, 3, config=True)
    await write(path, ring("a2", "a1"), 3, 2, start=JAN + timedelta(days=40))


async def test_rotation_appends_one_record_sealed_with_the_old_key_and_verifies_with_the_ring(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, bsp) -> None:
    path = tmp_path / "l.duckdb"
    await write(path, A1, 0, 3, config=True)           # a single key, as before rotation existed (no id)
    caplog.set_level(logging.WARNING, "bsp.ledger")
    await write(path, ring("a2", "a1"), 3, 2, start=JAN + timedelta(days=40))
    logged = [r.getMessage() for r in caplog.records if "audit key rotated" in r.getMessage()]
    assert logged == [f"{path}: audit key rotated: a1 (fp {FP['a1']}) -> a2 (fp {FP['a2']}) at seq 14 (the rotation "
                      f"record is sealed with the old key, the records after it with the new one; keep both keys "
                      f"in the audit keyring for as long as the file is kept: bsp audit verify needs them)"]
    assert B64["a1"] not in caplog.text and B64["a2"] not in caplog.text
    assert sql(path, "SELECT chain_seq, key_id, fingerprint, previous_key_id, previous_fingerprint FROM audit_keys") \
        == [(14, "a2", FP["a2"], "a1", FP["a1"])]     # the old key as the ring names it

    report = check(path, ring("a2", "a1"))
    assert report.ok, [str(b) for b in report.breaks + report.missing]
    assert report.last_seq == 22 and report.by_table["audit_keys"] == 1
    assert report.keys_used == [(1, f"a1 (fp {FP['a1']})"), (15, f"a2 (fp {FP['a2']})")]
    res = bsp("audit", "verify", "--ledger", str(path), ring=("a2", "a1"))
    assert res.exit_code == 0, res.output
    assert ("audit chain intact: 22 records" in res.output and
            f"sealed with a1 (fp {FP['a1']}) from seq 1, a2 (fp {FP['a2']}) from seq 15" in res.output), res.output

    # a restart with the same ring does not rotate again: the head verifies with the current key
    caplog.clear()
    await write(path, ring("a2", "a1"), 5, 1, start=JAN + timedelta(days=50))
    assert "audit key rotated" not in caplog.text
    assert sql(path, "SELECT count(*) FROM audit_keys") == [(1,)]
    assert check(path, ring("a2", "a1")).ok
    # and the engine now runs with the new key alone (verify still needs the old one: below)
    await write(path, ring("a2"), 6, 1, start=JAN + timedelta(days=60))
    assert sql(path, "SELECT count(*) FROM audit_keys") == [(1,)]


async def test_two_rotations_verify_with_the_ring_of_three(tmp_path: Path, bsp) -> None:
    path = tmp_path / "l.duckdb"
    await rotated(path)
    await write(path, ring("a3", "a2", "a1"), 5, 2, start=JAN + timedelta(days=80))
    assert sql(path, "SELECT chain_seq, previous_key_id, key_id FROM audit_keys ORDER BY 1") == \
        [(14, "a1", "a2"), (23, "a2", "a3")]
    report = check(path, ring("a3", "a1", "a2"))           # the ring's order does not matter to verify
    assert report.ok, [str(b) for b in report.breaks + report.missing]
    assert [s for s, _ in report.keys_used] == [1, 15, 24]
    assert bsp("audit", "verify", "--ledger", str(path), ring=("a3", "a2", "a1")).exit_code == 0


async def test_verify_with_only_one_of_the_keys_says_which_key_to_add(tmp_path: Path, bsp) -> None:
    path = tmp_path / "l.duckdb"
    await rotated(path)
    res = bsp("audit", "verify", "--ledger", str(path), ring=("a2",))
    assert res.exit_code == 2, res.output
    assert (f"cannot verify: add key a1 (fp {FP['a1']}) to the audit keyring: the records seq 1..14 are sealed "
            f"with it" in res.output), res.output
    assert "BROKEN" not in res.output and B64["a1"] not in res.output
    res = bsp("audit", "verify", "--ledger", str(path), ring=("a1",))
    assert res.exit_code == 2, res.output
    assert (f"cannot verify: add key a2 (fp {FP['a2']}) to the audit keyring: the records seq 15..22 are sealed "
            f"with it" in res.output), res.output
    # the way forward names the ring the key came from (here BSP_AUDIT_KEY_FILE), not a variable to set
    assert f"give the audit keyring from BSP_AUDIT_KEY_FILE={tmp_path / 'audit-keys.json'} every key" \
        in res.output, res.output
    dep = tmp_path / "platform.yaml"
    dep.write_text(f"routes: [x.route]\nledger:\n  path: {path}\n  audit_key: {{file: audit-keys.json}}\n")
    (tmp_path / "x.route").write_text("")
    res = bsp("audit", "verify", "--deployment", str(dep), ring=("a1",))
    assert res.exit_code == 2, res.output
    assert "give the audit keyring from " + f"{dep}:4:14: ledger.audit_key" in res.output, res.output
    assert "BSP_AUDIT_KEY_FILE as JSON" not in res.output, res.output
    report = check(path, ring("a1"))
    assert not report.ok and not report.breaks and len(report.missing) == 1
    # an id of the ring naming another key than the chain's: said as such
    res = bsp("audit", "verify", "--ledger", str(path), ring=("a1",) + ("a3",))
    assert res.exit_code == 2 and "add key a2" in res.output, res.output


async def test_tampering_before_after_and_in_the_rotation_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await rotated(path)
    keys = ring("a2", "a1")
    before = sql(path, "SELECT deal_id FROM deals WHERE chain_seq = 2")[0][0]
    after = sql(path, "SELECT deal_id FROM deals WHERE chain_seq = 19")[0][0]

    sql(path, "UPDATE deals SET reference = 'X' WHERE chain_seq = 2")
    report = check(path, keys)
    assert [str(b) for b in report.breaks] == [f"seq 2 (deals {before}): content does not match its mac: the record "
                                               f"was modified after it was written"]
    sql(path, "UPDATE deals SET reference = 'R0' WHERE chain_seq = 2")
    assert check(path, keys).ok

    sql(path, "UPDATE deals SET amount = 1 WHERE chain_seq = 19")
    report = check(path, keys)
    assert [str(b) for b in report.breaks] == [f"seq 19 (deals {after}): content does not match its mac: the record "
                                               f"was modified after it was written"]
    sql(path, "UPDATE deals SET amount = 120.50 WHERE chain_seq = 19")
    assert check(path, keys).ok

    # the rotation record altered to name another key (one of the ring, or none): a break at it, and the
    # records after it still checked with the key they verify with
    for fp in (FP["a1"], "0" * 16):
        sql(path, f"UPDATE audit_keys SET fingerprint = '{fp}'")
        report = check(path, keys)
        assert [str(b) for b in report.breaks] == ["seq 14 (audit_keys rotation to a2): content does not match its "
                                                   "mac: the record was modified after it was written (a rotation "
                                                   "of the audit key: the records after it are checked with the "
                                                   "key of the ring they verify with)"], report.breaks
        assert not report.missing
    sql(path, f"UPDATE audit_keys SET fingerprint = '{FP['a2']}'")
    assert check(path, keys).ok

    # a rotation record forged by hand (no key): its mac cannot be made
    sql(path, "UPDATE deal_events SET chain_seq = chain_seq + 1 WHERE chain_seq >= 15",
        "UPDATE deal_steps SET chain_seq = chain_seq + 1 WHERE chain_seq >= 15",
        "UPDATE deals SET chain_seq = chain_seq + 1 WHERE chain_seq >= 15",
        f"INSERT INTO audit_keys VALUES (now(), 'a3', '{FP['a3']}', 'a2', '{FP['a2']}', 15, "
        f"(SELECT mac FROM audit_keys WHERE chain_seq = 14))")
    report = check(path, keys)
    assert report.breaks and report.breaks[0].seq == 15 and report.breaks[0].table == "audit_keys", report.breaks


async def test_an_archive_made_before_a_rotation_still_verifies_after_it(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    await write(led, ring("a1"), 0, 6, config=True)
    await write(led, ring("a1"), 100, 3, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led), "--yes",
              ring=("a1",))
    assert res.exit_code == 0, res.output
    assert sql(led, "SELECT key_fp FROM audit_anchor") == [(FP["a1"],)]
    await write(led, ring("a2", "a1"), 200, 2, start=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert sql(led, "SELECT count(*) FROM audit_keys") == [(1,)]
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc), ring=("a2", "a1"))
    assert res.exit_code == 0 and "continues into" in res.output and "audit chain intact" in res.output, res.output
    assert bsp("audit", "verify", "--ledger", str(arc), ring=("a2", "a1")).exit_code == 0
    # the rotation sealed the anchor again with a2 (a1, rotated out, could rewrite it otherwise)
    assert sql(led, "SELECT key_fp FROM audit_anchor") == [(FP["a2"],)]
    # without a1 the records it sealed cannot be checked; the anchor can
    res = bsp("audit", "verify", "--ledger", str(led), ring=("a2",))
    assert res.exit_code == 2 and f"the anchor of the archive {arc.name}" not in res.output, res.output
    assert f"add key a1 (fp {FP['a1']})" in res.output, res.output
    # an anchor moved to another key's fingerprint is a break, not a pass
    sql(led, f"UPDATE audit_anchor SET key_fp = '{FP['a1']}'")
    res = bsp("audit", "verify", "--ledger", str(led), ring=("a2", "a1"))
    assert res.exit_code == 1 and "the archive anchor does not match its seal" in res.output, res.output


async def test_an_archive_made_after_a_rotation_seals_its_head_with_the_key_of_its_records(tmp_path: Path,
                                                                                            bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    await write(led, ring("a1"), 0, 6, config=True)
    await write(led, ring("a2", "a1"), 100, 3, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    await write(led, ring("a3", "a2", "a1"), 200, 3, start=datetime(2026, 2, 10, tzinfo=timezone.utc))
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led), "--yes",
              ring=("a3", "a2", "a1"))
    assert res.exit_code == 0, res.output
    # the archive takes January and the rotation to a2 (seq 26): its head is sealed with a2, not with a3
    assert sql(arc, "SELECT chain_seq, key_id FROM audit_keys") == [(26, "a2")]
    assert sql(led, "SELECT key_fp FROM audit_anchor") == [(FP["a3"],)]
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc), ring=("a3", "a2", "a1"))
    assert res.exit_code == 0 and "continues into" in res.output, res.output


async def test_a_ring_without_the_ledgers_key_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await write(path, ring("a1"), 0, 1)
    with pytest.raises(KeyMismatch) as err:
        LedgerStore.open(path, ring("a3", "a2"))
    text = str(err.value)
    assert (f"the audit keyring (BSP_AUDIT_KEY) does not match the audit chain this ledger already holds: its head "
            f"(seq 4) does not verify with any of its keys (a3 (fp {FP['a3']}), a2 (fp {FP['a2']}); the current one "
            f"first)") in text, text
    assert "Nothing was written" in text and B64["a3"] not in text
    assert sql(path, "SELECT count(*) FROM audit_keys") == [(0,)]
    # a single wrong key: the message as before, with its fingerprint
    with pytest.raises(KeyMismatch, match=rf"the audit key \(given by the caller\) does not match .* does not verify "
                                          rf"with it \(fp {FP['a2']}\)"):
        LedgerStore.open(path, A2)


def test_the_keyring_shapes_and_their_errors(tmp_path: Path) -> None:
    f = tmp_path / "k.json"
    f.write_text(json.dumps({"current": "a2", "keys": {"a1": B64["a1"], "a2": B64["a2"]}}))
    key = load_audit_key({"BSP_AUDIT_KEY_FILE": str(f)})
    assert bytes(key) == A2 and key.key_id == "a2" and [k.key_id for k in key.ring] == ["a2", "a1"]
    assert key.source == f"BSP_AUDIT_KEY_FILE={f}" and B64["a2"] not in repr(key) and FP["a2"] in repr(key)
    key = load_audit_key({"BSP_AUDIT_KEY": f"a2:{B64['a2']},a1:{B64['a1']}"})
    assert [(bytes(k), k.key_id) for k in key.ring] == [(A2, "a2"), (A1, "a1")]
    single = load_audit_key({"BSP_AUDIT_KEY": B64["a1"]})
    assert bytes(single) == A1 and single.ring == (single,) and single.key_id == ""
    import pickle
    back = pickle.loads(pickle.dumps(key))
    assert [(bytes(k), k.key_id) for k in back.ring] == [(A2, "a2"), (A1, "a1")] and back.key_id == "a2"
    for text, message in (
            ('{"current": "a3", "keys": {"a1": "%s"}}' % B64["a1"], "the current audit key 'a3' is not among"),
            ('{"current": "a1", "keys": ', "not valid JSON"),
            (f"a1:{B64['a1']},a1:{B64['a2']}", "the audit key id a1 appears twice"),
            (f"a1:{B64['a1']},a2:{B64['a1']}", "keys a1 and a2 are the same key"),
            (f"a1:{B64['a1']},{B64['a2']}", "entry 2 of the audit keyring is not <id>:<base64>"),
            ("a1:bm90IGEga2V5", "BSP_AUDIT_KEY: key a1: the audit key is 9 bytes")):
        with pytest.raises(AuditError, match=message):
            load_audit_key({"BSP_AUDIT_KEY": text})
