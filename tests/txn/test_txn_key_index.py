"""A repeat past the key store's retention is caught through the ledger's deal key index (deal_keys,
ledger schema 4), whichever way the original deal reached DuckDB: the strict ``duckdb`` sync mode, the
write-ahead journal's loader, a deal resolved on restart, a row written again from the transaction log,
and a ledger of schema 3 whose deal_keys is back-filled when it is opened.  Real TCP counterparts, real
DuckDB files, the real transaction log; time passes through the manager's clock (no sleep)."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import duckdb
import orjson
import pytest

from engine.audit import verify
from engine.journal import JournaledLedger, open_ledger_sync
from engine.ledger_store import KEYS_FROM_EVENTS, SCHEMA_VERSION
from engine.runtime.switchboard import Switchboard
from engine.txn import manager_for
from engine.txn.log import TxnLog, log_path
from test_txn_flow import _req, _setup
from test_txn_key_retention import DAY, T0, Clock, ask
from txnkit import AUDIT_KEY, Client, audit_clean, deals, rows, switchboard


@asynccontextmanager
async def serving(program: Any, ledger_path: Path, clock: Clock, sync: str) -> AsyncIterator[Switchboard]:
    """The engine as ``bsp run`` opens it (``open_ledger_sync``), with an audit key and a 35-day retention."""
    async with open_ledger_sync(ledger_path, sync, audit_key=AUDIT_KEY, keyring=None) as ledger:
        ledger.key_retention = 35 * DAY
        manager_for(ledger).clock = clock
        async with switchboard(program, ledger) as sb:
            yield sb


def deal_keys(ledger: Path) -> list[tuple[str, str]]:
    return [(r["key"], r["deal_id"]) for r in rows(ledger, "SELECT key, deal_id FROM deal_keys ORDER BY key")]


async def _repeat_past_retention(program: Any, ledger: Path, clock: Clock, sync: str, ref: str) -> bytes:
    """36 days on: the restart's compaction drops ``ref``'s key from the log; ask again."""
    clock.t = T0 + 36 * DAY
    async with serving(program, ledger, clock, sync) as sb:
        log = manager_for(sb.ledger).log
        assert f"transfer|{ref}/20240501" not in log.ends and log.horizon is not None
        (late,) = await ask(sb, _req(ref))
    return late


@pytest.mark.parametrize("sync", ["duckdb", "journal"])
async def test_a_repeat_past_retention_is_caught_whichever_sync_mode_wrote_the_original(
        nursery, tmp_path: Path, sync: str) -> None:
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock, sync) as sb:
        # K2's log write carries K1's lazy ``recorded`` mark: only a key whose row is known recorded is dropped
        k1, k1_again, _ = await ask(sb, _req("K1"), _req("K1"), _req("K2"))   # the repeat: from the key store
        assert isinstance(sb.ledger, JournaledLedger) == (sync == "journal")
    assert k1_again == k1 and orjson.loads(k1)["code"] == "00"
    by_ref = {d["reference"]: d["deal_id"] for d in deals(ledger) if d["status"] == "committed"}
    original = by_ref["K1"]
    indexed = [("transfer|K1/20240501", original), ("transfer|K2/20240501", by_ref["K2"])]
    assert deal_keys(ledger) == indexed                   # not the duplicate's
    late = await _repeat_past_retention(program, ledger, clock, sync, "K1")
    assert orjson.loads(late) == {"ref": "K1", "code": "94"}
    assert debit.counts[("post", "K1")] == 1 and credit.counts[("post", "K1")] == 1
    last = deals(ledger)[-1]
    assert last["status"] == "duplicate" and f"duplicate of deal {original}" in last["reason"]
    assert deal_keys(ledger) == indexed
    audit_clean(ledger)


async def test_a_deal_resolved_on_restart_is_found_past_retention(nursery, tmp_path: Path) -> None:
    """The original never finished: a crash left it in flight, the restart compensated it (its key is in
    the ``in flight at restart`` event, there is no ``accepted`` one in the deal's row)."""
    from test_txn_startup import _crash_mid_deal

    program, ledger, debit, credit = await _crash_mid_deal(tmp_path, nursery)     # key = msg.ref: "S1"
    clock = Clock()
    async with serving(program, ledger, clock, "journal") as sb:      # recovery resolves S1 before serving
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref":"S2","amount":5}')           # its log write carries S1's ``recorded`` mark
        assert (await c.recv_json()) == [{"ref": "S2", "code": "00"}]
        await c.aclose()
    d = next(d for d in deals(ledger) if d["reference"] == "S1")
    assert d["status"] == "failed"
    events = rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    assert events[0]["to_state"] == "in flight at restart" and "accepted" not in [e["to_state"] for e in events]
    assert deal_keys(ledger)[0] == ("transfer|S1", d["deal_id"])
    clock.t = T0 + 36 * DAY
    async with serving(program, ledger, clock, "journal") as sb:
        assert "transfer|S1" not in manager_for(sb.ledger).log.ends
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref":"S1","amount":5}')
        (late,) = await c.recv_json()
        await c.aclose()
    assert late == {"ref": "S1", "code": "94"}
    assert credit.counts[("post", "S1")] == 1 and debit.counts[("post", "S1")] == 1


async def test_a_row_written_again_from_the_log_is_found_past_retention(nursery, tmp_path: Path) -> None:
    """A crash between the log's ``end`` and the ledger commit: the restart writes the row from the log
    (its key in the event named after its status)."""
    program, debit, _ = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    log = TxnLog(log_path(ledger), clock=clock)
    log.append([{"t": "end", "id": "0" * 31 + "1", "key": "transfer|R1/20240501", "status": "committed",
                 "code": None, "reason": None, "reply": b'{"ref":"R1","code":"00"}'.hex(), "route": "transfer",
                 "channel": "front", "version": "v0", "at": "2027-01-15T08:00:00+00:00", "type": "TRANSFER",
                 "ref": "R1", "amount": "10.00", "currency": "EUR", "party": None, "fin": clock.t}])
    log.close()
    async with serving(program, ledger, clock, "duckdb"):
        pass
    (d,) = deals(ledger)
    assert (d["deal_id"], d["reference"], d["status"]) == ("0" * 31 + "1", "R1", "committed")
    assert deal_keys(ledger) == [("transfer|R1/20240501", d["deal_id"])]
    late = await _repeat_past_retention(program, ledger, clock, "duckdb", "R1")
    assert orjson.loads(late) == {"ref": "R1", "code": "94"}
    assert debit.counts[("post", "R1")] == 0                  # never run: neither then nor now
    audit_clean(ledger)


def _downgrade_to_schema_3(ledger: Path) -> None:
    """The file as bsp wrote it before deal_keys: no table, no index, schema versions up to 3."""
    con = duckdb.connect(str(ledger))
    try:
        con.execute("DROP INDEX deal_keys_key").fetchall()
        con.execute("DROP TABLE deal_keys").fetchall()
        con.execute("DELETE FROM schema_version WHERE version > 3").fetchall()
        if not con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0]:
            con.execute("INSERT INTO schema_version VALUES (3, now())").fetchall()
    finally:
        con.close()


async def test_a_schema_3_ledger_gets_its_keys_back_filled_and_a_repeat_is_caught(nursery, tmp_path: Path) -> None:
    program, debit, _ = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock, "journal") as sb:
        await ask(sb, _req("M1"), _req("M1"), _req("M2"))     # M1's repeat: a duplicate, not indexed
    _downgrade_to_schema_3(ledger)
    audit_clean(ledger)                  # a tool reading a schema-3 ledger: nothing to compare
    late = await _repeat_past_retention(program, ledger, clock, "journal", "M1")
    assert orjson.loads(late) == {"ref": "M1", "code": "94"}
    assert debit.counts[("post", "M1")] == 1
    versions = [r["version"] for r in rows(ledger, "SELECT version FROM schema_version ORDER BY version")]
    assert versions == [3, SCHEMA_VERSION]
    by_ref = {d["reference"]: d["deal_id"] for d in deals(ledger) if d["status"] == "committed"}
    assert deal_keys(ledger) == [("transfer|M1/20240501", by_ref["M1"]), ("transfer|M2/20240501", by_ref["M2"])]
    audit_clean(ledger)


async def test_audit_verify_reports_a_deal_key_deleted_or_added(nursery, tmp_path: Path) -> None:
    program, _, _ = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    async with serving(program, ledger, Clock(), "duckdb") as sb:
        await ask(sb, _req("A1"), _req("A2"))
    assert len(rows(ledger, f"SELECT * FROM ({KEYS_FROM_EVENTS})")) == 2
    audit_clean(ledger)
    con = duckdb.connect(str(ledger))
    con.execute("DELETE FROM deal_keys WHERE key = 'transfer|A1/20240501'").fetchall()
    con.execute("INSERT INTO deal_keys VALUES ('transfer|X9/20240501', 'ffffffffffffffffffffffffffffffff')").fetchall()
    con.close()
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        report = verify(con, ledger, AUDIT_KEY)
    finally:
        con.close()
    assert [(b.table, b.record) for b in report.breaks] == [
        ("deal_keys", f"{deals(ledger)[0]['deal_id']} key 'transfer|A1/20240501'"),
        ("deal_keys", "ffffffffffffffffffffffffffffffff key 'transfer|X9/20240501'")]
    assert "would run again" in report.breaks[0].what
