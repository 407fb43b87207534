"""Ledger schema 9 (docs/ledger.md#archived_deals): ``bsp ledger archive`` keeps, with each archived deal key, the
deal's amount, currency and party, so that a repeat of an archived key with other values is a key conflict
(engine/txn/fingerprint.py); a schema-8 ledger is migrated on open, its rows archived before keep NULL values
(their repeats stay plain duplicates).  Real DuckDB files, the real CLI command."""
from __future__ import annotations

from pathlib import Path

import base64

import duckdb
import pytest
from typer.testing import CliRunner

from engine.ledger_store import SCHEMA_VERSION, LedgerStore
from engine.txn.fingerprint import of
from test_ledger_archive import KEY, app, archive, fill


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())

    def run(*args: str):
        return CliRunner().invoke(app(), list(args))
    return run


def _downgrade_to_schema_8(path: Path) -> None:
    """The file as a schema-8 bsp left it: archived_deals without the deal's values."""
    con = duckdb.connect(str(path))
    try:
        con.execute("DROP INDEX archived_deals_key").fetchall()      # made again on open, as in schema 8
        for col in ("amount", "currency", "party"):
            con.execute(f"ALTER TABLE archived_deals DROP COLUMN {col}").fetchall()
        con.execute("DELETE FROM schema_version WHERE version > 8").fetchall()
        con.execute("INSERT INTO schema_version VALUES (8, now())").fetchall()
    finally:
        con.close()


async def test_archived_keys_keep_their_deal_values_and_a_schema_8_ledger_is_migrated(tmp_path: Path, bsp) -> None:
    led = tmp_path / "l.duckdb"
    await fill(led, jan=3, feb=2)
    r = archive(bsp, led, tmp_path / "jan.duckdb", "2026-01-12")     # R0 and R1 move out
    assert r.exit_code == 0, r.output
    store = LedgerStore.open(led, KEY)
    try:
        got = store.deals_by_key(["transfer|R0", "transfer|R2"])
    finally:
        store.close()
    want = of("120.5000", "EUR", None)
    assert got["transfer|R0"]["fp"] == got["transfer|R2"]["fp"] == want     # archived, and still in the ledger
    _downgrade_to_schema_8(led)
    store = LedgerStore.open(led, KEY)                  # schema 8 -> 9: the columns back, the old rows NULL
    try:
        assert store.deals_by_key(["transfer|R0"])["transfer|R0"]["fp"] is None
        versions = [v for (v,) in store._con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
        assert versions[-2:] == [8, SCHEMA_VERSION]
    finally:
        store.close()
    r = archive(bsp, led, tmp_path / "jan2.duckdb", "2026-01-13")    # archiving goes on on the migrated file
    assert r.exit_code == 0, r.output
    store = LedgerStore.open(led, KEY)
    try:
        assert store.deals_by_key(["transfer|R2"])["transfer|R2"]["fp"] == want
    finally:
        store.close()
    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 0, r.output
