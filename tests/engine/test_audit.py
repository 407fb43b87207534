"""The audit chain against real DuckDB files: clean ledgers verify, tampering is named."""
from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.audit import AuditError, load_audit_key, verify
from engine.commands.audit import register
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger

KEY = bytes(range(32))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def deal(i: int) -> DealRecord:
    t = T0 + timedelta(seconds=i)
    return DealRecord(
        deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
        status="committed", received_at=t, finished_at=t + timedelta(milliseconds=7), reference=f"R{i}",
        amount=Decimal("120.50"), currency="CNY", request={"amount": Decimal("120.50")}, response={"code": "00"},
        steps=[DealStep("decode", "decode", "ok", t, 0.2, vote="prepared"),
               DealStep("biller", "call", "ok", t, 5.0, detail={"to": "biller"})],
        events=[DealEvent(t, None, "received"), DealEvent(t, "received", "committed")])


async def fill(path: Path, n: int = 6, key: bytes | None = KEY) -> list[DealRecord]:
    recs = [deal(i) for i in range(n)]
    async with open_ledger(path, audit_key=key, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        for r in recs:
            await ledger.commit(r)
        await ledger.dead_letter(DeadLetter(route=None, channel="mainframe", reason="no route took it",
                                            raw=b"\x00\x10hello", config_version="v1", error_kind="unrouted"))
    return recs


def check(path: Path, key: bytes | None = KEY):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, key)
    finally:
        con.close()


def sql(path: Path, *stmts: str) -> list:
    con = duckdb.connect(str(path))
    try:
        out = []
        for s in stmts:
            out = con.execute(s).fetchall()
        return out
    finally:
        con.close()


async def test_untouched_ledger_verifies_clean(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path)
    report = check(path)
    assert report.ok, [str(b) for b in report.breaks]
    # 1 config + 6 deals + 12 steps + 12 events + 1 dead letter
    assert report.records == 32 and report.last_seq == 32
    assert report.by_table == {"deals": 6, "deal_steps": 12, "deal_events": 12, "dead_letters": 1,
                               "config_versions": 1}


async def test_chain_continues_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(50))
    assert check(path).ok


async def test_wrong_key_fails_at_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 1)
    report = check(path, key=bytes(32))
    assert not report.ok and report.wrong_key and report.breaks[0].table == "audit key"


async def test_modified_amount_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    recs = await fill(path)
    victim = recs[3].deal_id
    seq = sql(path, f"UPDATE deals SET amount = 1200.50 WHERE deal_id = '{victim}'",
              f"SELECT chain_seq FROM deals WHERE deal_id = '{victim}'")[0][0]
    report = check(path)
    assert not report.ok
    first = report.breaks[0]
    assert (first.seq, first.table, first.record) == (seq, "deals", victim)
    assert "modified" in first.what
    assert len(report.breaks) == 1            # the records after it still chain to its stored mac


async def test_deleted_deal_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    recs = await fill(path)
    victim = recs[2].deal_id
    seq = sql(path, f"SELECT chain_seq FROM deals WHERE deal_id = '{victim}'")[0][0]
    sql(path, f"DELETE FROM deals WHERE deal_id = '{victim}'")
    report = check(path)
    text = [str(b) for b in report.breaks]
    assert report.breaks[0].seq == seq and "missing" in report.breaks[0].what and "deleted" in text[0]
    assert any(b.record == victim and "deal row is gone" in b.what for b in report.breaks), text


async def test_deleting_the_newest_record_is_caught_by_the_head(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path)
    sql(path, "DELETE FROM dead_letters")        # the dead letter was the last record written
    report = check(path)
    assert not report.ok
    assert report.breaks[0].table == "audit_head" and "were deleted" in report.breaks[0].what


async def test_a_wiped_ledger_does_not_pass_for_a_new_one(tmp_path: Path) -> None:
    new = tmp_path / "new.duckdb"
    async with open_ledger(new, audit_key=KEY, keyring=None):
        pass                                      # created, nothing written: its head exists (seq 0)
    assert check(new).ok and check(new).records == 0
    path = tmp_path / "l.duckdb"
    await fill(path)
    sql(path, *(f"DELETE FROM {t}" for t in ("deals", "deal_steps", "deal_events", "dead_letters",
                                             "config_versions", "audit_head")))
    report = check(path)
    assert not report.ok and report.records == 0
    assert report.breaks[0].table == "audit_head" and "the chain is empty" in report.breaks[0].what
    sql(new, "DELETE FROM audit_head")             # the same for a ledger that never held a record
    assert not check(new).ok


async def test_swapped_seqs_are_named_as_reordered(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    recs = await fill(path)
    a, b = recs[1].deal_id, recs[4].deal_id
    sa, sb = (sql(path, f"SELECT chain_seq FROM deals WHERE deal_id = '{d}'")[0][0] for d in (a, b))
    sql(path, f"UPDATE deals SET chain_seq = -1 WHERE deal_id = '{a}'",
        f"UPDATE deals SET chain_seq = {sa} WHERE deal_id = '{b}'",
        f"UPDATE deals SET chain_seq = {sb} WHERE deal_id = '{a}'")
    report = check(path)
    first = report.breaks[0]
    assert (first.seq, first.record) == (sa, b)
    assert f"written at seq {sb}" in first.what and "reordered" in first.what
    assert [x.record for x in report.breaks] == [b, a]


async def test_replaced_dead_letter_message_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 1)
    sql(path, "UPDATE dead_letters SET raw = 'other'::BLOB")
    report = check(path)
    assert [b.table for b in report.breaks] == ["dead_letters"]
    assert "does not match its sha256" in report.breaks[0].what


async def test_without_a_key_chaining_is_off_and_verify_says_so(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2, key=None)
    assert sql(path, "SELECT count(*) FROM deals WHERE mac IS NULL AND chain_seq IS NOT NULL")[0][0] == 2
    assert not check(path, key=None).keyed
    report = check(path, key=KEY)                # a key now: those records are not protected, not tampered
    assert not report.ok and report.breaks == [], [str(b) for b in report.breaks]
    assert [(u.first_seq, u.last_seq, u.count) for u in report.unprotected] == [(1, 12, 12)]
    assert report.unprotected[0].first_at is not None and report.protected_records == 0


async def test_a_key_configured_later_leaves_one_unprotected_span_and_a_verified_rest(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2, key=None)                # seq 1..12 without a key (1 config, 2 deals, 4+4, 1 dead)
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        for i in range(10, 12):
            await ledger.commit(deal(i))         # seq 13..22 with the key
    report = check(path)
    assert report.breaks == [], [str(b) for b in report.breaks]
    assert [(u.first_seq, u.last_seq, u.count) for u in report.unprotected] == [(1, 12, 12)]
    assert (report.protected_records, report.last_seq) == (10, 22)
    # a keyed record modified after the unprotected span is still a break
    victim = sql(path, "SELECT deal_id FROM deals WHERE mac IS NOT NULL ORDER BY chain_seq DESC LIMIT 1")[0][0]
    sql(path, f"UPDATE deals SET reference = 'X' WHERE deal_id = '{victim}'")
    report = check(path)
    assert [b.record for b in report.breaks] == [victim] and "content does not match" in report.breaks[0].what


async def test_a_mac_removed_from_a_keyed_chain_is_a_break(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    seq = sql(path, "SELECT chain_seq FROM deals ORDER BY chain_seq LIMIT 1")[0][0]
    sql(path, f"UPDATE deals SET mac = NULL WHERE chain_seq = {seq}")
    report = check(path)
    assert report.breaks and report.breaks[0].seq == seq + 1
    assert "follows records without a mac" in report.breaks[0].what and "mac was removed" in report.breaks[0].what
    other = tmp_path / "m.duckdb"
    await fill(other, 2)
    sql(other, "UPDATE dead_letters SET mac = NULL")          # the newest record: only the head can tell
    report = check(other)
    assert [b.table for b in report.breaks] == ["audit_head"], [str(b) for b in report.breaks]
    assert "does not match the last record" in report.breaks[0].what


async def test_row_inserted_outside_the_writer_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    sql(path, "INSERT INTO deals (deal_id, deal_type, route, config_version, channel, status, received_at, "
              "finished_at, duration_ms) SELECT 'forged', deal_type, route, config_version, channel, status, "
              "received_at, finished_at, duration_ms FROM deals LIMIT 1")
    report = check(path)
    assert report.breaks[0].record == "forged" and "no chain position" in report.breaks[0].what


def test_audit_key_loading(tmp_path: Path) -> None:
    b64 = base64.b64encode(KEY).decode()
    assert load_audit_key({"BSP_AUDIT_KEY": b64}) == KEY
    f = tmp_path / "audit.key"
    f.write_text(b64 + "\n")
    assert load_audit_key({"BSP_AUDIT_KEY_FILE": str(f), "BSP_AUDIT_KEY": "ignored"}) == KEY
    assert load_audit_key({}) is None
    with pytest.raises(AuditError, match="BSP_AUDIT_KEY: the audit key is 16 bytes"):
        load_audit_key({"BSP_AUDIT_KEY": base64.b64encode(os.urandom(16)).decode()})
    with pytest.raises(AuditError, match="cannot read the audit key file"):
        load_audit_key({"BSP_AUDIT_KEY_FILE": str(tmp_path / "nope")})


def cli(monkeypatch: pytest.MonkeyPatch, path: Path, key: bytes | None, *extra: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    if key is None:
        monkeypatch.delenv("BSP_AUDIT_KEY", raising=False)
    else:
        monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(key).decode())
    return CliRunner().invoke(app, ["audit", "verify", "--ledger", str(path), *extra])


def test_verify_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 0 and "audit chain intact: 32 records" in res.output
    res = cli(monkeypatch, path, None)
    assert res.exit_code == 2 and "no audit key" in res.output and "BSP_AUDIT_KEY" in res.output
    victim = sql(path, "SELECT deal_id FROM deals ORDER BY chain_seq LIMIT 1")[0][0]
    sql(path, f"UPDATE deals SET reference = 'X' WHERE deal_id = '{victim}'")
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1 and f"BROKEN at seq 2 (deals {victim}): content does not match" in res.output
    res = cli(monkeypatch, tmp_path / "none.duckdb", KEY)
    assert res.exit_code == 2 and "no ledger file here" in res.output
    sql(tmp_path / "plain.duckdb", "CREATE TABLE deals (x INTEGER)")      # DuckDB, but not a bsp ledger
    res = cli(monkeypatch, tmp_path / "plain.duckdb", KEY)
    assert res.exit_code == 2 and "without bsp's tables (schema_version): is it a bsp ledger?" in res.output


def test_verify_cli_says_what_to_do_after_a_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A break names the first bad record, then says what an auditor does: keep the evidence, write nothing, see
    what the record held in a backup (the deal to show named), restore; and how far the chain verified."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    victim, seq = sql(path, "SELECT deal_id, chain_seq FROM deals ORDER BY chain_seq LIMIT 1 OFFSET 1")[0]
    sql(path, f"UPDATE deals SET amount = amount + 1 WHERE deal_id = '{victim}'")
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert lines[0] == f"{path}: audit chain BROKEN at seq {seq} (deals {victim}): content does not match its mac: " \
                       f"the record was modified after it was written"
    fix = lines[-1]
    assert fix.startswith(f"what to do: {path} was changed outside bsp"), lines
    assert f"no break before seq {seq}: the records before it verify" in fix
    assert "keep the evidence first" in fix and "write nothing to it" in fix
    assert f"bsp deals show {victim} --ledger BACKUP against --ledger {path}" in fix
    assert "docs/runbook.md#restoring-the-ledger-from-a-snapshot" in fix and "docs/tour-auditor.md#after-a-break" in fix


def test_verify_cli_names_the_records_on_both_sides_of_a_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deleted record is gone, so the break names where it was: the record before the gap and the one after
    (until 2026-11-28 only the one before, which read as if it were the one deleted)."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    rows = sql(path, "SELECT chain_seq, deal_id FROM deals ORDER BY chain_seq")
    s1 = rows[1][0]
    before = sql(path, f"SELECT max(chain_seq) FROM (SELECT chain_seq FROM deals UNION ALL SELECT chain_seq FROM "
                       f"deal_steps UNION ALL SELECT chain_seq FROM deal_events) WHERE chain_seq < {s1}")[0][0]
    sql(path, f"DELETE FROM deals WHERE chain_seq = {s1}")
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1
    first = res.output.splitlines()[0]
    assert f"BROKEN at seq {s1} (chain): seq {s1} missing after seq {before} (" in first, first
    assert f") and before seq {s1 + 1} (" in first and first.endswith("record(s) deleted, or a seq changed"), first


def test_verify_cli_says_plainly_when_records_were_written_without_a_key(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(lambda: fill(path, 2, key=None))
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 3, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{path}: audit chain NOT PROTECTED: none of its 12 records has a mac, they were "
                               f"written without an audit key (seq 1..12 (12 records, written 2026-")
    assert "BSP_AUDIT_KEY_FILE" in lines[0] and "docs/security.md" in lines[0]
    assert lines[1].startswith("checked 12 records") and len(lines) == 2
    assert "BROKEN" not in res.output and "also:" not in res.output

    async def later() -> None:
        async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
            await ledger.commit(deal(10))
    trio.run(later)
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 3, res.output
    assert ("audit chain intact for the 5 records written with the audit key; 12 records are NOT PROTECTED "
            "(written without an audit key): seq 1..12 (12 records") in res.stdout
    assert "the audit key was configured after they were written (the chain is keyed from seq 13 on)" in res.stdout


def test_verify_streams_the_chain_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The records are read and canonicalised a batch at a time (never a whole table), and a moved
    record is still found with the chain streamed."""
    import engine.audit as audit

    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    sizes: list[int] = []
    real = audit.canonical

    def spy(table, columns):
        sizes.append(table.num_rows)
        return real(table, columns)
    monkeypatch.setattr(audit, "canonical", spy)
    con = duckdb.connect(str(path), read_only=True)
    try:
        report = verify(con, path, KEY, batch=2)
    finally:
        con.close()
    assert report.ok and report.records == 32
    assert sizes and max(sizes) <= 2
    a, b = sql(path, "SELECT chain_seq FROM deal_steps ORDER BY chain_seq LIMIT 2")
    sql(path, f"UPDATE deal_steps SET chain_seq = -1 WHERE chain_seq = {a[0]}",
        f"UPDATE deal_steps SET chain_seq = {a[0]} WHERE chain_seq = {b[0]}",
        f"UPDATE deal_steps SET chain_seq = {b[0]} WHERE chain_seq = -1")
    con = duckdb.connect(str(path), read_only=True)
    try:
        report = verify(con, path, KEY, batch=2)
    finally:
        con.close()
    assert not report.ok and any("records reordered" in b.what for b in report.breaks), \
        [str(b) for b in report.breaks]


def test_verify_cli_shows_progress_on_long_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.audit as audit

    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    monkeypatch.setattr(audit, "VERIFY_BATCH", 4)
    res = cli(monkeypatch, path, KEY, "--progress-every", "0.000001")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("audit verify: ")]
    assert lines and "/32 records (" in lines[0]
    res = cli(monkeypatch, path, KEY)            # the default: nothing on a check of a few seconds or less
    assert res.exit_code == 0 and "audit verify: " not in res.output


def test_verify_cli_ctrl_c_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.commands.audit as cmd

    path = tmp_path / "l.duckdb"
    trio.run(fill, path)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cmd, "verify_chain", interrupted)
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 130 and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.exit_code == 130 and "interrupted (Ctrl-C)" in res.output and "Traceback" not in res.output
