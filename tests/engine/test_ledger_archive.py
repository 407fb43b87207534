"""``bsp ledger archive`` (engine/ledger_archive.py, docs/ledger.md "Archiving"): the oldest prefix of the audit
chain moved to an archive file, on real DuckDB files, through the CLI; ``bsp audit verify`` on both files, with
tampering in either, the refusals, and a run cut short at each step finished by running it again."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from engine.commands import audit as audit_cmd, ledger as ledger_cmd
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger
from engine.ledger_store import LedgerError, LedgerStore

KEY = bytes(range(32))
JAN = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)
FEB = datetime(2026, 2, 1, tzinfo=timezone.utc)


def deal(i: int, at: datetime, *, events: list[DealEvent] | None = None, status: str = "committed") -> DealRecord:
    return DealRecord(
        deal_id=f"{i:032x}", deal_type="TRANSFER", route="transfer", config_version="v1", channel="front", status=status,
        received_at=at, finished_at=at + timedelta(milliseconds=7), reference=f"R{i}", amount=Decimal("120.50"),
        currency="EUR", request={"ref": f"R{i}"}, response={"code": "00"}, response_code="00",
        steps=[DealStep("d", "call", "ok", at, 5.0)],
        events=events if events is not None else [
            DealEvent(at, "received", "accepted", {"key": f"transfer|R{i}"}),
            DealEvent(at, "accepted", status)])


async def fill(path: Path, jan: int = 6, feb: int = 3, extra: list[DealRecord] = ()) -> list[DealRecord]:
    """``jan`` deals from 10 January (one a day), a dead letter, ``extra``, then ``feb`` deals from 1 February."""
    recs = [deal(i, JAN + timedelta(days=i)) for i in range(jan)]
    late = [deal(100 + i, FEB + timedelta(days=i)) for i in range(feb)]
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        for r in recs:
            await ledger.commit(r)
        await ledger.dead_letter(DeadLetter(route=None, channel="front", reason="no route took it",
                                            raw=b"MARKER-JANUARY-LETTER", config_version="v1", error_kind="unrouted",
                                            at=JAN + timedelta(days=jan))) if jan else None
        for r in [*extra, *late]:
            await ledger.commit(r)
    return recs + list(extra) + late


def app() -> typer.Typer:
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

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(app(), list(args), input=input)
    return run


def archive(bsp, led: Path, out: Path, before: str = "2026-02-01", *extra: str):
    return bsp("ledger", "archive", "--before", before, "--out", str(out), "--ledger", str(led), "--yes", *extra)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


async def test_the_oldest_deals_move_and_both_files_verify(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    await fill(led)
    assert b"MARKER-JANUARY-LETTER" in led.read_bytes()
    last = q(led, "SELECT max(chain_seq) FROM deal_events")[0][0]
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    # 1 config + 6 x (deal, step, 2 events) + the dead letter = seq 1..26
    assert "archive records 1..26" in res.output and "6 deals" in res.output, res.output
    assert "1 still named by the deals that stay" in res.output          # v1: copied, not moved
    assert q(arc, "SELECT count(*) FROM deals")[0][0] == 6
    assert q(arc, "SELECT count(*) FROM dead_letters")[0][0] == 1
    assert q(led, "SELECT count(*), min(received_at) >= ? FROM deals", [FEB])[0] == (3, True)
    assert q(led, "SELECT count(*) FROM deal_keys")[0][0] == 3
    assert q(led, "SELECT count(*) FROM archived_deals")[0][0] == 6
    assert q(led, "SELECT version, chain_seq > ? FROM config_versions", [last])[0] == ("v1", True)   # re-sealed
    assert b"MARKER-JANUARY-LETTER" not in led.read_bytes()            # compacted: the bytes left the file
    for f in (led, arc):
        assert not f.with_name(f.name + ".wal").exists()
    assert not arc.with_name(arc.name + ".partial").exists()

    res = bsp("audit", "verify", "--ledger", str(arc))
    assert res.exit_code == 0 and "audit chain intact" in res.output and "last seq 26" in res.output, res.output
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 0, res.output
    assert f"records 1..26 archived to {arc.name} (sha256 {sha(arc)[:16]}" in res.output, res.output
    assert f"bsp audit verify --ledger {arc.name}" in res.output
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 0 and "continues into" in res.output, res.output

    # the archive is a ledger: the reads work on it; it is never written to
    from engine.ledger_query import query_deals
    assert len(query_deals(arc, limit=None)) == 6
    with pytest.raises(LedgerError, match="an archive of the ledger .*read-only"):
        LedgerStore.open(arc, KEY)
    # the keys of the archived deals are still found (the idempotency look-up past the key store's retention)
    head = q(led, "SELECT max(chain_seq) FROM config_versions")[0][0]
    store = LedgerStore.open(led, KEY)
    try:
        found = store.deals_by_key(["transfer|R2", "transfer|R101", "transfer|nope"])
        assert store.last_seq == head
    finally:
        store.close()
    assert (found["transfer|R2"]["deal_id"], found["transfer|R2"]["status"]) == (f"{2:032x}", "committed")
    assert set(found) == {"transfer|R2", "transfer|R101"}

    # the engine goes on writing to the live ledger: the chain continues, verify still passes
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(200, FEB + timedelta(days=5)))
    assert bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc)).exit_code == 0


async def test_a_second_archive_continues_from_the_first(tmp_path: Path, bsp) -> None:
    led, a1, a2 = tmp_path / "bsp.duckdb", tmp_path / "a1.duckdb", tmp_path / "a2.duckdb"
    await fill(led, feb=4)
    assert archive(bsp, led, a1).exit_code == 0
    res = archive(bsp, led, a2, "2026-02-03")
    assert res.exit_code == 0 and "archive records 27..", res.output
    for f in (a1, a2):
        res = bsp("audit", "verify", "--ledger", str(f))
        assert res.exit_code == 0, res.output
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(a1), "--archive", str(a2))
    assert res.exit_code == 0, res.output
    assert "records 1..26 archived to a1.duckdb" in res.output and "archived to a2.duckdb" in res.output


async def test_tampering_with_the_archive_is_found(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    assert archive(bsp, led, arc).exit_code == 0
    seq = q(arc, "SELECT chain_seq FROM deals WHERE reference = 'R3'")[0][0]
    tamper(arc, "UPDATE deals SET amount = 1200.50 WHERE reference = 'R3'")
    res = bsp("audit", "verify", "--ledger", str(arc))
    assert res.exit_code == 1, res.output
    assert f"BROKEN at seq {seq} (deals {3:032x}): content does not match its mac" in res.output, res.output
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 1 and "archive NOT CONTINUOUS" in res.output and "file was changed" in res.output


async def test_tampering_with_the_anchor_or_the_kept_keys_is_found(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    assert archive(bsp, led, arc).exit_code == 0
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(led.read_bytes())
    tamper(led, "DELETE FROM audit_anchor")
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 1 and "BROKEN at seq 1 (chain): seq 1..26 missing at the start" in res.output, res.output
    # a kept key deleted: a repeat of that archived deal would run again
    tamper(copy, "DELETE FROM archived_deals WHERE key = 'transfer|R2'")
    res = bsp("audit", "verify", "--ledger", str(copy))
    assert res.exit_code == 1 and "archived_deals" in res.output and "5 rows" in res.output, res.output


async def test_refused_while_a_deal_to_move_is_flagged(tmp_path: Path, bsp) -> None:
    from engine.deal_resolve import resolve_in_file

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    at = JAN + timedelta(hours=1)
    flagged = deal(50, at, status="failed", events=[
        DealEvent(at, "received", "accepted", {"key": "transfer|R50"}), DealEvent(at, "accepted", "failed"),
        DealEvent(at, "failed", "flagged", {"why": "debit may stand at the counterpart"})])
    # as the engine stores a failed deal: with its dead letter, which stays with it (bsp audit verify checks it)
    flagged.dead_letter = DeadLetter(route="transfer", channel="front", reason="timeout", raw=b'{"ref":"R50"}',
                                     config_version="v1", error_kind="timeout", at=at, id=flagged.deal_id)
    await fill(led, extra=[flagged])
    before = sha(led)
    res = archive(bsp, led, arc)
    assert res.exit_code == 1, res.output
    assert f"1 deal(s) flagged for an operator and not resolved: {50:032x}" in res.output
    assert "bsp deals resolve" in res.output and "nothing was changed" in res.output
    assert sha(led) == before and not arc.exists()
    # resolved (after the February deals were written): it moves back the cut, and stays with them
    resolve_in_file(led, f"{50:032x}", "undone", "reversed by hand, OPS-1", "alice", KEY)
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    assert "1 deal(s) received before 2026-02-01T00:00:00Z stay in the live ledger" in res.output, res.output
    assert q(arc, "SELECT count(*) FROM deals")[0][0] == 6
    assert q(led, "SELECT count(*) FROM deals WHERE deal_id = ?", [f"{50:032x}"])[0][0] == 1
    assert bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc)).exit_code == 0


async def test_refused_while_the_transaction_log_holds_a_deal_of_the_period(tmp_path: Path, bsp) -> None:
    from engine.txn.log import TxnLog, log_path

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    log = TxnLog(log_path(led))
    log.append([{"t": "begin", "id": "0" * 31 + "f", "route": "transfer", "channel": "front", "key": "transfer|X",
                 "at": (JAN + timedelta(days=3)).isoformat(), "raw": None}])
    log.close()
    before = sha(led)
    res = archive(bsp, led, arc)
    assert res.exit_code == 1, res.output
    assert "left in flight in the transaction log" in res.output and "0" * 31 + "f" in res.output
    assert "Start the engine once" in res.output
    assert sha(led) == before and not arc.exists()


async def test_no_confirmation_without_a_terminal(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    before = sha(led)
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led))
    assert res.exit_code == 2 and "add --yes" in res.output and sha(led) == before and not arc.exists()
    res = archive(bsp, led, led)
    assert res.exit_code == 2 and "the ledger itself" in res.output


async def test_refused_while_an_engine_holds_the_ledger(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(led)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        res = archive(bsp, led, arc)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert res.exit_code == 2, res.output
    assert "locked by another process" in res.output and "Archiving is offline only: stop the engine" in res.output
    assert not arc.exists()


async def test_a_run_cut_short_is_finished_by_running_it_again(tmp_path: Path, bsp) -> None:
    import os

    from engine.ledger_archive import prepare

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    # 1. stopped after the archive was written and renamed, before the live ledger changed
    job = prepare(led, arc, FEB, KEY)
    partial = arc.with_name(arc.name + ".partial")
    job._write(partial, None)
    job._verify(partial, None)
    os.replace(partial, arc)
    job.close()
    assert q(led, "SELECT count(*) FROM deals")[0][0] == 9
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0        # nothing changed there
    res = archive(bsp, led, arc, "2026-03-01")                                # even with another --before
    assert res.exit_code == 0 and "finish archiving records 1..26" in res.output, res.output
    assert bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc)).exit_code == 0

    # 2. stopped after the records left the live ledger, before it was compacted
    led2, arc2 = tmp_path / "b2.duckdb", tmp_path / "arc2.duckdb"
    await fill(led2)
    job = prepare(led2, arc2, FEB, KEY)
    job._write(partial := arc2.with_name(arc2.name + ".partial"), None)
    job._verify(partial, None)
    os.replace(partial, arc2)
    job._move(hashlib.sha256(arc2.read_bytes()).hexdigest())
    job.close()
    assert b"MARKER-JANUARY-LETTER" in led2.read_bytes()
    assert bsp("audit", "verify", "--ledger", str(led2), "--archive", str(arc2)).exit_code == 0
    res = archive(bsp, led2, arc2)
    assert res.exit_code == 0 and "were archived to" in res.output and "finishing" in res.output, res.output
    assert b"MARKER-JANUARY-LETTER" not in led2.read_bytes()
    # another file under an anchored name is refused
    arc2.write_bytes(b"not it")
    res = archive(bsp, led2, arc2)
    assert res.exit_code == 2 and "already has an archive named arc2.duckdb" in res.output, res.output


async def test_nothing_to_archive_and_an_existing_out(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)
    res = archive(bsp, led, arc, "2026-01-01")
    assert res.exit_code == 0 and "nothing to archive" in res.output and not arc.exists(), res.output
    arc.write_bytes(b"someone's file")
    res = archive(bsp, led, arc)
    assert res.exit_code == 2 and "is never overwritten" in res.output and arc.read_bytes() == b"someone's file"


