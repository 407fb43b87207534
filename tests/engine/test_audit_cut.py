"""Records cut from the chain's end while the engine was stopped (the DuckDB file edited directly) are named by
`bsp audit verify`, also after the next writer opened the ledger and wrote on: that open records a chained
`audit break` (engine/audit_cut.py) instead of continuing from the cut as if nothing happened."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import trio

from engine.audit_cut import head_path
from engine.ledger import open_ledger
from tests.engine.test_audit import KEY, check, cli, deal, fill, sql

TABLES = ("deals", "deal_steps", "deal_events", "dead_letters", "config_versions")


async def _two_more(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(10))
        await ledger.commit(deal(11))


def _cut_after(path: Path, seq: int) -> None:
    for t in TABLES:
        sql(path, f"DELETE FROM {t} WHERE chain_seq > {seq}")
    sql(path, "DELETE FROM deal_keys WHERE deal_id NOT IN (SELECT deal_id FROM deals)")


async def _restart_and_write(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit(deal(20))


def _texts(report) -> list[str]:
    return [str(b) for b in report.breaks]


async def test_a_cut_with_the_head_row_deleted_stays_named_after_the_next_writer(tmp_path: Path,
                                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    cut = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    await _two_more(path)
    last = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    assert check(path).ok
    _cut_after(path, cut)
    sql(path, "DELETE FROM audit_head")
    await _restart_and_write(path)             # before: took the chain for one without a key and sealed on
    assert "AUDIT BREAK" in caplog.text and "had no key" not in caplog.text
    report = check(path)
    assert not report.ok, "the cut was laundered by the writer open"
    texts = _texts(report)
    assert [b.table for b in report.breaks] == ["audit break"], texts
    assert f"records seq {cut + 1}..{last} were deleted" in texts[0], texts
    await _restart_and_write(path)            # and again: the break is chained, it stays
    assert [b.table for b in check(path).breaks] == ["audit break"]


async def test_a_cut_with_the_head_row_deleted_is_named_by_verify_before_any_writer(tmp_path: Path) -> None:
    """tour-admin.md: delete the newest records and the audit_head row while bsp is stopped, and `bsp audit verify`
    names the records missing. It said only that the head row was missing (the newest records cannot be checked)
    and left out the head kept outside the ledger, which names them."""
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    cut = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    await _two_more(path)
    last = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    _cut_after(path, cut)
    sql(path, "DELETE FROM audit_head")
    report = check(path)
    texts = _texts(report)
    assert not report.ok and "audit_head" in [b.table for b in report.breaks], texts
    assert any(f"records seq {cut + 1}..{last} were deleted" in t for t in texts), texts


async def test_a_cut_with_an_old_head_row_put_back_is_named_before_and_after_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    old_seq, old_mac = sql(path, "SELECT chain_seq, mac FROM audit_head")[0]     # a copy kept of the head
    await _two_more(path)
    _cut_after(path, old_seq)
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM audit_head")
    con.execute("INSERT INTO audit_head VALUES (?, ?)", [old_seq, old_mac])
    con.close()
    report = check(path)            # the head in the file verifies: only the one kept outside tells
    assert [b.table for b in report.breaks] == ["audit_head"], _texts(report)
    assert "kept outside the ledger" in _texts(report)[0] and "were deleted" in _texts(report)[0]
    await _restart_and_write(path)
    report = check(path)
    assert [b.table for b in report.breaks] == ["audit break"], _texts(report)
    assert f"ends at seq {old_seq}" in _texts(report)[0]


async def test_an_older_copy_put_in_place_of_the_ledger_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(path, backup)
    await _two_more(path)
    shutil.copyfile(backup, path)
    await _restart_and_write(path)
    report = check(path)
    assert [b.table for b in report.breaks] == ["audit break"], _texts(report)


async def test_the_tail_record_replaced_and_written_on_is_named(tmp_path: Path) -> None:
    """The record at the seq the kept head names is not the one it was: the chain was cut there and
    the writer of before continued (here: a head file of a later state put back after a cut and a write)."""
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    await _two_more(path)
    kept = head_path(path).read_bytes()
    seq = json.loads(kept)["seq"]
    _cut_after(path, seq - 3)
    sql(path, "DELETE FROM audit_head")
    head_path(path).unlink()       # deleted with the cut: the next open cannot compare (documented) ...
    await _restart_and_write(path)
    await _two_more(path)
    head_path(path).write_bytes(kept)     # ... but a copy kept off the host, put back, tells
    report = check(path)
    assert any("is not the one it was" in t for t in _texts(report)), _texts(report)


def _refused(path: Path, key: bytes | None = KEY) -> str:
    from engine.ledger_store import LedgerError, LedgerStore

    with pytest.raises(LedgerError) as err:
        LedgerStore.open(path, key).close()
    return str(err.value)


@pytest.mark.parametrize("key", [KEY, None, bytes(range(5, 37))], ids=["its key", "no key", "another key"])
async def test_a_new_ledger_where_a_deleted_ones_head_is_kept_is_refused(tmp_path: Path, key: bytes | None) -> None:
    """Before: a new ledger was made, its first record an `audit break` (with another key: "the head was changed";
    with no key: nothing at all, the old head left beside the new ledger).  Now no ledger is made until the head
    is dealt with; the message names both files and each way on."""
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    kept = head_path(path).read_bytes()
    path.unlink()
    text = _refused(path, key)
    assert text.startswith(f"{path}: no ledger here, but {head_path(path)} is: the audit chain head of a ledger "
                           f"that was here (its chain reached seq 12 at "), text
    head = head_path(path)
    assert f"`mv {head} NEWPATH.audit-head`" in text and f"`mv {head} {head}.retired-" in text, text
    assert "restore it from a backup together with its .audit-head file" in text and "Nothing was written" in text
    assert not path.exists() and head_path(path).read_bytes() == kept          # nothing made, nothing changed
    # a file with no ledger in it (DuckDB's alone): the same; the file is left as it was
    duckdb.connect(str(path)).close()
    size = path.stat().st_size
    again = _refused(path, key)
    assert again.split(". Moved")[0] == text.split(". Moved")[0], again
    assert path.stat().st_size == size and not sql(path, "SELECT table_name FROM information_schema.tables")
    path.unlink()
    # a new ledger there on purpose: the old head moved away as the message says; it starts clean
    head_path(path).rename(tmp_path / "l.duckdb.audit-head.retired")
    await _restart_and_write(path)
    assert check(path).ok and (tmp_path / "l.duckdb.audit-head.retired").read_bytes() == kept


async def test_a_moved_ledger_goes_on_where_it_is_once_its_head_follows(tmp_path: Path) -> None:
    old, new = tmp_path / "l.duckdb", tmp_path / "moved" / "l2.duckdb"
    await fill(old, 2)
    new.parent.mkdir()
    old.rename(new)
    assert "no ledger here" in _refused(old)                # the old path: refused, not a new chain
    head_path(old).rename(head_path(new))                    # as the message says
    await _restart_and_write(new)
    assert check(new).ok, _texts(check(new))
    assert not old.exists() and not head_path(old).exists()


def test_a_new_ledger_over_a_kept_head_is_refused_by_bsp_run_without_a_traceback(tmp_path: Path) -> None:
    import base64
    import subprocess
    import sys

    from tests.engine.kit import REPO

    path = tmp_path / "l.duckdb"
    trio.run(fill, path, 2)
    path.unlink()
    route = tmp_path / "pay.route"
    route.write_text('format Req = json\nchannel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }\n'
                     'route pay {\n    receive from front as Req\n    reply Req { code = "00" }\n}\n')
    res = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "BSP_AUDIT_KEY": base64.b64encode(KEY).decode()})
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith(f"error: {path}: no ledger here, but {head_path(path)} is"), res.stderr
    assert "Traceback" not in res.stderr and not path.exists()
    # the read-only tools name the head too
    ro = subprocess.run([sys.executable, "-m", "engine.cli", "deals", "--ledger", str(path)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
    assert ro.returncode == 2 and f"no ledger file here, but {head_path(path)} is" in ro.stderr, ro.stderr


async def test_a_changed_outside_head_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    doc = json.loads(head_path(path).read_bytes())
    doc["seq"] = 5
    head_path(path).write_text(json.dumps(doc))
    report = check(path)
    assert any("does not verify with the audit key" in t for t in _texts(report)), _texts(report)


async def test_untouched_ledgers_stay_clean_across_restarts_and_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 2)
    for _ in range(2):
        await _restart_and_write(path)
    assert check(path).ok
    # a writer killed after its open: the head kept outside is the open's, the ledger goes further
    kept = head_path(path).read_bytes()
    await _two_more(path)
    head_path(path).write_bytes(kept)
    assert check(path).ok
    await _restart_and_write(path)
    assert check(path).ok, _texts(check(path))


def test_verify_cli_exits_1_on_a_cut_after_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(fill, path, 3)
    cut = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    trio.run(_two_more, path)
    _cut_after(path, cut)
    sql(path, "DELETE FROM audit_head")
    trio.run(_restart_and_write, path)
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1, res.output
    assert "audit chain BROKEN" in res.output and "(audit break)" in res.output


async def test_the_tail_record_edited_with_the_head_row_deleted_stays_named(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, 3)
    last = sql(path, "SELECT chain_seq FROM audit_head")[0][0]
    sql(path, f"UPDATE dead_letters SET reason = 'nothing happened' WHERE chain_seq = {last}")
    sql(path, "DELETE FROM audit_head")
    head_path(path).unlink()          # the kept head too: the head row's absence alone tells
    await _restart_and_write(path)
    report = check(path)
    tables = [b.table for b in report.breaks]
    assert tables == ["dead_letters", "audit break"], _texts(report)
    assert "modified" in _texts(report)[0] and "head row is gone" in _texts(report)[1]


def test_the_runbooks_restore_of_the_folder_matches_and_a_ledger_restored_alone_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """docs/operations.md, "The runbook": step 2 copies the engine's folder (`cp -a`), the rollback puts it back
    whole: the head kept beside the ledger goes with it and matches.  The ledger file put back alone is named by
    verify, with both files and what to do, and recorded by the next start."""
    import subprocess

    site = tmp_path / "bsp"
    site.mkdir()
    path = site / "bsp.duckdb"
    trio.run(fill, path, 2)
    subprocess.run(["cp", "-a", str(site), str(tmp_path / "bsp.before-upgrade")], check=True)     # step 2
    trio.run(_two_more, path)                        # the new bsp ran
    subprocess.run(["rm", "-rf", str(site)], check=True)                                         # rollback
    subprocess.run(["cp", "-a", str(tmp_path / "bsp.before-upgrade"), str(site)], check=True)
    assert check(path).ok
    trio.run(_restart_and_write, path)
    assert check(path).ok and "AUDIT BREAK" not in caplog.text

    backup = tmp_path / "bsp.duckdb.bak"
    subprocess.run(["cp", "-a", str(path), str(backup)], check=True)
    trio.run(_two_more, path)
    subprocess.run(["cp", "-a", str(backup), str(path)], check=True)                 # the ledger alone
    res = cli(monkeypatch, path, KEY)
    assert res.exit_code == 1, res.output
    assert f"(audit_head kept outside the ledger): the chain head kept outside the ledger ({head_path(path)})" \
        in res.output, res.output
    assert f"what to do: {head_path(path)} and {path} disagree" in res.output, res.output
    assert "put the newest ledger back" in res.output and "the next start records the gap" in res.output
    trio.run(_restart_and_write, path)
    assert f"{path}: AUDIT BREAK: the chain head kept outside the ledger ({head_path(path)})" in caplog.text
    assert "a backup restored on purpose is recorded so too" in caplog.text
    assert [b.table for b in check(path).breaks] == ["audit break"]
