"""``bsp ledger merge OLD_COPY`` (engine/ledger_merge.py, docs/runbook.md "Restoring the ledger from a snapshot"):
on real DuckDB files, a snapshot taken while the ledger is written, more deals after it, the snapshot restored over
the ledger as the runbook says (the old folder copied aside, the head kept beside the ledger left in place), then
the merge through the CLI: every deal there exactly once, `bsp audit verify` clean, a second merge adds nothing;
an old copy whose own chain does not verify is refused unless --force."""
from __future__ import annotations

import base64
import hashlib
import shutil
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import trio
import pytest
import typer
from typer.testing import CliRunner

from engine.commands import audit as audit_cmd, ledger as ledger_cmd
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger
from engine.ledger_snapshot import take_snapshot
from engine.ledger_store import LedgerStore

KEY = bytes(range(32))
AT = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)


def deal(i: int, version: str = "v1") -> DealRecord:
    at = AT + timedelta(minutes=i)
    return DealRecord(
        deal_id=f"{i:032x}", deal_type="TRANSFER", route="transfer", config_version=version, channel="front",
        status="committed", received_at=at, finished_at=at + timedelta(milliseconds=7), reference=f"R{i}",
        amount=Decimal("120.50") + i, currency="EUR", request={"ref": f"R{i}"}, response={"code": "00"},
        response_code="00", steps=[DealStep("d", "call", "ok", at, 5.0)],
        events=[DealEvent(at, "received", "accepted", {"key": f"transfer|R{i}"}), DealEvent(at, "accepted", "committed")])


async def fill(led: Path, snap_to: Path) -> None:
    """Deals 1-4 (config v1), a snapshot taken by the writer's process as the admin API takes it, then a
    configuration v2, deals 5-7 under it and an unrouted dead letter: what only the old ledger will hold."""
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        for i in range(1, 5):
            await ledger.commit(deal(i))
        snap = await trio.to_thread.run_sync(take_snapshot, led)
        shutil.move(str(snap.path), snap_to)
        await ledger.record_config("v2", {"/r/a.route": "route a { v2 }"})
        for i in range(5, 8):
            await ledger.commit(deal(i, "v2"))
        await ledger.dead_letter(DeadLetter(route=None, channel="front", reason="no route took it",
                                            raw=b"LATE-LETTER", config_version="v2", error_kind="unrouted",
                                            at=AT + timedelta(hours=1)))


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

    def run(*args: str):
        return CliRunner().invoke(app(), list(args))
    return run


def restored(tmp_path: Path) -> tuple[Path, Path]:
    """The runbook's restore: the engine's folder copied aside, the snapshot copied over the ledger file only."""
    site = tmp_path / "bsp"
    site.mkdir()
    led = site / "bsp.duckdb"
    snap = tmp_path / "eod.duckdb"
    trio.run(fill, led, snap)
    shutil.copytree(site, tmp_path / "bsp.before-restore")
    shutil.copyfile(snap, led)
    return led, tmp_path / "bsp.before-restore" / "bsp.duckdb"


def rows(led: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(led), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_restore_then_merge_brings_every_deal_back_once_and_the_chain_verifies(bsp, tmp_path: Path) -> None:
    led, old = restored(tmp_path)
    assert rows(led, "SELECT count(*) FROM deals") == [(4,)]
    # before the merge: the head kept beside the ledger names the records the restore cut
    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 1 and "audit_head kept outside the ledger" in r.output, r.output

    r = bsp("ledger", "merge", str(old), "--ledger", str(led), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would copy from" in r.output and "3 deals" in r.output and "1 dead_letters" in r.output, r.output
    assert rows(led, "SELECT count(*) FROM deals") == [(4,)]

    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0, r.output
    assert "merged from" in r.output and "1 config_versions, 3 deals, 3 deal_steps, 6 deal_events, " \
        "1 dead_letters" in r.output, r.output
    assert "names the cut of the restore (not an audit break)" in r.output, r.output

    ids = [d for (d,) in rows(led, "SELECT deal_id FROM deals ORDER BY deal_id")]
    assert ids == [f"{i:032x}" for i in range(1, 8)]                       # each deal exactly once
    assert rows(led, "SELECT count(*) FROM deal_steps") == [(7,)]
    assert rows(led, "SELECT count(*) FROM dead_letters WHERE raw = 'LATE-LETTER'::BLOB") == [(1,)]
    assert rows(led, "SELECT version FROM config_versions ORDER BY 1") == [("v1",), ("v2",)]
    assert rows(led, "SELECT count(*) FROM deal_keys") == [(7,)]
    assert rows(led, "SELECT count(*) FROM deal_events WHERE to_state = 'audit break'") == [(0,)]
    # sealed anew at the end of the restored chain (its own seq, its mac computed here; verify checks each)
    end = rows(tmp_path / "eod.duckdb", "SELECT max(chain_seq) FROM audit_head")[0][0]
    assert rows(led, f"SELECT min(chain_seq) > {end} FROM deals WHERE deal_id >= '{5:032x}'") == [(True,)]

    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 0, r.output
    assert "audit chain intact" in r.output and "ledger merge at" in r.output and "verified" in r.output, r.output

    before = digest(led)
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0 and "nothing to merge" in r.output, r.output
    assert rows(led, "SELECT count(*) FROM deals") == [(7,)]
    assert rows(led, "SELECT count(*) FROM deal_events WHERE to_state = 'ledger merge'") == [(1,)]
    assert digest(led) == before or rows(led, "SELECT max(chain_seq) FROM audit_head") == \
        rows(led, "SELECT max(chain_seq) FROM deal_events")
    # the engine's next open finds the chain whole: no audit break
    store = LedgerStore.open(led, KEY)
    try:
        assert store.audit_break is None
    finally:
        store.close()
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0


def test_an_old_copy_whose_chain_does_not_verify_is_refused_unless_forced(bsp, tmp_path: Path) -> None:
    led, old = restored(tmp_path)
    con = duckdb.connect(str(old))
    con.execute("UPDATE deals SET amount = 99999 WHERE deal_id = ?", [f"{6:032x}"])
    con.close()
    before = digest(led)
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 1, r.output
    assert "the old copy's own audit chain does not verify" in r.output and "Nothing was merged" in r.output
    assert "content does not match its mac" in r.output, r.output
    assert digest(led) == before and rows(led, "SELECT count(*) FROM deals") == [(4,)]

    r = bsp("ledger", "merge", str(old), "--ledger", str(led), "--force")
    assert r.exit_code == 0, r.output
    assert "WARNING: --force: merging from" in r.output and "does NOT verify" in r.output, r.output
    assert rows(led, "SELECT count(*) FROM deals") == [(7,)]
    detail = rows(led, "SELECT detail->>'old_chain' FROM deal_events WHERE to_state = 'ledger merge'")
    assert detail[0][0].startswith("NOT verified, merged with --force"), detail
    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 0 and "NOT verified, merged with --force" in r.output, r.output


def test_later_history_of_what_both_hold_is_not_copied_but_named(bsp, tmp_path: Path) -> None:
    site = tmp_path / "bsp"
    site.mkdir()
    led, snap = site / "bsp.duckdb", tmp_path / "eod.duckdb"
    letter = DeadLetter(route=None, channel="front", reason="no route took it", raw=b"EARLY", config_version="v1",
                        error_kind="unrouted", at=AT)

    async def early() -> None:
        async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
            await ledger.record_config("v1", {"/r/a.route": "route a {}"})
            await ledger.commit(deal(1))
            await ledger.dead_letter(letter)
            s = await trio.to_thread.run_sync(take_snapshot, led)
            shutil.move(str(s.path), snap)
            await ledger.commit(deal(2))
    trio.run(early)
    store = LedgerStore.open(led, KEY)              # after the snapshot: the letter purged, deal 1 one more event
    store.update_dead_letters([letter.id], status="purged", drop_raw=True)
    store.append_stories([(f"{1:032x}", [], [{"at": AT, "to_state": "resolved", "detail": None}], None)])
    store.close()
    shutil.copytree(site, tmp_path / "aside")
    shutil.copyfile(snap, led)
    r = bsp("ledger", "merge", str(tmp_path / "aside" / "bsp.duckdb"), "--ledger", str(led))
    assert r.exit_code == 0 and "1 deals" in r.output, r.output
    assert f"warning: not merged: deal {1:032x}: the old copy has 1 event(s) after" in r.output, r.output
    assert f"warning: not merged: dead letter {letter.id}: status 'purged' in the old copy, 'new' here" in r.output
    assert rows(led, "SELECT status FROM dead_letters") == [("new",)]
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0
