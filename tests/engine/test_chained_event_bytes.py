"""What the chained ``deal_events`` appends outside ``LedgerStore.write`` store, to the byte: a dead letter's status
event (``letter_events``, the operator's change and the schema 10 migration), a reveal (``reveal_log.append``), an
``audit break`` (``audit_cut.record_break``) and the rotation record (``rotate_audit_key``) share one helper
(``ledger_store.append_chained``).  A ledger made of each of them, with the clock and the ids fixed, must hold the
same rows and macs as the ledger the code before that helper made on the same inputs (``GOLDEN``, taken from it):
a mac that changed would make every ledger already written read as tampered."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import count
from pathlib import Path

import duckdb
import pytest

from engine import audit_cut, ledger_store, reveal_log
from engine.audit import CHAINED, verify
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger
from engine.ledger_store import LedgerStore
from tests.engine.test_audit_rotation import ring

JAN = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 1, 11, 12, 0, 0, 123456, tzinfo=timezone.utc)
# sha256 of ``_dump`` of the ledger ``_make`` writes, as the code before ``append_chained`` wrote it; taken again
# on 2026-11-28, when the ``audit break`` record's detail began to name the head kept outside (``head_seq``,
# ``head_mac``: engine/ledger_merge.py resolves a break by them): the dumps differ only in that record's detail and
# the macs from it on (was f1ad8966fa6d89b4054c56e780ecdd21104a3665decc971e3325d9b72951af9a)
GOLDEN = "90dc2fa6fefe016db74fd17e00d1f18adfb55507022df2e3571f976876663aab"


class _Clock(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return NOW if tz is not None else NOW.replace(tzinfo=None)


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in (ledger_store, audit_cut, reveal_log):
        monkeypatch.setattr(mod, "datetime", _Clock)
    ids = count(1)
    monkeypatch.setattr("engine.deal.new_deal_id", lambda *_: f"{next(ids):032x}")


def _deal(i: int) -> DealRecord:
    at = JAN + timedelta(seconds=i)
    return DealRecord(
        deal_id=f"d{i:031x}", deal_type="TRANSFER", route="transfer", config_version="v1", channel="front",
        status="committed", received_at=at, finished_at=at + timedelta(milliseconds=7), reference=f"R{i}",
        amount=Decimal("120.50"), currency="EUR", request={"ref": f"R{i}"}, response={"code": "00"},
        response_code="00", steps=[DealStep("d", "call", "ok", at, 5.0)],
        events=[DealEvent(at, None, "received"), DealEvent(at, "received", "committed")])


def _letter(lid: str) -> DeadLetter:
    return DeadLetter(route="pay", channel="front", reason="channel back: unreachable", raw=b'{"ref":"R1"}',
                      config_version="v1", error_kind="unreachable", id=lid, at=JAN)


def _sql(path: Path, *stmts: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for s in stmts:
            con.execute(s).fetchall()
    finally:
        con.close()


async def _make(path: Path, a1: bytes, a2: bytes) -> None:
    async with open_ledger(path, audit_key=a1, keyring=None) as ledger:
        for lid in ("a1", "b2", "c3", "e5"):
            await ledger.dead_letter(_letter(lid))
        await ledger.commit(_deal(1))
        assert (await ledger.claim_dead_letter("a1", at=JAN, note="in progress"))[0]        # letter_events
        await ledger.mark_dead_letters(["a1", "b2"], status="retried", retried_at=JAN, retry_outcome="committed")
        await ledger.commit(_deal(2))
    # a cut while stopped (deal 2 deleted): the next open records an ``audit break``
    _sql(path, *(f"DELETE FROM {t} WHERE chain_seq >= (SELECT min(chain_seq) FROM deals WHERE reference = 'R2')"
                 for t in ("deal_steps", "deal_events", "deals")),
         "DELETE FROM deal_keys WHERE deal_id NOT IN (SELECT deal_id FROM deals)", "DELETE FROM audit_head")
    LedgerStore.open(path, a1).close()
    store = LedgerStore.open(path, a1)
    try:
        reveal_log.append(store, f"d{1:031x}", {"by": "ops", "fields": ["request.pan"], "why": "T-1"})
    finally:
        store.close()
    # the schema 10 migration: a letter changed with no event gets one (letter_events(None, ...))
    _sql(path, "UPDATE dead_letters SET status = 'purged', raw = NULL WHERE id = 'c3'",
         "DELETE FROM schema_version", "INSERT INTO schema_version VALUES (9, TIMESTAMPTZ '2026-01-10 00:00:00+00')")
    LedgerStore.open(path, a1).close()
    LedgerStore.open(path, a2).close()          # a rotation record (sealed with a1), the head sealed with a2
    async with open_ledger(path, audit_key=a2, keyring=None) as ledger:
        await ledger.commit(_deal(3))
        await ledger.mark_dead_letters(["e5"], status="purged")


def _dump(path: Path) -> bytes:
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = []
        for table in [*CHAINED, "audit_head"]:
            out.append(table)
            for row in con.execute(f"SELECT * FROM {table} ORDER BY chain_seq").fetchall():
                out.append(repr(row))
        return "\n".join(out).encode()
    finally:
        con.close()


async def test_the_chained_appends_store_what_they_stored_before(tmp_path: Path, fixed: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)       # the audit break's detail names the head file: the same path every run
    path = Path("l.duckdb")
    await _make(path, ring("a1"), ring("a2", "a1"))
    con = duckdb.connect(str(path), read_only=True)
    try:
        states = [r[0] for r in con.execute("SELECT to_state FROM deal_events WHERE to_state NOT IN "
                                            "('received', 'committed') ORDER BY chain_seq").fetchall()]
        assert states == ["dead_letter"] * 3 + [audit_cut.BREAK_STATE, reveal_log.REVEALED] + ["dead_letter"] * 2, \
            states
        assert con.execute("SELECT count(*) FROM audit_keys").fetchall()[0][0] == 1
        report = verify(con, path, ring("a2", "a1"))
    finally:
        con.close()
    assert [b.table for b in report.breaks] == ["audit break"], [str(b) for b in report.breaks]
    assert hashlib.sha256(_dump(path)).hexdigest() == GOLDEN, _dump(path).decode()


def test_a_refused_append_raises_its_own_error(tmp_path: Path) -> None:
    """The insert's error (here a NOT NULL column), not DuckDB's ``transaction is aborted`` from unregistering the
    batch in the aborted transaction; the caller's transaction rolls back and the chain stays where it was."""
    store = LedgerStore.open(tmp_path / "l.duckdb", ring("a1"))
    try:
        before = store.last_seq
        bad = {"deal_id": None, "seq": 1, "at": JAN, "from_state": None, "to_state": "x", "detail": None}
        with pytest.raises(duckdb.ConstraintException):
            with store.transaction() as tail:
                tail.seq, tail.prev = ledger_store.append_events(store.connection, [bad], store.audit_key,
                                                                 tail.seq, tail.prev)
        assert store.last_seq == before
        reveal_log.append(store, "d1", {"by": "ops"})        # the connection writes on
        assert store.last_seq == before + 1
    finally:
        store.close()
