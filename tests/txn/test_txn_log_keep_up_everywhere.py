"""Wherever a transaction manager serves, what waits for a log that could not be written is written by itself
once the log has room, with no traffic (engine/txn/backlog.py ``keep_all_up``, docs/transactions.md "When the log
cannot be written for long").

* ``bsp test`` and ``bsp replay`` run their isolated engine (engine/replay/virtual.py) as a ``Switchboard.run``,
  which starts the task: shown here through that engine, with virtual channels.
* ``bsp dead retry`` in its own process feeds its switchboard's dispatchers without running it: it started no
  such task, so an answer the log refused during a retry was never written before the command ended (the
  deal stayed in flight in the log until the next start sorted it out from the ledger row).

The log is a real ``TxnLog`` whose write descriptor is swapped for a read-only one (``txnkit.Unwritable``:
EBADF, as a full disk gives ENOSPC) when the credit call arrives, and put back once the deal's answer waits."""
from __future__ import annotations


from pathlib import Path
from types import SimpleNamespace

import orjson
import trio

from engine.registry import default_registry
from engine.replay.context import ExchangeCtx
from engine.replay.virtual import isolated_engine
from engine.txn.log import TxnLog, log_path, read
from engine.txn.manager import LIVE, manager_for
from txnkit import Client, Counterpart, Unwritable, compile_text, deals, json_counterpart, running
from kit import TRANSFER_ROUTE  # noqa: E402  (tests/engine, put on the path by txnkit)


def _ends(ledger: Path, deal_id: str) -> list[dict]:
    entries, _ = read(log_path(ledger))
    return [e for e in entries if e.get("t") == "end" and e["id"] == deal_id]


async def test_the_engine_of_bsp_test_and_replay_writes_what_waits_without_traffic(tmp_path: Path) -> None:
    program = compile_text(tmp_path, TRANSFER_ROUTE % (1, 2))          # virtual channels: no ports
    box: dict = {}

    async def answer(channel: str, call, ctx) -> bytes:
        req = orjson.loads(call.request)
        if channel == "credit" and "broken" not in box:
            box["broken"] = Unwritable(box["mgr"].log)     # the call is out: the answer must wait for the log
        return orjson.dumps({"status": "OK", "ref": req["ref"]})

    work = tmp_path / "work"
    work.mkdir()
    async with isolated_engine(program, default_registry(), answer, work) as engine:
        box["mgr"] = mgr = manager_for(engine.switchboard.ledger)
        ctx = ExchangeCtx(exchange=1, channel="front", conn="1", request=b'{"ref":"A1","amount":1}')
        reply = await engine.send("front", ctx.request, ctx)
        assert orjson.loads(reply)["code"] == "00"
        assert mgr.failing is not None and mgr.waiting()             # A1's answer waits for the log
        box["broken"].restore()                                      # room again; no request comes
        with trio.fail_after(10):                                    # a guard: keep_up tries once a second
            while mgr.waiting():
                await trio.sleep(0.02)
    (d,) = deals(work / "ledger.duckdb")
    assert [e["status"] for e in _ends(work / "ledger.duckdb", d["deal_id"])] == ["committed"]


async def test_bsp_dead_retry_writes_what_waits_before_it_ends(nursery, tmp_path: Path) -> None:
    from engine.commands.dead import _query, _retry_in_process

    debit, credit = Counterpart(), Counterpart(refuse={"R1"})
    box: dict = {}

    def credit_answer(req: dict) -> dict:
        if "before" in box and "broken" not in box:          # the retry's credit call is out: break its log
            box["mgr"] = next(m for m in list(LIVE)
                              if all(m is not b for b in box["before"]) and Path(m.ledger.path) == ledger)
            box["broken"] = Unwritable(box["mgr"].log)
        return credit.answer(req)

    # without its key: a retried dead letter of a keyed deal is that key's duplicate (the key store answers it)
    unkeyed = TRANSFER_ROUTE.replace("  key = msg.ref", "")
    program = compile_text(tmp_path, unkeyed % (await json_counterpart(nursery, debit.answer),
                                                await json_counterpart(nursery, credit_answer)))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:                       # R1 refused by the credit: a dead letter
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref":"R1","amount":1}')
        (first,) = await c.recv_json()
        await c.aclose()
    assert first["code"] == "05"
    (letter,) = _query(ledger, limit=None, with_raw=True)
    credit.refuse.clear()                                            # it would go through now
    # the objects, not their id()s (a freed manager's id may be the new one's); found when the retry's credit
    # call comes, not by polling: a loop of sleep(0) holds the GIL against the ledger's DuckDB thread
    box["before"] = list(LIVE)

    async def break_and_mend() -> None:
        """Put the log's descriptor back once the retried deal's answer waits for it."""
        with trio.fail_after(10):
            while "broken" not in box:
                await trio.sleep(0.01)
            await box["mgr"].behind.wait()                           # a write failed: entries wait
        box["broken"].restore()

    async with trio.open_nursery() as n:
        n.start_soon(break_and_mend)
        keys = SimpleNamespace(keyring=None, audit_key=None)
        (res,) = await _retry_in_process(ledger, program, default_registry(), {}, [letter], keys)
        n.cancel_scope.cancel()          # the retry ended: its outcome, not the helper's wait, tells what happened
    assert res.ok, res.outcome
    assert credit.counts[("post", "R1")] == 2 and "broken" in box
    retried = [d for d in deals(ledger) if d["status"] == "committed"]
    assert len(retried) == 1
    assert [e["status"] for e in _ends(ledger, retried[0]["deal_id"])] == ["committed"]   # written before the end
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    assert retried[0]["deal_id"] not in txlog.pending
