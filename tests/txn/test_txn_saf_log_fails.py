"""ISO 8583 store and forward while the transaction log cannot be written (a full disk after the 0200 went
out): the reversal is still queued and sent, the host's acknowledgement lands on the deal, the SAF task and
the engine live on, the fault is logged once (no traceback), and the log's ``rev`` / ``revtry`` /
``revack`` / ``revrec`` marks (and the deal's ``end``) are written with the next write that works
(engine/txn/saf.py ``Saf._log``, engine/txn/manager.py ``compensate_step``).

The engine of test_txn_saf.py (tests/txn/safkit.py: in process, real TCP host on 127.0.0.1 port 0, real
journaled DuckDB ledger); the log is made unwritable when the host receives the 0200 (``txnkit.Unwritable``: its real
file's descriptor swapped for a read-only one, EBADF as a full disk gives ENOSPC)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from engine.txn.log import TxnLog, log_path, read
from safkit import ROUTE, Host, ask, serving, story
from txnkit import Unwritable, audit_clean, compile_text, deals, rows


class FullDiskHost(Host):
    """``Host`` (never answers a 0200; acknowledges every reversal), and the engine's log becomes
    unwritable when the first 0200 arrives: from then on nothing the deal does can be logged."""

    def __init__(self) -> None:
        async def ack(n: int, msg: dict) -> bool:
            return True
        super().__init__(ack)
        self.mgr = None
        self.unwritable: Unwritable | None = None

    async def _one(self, stream, f, lock, msg: dict) -> None:
        if msg["t"] == "0200" and self.unwritable is None:
            self.unwritable = Unwritable(self.mgr.log)
        await super()._one(stream, f, lock, msg)


async def test_reversals_are_sent_and_acknowledged_while_the_log_cannot_be_written(
        nursery, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    host = FullDiskHost()
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    try:
        async with serving(compile_text(tmp_path, ROUTE % (port, "300ms")), ledger) as sb:
            (queue,) = sb.saf
            host.mgr = queue.mgr
            first = await ask(sb.channel("pos").port)
            with trio.fail_after(10):                  # a guard against a hang, not a timing
                await queue.wait_empty()               # acknowledged and on the deal, nothing of it logged
            assert queue.acknowledged == 1 and queue.items == {}
            unlogged = read(log_path(ledger))[0]
            host.unwritable.restore()                  # room again
            second = await ask(sb.channel("pos").port)     # its first write carries the first deal's marks
            with trio.fail_after(10):
                await queue.wait_empty()
            assert queue._nursery is not None          # the SAF task is still at work
    finally:
        if host.unwritable is not None:
            host.unwritable.restore()
    assert first["39"] == "68" and second["39"] == "68"
    # each reversed (a 0430 later than the 300 ms wait on a busy machine is not taken: a 0421 follows)
    seen = [m["t"] for m in host.seen]
    assert seen.count("0200") == 2 and seen.count("0420") == 2 and set(seen) <= {"0200", "0420", "0421"}, seen
    assert not any(e.get("t") in ("rev", "revtry", "revack", "revrec", "end") for e in unlogged)
    d1, d2 = deals(ledger)
    assert (d1["status"], d1["response_code"]) == ("failed", "68")
    steps, events = story(ledger, d1["deal_id"])
    names = [e[2] for e in events]
    assert names[:5] == ["accepted", "calling auth", "reversal queued", "failed", "reversal 0420"]
    assert names[-1] == "reversed auth" and steps[-1][1:] == ("reversal", "acknowledged")
    detail = {r["to_state"]: json.loads(r["detail"]) for r in rows(
        ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? AND detail IS NOT NULL",
        [d1["deal_id"]])}
    assert "EBADF" in detail["reversal queued"]["not_logged"]
    assert "written with the next write that works" in detail["failed"]["answer_not_logged"]
    entries, _ = read(log_path(ledger))
    marks = [e["t"] for e in entries if e.get("id") == d1["deal_id"] and e.get("t", "").startswith("rev")]
    assert marks == ["rev", "revtry", "revack", "revrec"], marks
    assert [e["status"] for e in entries if e.get("t") == "end" and e["id"] == d1["deal_id"]] == ["failed"]
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    assert txlog.reversals == {} and txlog.pending == {}     # a restart sends nothing again
    audit_clean(ledger)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["bsp.txn"], [r.getMessage() for r in errors]   # the fault, once
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert any("transaction log: write works again" in r.getMessage() for r in caplog.records)


KEYED = ROUTE.replace('deal PURCHASE { ref = msg["11"]  amount = 0 }',
                      'deal PURCHASE { ref = msg["11"]  amount = 0  key = msg["11"] }')
assert KEYED != ROUTE


@pytest.mark.parametrize("route", [ROUTE, KEYED], ids=["light", "keyed"])
async def test_a_reversal_not_acknowledged_before_a_restart_the_log_missed_is_sent_after_it(
        nursery, tmp_path: Path, route: str) -> None:
    """The engine stops (or dies) before the log works again and before the host acknowledged: the log
    holds the deal in flight (no ``end``, no ``rev``), the ledger holds its row (``reversal queued``).
    The restart must not take the row as the end of it: the reversal is queued again and sent until
    acknowledged (it used to be dropped: the 0200 the host may have approved was never reversed)."""
    restarted = trio.Event()
    host = FullDiskHost()

    async def ack(n: int, msg: dict) -> bool:
        return restarted.is_set()                      # nothing is acknowledged before the restart
    host.ack = ack
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    program = compile_text(tmp_path, route % (port, "300ms"))
    try:
        async with serving(program, ledger) as sb:
            (queue,) = sb.saf
            host.mgr = queue.mgr
            answer = await ask(sb.channel("pos").port)
            with trio.fail_after(10):
                await host.saw_reversal.wait()         # sent, not acknowledged; the engine stops
    finally:
        if host.unwritable is not None:
            host.unwritable.restore()
    assert answer["39"] == "68"
    before = len(host.seen)
    restarted.set()
    async with serving(program, ledger) as sb:
        (queue,) = sb.saf
        pending = queue.status()["pending"]
        with trio.fail_after(10):
            await queue.wait_empty()
    assert pending == 1
    after = [m["t"] for m in host.seen[before:]]
    assert after and set(after) == {"0421"} and host.acked >= 1       # a repeat (again only if the 0430 was late)
    (deal,) = deals(ledger)                                   # no second row
    steps, events = story(ledger, deal["deal_id"])
    assert [e[2] for e in events][-1] == "reversed auth"
    assert steps[-1][2] == "acknowledged"
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    assert txlog.reversals == {} and txlog.pending == {}
    audit_clean(ledger)
