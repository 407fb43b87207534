"""The key store's memory (engine/txn/kept.py): a recorded deal's key is held compactly, and read back as the
entry it logged, character for character, so that a repeat gets the original answer byte for byte, live, after
a restart and with a field keyring (bench/bench_key_memory.py measures the same at 50,000 keys)."""
from __future__ import annotations

import base64
import gc
import tracemalloc
from pathlib import Path

import pytest

from engine.deal import new_deal_ids
from engine.fieldcrypt import load_keyring
from engine.ledger import open_ledger
from engine.txn import manager_for
from engine.txn.kept import Kept
from engine.txn.log import TxnLog, log_path, read
from test_txn_flow import _req, _setup
from test_txn_key_retention import Clock, ask, serving

KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()
N = 2000


def _ring():
    return load_keyring({"BSP_FIELD_KEYS": KEYS})


def _seal(ring, data: bytes, what: str):
    return data.hex() if ring is None else {"k": ring.encrypt(data, what.encode())}


def _ends(ring, start: int, n: int) -> list[dict]:
    """``end`` entries as ``TxnManager.after_commit`` writes them (300-byte replies)."""
    out = []
    for i, did in enumerate(new_deal_ids(n), start):
        reply = b'{"status":"OK","code":"00","ref":"INV-%09d","pad":"' % i
        reply += b"x" * (298 - len(reply)) + b'"}'
        out.append({"t": "end", "id": did, "key": f"bill_payment|INV-{i:09d}", "status": "committed", "code": "00",
                    "reason": None, "reply": _seal(ring, reply, f"reply|{did}"), "route": "bill_payment",
                    "channel": "front", "version": "v" * 64, "at": "2026-11-27T10:00:00+00:00", "type": "BILL",
                    "ref": f"INV-{i:09d}", "amount": f"{100 + i % 900}.00", "currency": "EUR",
                    "party": f"CUST{i:06d}", "fin": 1_800_000_000.0 + i, "fp": f"{100 + i % 900}.00|EUR|"
                    f"{i:016x}"})
    return out


def _fill(log: TxnLog, ring) -> None:
    for start in range(0, N, 64):
        batch = _ends(ring, start, min(64, N - start))
        log.append(batch)
        log.append([{"t": "recorded", "ids": [e["id"] for e in batch], "keys": [e["key"] for e in batch]}])


@pytest.mark.parametrize("keyring", [False, True])
def test_a_recorded_key_costs_well_under_a_kilobyte(tmp_path: Path, keyring: bool) -> None:
    """2,000 keys of 300-byte replies: about 715 bytes a key (770 sealed); a dict of the answer's fields with the
    reply in hex cost 1,240 live and 1,460 after a restart (1,280 / 1,510 sealed)."""
    ring = _ring() if keyring else None
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, sync=False)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _fill(log, ring)
        gc.collect()
        live = (tracemalloc.get_traced_memory()[0] - base) / N
        log.close()
        del log
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        log = TxnLog(path, sync=False)                   # a restart: read back and compacted
        gc.collect()
        again = (tracemalloc.get_traced_memory()[0] - base) / N
    finally:
        tracemalloc.stop()
    assert len(log.ends) == N
    log.close()
    assert live < 900 and again < 900, (live, again)


@pytest.mark.parametrize("keyring", [False, True])
def test_the_kept_answer_is_the_logged_entry_live_after_a_compaction_and_a_restart(tmp_path: Path,
                                                                                   keyring: bool) -> None:
    ring = _ring() if keyring else None
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, sync=False)
    ends = _ends(ring, 0, 3)
    ends[1].update(status="failed", code="91", kind="timeout", held="in doubt: settle it (`bsp deals show x`)")
    ends[2]["id"] = "RETRY-7"                         # a preset deal id (not 32 hex digits): kept as it is
    ends[2]["reply"] = _seal(ring, b'{"status":"OK"}', "reply|RETRY-7")
    log.append([dict(e) for e in ends])
    log.append([{"t": "recorded", "ids": [e["id"] for e in ends], "keys": [e["key"] for e in ends]}])
    answers = {e["key"]: {k: e[k] for k in ("t", "id", "key", "status", "code", "reply", "fin", "held", "kind", "fp")
                          if e.get(k) is not None} | {"recorded": True} for e in ends}
    for key, answer in answers.items():
        kept = log.ends[key]
        assert type(kept) is Kept
        assert kept == answer and dict(kept) == answer and {**kept} == answer
        assert kept.get("reply") == answer["reply"] and kept["id"] == answer["id"]
        assert kept.get("refused") is None and "refused" not in kept and "pending" not in kept
        if ring is not None:                          # the original bytes, as TxnManager.unseal reads them
            assert ring.decrypt(kept["reply"]["k"], f"reply|{answer['id']}".encode()).startswith(b'{"status":"OK"')
    log._compact()
    # the compaction moved them to the answers files (engine/txn/answers.py): the same entries, as logged
    written = [e for e in read(path)[0] if e.get("t") == "end"] + list(log.answers.entries())
    assert sorted(written, key=lambda e: e["key"]) == sorted(answers.values(), key=lambda e: e["key"])
    log.close()
    log = TxnLog(path, sync=False)
    assert {k: dict(v) for k, v in log.ends.items()} == answers
    log.close()


def test_an_answer_of_another_shape_is_kept_as_it_was_logged(tmp_path: Path) -> None:
    """Upper-case hex is not what this bsp writes: that entry is kept as a dict, unchanged; a token that does not
    pack (a mask part) is kept as its text."""
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, sync=False, clock=lambda: 10.0)
    log.append([{"t": "end", "id": "A", "key": "r|a", "status": "committed", "reply": "7B7D", "fin": 1.0},
                {"t": "end", "id": "B", "key": "r|b", "status": "committed", "reply": {"k": "enc:v1:k1:AAAA:m"},
                 "fin": 1.0},
                {"t": "end", "id": "C", "key": "r|c", "status": "committed", "reply": None, "fin": 1.0}])
    log.append([{"t": "recorded", "ids": ["A", "B", "C"], "keys": ["r|a", "r|b", "r|c"]}])
    assert type(log.ends["r|a"]) is dict and log.ends["r|a"]["reply"] == "7B7D"
    assert log.ends["r|b"]["reply"] == {"k": "enc:v1:k1:AAAA:m"}
    assert type(log.ends["r|c"]) is Kept and "reply" not in log.ends["r|c"]
    log.close()
    log = TxnLog(path, sync=False, clock=lambda: 10.0)
    assert log.ends["r|a"]["reply"] == "7B7D" and log.ends["r|b"]["reply"] == {"k": "enc:v1:k1:AAAA:m"}
    log.close()


@pytest.mark.parametrize("keyring", [False, True])
async def test_a_repeat_gets_the_original_answer_byte_for_byte_after_a_restart(
        nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyring: bool) -> None:
    if keyring:
        monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    program, debit, _ = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        first = await ask(sb, _req("K1"), _req("K2"))
        live = await ask(sb, _req("K1"))                     # the recorded mark rides with this write
        assert type(manager_for(sb.ledger).log.ends["transfer|K1/20240501"]) is Kept
    async with serving(program, ledger, clock) as sb:
        again = await ask(sb, _req("K2"), _req("K1"))
        assert type(manager_for(sb.ledger).log.ends["transfer|K2/20240501"]) is Kept
    assert live == first[:1] and again == first[::-1]
    assert debit.counts[("post", "K1")] == 1 and debit.counts[("post", "K2")] == 1
    async with open_ledger(ledger) as led:
        assert manager_for(led).log_exists() and log_path(ledger).exists()


def test_a_restart_reads_the_key_store_a_record_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a log of many keys held every entry of the file as a dict at once (and the file twice, as read
    and as sliced): ~9.7 KB a key at its peak for 50,000 keys; now the compacted log is written in records of
    ``CHUNK`` entries, read from a mapping of the file one record at a time: ~2.4 KB a key (the key store
    itself and the compaction's new file)."""
    import engine.txn.log as txnlog

    monkeypatch.setattr(txnlog, "CHUNK", 256, raising=False)     # 2,000 keys: 8 records
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, sync=False, answers=False)     # the log's own key store (without the answers files)
    _fill(log, None)
    log._compact()
    log.close()
    del log
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        log = TxnLog(path, sync=False, answers=False)
        peak = (tracemalloc.get_traced_memory()[1] - base) / N
    finally:
        tracemalloc.stop()
    assert len(log.ends) == N and all(type(e) is Kept for e in log.ends.values())
    log.close()
    assert peak < 4000, peak
    assert sum(1 for _ in _records(path)) == N // 256 + 1


def _records(path: Path):
    """The records of a log file (their payloads)."""
    from engine.txn.log import HEADER, MAGIC
    data = path.read_bytes()
    pos = len(MAGIC)
    while True:
        length, _ = HEADER.unpack_from(data, pos)
        if length == 0:
            return
        yield data[pos + HEADER.size:pos + HEADER.size + length]
        pos += HEADER.size + length
