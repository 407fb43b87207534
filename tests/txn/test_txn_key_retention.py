"""The key store's retention (docs/transactions.md, "Idempotency"): real TCP counterparts, a real
DuckDB ledger and the real transaction log; time passes through the manager's injectable clock
(no sleep, no timed assertion)."""
from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import orjson
import pytest

from engine.ledger import open_ledger
from engine.runtime.switchboard import Switchboard
from engine.txn import manager_for
from engine.txn.log import MAGIC, TxnLog, log_path, parse_retention
from test_txn_flow import ROUTE, _req, _setup
from txnkit import Client, Counterpart, Gate, compile_text, deals, json_counterpart, switchboard

DAY = 86400.0
T0 = 1_800_000_000.0


class Clock:
    """Epoch seconds, moved by the test."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@asynccontextmanager
async def serving(program: Any, ledger_path: Path, clock: Clock,
                  retention: float | None = 35 * DAY) -> AsyncIterator[Switchboard]:
    """``running`` (tests/engine/kit.py) with the key retention set as ``bsp run`` sets it and the
    transaction manager on ``clock``; the log is opened (and compacted) when the switchboard starts."""
    async with open_ledger(ledger_path) as ledger:
        ledger.key_retention = retention
        manager_for(ledger).clock = clock
        async with switchboard(program, ledger) as sb:
            yield sb


def live_bytes(log: TxnLog) -> int:
    """What the open log holds (the compacted part plus what was appended since)."""
    return log._offset - len(MAGIC)


def stored_bytes(log: TxnLog) -> int:
    """What the key store holds on disk: the live log and the answers files its compactions moved answers to
    (engine/txn/answers.py; a retention removes whole files, one a day of finishing time)."""
    return live_bytes(log) + (log.answers.file_bytes() if log.answers is not None else 0)


async def ask(sb: Switchboard, *requests: bytes) -> list[bytes]:
    c = await Client.open(sb.channel("front").port)
    out = []
    for r in requests:                 # one at a time: each its own batch
        await c.send(r)
        out += await c.recv(1)
    await c.aclose()
    return out


async def test_within_retention_answered_from_store_past_it_dropped_and_caught_in_ledger(nursery, tmp_path: Path) -> None:
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        (k1,) = await ask(sb, _req("K1"))
        clock.t += 10 * DAY
        k2, k1_again = await ask(sb, _req("K2"), _req("K1"))
        mgr = manager_for(sb.ledger)
        assert set(mgr.log.ends) == {"transfer|K1/20240501", "transfer|K2/20240501"}
    assert k1_again == k1                                    # within retention: the original bytes
    assert debit.counts[("post", "K1")] == 1
    # 36 days after K1 (26 after K2): the restart compacts the log and drops K1 only
    clock.t = T0 + 36 * DAY
    async with serving(program, ledger, clock) as sb:
        log = manager_for(sb.ledger).log
        assert set(log.ends) == {"transfer|K2/20240501"} and log.dropped == 1
        assert log.horizon == pytest.approx(T0 + DAY)
        k1_late, k2_late = await ask(sb, _req("K1"), _req("K2"))
    assert k2_late == k2                                     # still within: answered from the store
    # past retention: caught in the ledger, not run again, a `duplicate` failure (94)
    assert orjson.loads(k1_late) == {"ref": "K1", "code": "94"}
    assert debit.counts[("post", "K1")] == 1 and credit.counts[("post", "K1")] == 1
    rows = [d for d in deals(ledger) if d["reference"] == "K1"]
    assert [d["status"] for d in rows] == ["committed", "duplicate", "duplicate"]
    original = rows[0]["deal_id"]
    assert rows[2]["response_code"] == "94"
    assert f"duplicate of deal {original}" in rows[2]["reason"] and "retention" in rows[2]["reason"]
    # the horizon survives the next open, so a later repeat is still looked up
    log = TxnLog(log_path(ledger), clock=clock)
    assert log.horizon == pytest.approx(T0 + DAY) and set(log.ends) == {"transfer|K2/20240501"}
    log.close()


async def test_compaction_drops_old_keys_and_the_live_size_shrinks(nursery, tmp_path: Path) -> None:
    program, debit, _ = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        for day in range(40):                                  # 5 keyed deals a day for 40 days
            await ask(sb, *[_req(f"D{day}-{i}") for i in range(5)])
            clock.t += DAY
        log = manager_for(sb.ledger).log
        assert len(log.ends) == 200
    before = log_path(ledger)
    kept_all = TxnLog(before, clock=clock, retention=None)          # what `forever` keeps
    size_all = stored_bytes(kept_all)
    kept_all.close()
    async with serving(program, ledger, clock) as sb:
        log = manager_for(sb.ledger).log
        # finished on days 0..39, now day 40: days 5..39 are within 35 days
        assert len(log.ends) == 175 and log.dropped == 25
        size_kept = stored_bytes(log)
        assert "transfer|D4-0/20240501" not in log.ends and "transfer|D5-0/20240501" in log.ends
    assert size_kept < size_all * 0.9
    assert debit.counts[("post", "D0-0")] == 1


async def test_a_deal_in_flight_is_never_dropped(nursery, tmp_path: Path) -> None:
    counts: Counter = Counter()
    gate = Gate(counts, answer_first=1)
    dport = await json_counterpart(nursery, gate)
    cport = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    from test_txn_flow import ROUTE
    program = compile_text(tmp_path, ROUTE % (dport, cport))        # debit: timeout = 2s
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        (first,) = await ask(sb, _req("F1"))                  # answered, recorded
        c = await Client.open(sb.channel("front").port)
        await c.send(_req("F2"))                              # held by the counterpart: in flight
        await gate.holding.wait()
        mgr = manager_for(sb.ledger)
        clock.t += 100 * DAY
        mgr.log._compact()                                     # a compaction while F2 runs
        assert "transfer|F1/20240501" not in mgr.log.ends     # finished long ago: dropped
        inflight = [p for p in mgr.log.pending.values() if p.begin["key"] == "transfer|F2/20240501"]
        assert len(inflight) == 1 and inflight[0].phases == {"d": "sending"}
        (f2,) = await c.recv(1)                                # the held call times out: compensated
        await c.send(_req("F2"))                              # its key: in the store now
        (f2_again,) = await c.recv(1)
        await c.aclose()
    assert f2_again == f2 and orjson.loads(f2)["code"] == "68"
    assert counts[("post", "F2")] == 1 and counts[("cancel", "F2")] == 1


def test_an_unrecorded_end_stays_past_retention(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=clock, retention=DAY)
    log.append([{"t": "end", "id": "A", "key": "r|a", "status": "committed", "reply": "00", "fin": clock.t},
                {"t": "end", "id": "B", "key": "r|b", "status": "committed", "reply": "00", "fin": clock.t}])
    log.append([{"t": "recorded", "ids": ["A"], "keys": ["r|a"]}])      # B's ledger row: not known yet
    clock.t += 2 * DAY
    log._compact()
    assert set(log.ends) == {"r|b"} and set(log.unrecorded) == {"B"}
    log.close()


def test_a_recorded_end_keeps_only_the_answer_in_memory_and_in_the_compacted_log(tmp_path: Path) -> None:
    """Once its ledger row is committed, a deal's ``end`` is kept for its key only: what answers a
    repeat (id, status, code, reply) and what expires it (fin); the rest is in the ledger row."""
    clock = Clock()
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=clock, retention=DAY)
    full = {"t": "end", "id": "A", "key": "r|a", "status": "committed", "code": "00", "reply": "7b7d",
            "reason": None, "route": "r", "channel": "front", "version": "v" * 64, "at": "2026-11-26T10:00:00",
            "type": "BILL", "ref": "INV-1", "amount": "120.50", "currency": "EUR", "party": "ACME",
            "fin": clock.t}
    log.append([dict(full)])
    assert log.ends["r|a"]["party"] == "ACME"            # not recorded yet: recovery may need all of it
    log.append([{"t": "recorded", "ids": ["A"], "keys": ["r|a"]}])
    answer = {"t": "end", "id": "A", "key": "r|a", "status": "committed", "code": "00", "reply": "7b7d",
              "fin": clock.t, "recorded": True}
    assert log.ends["r|a"] == answer and log.unrecorded == {}
    log.close()
    log = TxnLog(path, clock=clock, retention=DAY)       # read back and compacted
    assert log.ends["r|a"] == answer
    assert b"ACME" not in path.read_bytes() and b"INV-1" not in path.read_bytes()
    log.close()


def test_an_end_from_before_retention_starts_its_time_when_read(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=clock, retention=None)
    log.append([{"t": "end", "id": "A", "key": "r|a", "status": "committed", "reply": "00", "recorded": True}])
    log.close()
    clock.t += 100 * DAY                   # no `fin`: stamped now, kept a full retention from here
    log = TxnLog(path, clock=clock, retention=DAY)
    assert log.ends["r|a"]["fin"] == clock.t
    log.close()
    clock.t += 2 * DAY
    log = TxnLog(path, clock=clock, retention=DAY)
    assert log.ends == {} and log.horizon == clock.t - DAY
    log.close()


def test_parse_retention() -> None:
    assert parse_retention("35d") == 35 * DAY and parse_retention("12h") == 12 * 3600
    assert parse_retention("forever") is None
    for bad in ("10m", "35", "x", ""):
        with pytest.raises(ValueError):
            parse_retention(bad)




async def test_a_repeat_past_retention_over_http_is_409_not_a_bank_error(nursery, tmp_path: Path) -> None:
    """A partner posting a key answered more than the retention ago gets 409 Conflict with the route's
    `94` answer (not run again, nothing to repeat), not 500, which tells a partner "an error in the bank,
    ask it" (docs/services/calling-bsp.md; until 2026-11-27 kind `duplicate` had no HTTP status: 500)."""
    debit, credit = Counterpart(), Counterpart()
    dport = await json_counterpart(nursery, debit.answer)
    cport = await json_counterpart(nursery, credit.answer)
    http_front = 'channel front = http listen { address = "127.0.0.1:0" method = "POST" path = "/transfers" }'
    text = ROUTE.replace('channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }', http_front)
    assert http_front in text
    program = compile_text(tmp_path, text % (dport, cport))
    ledger = tmp_path / "l.duckdb"
    clock = Clock()

    async def post(sb: Switchboard, body: bytes) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(f"http://127.0.0.1:{sb.channel('front').port}/transfers", content=body,
                                     headers={"content-type": "application/json"})

    async with serving(program, ledger, clock) as sb:
        first = await post(sb, _req("K1"))
        clock.t += 10 * DAY
        await post(sb, _req("K2"))
    assert first.status_code == 200 and first.json()["code"] == "00"
    clock.t = T0 + 36 * DAY
    async with serving(program, ledger, clock) as sb:
        late = await post(sb, _req("K1"))
    assert (late.status_code, late.json()) == (409, {"ref": "K1", "code": "94"}), (late.status_code, late.text)
    assert debit.counts[("post", "K1")] == 1
