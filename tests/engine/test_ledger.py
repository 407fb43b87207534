"""The deal ledger against real DuckDB files: group commit, exact money, failures, queries."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import trio
import trio.testing

from engine.config_sources import all_sources
from engine.deal import DealError, DealRecord, new_deal_id
from engine.ledger import LedgerError, open_ledger
from engine.ledger_store import SCHEMA_VERSION
from engine.ledger_query import display_amount, query_deals

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)


def deal(i: int = 0, **kw) -> DealRecord:
    fields = dict(
        deal_type="BILL_PAYMENT", route="bill_payment", config_version="abc123", channel="mainframe",
        status="committed", received_at=T0 + timedelta(seconds=i),
        finished_at=T0 + timedelta(seconds=i, milliseconds=12), reference=f"REF{i:06d}",
        amount=Decimal("120.50"), currency="CNY", party="EL01", response_code="00",
        request={"trace_no": f"REF{i:06d}", "amount": Decimal("120.50"), "value_date": date(2026, 3, 1)},
        response={"resp_code": "00"},
    )
    fields.update(kw)
    return DealRecord(**fields)


def count(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM deals").fetchone()[0]
    finally:
        con.close()


async def test_group_commit_batches_concurrent_commits(tmp_path: Path) -> None:
    path = tmp_path / "var" / "bsp.duckdb"          # parent directory is created
    n = 500
    committed: list[int] = []

    async def one(i: int) -> None:
        await ledger.commit(deal(i))
        committed.append(i)

    async with open_ledger(path, max_batch=128, max_wait=0) as ledger:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
        stats = ledger.stats
    assert sorted(committed) == list(range(n))
    assert stats.rows == n
    assert stats.batches < n / 4, stats          # many rows per transaction
    assert stats.max_batch <= 128
    assert count(path) == n


async def test_commit_returns_only_after_row_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path) as ledger:
        await ledger.commit(deal(1))
        assert ledger.stats.rows == 1            # released by its own batch, not before
        assert ledger.pending == 0


async def test_money_round_trips_exactly(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    big = Decimal("12345678901234.56")
    async with open_ledger(path) as ledger:
        await ledger.commit(deal(1, amount=big, request={"amount": big, "fee": Decimal("0.10")}))
        await ledger.commit(deal(2, amount=Decimal("1.234"), currency="BHD"))
        await ledger.commit(deal(3, amount=None, currency=None))
    rows = {r["reference"]: r for r in query_deals(path)}
    assert rows["REF000001"]["amount"] == big
    assert str(rows["REF000001"]["amount"]) == "12345678901234.56"
    assert rows["REF000001"]["request"] == {"amount": "12345678901234.56", "fee": "0.10"}
    assert str(rows["REF000002"]["amount"]) == "1.234"
    assert rows["REF000003"]["amount"] is None
    con = duckdb.connect(str(path), read_only=True)
    try:
        total = con.execute("SELECT sum(amount) FROM deals").fetchone()[0]
    finally:
        con.close()
    assert total == big + Decimal("1.234")


async def test_float_and_unstorable_amounts_are_refused_at_commit(tmp_path: Path) -> None:
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        with pytest.raises(DealError, match="field amount: .*never float"):
            await ledger.commit(deal(1, amount=120.5))
        with pytest.raises(DealError, match="more than 4 decimal places"):
            await ledger.commit(deal(2, amount=Decimal("1.23456")))
        with pytest.raises(DealError, match="digits before the decimal point"):
            await ledger.commit(deal(3, amount=Decimal("1E+20")))
        with pytest.raises(DealError, match="field received_at: expected a timezone-aware"):
            await ledger.commit(deal(4, received_at=datetime(2026, 3, 1)))
        with pytest.raises(DealError, match="field status"):
            await ledger.commit(deal(5, status="ok"))
        with pytest.raises(DealError, match="field reference: expected text, got float"):
            await ledger.commit(deal(7, reference=1.5))
        await ledger.commit(deal(6, amount=Decimal("7.500000"), reference=42))   # trailing zeros are fine
    [row] = query_deals(tmp_path / "l.duckdb")
    assert str(row["amount"]) == "7.50" and row["reference"] == "42"


async def test_failed_row_reaches_its_waiter_and_spares_the_batch(tmp_path: Path) -> None:
    # Records from the runtime are checked in prepare(); what DuckDB itself refuses (here a NULL in a
    # NOT NULL column, written past prepare) must fail only its own waiter, not its batch.
    from engine.ledger import _Waiter

    path = tmp_path / "l.duckdb"
    async with open_ledger(path, max_wait=0.01) as ledger:
        waiters = []
        for i in range(20):
            rows = ledger.prepare(deal(i))
            if i == 7:
                rows.row["deal_type"] = None
            waiters.append(_Waiter(rows.row, rows))
        await ledger.submit_rows(waiters)
        assert ledger.stats.failed_rows == 1
    err = waiters[7].error
    assert isinstance(err, LedgerError)
    assert "REF000007" in str(err) and "deal_type" in str(err) and "NOT NULL" in str(err)
    assert [w.error for i, w in enumerate(waiters) if i != 7] == [None] * 19
    assert count(path) == 19


async def test_clean_close_flushes_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    done: list[int] = []

    async def one(i: int) -> None:
        await ledger.commit(deal(i))
        done.append(i)

    async with trio.open_nursery() as outer:
        async with open_ledger(path, max_batch=8, max_wait=0) as ledger:
            for i in range(50):
                outer.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
            assert ledger.pending > 0                # still queued when the ledger closes
    assert sorted(done) == list(range(50))
    assert count(path) == 50


async def test_backpressure_bounds_pending_records(tmp_path: Path) -> None:
    async with open_ledger(tmp_path / "l.duckdb", max_batch=4, max_pending=4, max_wait=0) as ledger:
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, ledger.pending)
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            async with trio.open_nursery() as committers:
                for i in range(100):
                    committers.start_soon(ledger.commit, deal(i))
            nursery.cancel_scope.cancel()
        assert 0 < peak <= 4
        assert ledger.stats.rows == 100


async def test_commit_after_close_is_an_error(tmp_path: Path) -> None:
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        pass
    with pytest.raises(LedgerError, match="closed"):
        await ledger.commit(deal(1))


async def test_body_exception_is_not_wrapped(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        async with open_ledger(tmp_path / "l.duckdb"):
            raise KeyError("boom")


async def test_record_config_keeps_first_load(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path) as ledger:
        assert await ledger.record_config("v1", {"/r/a.route": "route a {}"}) is True
        assert await ledger.record_config("v1", {"/r/a.route": "changed"}) is False
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = all_sources(con)
        schema = con.execute("SELECT version FROM schema_version").fetchall()
    finally:
        con.close()
    assert rows == {"v1": {"/r/a.route": "route a {}"}}
    assert schema == [(SCHEMA_VERSION,)]


async def test_reopen_keeps_rows_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    for i in range(2):
        async with open_ledger(path) as ledger:
            await ledger.commit(deal(i))
    assert count(path) == 2


async def test_query_filters(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path) as ledger:
        for i in range(10):
            await ledger.commit(deal(
                i, deal_type="BILL_PAYMENT" if i % 2 else "BILL_ENQUIRY",
                status="rejected" if i == 3 else "committed", response_code="13" if i == 3 else "00"))
    assert len(query_deals(path, limit=None)) == 10
    assert len(query_deals(path, limit=3)) == 3
    newest = query_deals(path, limit=1)[0]
    assert newest["reference"] == "REF000009"                       # newest first
    assert {r["deal_type"] for r in query_deals(path, deal_type="BILL_ENQUIRY")} == {"BILL_ENQUIRY"}
    assert len(query_deals(path, deal_type="BILL_ENQUIRY")) == 5
    assert [r["reference"] for r in query_deals(path, status="rejected")] == ["REF000003"]
    assert [r["reference"] for r in query_deals(path, reference="REF000004")] == ["REF000004"]
    window = query_deals(path, since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=5))
    assert [r["reference"] for r in window] == ["REF000004", "REF000003", "REF000002"]
    naive = query_deals(path, since=datetime(2026, 3, 1, 9, 0, 8))   # naive = UTC
    assert len(naive) == 2
    assert newest["duration_ms"] == pytest.approx(12.0)
    assert newest["received_at"] == T0 + timedelta(seconds=9)


def test_query_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no ledger file"):
        query_deals(tmp_path / "nope.duckdb")


async def test_query_while_this_process_writes_says_why(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path) as ledger:
        await ledger.commit(deal(1))
        with pytest.raises(LedgerError, match="already has the ledger open for writing"):
            query_deals(path)


async def test_open_locked_by_another_process_names_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(LedgerError, match="locked by another process"):
            query_deals(path)
        with pytest.raises(LedgerError, match="locked by another process"):
            async with open_ledger(path):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
        holder.stdout.close()


def test_display_amount_uses_currency_minor_units() -> None:
    assert str(display_amount(Decimal("120.5000"), "CNY")) == "120.50"
    assert str(display_amount(Decimal("1500.0000"), "JPY")) == "1500"
    assert str(display_amount(Decimal("1.2340"), "KWD")) == "1.234"
    assert str(display_amount(Decimal("1.2345"), "USD")) == "1.2345"   # never hides digits


def test_deal_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_deal_id(now_ms=1_700_000_000_000 + i) for i in range(100)]
    assert ids == sorted(ids) and len(set(ids)) == 100 and all(len(i) == 32 for i in ids)


async def test_store_failure_reaches_every_waiter(tmp_path: Path) -> None:
    """When the database refuses the batch (here: its table is gone), every waiter gets LedgerError."""
    errors: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            await ledger.commit(deal(i))
        except LedgerError as exc:
            errors.append(exc)

    async with open_ledger(tmp_path / "l.duckdb", max_wait=0.01) as ledger:
        await ledger.commit(deal(0))
        # a real failure, on the writer's own connection and thread
        await ledger._run(lambda: ledger._store.connection.execute("DROP TABLE deals").fetchall())
        async with trio.open_nursery() as nursery:
            for i in range(1, 11):
                nursery.start_soon(one, i)
        assert ledger.stats.failed_rows == 10
    assert len(errors) == 10
    assert all("deals" in str(e) and "was not stored" in str(e) for e in errors)


async def test_steps_and_events_are_stored_with_their_deal(tmp_path: Path) -> None:
    from engine.deal import DealEvent, DealStep
    path = tmp_path / "l.duckdb"
    rec = deal(1, steps=[DealStep("decode", "decode", "ok", T0, 0.5), DealStep("biller", "call", "ok", T0, 3)],
               events=[DealEvent(T0, None, "received"), DealEvent(T0, "received", "committed", {"n": 1})])
    async with open_ledger(path, audit_key=None) as ledger:
        with pytest.raises(DealError, match=r"field steps\[0\].started_at: expected a timezone-aware"):
            await ledger.commit(deal(2, steps=[DealStep("x", "decode", "ok", datetime(2026, 3, 1))]))
        await ledger.commit(rec)
    con = duckdb.connect(str(path), read_only=True)
    try:
        steps = con.execute("SELECT seq, step, kind, duration_ms FROM deal_steps ORDER BY seq").fetchall()
        events = con.execute("SELECT seq, from_state, to_state, detail FROM deal_events ORDER BY seq").fetchall()
        seqs = con.execute("SELECT chain_seq FROM deals UNION ALL SELECT chain_seq FROM deal_steps "
                           "UNION ALL SELECT chain_seq FROM deal_events ORDER BY 1").fetchall()
    finally:
        con.close()
    assert steps == [(1, "decode", "decode", 0.5), (2, "biller", "call", 3.0)]
    assert events == [(1, None, "received", None), (2, "received", "committed", '{"n":1}')]
    assert [s for (s,) in seqs] == [1, 2, 3, 4, 5]   # the failed deal took no chain position


async def test_a_v1_ledger_is_migrated(tmp_path: Path) -> None:
    from engine.ledger_store import DDL
    path = tmp_path / "old.duckdb"
    v1 = DDL.split("ALTER TABLE")[0]              # the version-1 tables
    con = duckdb.connect(str(path))
    for stmt in v1.split(";"):
        if stmt.strip():
            con.execute(stmt).fetchall()
    con.execute("INSERT INTO schema_version VALUES (1, now())").fetchall()
    con.execute("INSERT INTO deals (deal_id, deal_type, route, config_version, channel, status, received_at, "
                "finished_at, duration_ms) VALUES ('old1', 'T', 'r', 'v', 'c', 'committed', now(), now(), 1)").fetchall()
    con.close()
    async with open_ledger(path, audit_key=None) as ledger:
        await ledger.commit(deal(1))
    con = duckdb.connect(str(path), read_only=True)
    try:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        rows = con.execute("SELECT deal_id, chain_seq FROM deals ORDER BY chain_seq NULLS FIRST").fetchall()
    finally:
        con.close()
    assert versions == [(1,), (SCHEMA_VERSION,)]
    con = duckdb.connect(str(path), read_only=True)
    try:       # schema 5: journal_state with `done` (loads deal by deal), in every ledger
        cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'journal_state'").fetchall()]
    finally:
        con.close()
    assert "done" in cols
    assert rows[0] == ("old1", None) and rows[1][1] == 1


async def test_a_v2_ledger_loses_the_deals_key_and_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    from engine.ledger_store import DDL
    path = tmp_path / "v2.duckdb"
    v2 = DDL.replace("deal_id        VARCHAR NOT NULL,", "deal_id        VARCHAR PRIMARY KEY,").replace(
        "CREATE TABLE IF NOT EXISTS config_versions",
        "CREATE INDEX deals_reference ON deals (reference);\n"
        "CREATE INDEX deals_received_at ON deals (received_at);\nCREATE TABLE IF NOT EXISTS config_versions")
    con = duckdb.connect(str(path))
    for stmt in v2.split(";"):
        if stmt.strip():
            con.execute(stmt).fetchall()
    con.execute("INSERT INTO schema_version VALUES (2, now())").fetchall()
    con.execute("INSERT INTO deals (deal_id, deal_type, route, config_version, channel, reference, amount, status, "
                "received_at, finished_at, duration_ms, request, chain_seq) VALUES ('old2', 'T', 'r', 'v', 'c', "
                "'R-OLD', 12.5, 'committed', now(), now(), 1, '{\"a\":1}', 7)").fetchall()
    assert con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'deals'").fetchall() == [(2,)]
    con.close()
    async with open_ledger(path, audit_key=None) as ledger:
        await ledger.commit(deal(1))
    con = duckdb.connect(str(path), read_only=True)
    try:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        old = con.execute("SELECT reference, amount, request, chain_seq FROM deals WHERE deal_id = 'old2'").fetchall()
        indexes = con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'deals'").fetchall()
        keys = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'deals' "
                           "AND constraint_type = 'PRIMARY KEY'").fetchall()
        total = con.execute("SELECT count(*) FROM deals").fetchall()
    finally:
        con.close()
    assert versions == [(2,), (SCHEMA_VERSION,)]
    assert old == [("R-OLD", Decimal("12.5000"), '{"a":1}', 7)]
    assert indexes == [(0,)] and keys == [(0,)] and total == [(2,)]


@pytest.mark.parametrize("sync", ["duckdb", "journal"])
async def test_known_deal_ids_tells_which_rows_exist(tmp_path: Path, sync: str) -> None:
    from engine.journal import open_ledger_sync
    records = [deal(i) for i in range(3)]
    async with open_ledger_sync(tmp_path / "l.duckdb", sync) as ledger:
        await ledger.commit_many(records[:2])
        known = await ledger.known_deal_ids([r.deal_id for r in records] + ["nope"])
    assert known == {records[0].deal_id, records[1].deal_id}
