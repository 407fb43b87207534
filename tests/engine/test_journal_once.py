"""Exactly once through the journal's deal-by-deal pass (engine/journal.py ``_load``): a load DuckDB refuses
for a bad deal is loaded one deal at a time; a process stopped or killed while that pass is stalled (a
deal that cannot be set aside, a disk that fills) must not load a deal twice at the next start, nor set a
deal aside twice, nor set aside one it loads.  Real processes, real files, SIGKILL."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import orjson
import pytest

from engine.journal import journal_dir, open_journaled_ledger
from kit import REPO

KEY = base64.b64encode(bytes(range(32))).decode()

STALL = textwrap.dedent("""
    import os, resource, signal, sys, trio
    sys.path.insert(0, sys.argv[2]); sys.path.insert(0, sys.argv[3])
    from engine.deal import DealEvent, DealStep
    from engine.deal_line import deal_line
    from engine.journal import JOURNAL_NAME, MAGIC, journal_dir, open_journaled_ledger
    from engine.ledger_store import DealRows, line_to_row
    from test_journal import T0, record, _refused_line

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    HARD = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    path, how = sys.argv[1], sys.argv[4]
    wal = path + ".wal"

    def stepped(i):
        return record(i, steps=[DealStep("post", "call", "ok", T0, 1.0)],
                      events=[DealEvent(T0, None, "accepted", {"key": f"pay|R{i:05d}"})])

    async def main():
        async with open_journaled_ledger(path, load_wait=3600, load_rows=10**9) as led:
            await led._append([deal_line(record(1))], [])      # journal_state has its row
            await led.wait_loaded()
            if how == "aside":                                # unloaded.jsonl cannot be written (EISDIR)
                (journal_dir(path) / "unloaded.jsonl").mkdir()
            else:            # DuckDB can write one deal's transaction, no more: how many bytes is that?
                # R00001 is the first write of its segment: past it is also 1 deal past the segment's start
                seg, end, *_ = await led.ledger.journal_position(JOURNAL_NAME)
                M = len(MAGIC)
                one = 0
                for i, mark in ((90, (seg, M, 1)), (91, (seg, end, 0)), (92, (seg, M, 1)), (93, (seg, end, 0))):
                    before = os.path.getsize(wal)
                    await led.ledger.load([DealRows(line_to_row(deal_line(record(i))))], (JOURNAL_NAME, *mark))
                    one = max(one, os.path.getsize(wal) - before)
            await led._append([deal_line(record(2)), _refused_line(3), deal_line(record(4))],
                              [led.ledger.prepare(stepped(5)), led.ledger.prepare(stepped(6))])
            if how == "fsize":
                resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(wal) + one + 100, HARD))
            with trio.move_on_after(2):
                await led.wait_loaded()
                raise AssertionError("loaded while the deal-by-deal pass should stall")
            print("stalled", led.pending, led.stats.failed_rows, flush=True)
            await trio.to_thread.run_sync(sys.stdin.readline)      # "stop": leave, as bsp run on SIGTERM
            print("stopping", flush=True)
        print("stopped", flush=True)
    trio.run(main)
""")


def _ledger_rows(path: Path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        q = lambda sql: [tuple(r) for r in con.execute(sql).fetchall()]  # noqa: E731
        return {
            "deals": q("SELECT reference, count(*), count(DISTINCT deal_id) FROM deals GROUP BY 1 ORDER BY 1"),
            "ids": q("SELECT deal_id FROM deals GROUP BY 1 HAVING count(*) > 1"),
            "steps": q("SELECT d.reference, count(*) FROM deal_steps s JOIN (SELECT DISTINCT deal_id, reference "
                       "FROM deals) d USING (deal_id) GROUP BY 1 ORDER BY 1"),
            "events": q("SELECT d.reference, count(*) FROM deal_events e JOIN (SELECT DISTINCT deal_id, reference "
                        "FROM deals) d USING (deal_id) GROUP BY 1 ORDER BY 1"),
            "keys": q("SELECT key, count(*) FROM deal_keys GROUP BY 1 ORDER BY 1"),
        }
    finally:
        con.close()


@pytest.mark.parametrize("how,end", [("aside", "kill"), ("aside", "stop"), ("fsize", "kill")])
async def test_a_stop_during_a_stalled_deal_by_deal_pass_loads_each_deal_once(
        tmp_path: Path, monkeypatch, caplog, how: str, end: str) -> None:
    """aside: the refused deal cannot be set aside (unloaded.jsonl is a directory), the deal before it is
    loaded.  fsize: DuckDB's files cannot grow past one more deal's transaction (RLIMIT_FSIZE): the deal
    before the refused one is loaded, the refused one set aside, the position past it not recorded."""
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    script = tmp_path / "stall.py"
    script.write_text(STALL)
    path = tmp_path / "l.duckdb"
    aside = journal_dir(path) / "unloaded.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(REPO), str(Path(__file__).parent), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline()
        assert first.startswith("stalled 5 "), (first, proc.stderr.read() if proc.poll() is not None else "")
        if end == "kill":
            os.kill(proc.pid, signal.SIGKILL)           # no drain, no checkpoint
            proc.communicate(timeout=30)
        else:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=60)
            assert out.split() == ["stopping", "stopped"], (out, err)
            assert "acknowledged deal(s) not in DuckDB" in err and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    if how == "aside":
        aside.rmdir()                                   # it can be written again
    con = duckdb.connect(str(path), read_only=True)
    try:      # the position past R00002, loaded on its own: the journal write's first byte and 1 deal past it
        (done,) = con.execute("SELECT done FROM journal_state WHERE journal = 'main'").fetchall()[0]
    finally:
        con.close()
    assert done == 1
    async with open_journaled_ledger(path) as led:      # the next start loads the journal
        assert led.pending == 0
    again = [r.getMessage() for r in caplog.records if "is set aside in" in r.getMessage()]
    if how == "fsize":     # set aside before the kill, the position past it not recorded: not set aside again
        assert len(again) == 1 and f"{aside}" in again[0] and "not loaded, not set aside again" in again[0], again
    else:
        assert again == []
    rows = _ledger_rows(path)
    refs = ["R00001", "R00002", "R00004", "R00005", "R00006"] + (["R00090", "R00091", "R00092", "R00093"] if how == "fsize" else [])
    assert rows["deals"] == [(r, 1, 1) for r in refs], rows["deals"]     # each acknowledged deal once
    assert rows["ids"] == []
    assert rows["steps"] == [("R00005", 1), ("R00006", 1)]
    assert rows["events"] == [("R00005", 1), ("R00006", 1)]
    assert rows["keys"] == [("pay|R00005", 1), ("pay|R00006", 1)]
    kept = [orjson.loads(ln) for ln in aside.read_bytes().splitlines()]
    assert [k["row"]["reference"] for k in kept] == ["R00003"]          # set aside once, and not loaded
    assert not [s for s in journal_dir(path).glob("*.wal") if s.stat().st_size and _has_records(s)]
    verify = subprocess.run([sys.executable, "-m", "engine.cli", "audit", "verify", "--ledger", str(path)],
                            cwd=str(REPO), capture_output=True, text=True, timeout=60,
                            env={**os.environ, "BSP_AUDIT_KEY": KEY})
    assert verify.returncode == 0, (verify.stdout, verify.stderr)


def _has_records(seg: Path) -> bool:
    from engine.journal import read_segment
    return bool(read_segment(seg)[0])
