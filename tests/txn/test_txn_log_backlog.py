"""The entries waiting for a transaction log that cannot be written (a full disk) stay few and bounded, new
work is refused past the bound, and the log catches up by itself once it can be written (engine/txn/backlog.py,
engine/txn/manager.py ``write``; docs/transactions.md "When the log cannot be written for long").

Real engine in process, real TCP counterparts on 127.0.0.1 port 0, real DuckDB ledger; the log is a real
``TxnLog`` whose write descriptor is swapped for a read-only one (``txnkit.Unwritable``: EBADF, as a full
disk gives ENOSPC) at the moment a counterpart receives a call."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import trio

from engine.journal import open_ledger_sync
from engine.txn.log import TxnLog, log_path, read
from safkit import ROUTE as ISO_ROUTE, Host, ask
from test_txn_log_fails_after_call import Bank, _ask
from txnkit import AUDIT_KEY, Client, Counterpart, compile_text, deals, rows, switchboard


class SilentDiskHost(Host):
    """An issuer that never answers the 0200 and withholds every 0430 until ``answer`` is set; the engine's
    log becomes unwritable when the first 0200 arrives."""

    def __init__(self) -> None:
        self.answer = False

        async def ack(n: int, msg: dict) -> bool:
            return self.answer
        super().__init__(ack)
        self.mgr = None
        self.unwritable = None

    async def _one(self, stream, f, lock, msg: dict) -> None:
        if msg["t"] == "0200" and self.unwritable is None:
            from txnkit import Unwritable
            self.unwritable = Unwritable(self.mgr.log)
        await super()._one(stream, f, lock, msg)


async def test_each_reversal_keeps_one_attempt_mark_while_the_log_cannot_be_written(nursery, tmp_path: Path) -> None:
    """A reversal repeated to a silent host adds a ``revtry`` mark per attempt: while the log cannot be
    written they used to pile up in memory, one per attempt, for as long as the fault lasted.  Only the last
    one matters (the attempt number): the list stays the same size however many attempts are made."""
    host = SilentDiskHost()
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    try:
        async with open_ledger_sync(ledger, "journal", audit_key=AUDIT_KEY, keyring=None) as led:
            led.reversal_backoff_cap = 0.02                # repeat quickly: many attempts in a short test
            async with switchboard(compile_text(tmp_path, ISO_ROUTE % (port, "50ms")), led) as sb:
                (queue,) = sb.saf
                host.mgr = mgr = queue.mgr
                first = await ask(sb.channel("pos").port)
                with trio.fail_after(30):                  # a guard against a hang, not a timing
                    while host.reversals < 60:
                        await trio.sleep(0.01)
                waiting = mgr.waiting()
                assert queue.attempts >= 59
                assert waiting < 16, [e.get("t") for e in mgr._lazy]      # not one per attempt
                host.unwritable.restore()                  # room again: the next attempt's mark carries them
                host.answer = True
                with trio.fail_after(10):
                    await queue.wait_empty()
                    while mgr.waiting():
                        await trio.sleep(0.01)
    finally:
        if host.unwritable is not None:
            host.unwritable.restore()
    assert first["39"] == "68"
    (d,) = deals(ledger)
    entries, _ = read(log_path(ledger))                        # before a TxnLog opens (and compacts) it
    assert [e["status"] for e in entries if e.get("t") == "end" and e["id"] == d["deal_id"]] == ["failed"]
    tries = [e["n"] for e in entries if e.get("t") == "revtry" and e["id"] == d["deal_id"]]
    assert len(tries) < 16 and max(tries) >= 60, tries     # the attempts' marks, coalesced
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    assert txlog.reversals == {} and txlog.pending == {}       # acknowledged, recorded: nothing to resume


async def test_past_the_bound_new_requests_are_refused_and_the_log_catches_up_by_itself(
        nursery, tmp_path: Path, caplog) -> None:
    """``later_max`` entries waiting: a new request is refused up front (error reply, failed deal, dead
    letter), its call not sent; once the log can be written again, the entries are written within a second
    or so without any traffic, and new requests are taken again."""
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "A1")          # the last call is out: the rest waits for the log
    async with bank.running(program, ledger) as sb:
        mgr = bank.mgr
        mgr.later_max = 2
        mgr.monotonic = lambda: 0.0                    # every refusal falls in the wait after a failure
        c = await Client.open(sb.channel("front").port)
        first = orjson.loads(await _ask(c, "A1"))      # answered: its end, done and recorded marks wait
        assert mgr.waiting() >= 2
        refused = orjson.loads(await _ask(c, "B1"))
        assert bank.credit.counts[("post", "B1")] == 0 and bank.debit.counts[("post", "B1")] == 0
        bank.restore()                                 # room again; no request comes
        with trio.fail_after(10):                      # a guard against a hang: keep_up tries once a second
            a1: list = []
            while mgr.waiting() or not a1:             # none waits once keep_up's write took them; durable
                await trio.sleep(0.02)                 # once that write is over: read until it is
                entries, _ = read(log_path(ledger))    # A1's answer is durable now, with no traffic
                a1 = [e for e in entries if e.get("t") == "end" and e.get("key") == "transfer|A1"]
        assert a1 and a1[0]["reply"] is not None and a1[0]["status"] == "committed"
        again = orjson.loads(await _ask(c, "B1"))      # taken again
        await c.aclose()
    assert first == {"ref": "A1", "code": "00", "conf": "C-A1-post"}
    assert refused == {"ref": "B1", "code": "96"}
    assert again == {"ref": "B1", "code": "00", "conf": "C-B1-post"}
    by = [(d["reference"], d["status"], d["reason"], d["deal_id"]) for d in deals(ledger)]
    assert [(r, s) for r, s, _, _ in by] == [("A1", "committed"), ("B1", "failed"), ("B1", "committed")]
    reason = by[1][2]
    assert "entries wait to be written to the transaction log (at most 2 before new work is refused: " \
           "ledger.txn_backlog_entries in platform.yaml, raise it" in reason, reason
    assert "request not sent to d" in reason and "EBADF" in reason, reason
    (dead,) = rows(ledger, "SELECT id, error_kind FROM dead_letters")
    assert (dead["id"], dead["error_kind"]) == (by[1][3], "internal")
    said = [r.getMessage() for r in caplog.records if r.name == "bsp.txn"]
    assert sum("entries wait to be written (at most 2 before" in m for m in said) == 1, said      # said once
    assert any("new requests are taken again" in m for m in said), said
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [by[0][3]])
    assert "answer_not_logged" in json.loads(events[-1]["detail"])


async def test_the_tries_let_through_past_the_bound_add_nothing_to_the_waiting_entries(nursery, tmp_path: Path) -> None:
    """Past the bound a write is still let through once a second (it carries the waiting entries, so the log
    catches up as soon as it can).  Such a try by a new request that fails adds nothing to what waits: its
    call is not sent, so its entries (begin, sending) describe nothing that happened and are dropped, and
    its deal is not admitted (no end, no recorded mark).  Here every write is such a try (the clock moves
    5 s per look): what waits stays the same, entry for entry and byte for byte, over many requests."""
    import itertools
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "A1")
    async with bank.running(program, ledger) as sb:
        mgr = bank.mgr
        mgr.later_max = 2
        c = await Client.open(sb.channel("front").port)
        assert orjson.loads(await _ask(c, "A1"))["code"] == "00"
        before = orjson.dumps(mgr._lazy, default=str)
        assert mgr.waiting() >= 2
        clock = itertools.count(mgr.failing[0] + 5, 5)
        mgr.monotonic = lambda: float(next(clock))      # every write falls after the second: each one is tried
        got = [orjson.loads(await _ask(c, f"B{k}")) for k in range(40)]
        assert orjson.dumps(mgr._lazy, default=str) == before
        assert len(mgr._unlogged) == 1
        await c.aclose()
    assert {g["code"] for g in got} == {"96"}
    assert not any(ref.startswith("B") for _, ref in bank.debit.counts | bank.credit.counts)
    reasons = [d["reason"] for d in deals(ledger) if d["reference"].startswith("B")]
    assert len(reasons) == 40 and all("cannot append" in r and "entries wait" not in r for r in reasons), reasons[0]


class Wordy(Counterpart):
    """Answers with a 200 KB memo: the call's ``done`` mark, which carries the decoded reply, is that large."""

    def answer(self, req: dict) -> dict:
        return {**super().answer(req), "memo": "x" * 200_000}


async def test_past_the_byte_bound_new_requests_are_refused_however_few_the_entries(
        nursery, tmp_path: Path, caplog) -> None:
    """The bound counted entries only: an entry carrying a large reply (or request) counted as one, so a few
    thousand of them could hold gigabytes of memory below it.  Past ``later_bytes`` bytes of waiting entries a new
    request is refused up front, as past ``later_max`` entries, and the reason names that bound and where to
    raise it; once the log can be written they are written without traffic and requests are taken again."""
    bank = Bank()
    bank.credit = Wordy()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "A1")
    async with bank.running(program, ledger) as sb:
        mgr = bank.mgr
        assert (mgr.later_max, mgr.later_bytes) == (20_000, 64 << 20)      # the defaults
        mgr.later_bytes = 100_000
        mgr.monotonic = lambda: 0.0                    # every refusal falls in the wait after a failure
        c = await Client.open(sb.channel("front").port)
        first = orjson.loads(await _ask(c, "A1"))      # answered: its end and its 200 KB `done` mark wait
        assert mgr.waiting() < 10 and mgr.waiting_bytes() > 200_000, (mgr.waiting(), mgr.waiting_bytes())
        refused = orjson.loads(await _ask(c, "B1"))
        assert bank.credit.counts[("post", "B1")] == 0 and bank.debit.counts[("post", "B1")] == 0
        bank.restore()                                 # room again; no request comes
        with trio.fail_after(10):                      # a guard against a hang: keep_up tries once a second
            while mgr.waiting():
                await trio.sleep(0.02)
        assert mgr.waiting_bytes() == 0
        again = orjson.loads(await _ask(c, "B1"))
        await c.aclose()
    assert first["code"] == "00" and refused == {"ref": "B1", "code": "96"} and again["code"] == "00"
    (_, b1, _) = deals(ledger)
    assert b1["status"] == "failed" and "request not sent to d" in b1["reason"], b1["reason"]
    assert "entries wait to be written to the transaction log (" in b1["reason"], b1["reason"]
    assert "KiB of them, at most 97.66 KiB before new work is refused: ledger.txn_backlog_bytes in platform.yaml, " \
           "raise it if the engine's memory allows" in b1["reason"], b1["reason"]
    said = [r.getMessage() for r in caplog.records if r.name == "bsp.txn"]
    assert sum("ledger.txn_backlog_bytes in platform.yaml" in m for m in said) == 1, said


async def test_the_bounds_of_the_deployment_file_are_the_serving_managers(nursery, tmp_path: Path) -> None:
    """platform.yaml ``ledger.txn_backlog_entries`` / ``txn_backlog_bytes`` (``bsp run`` hands them to ``run_live``)
    are the bounds of the transaction manager the engine's routes use."""
    from engine.deploy import load_deployment
    from engine.ops.serve import OpsOptions, run_live
    from engine.registry import default_registry
    from engine.txn import backlog

    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    (tmp_path / "platform.yaml").write_text("routes: [test.route]\n"
                                            "ledger: {path: l.duckdb, txn_backlog_entries: 300, txn_backlog_bytes: 3MiB}\n")
    dep = load_deployment(tmp_path / "platform.yaml")
    seen: list = []

    def hook(engine) -> None:
        seen.extend((m.later_max, m.later_bytes) for m in backlog.managers(engine.current.dispatchers.values()))
        engine.drain()

    with trio.fail_after(30):
        await run_live(program, default_registry(), ledger_path=dep.ledger_path, load=lambda: ([], {}),
                       grace=1.0, ops=OpsOptions(hooks=[hook]),
                       txn_backlog=(dep.txn_backlog_entries, dep.txn_backlog_bytes))
    assert seen == [(300, 3 << 20)]
