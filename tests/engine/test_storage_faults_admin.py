"""A full or read-only ledger disk as the admin on call meets it: ``bsp status`` (the admin API's
``GET /status``) names the fault while it lasts and forgets it once writing works again; a start-up that
cannot load the journal says so (not only that DuckDB could not checkpoint on close); the advice fits
the errno (a read-only file system is not fixed by freeing space).  A real engine process whose files
cannot grow (``RLIMIT_FSIZE``: EFBIG, as ENOSPC on a full disk), real sockets, real DuckDB files."""
from __future__ import annotations

import errno
from pathlib import Path

import duckdb
import trio

from engine.faultlog import FREE_SPACE, storage_fix
from engine.journal import journal_dir, open_journaled_ledger, segments
from fsizekit import ROUTE, SMALL_SEGMENTS, ask, fsize_engine, fsize_start
from kit import Client, deals






async def test_status_names_a_journal_that_cannot_be_written_and_forgets_it_once_it_can(tmp_path: Path) -> None:
    async with fsize_engine(tmp_path, ROUTE, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            assert await ask(c, "A000", 5)
            st = await eng.status()
            assert st["reasons"] == [] and st["ledger"]["faults"] == [], st
            await eng.command("limit 3000")                  # the disk is full
            refused = 0
            for i in range(30):                              # fills the 4 KiB segment; the next cannot be made
                refused += not await ask(c, f"B{i:03d}", 0.3)
            assert refused
            st = await eng.status()
            kinds = {(f["what"], f["kind"]) for f in st["ledger"]["faults"]}
            assert ("journal", "write") in kinds, st
            (line,) = [r for r in st["reasons"] if r.startswith("journal write failing")]
            assert f"{journal_dir(eng.ledger)}/" in line and "deal(s) not journaled" in line, line
            assert "(EFBIG)" in line and "free space on that disk" in line, line
            await eng.command("unlimit")                     # space is back
            await c.aclose()
            for i in range(20):
                c = await Client.open(eng.port)
                ok = await ask(c, f"C{i:03d}", 2)
                await c.aclose()
                if ok:
                    break
            else:
                raise AssertionError("the engine did not write again once there was room")
            st = await eng.status()
            assert [f for f in st["ledger"]["faults"] if f["kind"] == "write"] == [], st
            assert not any(r.startswith("journal write") for r in st["reasons"]), st


async def test_status_names_duckdb_that_cannot_load_and_the_lag(tmp_path: Path) -> None:
    async with fsize_engine(tmp_path, ROUTE, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            await eng.command("limit wal")                   # DuckDB cannot write; the journal can
            for i in range(3):
                assert await ask(c, f"S{i:03d}", 5)          # acknowledged: durable in the journal
            while True:                                      # the loader tries within load_wait
                st = await eng.status()
                if st["ledger"]["faults"]:
                    break
                await trio.sleep(0.05)
            assert st["ledger"]["pending"] == 3, st
            (line,) = [r for r in st["reasons"] if r.startswith("journal load failing")]
            assert "3 acknowledged deal(s) not loaded into DuckDB" in line and "safe in" in line, line
            await eng.command("unlimit")
            while (await eng.status())["ledger"]["faults"]:  # the loader retries within LOAD_RETRY_MAX
                await trio.sleep(0.1)
            st = await eng.status()
            assert st["reasons"] == [] and st["ledger"]["pending"] == 0, st
            await c.aclose()


async def test_a_start_that_cannot_load_the_journal_says_so_before_the_checkpoint(tmp_path: Path) -> None:
    async with fsize_engine(tmp_path, ROUTE, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            await eng.command("limit wal")
            for i in range(3):
                assert await ask(c, f"S{i:03d}", 5)
            await c.aclose()
            assert await eng.stop() == 1                     # the deals stay in the journal
    ledger = eng.ledger
    # start again on a disk still full: DuckDB can neither load the journal nor checkpoint on close
    res = fsize_start(tmp_path, ROUTE, **SMALL_SEGMENTS, limit_at_start="wal")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert errors[0].startswith(f"error: {ledger}: start-up stopped, nothing served: the acknowledged deals "
                                f"waiting in {journal_dir(ledger)} are loaded into DuckDB before"), res.stderr
    assert "DuckDB cannot write" in errors[0] and "then start again" in errors[0], errors[0]
    assert all("not checkpointed on close" not in e for e in errors[:1]), errors
    assert segments(journal_dir(ledger))                                   # still kept
    async with open_journaled_ledger(ledger):                              # room again: they load
        pass
    assert sorted(d["reference"] for d in deals(ledger)) == ["S000", "S001", "S002"]


def test_the_advice_fits_the_errno() -> None:
    assert storage_fix(OSError(errno.ENOSPC, "No space left on device")) == FREE_SPACE
    assert storage_fix(OSError(errno.EFBIG, "File too large")) == FREE_SPACE
    ro = storage_fix(OSError(errno.EROFS, "Read-only file system"))
    assert "read-only" in ro and "free space" not in ro, ro
    assert "dmesg" in storage_fix(OSError(errno.EIO, "Input/output error"))
    assert "owner and mode" in storage_fix(OSError(errno.EACCES, "Permission denied"))
    # DuckDB says it in text, not errno
    err = duckdb.IOException('Could not write file "x.wal": Read-only file system')
    assert storage_fix(err) == ro
    chained = RuntimeError("x: 3 deal(s) not loaded")
    chained.__cause__ = OSError(errno.EROFS, "Read-only file system")
    assert storage_fix(chained) == ro


def test_bsp_top_says_the_ledger_is_why_it_is_degraded() -> None:
    from engine.commands.top import _state
    fault = {"what": "journal", "kind": "write", "failures": 3, "last": "x.wal: byte 9: ... (ENOSPC); ..."}
    now = {"state": "degraded", "channels": {"biller": {"up": True}}, "ledger": {"faults": [fault]}}
    assert _state(now) == [("  DEGRADED (ledger storage failing: 1 fault)", "bold yellow")]
