"""A dead letter's status changes are chained (ledger schema 10, docs/ledger.md#dead_letters): each change made by
the ledger writer (a retry's claim and outcome, a purge, retry_settle) appends a ``dead_letter`` deal event on the
letter's id, and ``bsp audit verify`` names a letter whose row differs from its last such event (edited by hand in
the DuckDB file).  The migration from schema 9 starts the history of the letters already retried or purged;
``bsp ledger archive`` keeps a letter with its later events."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from engine.audit import verify
from engine.commands import audit as audit_cmd, ledger as ledger_cmd
from engine.deal import DeadLetter
from engine.ledger import open_ledger
from engine.ledger_store import LETTER_STATE, SCHEMA_VERSION, LedgerStore

KEY = bytes(range(32))
JAN = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)
FEB = datetime(2026, 2, 1, tzinfo=timezone.utc)


def q(path: Path, sql: str, params: list | None = None) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def tamper(path: Path, *stmts: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for s in stmts:
            con.execute(s).fetchall()
    finally:
        con.close()


def breaks(path: Path) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, KEY).breaks
    finally:
        con.close()


def letter(lid: str, at: datetime = JAN, kind: str = "unreachable") -> DeadLetter:
    return DeadLetter(route="pay", channel="front", reason="channel back: unreachable", raw=b'{"ref":"R1"}',
                      config_version="v1", error_kind=kind, id=lid, at=at)


async def test_status_changes_are_events_and_hand_edits_are_named(tmp_path: Path) -> None:
    led = tmp_path / "l.duckdb"
    at = datetime.now(timezone.utc)
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        for lid in ("a1", "b2", "c3"):
            await ledger.dead_letter(letter(lid))
        # a new letter: no event (the serving path writes nothing more)
        assert ledger._store.connection.execute("SELECT count(*) FROM deal_events").fetchall()[0][0] == 0
        assert (await ledger.claim_dead_letter("a1", at=at, note="in progress"))[0]
        await ledger.mark_dead_letters(["a1"], status="new", retried_at=at, retry_outcome="failed: down")
        await ledger.mark_dead_letters(["b2"], status="retried", retried_at=at, retry_outcome="committed (deal x)")
    events = q(led, "SELECT deal_id, seq, from_state, to_state, json_extract_string(detail, '$.status') "
                    "FROM deal_events ORDER BY chain_seq")
    assert events == [("a1", 1, None, LETTER_STATE, "retrying"), ("a1", 2, LETTER_STATE, LETTER_STATE, "new"),
                      ("b2", 1, None, LETTER_STATE, "retried")], events
    assert breaks(led) == []
    purged = tmp_path / "p.duckdb"
    purged.write_bytes(led.read_bytes())
    from engine.deadletter import purge
    assert purge(purged, ["c3"], audit_key=KEY) == 1
    assert breaks(purged) == []

    for name, stmt, who, says in (
            ("back", "UPDATE dead_letters SET status = 'new', retried_at = NULL, retry_outcome = NULL WHERE id = 'b2'",
             "b2", "would run it again"),
            ("outcome", "UPDATE dead_letters SET retry_outcome = 'committed (deal y)' WHERE id = 'a1'", "a1",
             "outcome 'failed: down'"),
            ("when", "UPDATE dead_letters SET retried_at = retried_at + INTERVAL 1 SECOND WHERE id = 'a1'", "a1",
             "retried_at"),
            ("never", "UPDATE dead_letters SET status = 'purged' WHERE id = 'c3'", "c3", "no chained event"),
            # its events deleted: said so, not "it was never retried nor purged" (until 2026-11-28)
            ("event", "DELETE FROM deal_events WHERE deal_id = 'b2'", "b2", "or its status events were deleted")):
        f = tmp_path / f"{name}.duckdb"
        f.write_bytes(led.read_bytes())
        tamper(f, stmt)
        named = [b for b in breaks(f) if b.table == "dead_letters"]
        assert [b.record for b in named] == [who] and says in named[0].what, (name, [str(b) for b in named])


def _as_schema_9(path: Path) -> None:
    """The file as a bsp of schema 9 leaves it (its statuses changed with no event)."""
    tamper(path, "DELETE FROM schema_version", "INSERT INTO schema_version VALUES (9, now())")


async def test_the_migration_starts_the_history_of_letters_already_changed(tmp_path: Path) -> None:
    led = tmp_path / "l.duckdb"
    at = datetime.now(timezone.utc)
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        for lid in ("a1", "b2", "c3"):
            await ledger.dead_letter(letter(lid))
    tamper(led, "UPDATE dead_letters SET status = 'retried', retried_at = now(), retry_outcome = 'committed' "
                "WHERE id = 'a1'", "UPDATE dead_letters SET status = 'purged', raw = NULL WHERE id = 'c3'")
    _as_schema_9(led)
    assert breaks(led) == []            # schema 9: nothing to compare the letters with, nothing reported
    LedgerStore.open(led, KEY).close()
    assert q(led, "SELECT max(version) FROM schema_version")[0][0] == SCHEMA_VERSION
    assert q(led, "SELECT deal_id, json_extract_string(detail, '$.status') FROM deal_events ORDER BY deal_id") == [
        ("a1", "retried"), ("c3", "purged")]
    assert breaks(led) == []
    LedgerStore.open(led, KEY).close()      # once only
    assert q(led, "SELECT count(*) FROM deal_events")[0][0] == 2
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.mark_dead_letters(["b2"], status="retried", retried_at=at, retry_outcome="committed")
    assert breaks(led) == []
    tamper(led, "UPDATE dead_letters SET status = 'new', retried_at = NULL, retry_outcome = NULL WHERE id = 'a1'")
    assert [b.record for b in breaks(led)] == ["a1"]


def _app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def root() -> None:
        pass

    ledger_cmd.register(a)
    audit_cmd.register(a)
    return a


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    return lambda *args: CliRunner().invoke(_app(), list(args))


async def test_archive_keeps_a_letter_with_its_later_status_events(tmp_path: Path, bsp) -> None:
    """An ``unrecorded`` letter (no deal row) of January retried in February stays in the live ledger with its
    events; one retried in January moves with its events; both files verify."""
    from tests.engine.test_ledger_archive import deal

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        await ledger.commit(deal(1, JAN))
        await ledger.dead_letter(letter("u2", JAN + timedelta(hours=1), kind="unrecorded"))
        await ledger.mark_dead_letters(["u2"], status="purged")
        await ledger.dead_letter(letter("u1", JAN + timedelta(hours=2), kind="unrecorded"))
        await ledger.commit(deal(2, JAN + timedelta(days=1)))
        await ledger.commit(deal(100, FEB + timedelta(days=1)))
        await ledger.mark_dead_letters(["u1"], status="retried", retried_at=FEB, retry_outcome="committed")
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led), "--yes")
    assert res.exit_code == 0, res.output
    assert q(arc, "SELECT id FROM dead_letters") == [("u2",)]
    assert q(arc, "SELECT deal_id FROM deal_events WHERE to_state = ?", [LETTER_STATE]) == [("u2",)]
    assert q(led, "SELECT id, status FROM dead_letters") == [("u1", "retried")]
    assert q(arc, "SELECT count(*) FROM deals")[0][0] == 1       # deal 2 stays with u1 (no split of the chain)
    for f in (arc, led):
        res = bsp("audit", "verify", "--ledger", str(f))
        assert res.exit_code == 0 and "intact" in res.output, res.output
