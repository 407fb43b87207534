"""The ledger's field key checks (``field_key_checks``, engine/field_key_checks.py): a writer that opens the
ledger with a field keyring records its current key id's check value once, and every writer open checks each
key of the ring against its id's check value: another key under a key id the ledger sealed with is refused
(``KeyMismatch``) before anything is written, a key id the ring lacks is a warning.  Real DuckDB ledgers through
the real writer (``open_ledger``)."""
from __future__ import annotations

import base64
import logging
from pathlib import Path

import duckdb
import pytest
import trio

from engine.field_key_checks import aad
from engine.fieldcrypt import Keyring, keyring_from_list
from engine.ledger import open_ledger
from engine.ledger_store import SCHEMA_VERSION, KeyMismatch
from tests.engine.test_fieldcrypt import card_deal

A, B = bytes([1]) * 32, bytes([2]) * 32


def ring(text: str) -> Keyring:
    """``"k1=A,k2=B"``: the first entry current, source BSP_FIELD_KEYS."""
    keys = {"A": A, "B": B}
    return keyring_from_list(",".join(f"{e.split('=')[0]}:{base64.b64encode(keys[e.split('=')[1]]).decode()}"
                                      for e in text.split(",")), "BSP_FIELD_KEYS")


def write(path: Path, keyring: Keyring | None, *deals: int) -> None:
    async def body() -> None:
        async with open_ledger(path, keyring=keyring, audit_key=None) as ledger:
            for i in deals:
                await ledger.commit(card_deal(i))
    trio.run(body)


def checks(path: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [(str(k), str(t)) for k, t in con.execute("SELECT key_id, token FROM field_key_checks "
                                                         "ORDER BY key_id").fetchall()]


def test_another_key_under_a_used_id_is_refused_at_writer_open(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    first = checks(path)
    assert [k for k, _ in first] == ["k1"]
    assert Keyring("k1", {"k1": A}).decrypt(first[0][1], aad("k1")) == b"bsp field key check v1"

    with pytest.raises(KeyMismatch) as err:
        write(path, ring("k1=B"), 2)
    text = str(err.value)
    assert text.startswith(f"{path}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key this "
                           f"ledger's values under that id were sealed with"), text
    assert "Nothing was written" in text and base64.b64encode(B).decode() not in text
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deals").fetchall()[0][0] == 1
    assert checks(path) == first

    # the right key under its id, the new one under a new id: it opens, and the new id's check is recorded
    write(path, ring("k2=B,k1=A"), 3)
    assert [k for k, _ in checks(path)] == ["k1", "k2"]
    with pytest.raises(KeyMismatch, match="field key 'k2' of the keyring"):      # k2 is B's now
        write(path, ring("k2=A,k1=A"), 4)
    write(path, None, 5)             # no keyring (masks only): nothing to check, nothing recorded


def test_a_checked_id_missing_from_the_ring_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    with caplog.at_level(logging.WARNING, logger="bsp.ledger"):
        write(path, ring("k2=B"), 2)
    said = [r.getMessage() for r in caplog.records]
    assert (f"{path}: the ledger holds values sealed with field key 'k1', which the field keyring from "
            f"BSP_FIELD_KEYS does not hold (it has k2)") in " ".join(said), said
    assert [k for k, _ in checks(path)] == ["k1", "k2"]


def test_a_check_value_moved_to_another_id_does_not_open(tmp_path: Path) -> None:
    """The associated data names the key id: k1's check value put under k2 does not pass for k2's."""
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    with duckdb.connect(str(path)) as con:
        token = con.execute("SELECT token FROM field_key_checks").fetchall()[0][0]
        con.execute("INSERT INTO field_key_checks VALUES ('k2', ?, now())",
                    [token.replace("enc:v1:k1:", "enc:v1:k2:")]).fetchall()
    with pytest.raises(KeyMismatch, match="field key 'k2'"):
        write(path, ring("k2=A,k1=A"), 2)


def test_a_ledger_of_schema_7_gets_the_table_and_its_first_check(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    with duckdb.connect(str(path)) as con:          # as a bsp of schema 7 left it
        con.execute("DROP TABLE field_key_checks").fetchall()
        con.execute("DELETE FROM schema_version WHERE version > 7").fetchall()
    write(path, ring("k1=A"), 2)
    assert [k for k, _ in checks(path)] == ["k1"]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION


def test_dead_show_refuses_another_key_under_a_used_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from engine.commands.dead import register

    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    monkeypatch.setenv("BSP_FIELD_KEYS", f"k1:{base64.b64encode(B).decode()}")
    res = CliRunner().invoke(app, ["dead", "show", "x", "--ledger", str(path), "--reveal"])
    assert res.exit_code == 2, res.output
    assert f"error: {path}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key" in res.output


def test_an_open_that_seals_nothing_records_nothing(tmp_path: Path) -> None:
    """The check value is recorded with the first sealed value, not at open: a start refused after the ledger
    opened (the transaction log's keycheck), or one that wrote nothing sealed, leaves no key recorded."""
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=B"))
    assert checks(path) == []
    write(path, ring("k1=A"), 1)
    assert [k for k, _ in checks(path)] == ["k1"]
    with pytest.raises(KeyMismatch):
        write(path, ring("k1=B"))


def test_the_journal_records_it_too(tmp_path: Path) -> None:
    """``bsp run``'s default ledger sync: deals travel as journal lines, sealed before DuckDB sees them."""
    from engine.journal import open_journaled_ledger

    path = tmp_path / "l.duckdb"

    async def body() -> None:
        async with open_journaled_ledger(path, keyring=ring("k1=A"), audit_key=None) as led:
            await led.commit(card_deal(1))
    trio.run(body)
    assert [k for k, _ in checks(path)] == ["k1"]


def _letter(path: Path, keyring: Keyring) -> None:
    from engine.deal import DeadLetter

    async def body() -> None:
        async with open_ledger(path, keyring=keyring, audit_key=None) as ledger:
            await ledger.dead_letter(DeadLetter(route=None, channel="front", reason="no route took it",
                                                raw=b"4111111111111111", config_version="v1", error_kind="unrouted"))
    trio.run(body)


def _as_upgraded(path: Path) -> None:
    """As a ledger of schema 7 upgraded: no check values yet."""
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM field_key_checks")
        con.execute("UPDATE schema_version SET version = 7")


def test_a_ledger_sealed_before_its_checks_refuses_another_key_under_a_used_id(tmp_path: Path) -> None:
    """A ledger whose values under k1 were sealed before schema 8 (no check value yet): the first writer after
    the upgrade took any key under k1 as the ledger's, and recorded it with its first seal; started once with
    another environment's keyring (same id, another key), it sealed a second population under k1 and from then
    on refused the right key.  The writer now opens one of the dead letters sealed under the id first."""
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    _letter(path, ring("k1=A"))
    _as_upgraded(path)
    with pytest.raises(KeyMismatch, match="field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key"):
        write(path, ring("k1=B"), 2)
    assert checks(path) == []
    write(path, ring("k1=A"), 3)                       # the right key: opens, and its check is recorded
    assert [k for k, _ in checks(path)] == ["k1"]
    write(path, ring("k2=B,k1=A"), 4)                  # a new key under a new id: nothing sealed with it yet
    assert [k for k, _ in checks(path)] == ["k1", "k2"]


def test_a_deal_value_that_does_not_open_before_the_checks_is_a_warning(tmp_path: Path, caplog) -> None:
    """A deal's value that looks sealed may be a client's text kept as received (a field not classified): it
    does not refuse the keyring (a client could stop the engine's start), it is a warning."""
    path = tmp_path / "l.duckdb"
    write(path, ring("k1=A"), 1)
    _as_upgraded(path)
    caplog.set_level(logging.WARNING)
    write(path, ring("k1=B"), 2)
    assert any("field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key" in r.getMessage()
               and "it seems" in r.getMessage() for r in caplog.records), caplog.text
