"""``bsp ledger merge OLD_COPY`` into a restored ledger an engine has already started on (engine/ledger_merge.py,
docs/ledger.md "Merging an old copy after a restore"): the engine's first open recorded the restore's cut as an
`audit break` and wrote on; the merge brings each deal back once and names that break in its record as resolved
(`resolves`), so `bsp audit verify` passes, listing the break with the merge.  A break the old copy does not
explain (its chain end is not the cut's, or its chain does not verify: --force) stays reported.  And the field
keys' check values (`field_key_checks`) only the old copy holds are copied, once.

Real DuckDB files (a snapshot taken by the writer's process, restored as the runbook says), the real writer
(``open_ledger``), the real `bsp ledger merge` and `bsp audit verify` commands."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import duckdb
import pytest
import trio
from typer.testing import CliRunner

from engine.fieldcrypt import Keyring, keyring_from_list
from engine.ledger import open_ledger
from engine.ledger_snapshot import take_snapshot
from engine.ledger_store import KeyMismatch, LedgerStore
from tests.engine.test_fieldcrypt import card_deal
from tests.engine.test_ledger_merge import KEY, app, deal, restored, rows

A, B = bytes([1]) * 32, bytes([2]) * 32


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch):
    """The `bsp` commands (ledger, audit) with the audit key in BSP_AUDIT_KEY."""
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())

    def run(*args: str):
        return CliRunner().invoke(app(), list(args))
    return run


def engine_ran(led: Path, *deals: int) -> None:
    """The engine started on the restored file (its open records the cut as an `audit break`) and took deals."""
    async def body() -> None:
        async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
            for i in deals:
                await ledger.commit(deal(i, "v1"))
    trio.run(body)


def breaks(led: Path) -> list[int]:
    return [s for (s,) in rows(led, "SELECT chain_seq FROM deal_events WHERE to_state = 'audit break' ORDER BY 1")]


def test_a_merge_after_the_engine_ran_on_the_restored_file_resolves_its_audit_break(bsp, tmp_path: Path) -> None:
    led, old = restored(tmp_path)
    engine_ran(led, 20, 21)
    (brk,) = breaks(led)
    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 1 and f"BROKEN at seq {brk} (audit break)" in r.output, r.output

    r = bsp("ledger", "merge", str(old), "--ledger", str(led), "--dry-run")
    assert r.exit_code == 0 and f"would resolve the audit break at seq {brk}" in r.output, r.output
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0, r.output
    assert "3 deals" in r.output and f"resolves the audit break at seq {brk}" in r.output, r.output
    ids = [d for (d,) in rows(led, "SELECT deal_id FROM deals ORDER BY deal_id")]
    assert ids == [f"{i:032x}" for i in (*range(1, 8), 20, 21)]              # each deal exactly once
    assert rows(led, "SELECT detail->'resolves' FROM deal_events WHERE to_state = 'ledger merge'") == [(f"[{brk}]",)]

    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 0, r.output
    assert "audit chain intact" in r.output and f"it resolves the audit break at seq {brk}" in r.output, r.output

    # again: nothing to copy, the break resolved already: nothing written
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0 and "nothing to merge" in r.output, r.output
    assert rows(led, "SELECT count(*) FROM deal_events WHERE to_state = 'ledger merge'") == [(1,)]
    engine_ran(led, 22)                                  # the engine goes on: no new break, verify clean
    assert breaks(led) == [brk]
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0


def test_a_break_recorded_before_breaks_named_the_head_is_resolved_by_its_seq(
        bsp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An `audit break` as bsp recorded it before 2026-11-28 (no head_seq / head_mac: the head's seq only in its
    text), then a merge by this bsp: resolved all the same (the seq in its text is the old copy's chain end,
    the chain it found a prefix of the old copy's)."""
    from engine import audit_cut

    led, old = restored(tmp_path)
    real = audit_cut.record_break
    monkeypatch.setattr(audit_cut, "record_break", lambda *a, head=None: real(*a))
    engine_ran(led, 20)
    monkeypatch.setattr(audit_cut, "record_break", real)
    (brk,) = breaks(led)
    assert rows(led, f"SELECT detail->>'head_seq' FROM deal_events WHERE chain_seq = {brk}") == [(None,)]
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0 and f"resolves the audit break at seq {brk}" in r.output, r.output
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0


def test_a_break_the_old_copy_does_not_explain_stays_reported(bsp, tmp_path: Path) -> None:
    """The old copy given is the snapshot itself (its chain ends before the cut), then a copy whose own chain does
    not verify merged with --force: neither resolves the break; verify still reports it."""
    led, old = restored(tmp_path)
    engine_ran(led, 20)
    (brk,) = breaks(led)
    r = bsp("ledger", "merge", str(tmp_path / "eod.duckdb"), "--ledger", str(led))
    assert r.exit_code == 0 and "resolves" not in r.output, r.output
    con = duckdb.connect(str(old))
    con.execute("UPDATE deals SET amount = 99999 WHERE deal_id = ?", [f"{6:032x}"])
    con.close()
    r = bsp("ledger", "merge", str(old), "--ledger", str(led), "--force")
    assert r.exit_code == 0 and "3 deals" in r.output and "resolves" not in r.output, r.output
    r = bsp("audit", "verify", "--ledger", str(led))
    assert r.exit_code == 1 and f"BROKEN at seq {brk} (audit break)" in r.output, r.output


def ring(text: str) -> Keyring:
    keys = {"A": A, "B": B}
    return keyring_from_list(",".join(f"{e.split('=')[0]}:{base64.b64encode(keys[e.split('=')[1]]).decode()}"
                                      for e in text.split(",")), "BSP_FIELD_KEYS")


def checks(path: Path) -> list[str]:
    return [k for (k,) in rows(path, "SELECT key_id FROM field_key_checks ORDER BY key_id, created_at")]


def test_field_key_checks_only_the_old_copy_holds_are_merged_once(bsp, tmp_path: Path) -> None:
    """Before the snapshot the engine sealed with field key k1; after it, with a new key k2 (k1 kept in the
    ring).  The restored ledger knows k1 only; the merge copies the deals sealed under k2 and k2's check value,
    k1's not twice.  So a keyring with another key under k2 is refused at the next writer open, as it would have
    been on the old ledger (without the copy it was taken, and its check value recorded as the ledger's)."""
    site = tmp_path / "bsp"
    site.mkdir()
    led, snap = site / "bsp.duckdb", tmp_path / "eod.duckdb"

    async def fill() -> None:
        async with open_ledger(led, audit_key=KEY, keyring=ring("k1=A")) as ledger:
            await ledger.commit(card_deal(1))
            s = await trio.to_thread.run_sync(take_snapshot, led)
            shutil.move(str(s.path), snap)
        async with open_ledger(led, audit_key=KEY, keyring=ring("k2=B,k1=A")) as ledger:
            await ledger.commit(card_deal(2))
    trio.run(fill)
    assert checks(led) == ["k1", "k2"]
    shutil.copytree(site, tmp_path / "aside")
    shutil.copyfile(snap, led)
    assert checks(led) == ["k1"]

    r = bsp("ledger", "merge", str(tmp_path / "aside" / "bsp.duckdb"), "--ledger", str(led), "--dry-run")
    assert r.exit_code == 0 and "would copy the field key check value of key id k2" in r.output, r.output
    assert checks(led) == ["k1"]
    r = bsp("ledger", "merge", str(tmp_path / "aside" / "bsp.duckdb"), "--ledger", str(led))
    assert r.exit_code == 0 and "1 deals" in r.output and "key id(s) k2" in r.output, r.output
    assert checks(led) == ["k1", "k2"]
    assert rows(led, "SELECT detail->'field_key_checks' FROM deal_events WHERE to_state = 'ledger merge'") == \
        [('["k2"]',)]
    r = bsp("ledger", "merge", str(tmp_path / "aside" / "bsp.duckdb"), "--ledger", str(led))
    assert r.exit_code == 0 and "nothing to merge" in r.output, r.output
    assert checks(led) == ["k1", "k2"]                    # no duplicate
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0

    with pytest.raises(KeyMismatch, match="field key 'k2' of the keyring"):
        LedgerStore.open(led, KEY, keyring=ring("k2=A,k1=A"))
    LedgerStore.open(led, KEY, keyring=ring("k2=B,k1=A")).close()


def test_a_merge_run_again_resolves_a_break_an_earlier_merge_left(bsp, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The records were merged back by a bsp that did not resolve breaks (emulated: its ``resolves`` finds none);
    the merge run again by this one copies nothing and writes one `ledger merge` record resolving the break."""
    from engine.ledger_merge import MergeJob

    led, old = restored(tmp_path)
    engine_ran(led, 20)
    (brk,) = breaks(led)
    with monkeypatch.context() as m:
        m.setattr(MergeJob, "resolves", lambda self, con: [])
        assert bsp("ledger", "merge", str(old), "--ledger", str(led)).exit_code == 0
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 1
    r = bsp("ledger", "merge", str(old), "--ledger", str(led))
    assert r.exit_code == 0 and "merged from" in r.output and f"resolves the audit break at seq {brk}" in r.output, \
        r.output
    assert rows(led, "SELECT count(*) FROM deals") == [(8,)]
    assert rows(led, "SELECT detail->'resolves', detail->>'first_seq' IS NOT NULL FROM deal_events WHERE "
                     "to_state = 'ledger merge' ORDER BY chain_seq") == [(None, True), (f"[{brk}]", False)]
    assert bsp("audit", "verify", "--ledger", str(led)).exit_code == 0
