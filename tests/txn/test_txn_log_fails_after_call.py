"""A transaction log that cannot be written AFTER a call went out (a full disk in the middle of a deal):
what happened at the counterpart is never answered as if it had not (engine/txn/manager.py ``fill``,
``compensate_step``, ``write``; engine/txn/recovery.py ``_answered_rows``).

The log is a real ``TxnLog`` on a real file whose write descriptor is swapped for a read-only one at the
moment a counterpart receives a call (``txnkit.Unwritable``: its ``pwrite`` fails with EBADF as a full
disk fails with ENOSPC); real engine in process, real TCP counterparts on 127.0.0.1 port 0, real DuckDB
ledger.  No sleep decides an outcome: each step waits for the reply it needs."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import trio

from engine.txn.answers import read_all
from engine.txn.log import TxnLog, log_path, read
from engine.txn.manager import manager_for
from txnkit import Client, Counterpart, Unwritable, compile_text, deals, json_counterpart, rows, running
from kit import TRANSFER_ROUTE  # noqa: E402  (tests/engine, put on the path by txnkit)

ROUTE = TRANSFER_ROUTE


def _req(ref: str) -> bytes:
    return b'{"ref":"%s","amount":10.00}' % ref.encode()


class Bank:
    """The debit and credit counterparts; the log becomes unwritable when ``breaks_at`` (op, ref) reaches
    one of them (the call went out: the engine cannot take it back)."""

    def __init__(self, refuse_credit: set[str] = frozenset()) -> None:
        self.debit, self.credit = Counterpart(), Counterpart(set(refuse_credit))
        self.breaks_at: tuple[str, str, str] | None = None     # (counterpart, op, ref)
        self.mgr = None
        self.unwritable: Unwritable | None = None

    def _hook(self, who: str, req: dict) -> None:
        if self.breaks_at == (who, req.get("op"), req.get("ref")) and self.unwritable is None:
            self.unwritable = Unwritable(self.mgr.log)

    def restore(self) -> None:
        if self.unwritable is not None:
            self.unwritable.restore()

    @asynccontextmanager
    async def running(self, program: Any, ledger: Path) -> AsyncIterator[Any]:
        """``running`` with the log breaking at ``breaks_at``; its real descriptor put back on the way out."""
        try:
            async with running(program, ledger) as sb:
                self.mgr = manager_for(sb.ledger)
                yield sb
        finally:
            self.restore()

    async def serve(self, nursery, tmp_path: Path):
        def debit(req: dict) -> dict:
            self._hook("debit", req)
            return self.debit.answer(req)

        def credit(req: dict) -> dict:
            self._hook("credit", req)
            return self.credit.answer(req)
        self.debit_port = await json_counterpart(nursery, debit)
        self.credit_port = await json_counterpart(nursery, credit)
        return compile_text(tmp_path, ROUTE % (self.debit_port, self.credit_port))


async def _ask(c: Client, ref: str) -> bytes:
    await c.send(_req(ref))
    with trio.fail_after(10):                 # a guard against a hang, not a timing
        (raw,) = await c.recv(1)
    return raw


def _in_flight(ledger: Path) -> set[str]:
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    return set(txlog.pending)


def _events(ledger: Path, deal_id: str) -> list[dict]:
    return rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [deal_id])


async def test_an_answer_the_log_cannot_take_is_kept_repeated_from_memory_and_logged_with_the_next_write(
        nursery, tmp_path: Path) -> None:
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "A1")          # the last call is out: only the answer is left to log
    async with bank.running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        first = await _ask(c, "A1")
        again = await _ask(c, "A1")                # the log still cannot be written
        assert bank.unwritable is not None and bank.unwritable.fd is not None
        bank.restore()                             # room again: the next write carries A1's end
        other = orjson.loads(await _ask(c, "B1"))
        await c.aclose()
    assert orjson.loads(first) == {"ref": "A1", "code": "00", "conf": "C-A1-post"}   # the real answer
    assert again == first                              # answered from memory: not run again
    assert other == {"ref": "B1", "code": "00", "conf": "C-B1-post"}
    assert bank.debit.counts[("post", "A1")] == 1 and bank.credit.counts[("post", "A1")] == 1
    assert not any(op == "cancel" for op, _ in bank.debit.counts | bank.credit.counts)
    by = [(d["reference"], d["status"]) for d in deals(ledger)]
    assert by == [("A1", "committed"), ("A1", "duplicate"), ("B1", "committed")]
    a1 = deals(ledger)[0]["deal_id"]
    last = _events(ledger, a1)[-1]
    assert last["to_state"] == "committed"
    note = json.loads(last["detail"])["answer_not_logged"]
    assert "cannot append" in note and "EBADF" in note and "written with the next write that works" in note
    entries, _ = read(Path(f"{ledger}.txn"))
    (end,) = [e for e in entries if e.get("t") == "end" and e["id"] == a1]
    assert (end["status"], end["key"]) == ("committed", "transfer|A1") and end["reply"] is not None
    async with running(program, ledger) as sb:         # the key store has it for good: same answer
        c = await Client.open(sb.channel("front").port)
        after = await _ask(c, "A1")
        await c.aclose()
    assert after == first and bank.debit.counts[("post", "A1")] == 1


async def test_a_restart_before_the_log_works_again_finds_the_row_and_runs_nothing_twice(
        nursery, tmp_path: Path) -> None:
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "A1")
    async with bank.running(program, ledger) as sb:     # stopped while the log still cannot be written
        c = await Client.open(sb.channel("front").port)
        sent = await _ask(c, "A1")
        await c.aclose()
    first = orjson.loads(sent)
    assert first == {"ref": "A1", "code": "00", "conf": "C-A1-post"}
    (a1,) = deals(ledger)
    entries, _ = read(Path(f"{ledger}.txn"))
    assert not any(e.get("t") == "end" for e in entries)          # in flight, as far as the log knows
    async with running(program, ledger) as sb:         # recovery: the row says it was answered
        c = await Client.open(sb.channel("front").port)
        repeated = await _ask(c, "A1")
        await c.aclose()
    # `on restart compensate` would cancel both calls of a deal in flight: this one is finished
    assert not any(op == "cancel" for op, _ in bank.debit.counts | bank.credit.counts), (bank.debit.counts,
                                                                                        bank.credit.counts)
    assert bank.debit.counts[("post", "A1")] == 1
    d = deals(ledger)
    assert [(x["deal_id"], x["status"]) for x in d if x["deal_id"] == a1["deal_id"]] == \
        [(a1["deal_id"], "committed")]                 # no second row for it
    assert [x["status"] for x in d] == ["committed", "duplicate"]
    # its reply bytes were not logged, but its row's response column holds them as sent (plain JSON, nothing
    # classified: the event `reply_in_row`): the repeat gets the original answer
    assert repeated == sent                            # byte for byte
    assert "original answer repeated" in d[1]["reason"], d[1]["reason"]
    last = _events(ledger, a1["deal_id"])[-1]
    assert json.loads(last["detail"])["reply_in_row"] is True
    assert _in_flight(ledger) == set()
    entries, _ = read(Path(f"{ledger}.txn"))
    entries += read_all(Path(f"{ledger}.txn"))          # recorded answers: in the answers files since compacted
    (end,) = [e for e in entries if e.get("t") == "end" and e["id"] == a1["deal_id"]]
    assert end["status"] == "committed" and bytes.fromhex(end["reply"]) == sent


async def test_a_restart_before_the_log_works_again_repeats_no_answer_the_row_keeps_masked(
        nursery, tmp_path: Path) -> None:
    """The same, on a route whose reply has a classified field: the row keeps the reply's values masked, not
    its bytes, and the log never had them, so the original answer is nowhere to be read again: a repeat is
    not run and fails ``duplicate`` (94), saying the original ended without an answer to repeat."""
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    classified = ROUTE.replace("format J = json", 'format J = json\nformat R = json classify ["conf:personal"]')
    classified = classified.replace('reply J { ref = msg.ref  code = "00"  conf = d.conf }',
                                    'reply R { ref = msg.ref  code = "00"  conf = d.conf }')
    assert classified.count("format R") == 1 and "reply R" in classified
    program = compile_text(tmp_path, classified % (bank.debit_port, bank.credit_port))
    bank.breaks_at = ("credit", "post", "A1")
    async with bank.running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        first = orjson.loads(await _ask(c, "A1"))
        await c.aclose()
    assert first == {"ref": "A1", "code": "00", "conf": "C-A1-post"}
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        repeat = orjson.loads(await _ask(c, "A1"))
        await c.aclose()
    assert repeat == {"ref": "A1", "code": "94"}
    d = deals(ledger)
    assert [x["status"] for x in d] == ["committed", "duplicate"]
    assert "the original ended committed without an answer to repeat" in d[1]["reason"]
    assert "reply_in_row" not in json.loads(_events(ledger, d[0]["deal_id"])[-1]["detail"])
    assert bank.debit.counts[("post", "A1")] == 1 and bank.credit.counts[("post", "A1")] == 1


async def test_compensation_marks_the_log_cannot_take_do_not_stop_the_deal_nor_run_twice_on_restart(
        nursery, tmp_path: Path) -> None:
    bank = Bank(refuse_credit={"T2"})
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", "T2")          # refused, with the debit done: it must be cancelled
    async with bank.running(program, ledger) as sb:     # stopped while the log still cannot be written
        c = await Client.open(sb.channel("front").port)
        bad = orjson.loads(await _ask(c, "T2"))
        await c.aclose()
    assert bad == {"ref": "T2", "code": "05"}
    assert bank.debit.counts[("cancel", "T2")] == 1 and bank.credit.counts[("cancel", "T2")] == 0
    (t2,) = deals(ledger)
    assert t2["status"] == "failed"
    steps = rows(ledger, "SELECT step, outcome FROM deal_steps WHERE deal_id = ? ORDER BY seq", [t2["deal_id"]])
    assert [(s["step"], s["outcome"]) for s in steps][-2:] == [("c", "refused"), ("d.compensate", "ok")]
    names = [e["to_state"] for e in _events(ledger, t2["deal_id"])]
    assert names == ["accepted", "calling d", "calling c", "compensated d", "failed"]
    async with running(program, ledger) as sb:         # recovery: `on restart compensate` must not run again
        pass
    assert bank.debit.counts[("cancel", "T2")] == 1 and bank.credit.counts[("cancel", "T2")] == 0
    assert [x["deal_id"] for x in deals(ledger)] == [t2["deal_id"]]
    assert _in_flight(ledger) == set()


async def test_a_failed_round_puts_the_pending_done_and_recorded_marks_back_for_the_next_write(
        nursery, tmp_path: Path) -> None:
    bank = Bank()
    program = await bank.serve(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("debit", "post", "D1")           # the debit is out; the credit's `sending` is refused
    async with bank.running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        ok = orjson.loads(await _ask(c, "A1"))     # its `recorded` mark waits for the next write
        bad = orjson.loads(await _ask(c, "D1"))    # that write fails: D1's credit is not sent
        bank.restore()
        last = orjson.loads(await _ask(c, "E1"))   # carries what the failed round could not write
        await c.aclose()
    assert ok["code"] == "00" and last["code"] == "00"
    assert bad == {"ref": "D1", "code": "96"}
    assert bank.credit.counts[("post", "D1")] == 0                                # not sent
    assert bank.debit.counts[("post", "D1")] == 1 and bank.debit.counts[("cancel", "D1")] == 1   # undone
    by = {d["reference"]: d for d in deals(ledger)}
    assert by["D1"]["status"] == "failed" and "request not sent to c" in by["D1"]["reason"]
    entries, _ = read(Path(f"{ledger}.txn"))
    recorded = {i for e in entries if e.get("t") == "recorded" for i in e["ids"]}
    assert by["A1"]["deal_id"] in recorded              # the mark of the failed round, written later
    d1 = by["D1"]["deal_id"]
    phases = [(e["step"], e["phase"]) for e in entries if e.get("t") == "step" and e["id"] == d1]
    # the compensation's ``compensating`` mark (written before it left, the log still refusing it: it waited)
    assert phases == [("d", "sending"), ("d", "done"), ("d", "compensating"), ("d", "compensated")], phases
    assert [e["status"] for e in entries if e.get("t") == "end" and e["id"] == d1] == ["failed"]


BOOK = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    %s
}
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply J { ref = msg.ref  code = "00"  booking = uuid() }
    %s
}
"""


async def _book(tmp_path: Path, channel_error: str, route_error: str) -> tuple[list[dict], list[dict]]:
    """A keyed route without calls: its ``end`` is all it logs.  The log cannot be written for the first
    N1, then can: the second N1 runs as a new deal (the first left nothing anywhere)."""
    ledger = tmp_path / "l.duckdb"
    got = []
    async with running(compile_text(tmp_path, BOOK % (channel_error, route_error)), ledger) as sb:
        unwritable = Unwritable(manager_for(sb.ledger).log)
        try:
            c = await Client.open(sb.channel("front").port)
            with trio.fail_after(10):
                await c.send(b'{"ref": "N1", "amount": 12.50}')
                got += await c.recv_json(1)
                unwritable.restore()
                await c.send(b'{"ref": "N1", "amount": 12.50}')
                got += await c.recv_json(1)
            await c.aclose()
        finally:
            unwritable.restore()
    return got, deals(ledger)


async def test_a_keyed_deal_without_calls_whose_answer_cannot_be_logged_fails_and_frees_its_key(
        tmp_path: Path) -> None:
    got, d = await _book(tmp_path, "on error reply J { code = error.code }", "")
    assert got[0] == {"code": "96"} and got[1]["code"] == "00" and got[1]["booking"]
    assert [(x["reference"], x["status"]) for x in d] == [("N1", "failed"), ("N1", "committed")]
    assert "the deal's answer could not be logged, so nothing was done and it failed" in d[0]["reason"]
    assert "EBADF" in d[0]["reason"]
    (dead,) = rows(tmp_path / "l.duckdb", "SELECT id, error_kind FROM dead_letters")
    assert (dead["id"], dead["error_kind"]) == (d[0]["deal_id"], "internal")
    names = [e["to_state"] for e in _events(tmp_path / "l.duckdb", d[0]["deal_id"])]
    assert names == ["failed"]                      # never accepted: its row names no key


async def test_such_a_deal_gets_its_routes_on_error_reply(tmp_path: Path) -> None:
    """The route's own ``on error reply`` answers it (it used to be left without any answer: only a
    channel's error reply was built, and the client waited until its own timeout)."""
    got, d = await _book(tmp_path, "", "on error reply J { ref = msg.ref  code = error.code }")
    assert got[0] == {"ref": "N1", "code": "96"} and got[1]["code"] == "00"
    assert [(x["reference"], x["status"]) for x in d] == [("N1", "failed"), ("N1", "committed")]
    assert "the deal's answer could not be logged" in d[0]["reason"]
