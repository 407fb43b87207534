"""The field key checks (engine/field_key_checks.py) run on archives too: ``bsp ledger archive`` copies the
live ledger's check values into the archive, and ``bsp audit verify`` with a field keyring checks the keyring
against the check values of the ledger and of each ``--archive`` (an archive made before the copy: against the
values sealed in it).  A reveal from the archive (``--ledger ARCHIVE``) meets the same check.  Real DuckDB
files, the CLI in process."""
from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from engine.deal import DeadLetter
from engine.ledger import open_ledger
import test_ledger_archive
from test_ledger_archive import FEB, JAN, KEY, archive, deal
from tests.engine.test_field_key_checks import A, B, ring

bsp = test_ledger_archive.bsp          # the CLI in process, with the audit key (a fixture)


async def _sealed_archive(tmp_path: Path, bsp) -> tuple[Path, Path]:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    async with open_ledger(led, audit_key=KEY, keyring=ring("k1=A")) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        for i in range(3):
            await ledger.commit(deal(i, JAN + timedelta(days=i)))
        await ledger.dead_letter(DeadLetter(route=None, channel="front", reason="no route took it",
                                            raw=b"MARKER-SEALED-LETTER", config_version="v1", error_kind="unrouted",
                                            at=JAN + timedelta(days=4)))
        await ledger.commit(deal(100, FEB + timedelta(days=2)))
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    with duckdb.connect(str(arc), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dead_letters WHERE raw_key = 'k1'").fetchall()[0][0] == 1
    return led, arc


def _keys(monkeypatch: pytest.MonkeyPatch, key: bytes) -> None:
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    monkeypatch.setenv("BSP_FIELD_KEYS", f"k1:{base64.b64encode(key).decode()}")


async def test_verify_checks_the_field_keyring_against_the_archive(tmp_path: Path, bsp,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    led, arc = await _sealed_archive(tmp_path, bsp)
    with duckdb.connect(str(arc), read_only=True) as con:
        assert [r[0] for r in con.execute("SELECT key_id FROM field_key_checks").fetchall()] == ["k1"]
    _keys(monkeypatch, A)
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 0, res.output
    assert f"{arc}: field keys: the keyring opens the check value of each key id it holds (k1)" in res.output
    _keys(monkeypatch, B)            # another key under k1
    res = bsp("audit", "verify", "--ledger", str(arc))
    assert res.exit_code == 2, res.output
    assert f"error: {arc}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key" in res.output
    assert base64.b64encode(B).decode() not in res.output


async def test_an_archive_made_before_the_copy_is_checked_on_its_sealed_values(tmp_path: Path, bsp,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _led, arc = await _sealed_archive(tmp_path, bsp)
    with duckdb.connect(str(arc)) as con:
        con.execute("DELETE FROM field_key_checks")        # as an archive of before holds them: none
    _keys(monkeypatch, B)
    res = bsp("audit", "verify", "--ledger", str(arc))
    assert res.exit_code == 2, res.output
    assert "none of the 1 dead letter message(s) sealed under it opens with it" in res.output, res.output
    _keys(monkeypatch, A)
    res = bsp("audit", "verify", "--ledger", str(arc))
    assert res.exit_code == 0, res.output


async def test_a_field_keyring_that_cannot_be_read_does_not_fail_the_chain_check(tmp_path: Path, bsp,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    led, arc = await _sealed_archive(tmp_path, bsp)
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.setenv("BSP_FIELD_KEYS_FILE", str(tmp_path / "no-such-keys.json"))
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 0, res.output
    assert "warning: the field keys are not checked" in res.output and "audit chain intact" in res.output
