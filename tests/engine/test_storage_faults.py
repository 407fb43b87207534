"""When the ledger's storage fails, seen from the admin on call: a real engine process whose files cannot
grow (``RLIMIT_FSIZE``, SIGXFSZ ignored: writes fail with EFBIG as on a full disk with ENOSPC), real
sockets on 127.0.0.1 port 0, real DuckDB files.  Nothing is acknowledged that is not durable, the fault is
logged once (file, byte offset, errno, what to do), not per deal nor as a traceback, the engine keeps
serving, and after a restart every acknowledged deal is in the ledger.  Start-up with a file that cannot
be made, and a journal or transaction log damaged in the middle, are refused in one line."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import trio

from engine.journal import HEADER, encode_lines, journal_dir, open_journaled_ledger, read_segment, segments
from fsizekit import ROUTE, SMALL_SEGMENTS, ask, fsize_engine
from kit import REPO, Client, deals, free_port

BSP = str(Path(sys.executable).with_name("bsp"))






async def test_a_disk_that_fills_up_acknowledges_nothing_it_did_not_store_and_says_so_once(tmp_path: Path) -> None:
    acked: list[str] = []
    refused: list[str] = []
    async with fsize_engine(tmp_path, ROUTE, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            for i in range(3):
                assert await ask(c, f"A{i:03d}", 5)
                acked.append(f"A{i:03d}")
            await eng.command("limit 3000")                  # the disk is full: no file grows past 3000 bytes
            for i in range(30):                              # fills the 4 KiB segment; the next cannot be made
                ref = f"B{i:03d}"
                (acked if await ask(c, ref, 0.3) else refused).append(ref)
            assert len(refused) >= 15, (acked, refused)
            await eng.command("unlimit")                     # space is back
            await c.aclose()
            for i in range(20):                              # a new segment is made within ROTATE_RETRY
                c = await Client.open(eng.port)
                ok = await ask(c, f"C{i:03d}", 2)
                await c.aclose()
                if ok:
                    acked.append(f"C{i:03d}")
                    break
            else:
                raise AssertionError("the engine did not write again once there was room")
        await eng.kill()                                     # no drain: the restart must find everything
    ledger, text = eng.ledger, eng.err.decode()
    assert "Traceback" not in text, text
    assert "deal not recorded" not in text, text                   # not a line per deal
    journal_lines = [ln for ln in text.splitlines() if "deal(s) not journaled" in ln]
    assert len(journal_lines) == 1, text                            # the fault, once
    (line,) = journal_lines
    assert f"{journal_dir(ledger)}/000000000001.wal: byte " in line, line
    assert "[Errno 27] File too large (EFBIG)" in line and "free space on that disk" in line, line
    assert "journal: write works again after" in text, text
    async with open_journaled_ledger(ledger):                     # restart: recovery loads the journal
        pass
    stored = {d["reference"] for d in deals(ledger)}
    assert [r for r in acked if r not in stored] == []             # nothing acknowledged is missing
    assert [r for r in refused if r in stored] == []               # and nothing refused was kept


async def test_a_journal_segment_that_cannot_be_made_refuses_deals_until_it_can(tmp_path: Path, caplog) -> None:
    from test_journal import record
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, segment_bytes=4096, load_wait=0.01) as led:
        blocked = journal_dir(path) / "000000000002.tmp"
        blocked.mkdir()                               # the next segment cannot be made (EISDIR)
        results = []
        for i in range(30):
            results.append(await led.commit_many([record(i)]))
        done = [i for i, r in enumerate(results) if r == [None]]
        failed = [i for i, r in enumerate(results) if r != [None]]
        assert done == list(range(len(done))) and failed, results      # the segment filled, then refusals
        text = str(results[failed[0]][0])
        assert text.startswith(f"{journal_dir(path)}/000000000001.wal: byte "), text
        assert f"{blocked}: byte 0: cannot make the next journal segment" in text and "(EISDIR)" in text, text
        blocked.rmdir()                               # space is back
        await trio.sleep(1.1)                         # engine.journal.ROTATE_RETRY
        assert await led.commit_many([record(99)]) == [None]
    refs = {d["reference"] for d in deals(path)}
    assert refs == {f"R{i:05d}" for i in done} | {"R00099"}
    said = [r.getMessage() for r in caplog.records if "not journaled" in r.getMessage()]
    assert len(said) == 1, said                        # once, not per failed write
    assert any("journal: write works again after" in r.getMessage() for r in caplog.records)


def _limited(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return pre


def _bsp_run(tmp_path: Path, route_text: str, *extra: str, limit: int) -> subprocess.CompletedProcess:
    route = tmp_path / "pay.route"
    route.write_text(route_text)
    return subprocess.run([BSP, "run", str(route), "--ledger", str(tmp_path / "l.duckdb"), *extra],
                          preexec_fn=_limited(limit), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BSP_AUDIT_KEY": "", "BSP_FIELD_KEYS": ""})


def _one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_bsp_run_refuses_to_start_when_the_journal_cannot_be_made(tmp_path: Path) -> None:
    line = _one_error(_bsp_run(tmp_path, ROUTE, limit=2_000_000))
    seg = tmp_path / "l.duckdb.journal" / "000000000001.tmp"
    assert line.startswith(f"error: {seg}: byte 2000000: cannot make the next journal segment"), line
    assert "[Errno 27] File too large (EFBIG); free space on that disk" in line, line
    assert not seg.exists()                                          # the half-made file is gone


def test_bsp_run_refuses_to_start_when_the_transaction_log_cannot_be_made(tmp_path: Path) -> None:
    call_route = ROUTE.replace("route pay {", 'channel back = tcp connect {\n    address = "127.0.0.1:%d"\n'
                               '    framing = length4\n}\nroute pay {' % free_port()).replace(
        "    reply Req", "    call post = back as Req reply Req { ref = msg.ref }\n    reply Req")
    line = _one_error(_bsp_run(tmp_path, call_route, "--ledger-sync", "duckdb", limit=4_000_000))
    assert line.startswith(f"error: {tmp_path / 'l.duckdb.txn.tmp'}: byte 4000000: cannot make the "
                           f"transaction log's next file"), line
    assert "(EFBIG); free space on that disk" in line, line


# ------------------------------------------------------------------ damage in the middle, not a torn tail

async def _journal_with_three_records(tmp_path: Path) -> tuple[Path, Path, list[tuple[bytes, int]]]:
    """A ledger whose journal holds three records no load has taken (a crash), and its segment."""
    from test_journal import record
    path = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with open_journaled_ledger(path, load_wait=3600, load_rows=10**6) as led:
            for k in range(3):
                assert await led.commit_many([record(10 * k + i) for i in range(2)]) == [None, None]
            crash.cancel()
            await trio.sleep_forever()
    (seg,) = [s for s in segments(journal_dir(path)) if read_segment(s.path)[0]]
    recs, _, _ = read_segment(seg.path)
    assert len(recs) == 3
    return path, seg.path, recs


async def test_a_journal_damaged_in_the_middle_refuses_start_up_and_loses_nothing(tmp_path: Path) -> None:
    path, seg, recs = await _journal_with_three_records(tmp_path)
    bad = recs[0][1]                               # the second record starts here
    data = bytearray(seg.read_bytes())
    data[bad + HEADER.size + 5] ^= 0xFF            # one flipped byte in its payload: CRC mismatch
    seg.write_bytes(bytes(data))
    try:
        async with open_journaled_ledger(path):
            raise AssertionError("started on a damaged journal")
    except Exception as exc:                       # JournalError, a LedgerError: bsp run prints it, exit 1
        text = str(exc)
    assert text.startswith(f"{seg}: byte {bad}: record CRC mismatch"), text
    assert f"a readable record follows at byte {recs[1][1]}" in text, text
    assert f"mv {seg} {seg}.damaged" in text and "Restore" in text, text
    assert seg.exists()                            # kept as it is
    assert sorted(d["reference"] for d in deals(path)) == ["R00000", "R00001"]    # the deals before it
    data[bad + HEADER.size + 5] ^= 0xFF            # the file restored from a copy: everything loads
    seg.write_bytes(bytes(data))
    async with open_journaled_ledger(path):
        pass
    assert len(deals(path)) == 6


async def test_a_torn_tail_followed_by_the_spare_segment_is_still_a_torn_write(tmp_path: Path) -> None:
    path, seg, recs = await _journal_with_three_records(tmp_path)
    end = recs[-1][1]
    with open(seg, "r+b") as f:                    # the last write, cut short by the crash
        f.seek(end)
        f.write(encode_lines(b'{"deal_id": "x"}\n')[:12])
    spare = seg.with_name(f"{int(seg.stem) + 1:012d}.wal")       # the next segment, made ahead, empty
    spare.write_bytes(bytes(seg.read_bytes()[:8]) + bytes(4088))
    async with open_journaled_ledger(path) as led:
        assert led.stats.recovered_rows == 6
    assert len(deals(path)) == 6


def test_a_transaction_log_damaged_in_the_middle_refuses_start_up(tmp_path: Path) -> None:
    import pytest
    from engine.txn.log import MAGIC, TxnLog, TxnLogError, read

    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, segment_bytes=1 << 16)
    starts = []
    for i in range(3):
        starts.append(log._offset)
        log.append([{"t": "end", "id": f"D{i}", "key": f"pay|K{i}", "status": "committed", "fin": 1e9}])
    log.close()
    data = bytearray(path.read_bytes())
    assert data.startswith(MAGIC)
    data[starts[1] + HEADER.size + 3] ^= 0xFF       # the second record: CRC mismatch, the third intact
    path.write_bytes(bytes(data))
    with pytest.raises(TxnLogError) as caught:
        TxnLog(path, segment_bytes=1 << 16)
    text = str(caught.value)
    assert text.startswith(f"{path}: byte {starts[1]}: record CRC mismatch, and a readable record follows at "
                           f"byte {starts[2]}, so this is damage"), text
    assert f"mv {path} {path}.damaged" in text and "repeats of keys it held run again" in text, text
    data[starts[1] + HEADER.size + 3] ^= 0xFF       # restored from a copy: every key is there
    path.write_bytes(bytes(data))
    assert {e["key"] for e in read(path)[0]} == {"pay|K0", "pay|K1", "pay|K2"}
    with open(path, "r+b") as f:                   # a torn last record (a crash mid-write) is still dropped
        f.seek(starts[2] + HEADER.size + 3)
        f.write(b"\xff")
    assert {e["key"] for e in read(path)[0]} == {"pay|K0", "pay|K1"}


PART_WRITE = textwrap.dedent("""
    import os, resource, signal, sys, trio
    sys.path.insert(0, sys.argv[2]); sys.path.insert(0, sys.argv[3])
    from engine.journal import encode_lines, open_journaled_ledger
    from test_journal import record, DealStep, T0

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    async def main():
        async with open_journaled_ledger(sys.argv[1], segment_bytes=1 << 16, load_wait=3600, load_rows=10**9) as led:
            assert await led.commit_many([record(1)]) == [None]
            plain = record(2)
            stepped = record(3, steps=[DealStep("post", "call", "ok", T0, 1.0)])
            room = led._offset + len(encode_lines(led.ledger.deal_line(plain))) + 20
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            errors = await led.commit_many([plain, stepped])    # one write: the line record fits, the rest not
            assert all(e is not None and "EFBIG" in str(e) for e in errors), errors
            print("refused", flush=True)
            os._exit(0)                                         # a crash right after
    trio.run(main)
""")


async def test_a_write_cut_short_by_a_full_disk_is_not_read_back_at_the_next_start(tmp_path: Path) -> None:
    script = tmp_path / "part.py"
    script.write_text(PART_WRITE)
    ledger = tmp_path / "l.duckdb"
    out = subprocess.run([sys.executable, str(script), str(ledger), str(REPO), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "refused", out.stderr
    async with open_journaled_ledger(ledger):
        pass
    assert [d["reference"] for d in deals(ledger)] == ["R00001"]       # R00002 was never acknowledged


REJECTING = ROUTE.replace("    deal PAYMENT", '    validate {\n        msg.amount > 0 else reject "13" "invalid amount"\n    }\n'
                                           "    deal PAYMENT").replace(
    "    framing = length2\n", "    framing = length2\n    on error reply Req { code = error.code }\n")


async def test_duckdb_that_cannot_write_keeps_deals_and_their_dead_letters_in_the_journal(
        tmp_path: Path) -> None:
    answered: list[str] = []
    async with fsize_engine(tmp_path, REJECTING, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            await eng.command("limit wal")                   # DuckDB's WAL cannot grow: no DuckDB write works
            for i in range(6):                               # the journal still takes deals
                amount = b"-1" if i % 2 else b"10.25"        # every other one rejected: a dead letter
                await c.send(b'{"ref":"D%03d","amount":%s}' % (i, amount))
                (reply,) = await c.recv_json(1)
                assert reply["code"] == ("13" if i % 2 else "00"), reply
                answered.append(f"D{i:03d}")
            await trio.sleep(1.5)                            # the loader tries again meanwhile
            await eng.command("unlimit")
            while b"load works again" not in eng.err:
                await trio.sleep(0.05)
            await c.aclose()
        await eng.kill()
    ledger, text = eng.ledger, eng.err.decode()
    assert "Traceback" not in text, text
    assert "dead letter for deal" not in text and "not stored" not in text, text   # it travels with its deal
    load_lines = [ln for ln in text.splitlines() if "not loaded into DuckDB" in ln]
    assert len(load_lines) == 1 and f"they are safe in {journal_dir(ledger)}" in load_lines[0], text
    async with open_journaled_ledger(ledger):
        pass
    rows = {d["reference"] or d["request"]: d["status"] for d in deals(ledger)}
    assert len(rows) == 6 and sorted(rows.values()) == ["committed"] * 3 + ["rejected"] * 3, rows
    assert "unloaded" not in " ".join(p.name for p in journal_dir(ledger).glob("*"))   # nothing set aside
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        dead = {r[0] for r in con.execute("SELECT id FROM dead_letters").fetchall()}
    finally:
        con.close()
    assert dead == {d["deal_id"] for d in deals(ledger) if d["status"] == "rejected"}   # loaded with their deals


HTTP_ROUTE = '''
format Pay = json
channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
}
route pay {
    receive from api as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Pay { status = "OK"  ref = msg.ref }
}
'''


async def test_http_answers_503_for_a_deal_it_could_not_store_never_a_success(tmp_path: Path) -> None:
    import httpx
    from engine.registry import default_registry
    from engine.runtime import Switchboard
    from kit import compile_text
    prog = compile_text(tmp_path, HTTP_ROUTE)
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, segment_bytes=4096, load_wait=0.01) as led:
        sb = Switchboard(prog, default_registry(), ledger=led)
        async with trio.open_nursery() as n:
            await n.start(sb.run)
            (journal_dir(path) / "000000000002.tmp").mkdir()     # the next segment cannot be made
            codes = []
            async with httpx.AsyncClient() as c:
                for i in range(30):
                    r = await c.post(f"http://127.0.0.1:{sb.channel('api').port}/payments",
                                     json={"ref": f"H{i:03d}", "amount": 1})
                    codes.append(r.status_code)
                    if r.status_code != 200:
                        problem = r.json()
                        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
                        assert problem["kind"] == "unrecorded" and "not acknowledged" in problem["detail"]
            assert 200 in codes and 503 in codes and 204 not in codes, codes
            (journal_dir(path) / "000000000002.tmp").rmdir()
            sb.drain()
    stored = {d["reference"] for d in deals(path)}
    assert stored == {f"H{i:03d}" for i, code in enumerate(codes) if code == 200}


# ------------------------------------------------------------------ a file that is not this bsp's ledger

def _newer_ledger(tmp_path: Path) -> Path:
    """A real ledger, as a later bsp (schema 99) would leave it."""
    import duckdb
    from engine.ledger_store import LedgerStore
    path = tmp_path / "newer.duckdb"
    LedgerStore.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (99, now())")
    con.close()
    return path


def _bsp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BSP, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BSP_AUDIT_KEY": "a" * 44})


def test_read_commands_refuse_a_ledger_a_newer_bsp_wrote(tmp_path: Path) -> None:
    from engine.ledger_store import SCHEMA_VERSION
    path = _newer_ledger(tmp_path)
    want = (f"error: {path}: ledger schema version 99 is newer than this bsp understands ({SCHEMA_VERSION}): "
            f"a newer bsp wrote it")
    for args in (["deals", "--ledger", str(path)], ["audit", "verify", "--ledger", str(path)],
                 ["dead", "list", "--ledger", str(path)],
                 ["report", "daily-summary", "--from", "2026-01-01", "--ledger", str(path)]):
        res = _bsp(*args)
        assert res.returncode == 2 and res.stderr.startswith(want), (args, res.returncode, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr


def test_a_file_that_is_not_duckdb_is_named_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database\n")
    res = _bsp("deals", "--ledger", str(path))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"error: {path}: not a DuckDB file, so not a bsp ledger"), res.stderr
    assert "check the path given with --ledger" in res.stderr


async def test_stopping_while_duckdb_cannot_write_keeps_the_journal_and_says_so(tmp_path: Path) -> None:
    async with fsize_engine(tmp_path, ROUTE, **SMALL_SEGMENTS) as eng:
        with trio.fail_after(60):
            c = await Client.open(eng.port)
            await eng.command("limit wal")
            for i in range(3):
                assert await ask(c, f"S{i:03d}", 5)                 # durable in the journal
            await c.aclose()
            assert await eng.stop() == 1                             # stop (drain) while DuckDB still cannot write
    ledger, text = eng.ledger, eng.err.decode()
    assert "Traceback" not in text, text
    assert "journal: stopping with 3 acknowledged deal(s) not in DuckDB" in text, text
    (last,) = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert last.startswith(f"error: {ledger}: not checkpointed on close: ") and "the next start replays" in last
    assert segments(journal_dir(ledger))                                   # the journal is kept
    async with open_journaled_ledger(ledger):
        pass
    assert sorted(d["reference"] for d in deals(ledger)) == ["S000", "S001", "S002"]


async def test_a_spare_segment_that_could_not_be_made_is_tried_again_until_it_is(tmp_path: Path, caplog) -> None:
    """The next segment, made ahead at half of the current one, cannot be made (a full disk); the room comes
    back and no more deals come: the fault leaves `bsp status` within a retry.  Before, the spare was tried
    once per segment, so `bsp status` said `degraded: journal spare failing` until half of the next segment
    was written (hours at little traffic, for ever with none), long after the disk had room again."""
    from engine.ledger import storage_faults
    from test_journal import record
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, segment_bytes=4096, load_wait=0.01) as led:
        blocked = journal_dir(path) / "000000000002.tmp"
        blocked.mkdir()                               # the spare cannot be made (EISDIR), the segment still takes deals
        i = 0
        with trio.fail_after(30):                     # a guard: the spare is asked for at half of the segment
            while not led.stats.spares:
                assert await led.commit_many([record(i)]) == [None]
                i += 1
            while not any(f["kind"] == "spare" for f in storage_faults(led)):
                await trio.sleep(0.01)                # its attempt, in a worker thread
        blocked.rmdir()                               # room again; no more deals
        with trio.fail_after(30):
            while storage_faults(led):
                await trio.sleep(0.05)
    assert any(r.getMessage().startswith("journal: spare works again after") for r in caplog.records)
