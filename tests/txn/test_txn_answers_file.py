"""The key store's answers files (engine/txn/answers.py): a compaction moves the recorded answers out of the log and
out of memory into append-only files, one a day of finishing time; a repeat still gets the original entry, character
for character, live, after a restart and sealed with a field keyring; the retention removes whole files; a crash
anywhere in a move (a real process SIGKILLed between the answers files' write and the log's compaction, between
the files' write and the index's commit, a torn tail) loses no answer and writes none twice."""
from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.fieldcrypt import load_keyring
from engine.txn.answers import answers_dir, read_all
from engine.txn.kept import Kept
from engine.txn.log import TxnLog, read

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
T0 = 1_800_000_000.0            # 2027-01-15 08:00 UTC


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _seal(ring, raw: bytes, aad: str):
    from engine.txn.manager import TxnManager

    m = TxnManager.__new__(TxnManager)
    m.keyring = ring
    return m.seal(raw, aad)


def _ends(n: int, fin: float, ring=None, prefix: str = "K") -> list[dict]:
    out = []
    for i in range(n):
        did = f"{i:032x}" if prefix == "K" else f"{prefix}-{i}"
        e = {"t": "end", "id": did, "key": f"pay|{prefix}{i}", "status": "committed", "code": "00",
             "reply": _seal(ring, b'{"status":"OK","ref":"%d","message":"payment accepted"}' % i, f"reply|{did}"),
             "route": "pay", "party": "ACME", "amount": "10.00", "fin": fin, "fp": "10.00|EUR|abcd"}
        if i % 5 == 0:
            e.update(status="failed", code="91", kind="timeout", held="in doubt: settle it")
        out.append(e)
    return out


def _answer(e: dict) -> dict:
    return {k: e[k] for k in ("t", "id", "key", "status", "code", "reply", "fin", "held", "kind", "fp")
            if e.get(k) is not None} | {"recorded": True}


def _record(log: TxnLog, ends: list[dict]) -> None:
    log.append([dict(e) for e in ends])
    log.append([{"t": "recorded", "ids": [e["id"] for e in ends], "keys": [e["key"] for e in ends]}])


@pytest.mark.parametrize("keyring", [False, True])
def test_a_compaction_moves_the_answers_out_of_the_log_and_memory_and_a_repeat_reads_them_back(
        tmp_path: Path, keyring: bool) -> None:
    ring = load_keyring({"BSP_FIELD_KEYS": "k1:" + base64.b64encode(bytes(range(32))).decode()}) if keyring else None
    path = tmp_path / "l.duckdb.txn"
    clock = Clock()
    log = TxnLog(path, clock=clock)
    ends = _ends(40, clock.t, ring)
    _record(log, ends)
    answers = {e["key"]: _answer(e) for e in ends}
    assert len(log.ends.hot) == 40
    log._compact()
    assert log.ends.hot == {} and log.moved == 40 and len(log.ends) == 40
    assert [e for e in read(path)[0] if e.get("t") == "end"] == []         # out of the log
    for key, answer in answers.items():
        got = log.ends[key]
        assert type(got) is Kept and got == answer and got.entry() == answer
    assert log.ends.get("pay|nope") is None and "pay|nope" not in log.ends
    data = b"".join(p.read_bytes() for p in answers_dir(path).glob("*.ans2"))
    if keyring:                       # sealed on disk as in the log (the token's bytes), never the reply in clear
        assert b"payment accepted" not in data and b"enc:v1:k1:" not in data
        token = log.ends["pay|K3"]["reply"]["k"]
        assert b"k1:" + base64.urlsafe_b64decode(token.split(":")[3]) in data     # its bytes, not its base64
        e = log.ends["pay|K3"]
        assert ring.decrypt(e["reply"]["k"], f"reply|{e['id']}".encode()).startswith(b'{"status":"OK","ref":"3"')
    else:
        assert bytes.fromhex(log.ends["pay|K3"]["reply"]).startswith(b'{"status":"OK","ref":"3"')
        assert b'{"status":"OK","ref":"3","message":"payment accepted"}' in data      # the reply's bytes, not hex
        assert log.ends["pay|K3"]["reply"].encode() not in data
    log.close()
    log = TxnLog(path, clock=clock)                   # a restart: nothing to read back into memory
    assert log.ends.hot == {} and len(log.ends) == 40
    assert {k: dict(v) for k, v in log.ends.items()} == answers
    log.ends.prefetch(["pay|K1", "pay|nope", "pay|K2"])   # one query for a batch; then answered from memory
    assert log.ends["pay|K1"] == answers["pay|K1"] and log.ends.get("pay|nope") is None
    if keyring:
        from engine.txn.keycheck import check_keyring
        check_keyring(log, ring, path)                # the keyring check reads the files' sealed answers
        other = load_keyring({"BSP_FIELD_KEYS": "k1:" + base64.b64encode(bytes(32)).decode()})
        from engine.ledger_store import KeyMismatch
        with pytest.raises(KeyMismatch):
            check_keyring(log, other, path)
    assert len(read_all(path)) == 40                  # each written once
    log.close()


OLD_FORM = Path(__file__).parent / "answers_old_form"     # a day file written by the bsp of 2026-11-27 (hex replies)


def _payloads(f: Path) -> list[bytes]:
    data, pos, out = f.read_bytes(), 0, []
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos + 8:pos + 8 + n])
        pos += 8 + n
    return out


def test_a_file_of_the_old_form_reads_back_beside_a_raw_form_file_of_the_same_day(tmp_path: Path) -> None:
    """The answers file of an older bsp (``answers_old_form/``: made by the code of 2026-11-27, its replies in hex
    or as keyring tokens, and one reply of another shape) reads back entry for entry as that bsp read it; new
    answers of the same day go to a ``.ans2`` file in the raw form (the old bsp, which cannot read it, ignores
    that file rather than cutting records it cannot read off its own); both read back after a restart and after
    the index is made again from the files."""
    import orjson
    import shutil

    path = tmp_path / "l.duckdb.txn"
    folder = answers_dir(path)
    folder.mkdir(mode=0o700)
    shutil.copy(OLD_FORM / "2027-01-15.ans", folder / "2027-01-15.ans")
    old = orjson.loads((OLD_FORM / "expected.json").read_bytes())
    assert len(old) == 8 and all(p[:1] == b"{" for p in _payloads(folder / "2027-01-15.ans"))
    log = TxnLog(path, clock=Clock())                  # no index: made from the file
    assert len(log.ends) == 8
    for e in old:
        assert log.ends[e["key"]] == e and dict(log.ends[e["key"]]) == e
    assert log.ends["pay|U0"]["reply"] == "ABCD"
    new = _ends(5, T0, prefix="N")
    odd = dict(_ends(1, T0, prefix="V")[0], reply="ABCD")
    _record(log, new + [odd])
    before = (folder / "2027-01-15.ans").read_bytes()
    log._compact()                     # the same day: a file of the raw form beside the old one, left as it was
    assert sorted(p.name for p in folder.glob("*.ans*")) == ["2027-01-15.ans", "2027-01-15.ans2"]
    assert (folder / "2027-01-15.ans").read_bytes() == before
    assert [p[:1] for p in _payloads(folder / "2027-01-15.ans2")] == [b"\x01"] * 6
    want = {e["key"]: e for e in old} | {e["key"]: _answer(e) for e in new + [odd]}
    assert {e["key"]: e for e in read_all(path)} == want
    log.close()
    for again in ("restart", "rebuild"):
        if again == "rebuild":
            for p in folder.glob("index.sqlite*"):
                p.unlink()
        log = TxnLog(path, clock=Clock())
        assert len(log.ends) == 14 and log.ends.hot == {}
        assert {k: dict(v) for k, v in log.ends.items()} == want
        assert {k: log.ends[k].entry() for k in want if type(log.ends[k]) is Kept} == \
            {k: v for k, v in want.items() if type(log.ends[k]) is Kept}
        log.close()
    log = TxnLog(path, clock=Clock(T0 + 36 * DAY))         # past the 35-day retention: both files go whole
    assert len(log.ends) == 0 and log.dropped == 14 and log.horizon is not None
    assert sorted(p.name for p in folder.glob("*.ans*")) == []
    log.close()


def test_a_raw_record_holds_the_reply_bytes_after_a_short_head(tmp_path: Path) -> None:
    """The raw form byte for byte (engine/txn/answers.py's docstring): form 1, kind, the reply's length, the
    reply, then the entry's JSON without it; 300 hex digits fewer than the old form for a 150-byte reply."""
    import orjson
    import zlib

    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock())
    e = _ends(1, T0, prefix="R")[0]
    reply = bytes(range(150))
    e["reply"] = reply.hex()
    _record(log, [e])
    log._compact()
    log.close()
    (f,) = answers_dir(path).glob("*.ans2")
    data = f.read_bytes()
    n = int.from_bytes(data[:4], "big")
    payload = data[8:]
    assert len(payload) == n and zlib.crc32(payload) == int.from_bytes(data[4:8], "big")
    assert payload[:2] == b"\x01\x01" and int.from_bytes(payload[2:6], "big") == 150
    assert payload[6:156] == reply
    rest = orjson.loads(payload[156:])
    assert "reply" not in rest and rest | {"reply": reply.hex()} == _answer(e)
    assert len(orjson.dumps(_answer(e))) - len(payload) == 300 - 150 - 6 + len(b',"reply":""')


def test_the_keys_held_in_memory_between_compactions_are_bounded_by_the_log_size(tmp_path: Path) -> None:
    """Under load the 5-minute compaction never comes (its clock does not move here): the log fills first, and
    the compaction that makes room moves the recorded answers out of memory.  So what ``KeyStore.hot`` holds is
    bounded by count, the keys whose entries fit in one log file (8 MiB: ~7,400 engine ends with 300-byte
    replies, ~25,000 of the smallest; bench/bench_key_memory.py --hot), whatever the traffic; here a 64 KiB log."""
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, segment_bytes=64 << 10, clock=Clock())
    log.monotonic = lambda: 0.0                         # no time passes: only a full log compacts
    most, c0 = 0, log.compactions
    batch_bytes = 0
    for b in range(60):
        ends = _ends(16, T0, prefix=f"B{b}-")
        batch_bytes = max(batch_bytes, len(TxnLog.frame(ends)) + len(TxnLog.frame(
            [{"t": "recorded", "ids": [e["id"] for e in ends], "keys": [e["key"] for e in ends]}])))
        _record(log, ends)
        most = max(most, len(log.ends.hot))
    per_key = batch_bytes / 16
    assert log.compactions - c0 >= 60 * 16 * per_key // (64 << 10) - 1      # one each time the log filled
    assert most <= (64 << 10) / per_key + 16                              # never more than one file's worth
    assert len(log.ends) == 960 and len(log.ends.hot) < most + 1
    log.close()


def test_an_unrecorded_end_stays_in_the_log_until_its_row_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock())
    ends = _ends(3, T0)
    log.append([dict(e) for e in ends])
    log.append([{"t": "recorded", "ids": [ends[0]["id"]], "keys": [ends[0]["key"]]}])
    log._compact()
    assert set(log.ends.hot) == {"pay|K1", "pay|K2"} and set(log.ends) == {"pay|K0", "pay|K1", "pay|K2"}
    assert log.ends["pay|K1"]["party"] == "ACME"        # recovery may need all of it
    assert [e["key"] for e in read_all(path)] == ["pay|K0"]
    log.close()


def test_the_retention_removes_whole_files_and_keeps_the_horizon(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    clock = Clock()
    log = TxnLog(path, clock=clock, retention=None)
    for day in range(5):                                # 4 answers finished each day, one file a day
        _record(log, _ends(4, clock.t, prefix=f"D{day}-"))
        log._compact()
        clock.t += DAY
    files = sorted(p.name for p in answers_dir(path).glob("*.ans2"))
    assert len(files) == 5 and len(log.ends) == 20 and log.horizon is None      # day 5: days 2..4 within 3
    # days 0 and 1 finished more than 3 days ago: their answers forgotten, their files gone
    log.retention = 3 * DAY
    log._compact()
    assert len(log.ends) == 20 - 8 and log.dropped == 8 and log.horizon == pytest.approx(clock.t - 3 * DAY)
    assert sorted(p.name for p in answers_dir(path).glob("*.ans2")) == files[2:]
    assert log.ends.get("pay|D2-0") is not None and log.ends.get("pay|D1-3") is None
    log.close()
    log = TxnLog(path, clock=clock, retention=3 * DAY)  # the horizon survives: a repeat of D0 goes to the ledger
    assert log.horizon == pytest.approx(clock.t - 3 * DAY) and len(log.ends) == 12
    log.close()
    path.unlink()                                       # even with a log that lost it, the files keep it
    log = TxnLog(path, clock=clock, retention=3 * DAY)
    assert log.horizon == pytest.approx(clock.t - 3 * DAY) and len(log.ends) == 12
    log.close()


def test_a_torn_tail_is_cut_and_the_log_still_answers(tmp_path: Path) -> None:
    """A crash while a compaction appended to an answers file (before its fdatasync): the records cut short are
    cut off on open; the log was not compacted, so it still holds those answers, which move again."""
    path = tmp_path / "l.duckdb.txn"
    clock = Clock()
    log = TxnLog(path, clock=clock)
    _record(log, _ends(5, T0, prefix="A"))
    log._compact()                                       # A0..A4 in the files
    _record(log, _ends(5, T0, prefix="B"))               # B0..B4 in the log only
    log.close()
    (f,) = answers_dir(path).glob("*.ans2")
    good = f.stat().st_size
    with open(f, "ab") as out:                           # B0's record begun, cut short by the crash
        out.write(b"\x00\x00\x01\x00\x12\x34\x56\x78{\"t\":\"end\",\"id\":\"B-0\"")
    log = TxnLog(path, clock=clock)
    assert len(log.ends) == 10 and log.ends.hot == {}
    assert {e["key"] for e in read_all(path)} == {f"pay|{p}{i}" for p in "AB" for i in range(5)}
    assert len(read_all(path)) == 10 and f.stat().st_size > good
    assert log.ends["pay|B0"]["id"] == "B-0"
    log.close()


def test_a_damaged_or_lost_index_is_made_again_from_the_files(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock())
    _record(log, _ends(6, T0))
    log._compact()
    log.close()
    index = answers_dir(path) / "index.sqlite"
    for p in answers_dir(path).glob("index.sqlite*"):
        p.unlink()
    index.write_bytes(b"not a database" * 100)
    log = TxnLog(path, clock=Clock())
    assert len(log.ends) == 6 and log.ends["pay|K4"]["id"] == f"{4:032x}"
    log.close()


def test_a_rebuilt_index_shows_its_progress_and_is_synced_once(tmp_path: Path, monkeypatch, caplog) -> None:
    """A lost index is made again at start-up with log lines that count what is done (every ``PROGRESS_EVERY``
    answers); the rebuild runs with ``synchronous=OFF`` and its B-tree indexes made at the end, then one sync: the
    index is whole, checkpointed (an empty WAL), and back to ``synchronous=FULL`` for the moves that follow."""
    import logging
    import sqlite3

    from engine.txn import answers as answers_mod

    path = tmp_path / "l.duckdb.txn"
    clock = Clock()
    log = TxnLog(path, clock=clock)
    for day in range(2):
        _record(log, _ends(5, clock.t, prefix=f"D{day}-"))
        log._compact()
        clock.t += DAY
    log.close()
    folder = answers_dir(path)
    for p in folder.glob("index.sqlite*"):
        p.unlink()
    monkeypatch.setattr(answers_mod, "PROGRESS_EVERY", 4)
    with caplog.at_level(logging.INFO, logger="bsp.txn"):
        log = TxnLog(path, clock=clock)
    lines = [r.getMessage() for r in caplog.records if r.name == "bsp.txn"]
    assert "making the key store's index again from 2 answers file(s)" in lines[0]
    # every 4 answers, within a file too (a day's file holds a day's keys: a million and more)
    assert [int(re.search(r"again: (\d+) answers indexed", m).group(1)) for m in lines[1:-1]] == [4, 9]
    first, second = [int(re.search(r"\((\d+)%\)", m).group(1)) for m in lines[1:-1]]
    assert 0 < first < second < 100
    assert "index is made again: 10 answers from 2 file(s)" in lines[-1]
    assert len(log.ends) == 10 and log.ends["pay|D1-4"]["id"] == "D1--4"
    assert log.answers._w.execute("PRAGMA synchronous").fetchone()[0] == 2           # FULL again
    assert (folder / "index.sqlite-wal").stat().st_size == 0                        # checkpointed: synced
    _record(log, _ends(3, clock.t, prefix="E"))
    log._compact()
    log.close()
    con = sqlite3.connect(folder / "index.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} >= {"a_h", "a_i", "a_fin"}
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN SELECT day FROM a WHERE h = 1"))
    assert "USING INDEX a_h" in plan
    con.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bsp.txn"):
        log = TxnLog(path, clock=clock)                 # the index in place: nothing to make, nothing logged
    assert not [r for r in caplog.records if "index" in r.getMessage()] and len(log.ends) == 13
    log.close()


REBUILD_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    from engine.txn import answers as answers_mod

    answers_mod.PROGRESS_EVERY = 10
    def stop(*a, **k):
        print("AT rebuild", flush=True)
        time.sleep(600)
    answers_mod.Answers._progress = stop
    answers_mod.Answers(Path(sys.argv[1]))
    print("DONE", flush=True)
""")


def test_sigkill_during_a_rebuild_of_the_index_leaves_one_made_again_whole(tmp_path: Path) -> None:
    """A real process SIGKILLed while it makes a lost index again (``synchronous=OFF``, nothing synced yet): the
    next open finds an index without that rebuild and makes it again; every answer is found."""
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock())
    for part in range(3):
        _record(log, _ends(10, T0 + part * DAY, prefix=f"P{part}-"))
        log._compact()
    log.close()
    folder = answers_dir(path)
    for p in folder.glob("index.sqlite*"):
        p.unlink()
    script = REBUILD_CHILD.format(repo=str(REPO))
    with subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=str(tmp_path)) as proc:
        try:
            line = proc.stdout.readline().decode()
            if line.strip() != "AT rebuild":
                proc.kill()
                pytest.fail(f"{line!r}: {proc.stderr.read().decode()}")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = TxnLog(path, clock=Clock())
    assert len(log.ends) == 30 and log.ends.hot == {}
    want = {e["key"]: _answer(e) for part in range(3) for e in _ends(10, T0 + part * DAY, prefix=f"P{part}-")}
    assert {k: dict(log.ends[k]) for k in want} == want
    assert len(read_all(path)) == 30
    log.close()


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}, {tests!r}]
    from engine.txn import answers as answers_mod
    from engine.txn.log import TxnLog
    from test_txn_answers_file import _ends, _record

    path, where = Path(sys.argv[1]), sys.argv[2]

    def stop(*a, **k):
        print("AT", where, flush=True)
        time.sleep(600)

    log = TxnLog(path, clock=lambda: {t0!r})
    log.compact_after = None
    _record(log, _ends(30, {t0!r}))
    if where == "before_log":          # answers written, fdatasync'ed and indexed; the log not compacted yet
        TxnLog._keep = stop
    else:                              # answers written and fdatasync'ed; the index not committed yet
        answers_mod.Answers._note_sealed = stop
    log._compact()
    print("DONE", flush=True)
""")


@pytest.mark.parametrize("where", ["before_log", "before_index"])
def test_sigkill_between_the_answers_files_write_and_the_log_compaction(tmp_path: Path, where: str) -> None:
    """A real process SIGKILLed in the middle of a compaction's move: every key is answered once after the
    restart, with the entry the log held, and no answer is written twice in the files."""
    path = tmp_path / "l.duckdb.txn"
    script = CHILD.format(repo=str(REPO), tests=str(Path(__file__).parent), t0=T0)
    with subprocess.Popen([sys.executable, "-c", script, str(path), where], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=str(tmp_path)) as proc:
        try:
            line = proc.stdout.readline().decode()
            if line.strip() != f"AT {where}":
                proc.kill()
                pytest.fail(f"{line!r}: {proc.stderr.read().decode()}")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ends = _ends(30, T0)
    answers = {e["key"]: _answer(e) for e in ends}
    logged = [e for e in read(path)[0] if e.get("t") == "end"]
    assert len(logged) == 30                              # the log still holds every answer
    assert len(read_all(path)) == 30                      # and the files too (fdatasync'ed before)
    log = TxnLog(path, clock=Clock())                     # the restart: moved again, not written twice
    assert len(log.ends) == 30 and log.ends.hot == {}
    assert {k: dict(v) for k, v in log.ends.items()} == answers
    assert len(read_all(path)) == 30
    assert [e for e in read(path)[0] if e.get("t") == "end"] == []
    log.close()
    log = TxnLog(path, clock=Clock())
    assert {k: log.ends[k].entry() for k in answers} == answers
    log.close()


def test_without_the_answers_files_the_log_keeps_the_keys_as_before(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock(), answers=False)
    _record(log, _ends(4, T0))
    log._compact()
    assert len(log.ends.hot) == 4 and len([e for e in read(path)[0] if e.get("t") == "end"]) == 4
    assert not answers_dir(path).exists()
    log.close()


async def test_a_repeat_answered_from_the_files_through_the_engine_and_refused_when_they_are_lost(
        nursery, tmp_path: Path) -> None:
    """The engine (real TCP counterparts, a DuckDB ledger): a repeat after a restart is answered from the answers
    files, byte for byte; with the files gone (moved or deleted without the log) the log's ``moved`` entry makes
    a repeat go to the ledger's deal key index: refused (duplicate, 94), never run again."""
    import shutil

    import orjson

    from engine.txn import manager_for
    from engine.txn.log import log_path
    from test_txn_flow import _req, _setup
    from test_txn_key_retention import Clock as EngineClock, ask, serving

    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = EngineClock()
    async with serving(program, ledger, clock) as sb:
        first = await ask(sb, _req("K1"), _req("K2"))
    async with serving(program, ledger, clock) as sb:        # the open moved them to the files
        log = manager_for(sb.ledger).log
        # K1 was recorded before the stop (K2's mark rides with the next write: K2 is recorded after the open)
        assert "transfer|K1/20240501" not in log.ends.hot and len(log.ends) == 2 and log.horizon is None
        again = await ask(sb, _req("K2"), _req("K1"))
    assert again == first[::-1]
    assert debit.counts[("post", "K1")] == 1 and debit.counts[("post", "K2")] == 1
    shutil.rmtree(answers_dir(log_path(ledger)))
    async with serving(program, ledger, clock) as sb:
        log = manager_for(sb.ledger).log
        # K1's answer was in the files only (K2's was still in the log as well: moved again)
        assert "transfer|K1/20240501" not in log.ends and log.horizon is not None
        lost, kept = await ask(sb, _req("K1"), _req("K2"))
    assert orjson.loads(lost)["code"] == "94" and kept == first[1]
    assert debit.counts[("post", "K1")] == 1 and credit.counts[("post", "K1")] == 1


def test_the_answers_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """They hold deal keys and reply bytes (in clear without a keyring), as the log does: folder 0700, files 0600."""
    import stat

    old = os.umask(0o022)
    try:
        path = tmp_path / "l.duckdb.txn"
        log = TxnLog(path, clock=Clock())
        _record(log, _ends(3, T0))
        log._compact()
        log.close()
    finally:
        os.umask(old)
    folder = answers_dir(path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert any(n.endswith(".ans2") for n in modes) and "index.sqlite" in modes
    assert {n: oct(m) for n, m in modes.items() if m != 0o600} == {}
