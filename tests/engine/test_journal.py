"""The write-ahead journal in front of the DuckDB ledger (engine/journal.py): record format,
group commit, loading behind, recovery after a crash, and kill -9 of a real engine process."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pytest
import trio

from engine.deal import DealRecord, DealStep
from engine.deal import DealError
from engine.journal import (
    HEADER, MAGIC, decode_batch, decode_record, encode_batch, encode_lines, iter_journal, journal_dir,
    open_journaled_ledger, open_ledger_sync, read_segment, segments,
)
from engine.ledger import Ledger, open_ledger
from engine.ledger_store import ARROW_SCHEMA, DealRows, lines_to_arrow, rows_to_arrow
from kit import REPO, Client, deals, json_counterpart, read_until

T0 = datetime(2026, 11, 25, 9, 30, 0, 123456, tzinfo=timezone.utc)


def record(i: int, **kw) -> DealRecord:
    fields = dict(deal_type="PAYMENT", route="pay", config_version="v1", channel="front", status="committed",
                  received_at=T0, finished_at=T0 + timedelta(milliseconds=2), reference=f"R{i:05d}",
                  amount=Decimal("120.50"), currency="CNY", request={"ref": f"R{i:05d}", "amount": Decimal("120.50")},
                  response={"code": "00"})
    fields.update(kw)
    return DealRecord(**fields)


def ledger_ids(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT reference FROM deals ORDER BY reference").fetchall()]
    finally:
        con.close()


# ------------------------------------------------------------------ format

def test_batch_round_trip_keeps_decimal_and_datetimes() -> None:
    row = record(1).to_row()
    step = {"deal_id": row["deal_id"], "seq": 1, "step": "post", "kind": "call", "vote": None, "outcome": "ok",
            "started_at": T0, "duration_ms": 1.5, "detail": None}
    data = encode_batch([DealRows(row, [step], [])])
    length, crc = HEADER.unpack_from(data)
    payload = data[HEADER.size:]
    assert length == len(payload) and crc == zlib.crc32(payload)
    (back,) = decode_batch(payload)
    assert back.row == row
    assert back.row["amount"] == Decimal("120.50") and str(back.row["amount"]) == "120.50"
    assert back.steps == [step]


def line_records() -> list[DealRecord]:
    """Records covering what a deal line must carry exactly."""
    plus2 = timezone(timedelta(hours=2))
    return [
        record(1),
        record(2, amount=Decimal("1.50000"), reference=4711),       # zeros beyond the scale; int reference
        record(3, amount=Decimal("1E+3"), currency=None, request=None, response=None),
        record(4, amount=None, received_at=T0.replace(microsecond=0).astimezone(plus2),
               finished_at=(T0 + timedelta(seconds=1)).astimezone(plus2)),
        record(5, amount=Decimal("-99999999999999999999.9999"), party="Zoë \"quoted\"\n",
               request_json=r'{"ref":"R00005","note":"caf\u00e9 \\ \"q\" \u2028"}', response_json='{"code":"00"}'),
        record(6, status="rejected", response_code="51", reason="insufficient funds"),
    ]


def test_deal_lines_read_back_as_the_table_rows_to_arrow_builds() -> None:
    recs = line_records()
    lines = b"".join(Ledger.deal_line(r) for r in recs)
    assert lines.count(b"\n") == len(recs)
    got = lines_to_arrow(lines)
    want = rows_to_arrow([r.to_row() for r in recs])
    assert got.schema == ARROW_SCHEMA
    assert got.to_pylist() == want.to_pylist()
    assert got.column("amount").to_pylist()[:3] == [Decimal("120.5"), Decimal("1.5"), Decimal("1000")]
    # the journal record of lines decodes to the rows to_row gives (recovery's slow path, iter_journal)
    data = encode_lines(lines)
    back = decode_record(data[HEADER.size:])
    assert [d.row for d in back] == [r.to_row() for r in recs]


def test_deal_line_refuses_what_the_ledger_cannot_store() -> None:
    with pytest.raises(DealError, match="field amount: 1.23456 has more than 4 decimal places"):
        Ledger.deal_line(record(1, amount=Decimal("1.23456")))
    with pytest.raises(DealError, match="field request/response"):
        Ledger.deal_line(record(1, request={"x": object()}))
    with pytest.raises(DealError, match="field status"):
        Ledger.deal_line(record(1, status="maybe"))
    assert Ledger.has_line(record(1)) and not Ledger.has_line(record(1, steps=[DealStep("p", "call", "ok", T0)]))
    assert Ledger.has_line(record(1, request_tags={"card": "pan"}))


async def test_a_line_masks_and_encrypts_classified_fields_as_prepare_does(tmp_path: Path) -> None:
    from engine.fieldcrypt import Keyring, is_encrypted
    keyring = Keyring("k1", {"k1": bytes(range(32))})
    rec = record(1, request={"card": "4111111111111111", "cvv": "123", "memo": "x"},
                 request_tags={"card": "pan", "cvv": "secret"}, request_json='{"raw": "ignored"}',
                 response={"pan": "5500000000000004"}, response_tags={"pan": "pan"})
    for ring in (None, keyring):
        line = orjson.loads(Ledger.deal_line(rec, keyring=ring))
        req, rsp = orjson.loads(line["request"]), orjson.loads(line["response"])
        assert req["cvv"] == "***" and req["memo"] == "x"
        if ring is None:
            assert req["card"] == "411111******1111" and rsp["pan"] == "550000******0004"
            async with open_ledger(tmp_path / "p.duckdb", audit_key=None) as led:
                assert orjson.loads(led.prepare(rec).row["request"]) == req     # the same masking
        else:
            assert is_encrypted(req["card"].rsplit(":", 1)[0]) and req["card"].endswith("411111******1111")
            assert "4111111111111111" not in line["request"] and "5500000000000004" not in line["response"]


def test_a_line_longer_than_a_read_block_is_read() -> None:
    big = "x" * (3 << 20)                                   # 3 MB request: more than pyarrow's 1 MB block
    lines = Ledger.deal_line(record(1)) + Ledger.deal_line(record(2, request_json=orjson.dumps(big).decode()))
    got = lines_to_arrow(lines)
    assert got.num_rows == 2 and len(orjson.loads(got.column("request")[1].as_py())) == 3 << 20


def test_read_segment_stops_at_a_torn_or_corrupt_record(tmp_path: Path) -> None:
    seg = tmp_path / "000000000001.wal"
    a = encode_batch([DealRows(record(1).to_row())])
    b = encode_batch([DealRows(record(2).to_row())])
    seg.write_bytes(MAGIC + a + b[:-3])                       # the second record cut short
    recs, end, problem = read_segment(seg)
    assert [e for _, e in recs] == [len(MAGIC) + len(a)]
    assert end == len(MAGIC) + len(a)
    assert problem is not None and f"byte {end}" in problem and "cut short" in problem

    bad = bytearray(MAGIC + a + b)
    bad[-1] ^= 0xFF                                           # a flipped bit in the second payload
    seg.write_bytes(bytes(bad))
    recs, end, problem = read_segment(seg)
    assert len(recs) == 1 and "CRC mismatch" in problem and f"byte {len(MAGIC) + len(a)}" in problem

    seg.write_bytes(MAGIC + a + bytes(64))                    # zeros: the made-ahead rest of a segment
    recs, end, problem = read_segment(seg)
    assert len(recs) == 1 and problem is None


def test_read_segment_refuses_a_foreign_file(tmp_path: Path) -> None:
    seg = tmp_path / "000000000001.wal"
    seg.write_bytes(b"PK\x03\x04 not a journal")
    with pytest.raises(Exception, match="byte 0: not a bsp journal segment"):
        read_segment(seg)


# ------------------------------------------------------------------ the journaled ledger

async def test_commit_many_is_journaled_then_loaded_and_the_journal_removed(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.05) as led:
        errors = await led.commit_many([record(i) for i in range(50)])
        assert errors == [None] * 50
        assert led.stats.rows == 50 and led.stats.flushes >= 1
        bad = record(99, amount=Decimal("1.23456"))          # more decimals than the ledger keeps
        (err,) = await led.commit_many([bad])
        assert err is not None and "field amount" in str(err)
        await led.commit(record(50, steps=[DealStep("post", "call", "ok", T0, 1.0)]))
    assert ledger_ids(path) == [f"R{i:05d}" for i in range(51)]
    assert list(journal_dir(path).glob("*.wal")) == []       # everything loaded: segments removed
    con = duckdb.connect(str(path), read_only=True)
    try:
        (amount, req), = con.execute("SELECT amount, request FROM deals WHERE reference = 'R00001'").fetchall()
        (n_steps,), = con.execute("SELECT count(*) FROM deal_steps").fetchall()
    finally:
        con.close()
    assert amount == Decimal("120.50") and orjson.loads(req) == {"ref": "R00001", "amount": "120.50"}
    assert n_steps == 1


async def test_acknowledged_deals_survive_a_crash_and_load_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with open_journaled_ledger(path, load_wait=3600, load_rows=10**6) as led:
            for k in range(5):
                assert await led.commit_many([record(10 * k + i) for i in range(10)]) == [None] * 10
            assert led.pending == 50
            crash.cancel()                                   # the process "dies": the loader never ran
            await trio.sleep_forever()
    assert ledger_ids(path) == []                            # nothing in DuckDB yet ...
    assert len(list(segments(journal_dir(path)))) >= 1       # ... but all of it in the journal
    async with open_journaled_ledger(path) as led:
        assert led.stats.recovered_rows == 50
    assert ledger_ids(path) == [f"R{i:05d}" for i in range(50)]
    async with open_journaled_ledger(path) as led:           # a second start loads nothing again
        assert led.stats.recovered_rows == 0
    assert len(ledger_ids(path)) == 50
    assert not (journal_dir(path) / "unloaded.jsonl").exists()


async def test_a_crash_with_lines_and_deals_with_steps_recovers_both(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    stepped = [record(100 + i, steps=[DealStep("post", "call", "ok", T0, 1.5, detail={"code": "00"})])
               for i in range(3)]
    with trio.CancelScope() as crash:
        async with open_journaled_ledger(path, load_wait=3600, load_rows=10**6) as led:
            assert await led.commit_many([record(i) for i in range(4)] + stepped) == [None] * 7
            assert await led.commit_many(line_records()) == [None] * 6
            crash.cancel()
            await trio.sleep_forever()
    kinds = [decode_record(p) and p[:1] for seg in segments(journal_dir(path)) for p, _ in read_segment(seg.path)[0]]
    assert kinds == [b"{", b"[", b"{"]                        # one record of lines, one of rows, per flush
    journaled = list(iter_journal(journal_dir(path)))
    assert len(journaled) == 13 and [len(d.steps) for d in journaled[4:7]] == [1, 1, 1]
    async with open_journaled_ledger(path) as led:
        assert led.stats.recovered_rows == 13
    con = duckdb.connect(str(path), read_only=True)
    try:
        got = con.execute("SELECT reference, amount, received_at, request FROM deals ORDER BY chain_seq").fetchall()
        (n_steps,), = con.execute("SELECT count(*) FROM deal_steps").fetchall()
    finally:
        con.close()
    assert n_steps == 3
    want = [r.to_row() for r in [record(i) for i in range(4)] + stepped + line_records()]
    def key(t: tuple) -> tuple:
        return (t[0], t[3] or "")
    assert sorted(got, key=key) == sorted([(str(w["reference"]), w["amount"], w["received_at"], w["request"])
                                           for w in want], key=key)


async def test_recovery_drops_a_torn_tail_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with open_journaled_ledger(path, load_wait=3600, load_rows=10**6) as led:
            await led.commit_many([record(i) for i in range(3)])
            crash.cancel()
            await trio.sleep_forever()
    (seg,) = segments(journal_dir(path))
    recs, end, _ = read_segment(seg.path)
    torn = encode_batch([DealRows(record(7).to_row())])[:20]  # a write cut by the crash: never acknowledged
    with open(seg.path, "r+b") as f:
        f.seek(end)
        f.write(torn)
    async with open_journaled_ledger(path) as led:
        assert led.stats.recovered_rows == 3
    assert ledger_ids(path) == ["R00000", "R00001", "R00002"]


async def test_concurrent_commits_share_one_journal_record_and_fdatasync(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.01) as led:
        results: list[list[object]] = []

        async def commit(k: int) -> None:
            results.append(await led.commit_many([record(10 * k + i) for i in range(10)]))
        async with trio.open_nursery() as n:
            for k in range(8):
                n.start_soon(commit, k)
        assert results == [[None] * 10] * 8
        assert led.stats.rows == 80 and led.stats.flushes <= 2     # group commit, not one per task
    assert len(ledger_ids(path)) == 80


async def test_a_write_runs_on_the_event_loop_thread_only_while_the_disk_is_quick(tmp_path: Path) -> None:
    import threading
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.01) as led:
        where: list[bool] = []
        real = led._write

        def spy(data: bytes) -> float:          # observes which thread wrote; the write is the real one,
            where.append(threading.current_thread() is threading.main_thread())
            real(data)
            return 0.1                          # timed as quick whatever this machine's disk did meanwhile
        led._write = spy  # type: ignore[method-assign]
        await led.commit_many([record(1)])
        led._last_ms = 50.0                     # as if the last fdatasync had stalled for 50 ms
        await led.commit_many([record(2)])
        await led.commit_many([record(3)])      # the stall is over (the last write was quick): inline again
        assert where == [True, False, True]
    assert len(ledger_ids(path)) == 3


async def test_a_failed_journal_write_is_reported_per_deal_and_the_journal_goes_on(tmp_path: Path) -> None:
    import os
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.01) as led:
        assert await led.commit_many([record(1)]) == [None]
        good_fd = led._fd
        seg = journal_dir(path) / f"{led._segment:012d}.wal"
        led._fd = os.open(seg, os.O_RDONLY)          # the OS refuses the next write (EBADF)
        try:
            errors = await led.commit_many([record(2), record(3)])
        finally:
            os.close(led._fd)
            led._fd = good_fd
        assert len(errors) == 2 and all(e is not None for e in errors)
        assert errors[0] is errors[1]                                # one failed write, told to both deals
        text = str(errors[0])
        assert f"{seg}: byte " in text and "2 deal(s) not journaled" in text and "Bad file descriptor" in text
        assert await led.commit_many([record(4)]) == [None]          # the next group is written
    assert sorted(ledger_ids(path)) == ["R00001", "R00004"]           # no half-written deal


async def test_segments_rotate_and_are_deleted_once_loaded(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.01, segment_bytes=4096) as led:
        for k in range(20):
            await led.commit_many([record(10 * k + i) for i in range(10)])
        assert led.stats.flushes == 20
    assert len(ledger_ids(path)) == 200
    assert list(journal_dir(path).glob("*.wal")) == []


async def test_spare_segment_is_asked_for_once_per_segment(tmp_path: Path) -> None:
    # past half a segment, every flush used to ask the spare maker again: a worker thread round
    # trip per group commit (half of all of them), which cost the bench ~4% of its throughput
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=0.01, segment_bytes=64 << 10) as led:
        for k in range(150):
            await led.commit_many([record(k)])
        segments_used = led._segment
        assert led.stats.flushes == 150 and segments_used >= 2
        assert 1 <= led.stats.spares <= segments_used
    assert len(ledger_ids(path)) == 150


async def test_sync_modes(tmp_path: Path) -> None:
    for mode in ("duckdb", "none", "journal"):
        path = tmp_path / f"{mode}.duckdb"
        async with open_ledger_sync(path, mode) as led:
            assert await led.commit_many([record(i) for i in range(5)]) == [None] * 5
        assert len(ledger_ids(path)) == 5, mode
    with pytest.raises(ValueError, match="ledger sync must be one of journal, duckdb, none"):
        async with open_ledger_sync(tmp_path / "x.duckdb", "async"):
            pass


# ------------------------------------------------------------------ kill -9 of a real engine

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:%d"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:%d"
    framing = length4
    timeout = 5s
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""

ENGINE = textwrap.dedent("""
    import sys, trio
    sys.path.insert(0, sys.argv[3])
    from dsl.load import compile_paths
    from engine.journal import open_journaled_ledger
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    async def main():
        reg = default_registry()
        program = compile_paths([sys.argv[1]], reg).program
        # the loader never runs on its own: every acknowledged deal is only in the journal
        async with open_journaled_ledger(sys.argv[2], load_wait=3600, load_rows=10**9) as led:
            sb = Switchboard(program, reg, ledger=led)
            async with trio.open_nursery() as n:
                await n.start(sb.run)
                print("serving", sb.channel("front").port, flush=True)
    trio.run(main)
""")


async def test_sigkill_after_acknowledging_loses_nothing(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK"})
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (0, back))            # port 0: the engine binds one, and says which
    ledger = tmp_path / "ledger.duckdb"
    script = tmp_path / "engine_main.py"
    script.write_text(ENGINE)
    proc = await trio.lowlevel.open_process([sys.executable, str(script), str(route), str(ledger), str(REPO)],
                                            stdout=subprocess.PIPE)
    acked: list[str] = []
    try:
        with trio.fail_after(30):
            m, _ = await read_until(proc.stdout, rb"serving (\d+)\n")
            front = int(m[1])
            c = await Client.open(front)
            for k in range(20):                              # 20 batches of 25 pipelined requests
                refs = [f"K{k:02d}{i:03d}" for i in range(25)]
                await c.send(*[b'{"ref":"%s","amount":10.25}' % r.encode() for r in refs])
                for r in await c.recv_json(25):
                    assert r["code"] == "00"
                    acked.append(r["ref"])
            await c.send(*[orjson.dumps({"ref": f"Z{i:03d}", "amount": 1}) for i in range(25)])  # in flight
        proc.kill()                                          # SIGKILL: no drain, no flush, no checkpoint
        await proc.wait()
        await c.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
    assert len(acked) == 500
    assert ledger_ids(ledger) == []                          # DuckDB had none of them at the kill
    async with open_journaled_ledger(ledger) as led:         # restart: recovery loads the journal
        assert led.stats.recovered_rows >= 500
    stored = {d["reference"]: d for d in deals(ledger)}
    missing = [r for r in acked if r not in stored]
    assert missing == []
    assert all(stored[r]["status"] == "committed" and stored[r]["amount"] == Decimal("10.25") for r in acked)
    assert len(stored) == len(deals(ledger))                 # no deal loaded twice


async def test_close_never_waits_forever(tmp_path: Path) -> None:
    """Closing wakes the flusher and the loader in either order (trio may schedule them either way)."""
    path = tmp_path / "l.duckdb"
    with trio.fail_after(30):
        for k in range(15):
            async with open_journaled_ledger(path, load_wait=5) as led:
                if k % 2:
                    await led.commit_many([record(100 * k)])
    assert len(ledger_ids(path)) == 7


async def test_wait_loaded_brings_acknowledged_deals_into_duckdb_without_waiting_for_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, load_wait=60.0, load_rows=100_000) as jl:
        assert await jl.commit_many([record(i) for i in range(5)]) == [None] * 5
        assert jl.pending == 5                      # acknowledged, the loader lingers (60 s)
        with trio.fail_after(5):
            await jl.wait_loaded()
        assert jl.pending == 0 and jl.stats.loaded_rows == 5
        assert jl.stats.batches == jl.stats.flushes >= 1       # LedgerStats' names (admin status, metrics)
        rows = await jl.ledger._run(lambda: jl.ledger._store.connection.execute("SELECT count(*) FROM deals").fetchall())
        assert rows == [(5,)]
        await jl.wait_loaded()                      # nothing pending: returns at once


def test_platform_yaml_ledger_sync(tmp_path: Path) -> None:
    from engine.deploy import DeploymentError, load_deployment
    (tmp_path / "a.route").write_text("")
    dep_file = tmp_path / "platform.yaml"
    dep_file.write_text("routes: [a.route]\nledger: {path: x.duckdb, sync: none}\n"
                        "environments: {uat: {ledger: {sync: duckdb}}}\n")
    dep = load_deployment(dep_file)
    assert (dep.ledger_path.name, dep.ledger_sync) == ("x.duckdb", "none")
    dep = load_deployment(dep_file, env="uat")
    assert (dep.ledger_path.name, dep.ledger_sync) == ("x.duckdb", "duckdb")
    dep_file.write_text("routes: [a.route]\nledger: {sync: fast}\n")
    with pytest.raises(DeploymentError, match=r"platform.yaml:2:\d+: ledger.sync: expected one of journal, duckdb, none, got 'fast'"):
        load_deployment(dep_file)


# ------------------------------------------------------------------ a deal DuckDB refuses, and no room to set it aside

def _refused_line(i: int) -> bytes:
    """A deal line the journal takes and DuckDB refuses (an amount past DECIMAL(24,4))."""
    from engine.deal_line import deal_line
    return deal_line(record(i)).replace(b'"amount":"120.50"', b'"amount":"1e30"')


async def test_a_refused_deal_that_cannot_be_set_aside_stays_in_the_journal_and_the_loader_goes_on(
        tmp_path: Path, caplog) -> None:
    from engine.deal_line import deal_line
    path = tmp_path / "l.duckdb"
    aside = journal_dir(path) / "unloaded.jsonl"
    async with open_journaled_ledger(path, load_wait=0.01) as led:
        aside.mkdir()                                   # unloaded.jsonl cannot be written (EISDIR)
        await led._append([deal_line(record(1)), _refused_line(2), deal_line(record(3))], [])
        with trio.move_on_after(1.5):
            await led.wait_loaded()
            raise AssertionError("loaded although the refused deal could not be set aside")
        assert led.pending == 3                         # still in the journal, the loader still running
        aside.rmdir()                                   # the file can be written again
        with trio.fail_after(15):
            await led.wait_loaded()
        assert led.stats.failed_rows == 1
    assert ledger_ids(path) == ["R00001", "R00003"]     # each good deal once, none set aside
    (kept,) = [orjson.loads(ln) for ln in aside.read_bytes().splitlines()]
    assert kept["row"]["reference"] == "R00002"
    stalled = [r.getMessage() for r in caplog.records if "cannot be set aside" in r.getMessage()]
    assert len(stalled) == 1 and f"{aside}: 1 acknowledged deal DuckDB refused (" in stalled[0], stalled
    assert "(EISDIR)" in stalled[0] and f"it is safe in {journal_dir(path)}" in stalled[0]
    assert any("journal: load works again" in r.getMessage() for r in caplog.records)


STALL_WHILE_SORTING = textwrap.dedent("""
    import os, resource, signal, sys, trio
    sys.path.insert(0, sys.argv[2]); sys.path.insert(0, sys.argv[3])
    from engine.deal_line import deal_line
    from engine.journal import open_journaled_ledger
    from test_journal import record, _refused_line

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    HARD = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

    async def main():
        async with open_journaled_ledger(sys.argv[1], load_wait=3600, load_rows=10**9) as led:
            await led._append([deal_line(record(1)), _refused_line(2), deal_line(record(3))], [])
            resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1] + ".wal"), HARD))
            with trio.move_on_after(1.5):               # DuckDB cannot write while the load is sorted out
                await led.wait_loaded()
                raise AssertionError("loaded while DuckDB could not write")
            print("stalled", led.pending, led.stats.failed_rows, flush=True)
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, HARD))
            with trio.fail_after(20):
                await led.wait_loaded()
            print("loaded", led.stats.failed_rows, flush=True)
    trio.run(main)
""")


def test_a_disk_that_fills_while_a_refused_load_is_sorted_out_sets_no_good_deal_aside(tmp_path: Path) -> None:
    script = tmp_path / "stall.py"
    script.write_text(STALL_WHILE_SORTING)
    path = tmp_path / "l.duckdb"
    out = subprocess.run([sys.executable, str(script), str(path), str(REPO), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["stalled 3 0", "loaded 1"], (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert ledger_ids(path) == ["R00001", "R00003"]
    (kept,) = [orjson.loads(ln) for ln in (journal_dir(path) / "unloaded.jsonl").read_bytes().splitlines()]
    assert kept["row"]["reference"] == "R00002"
