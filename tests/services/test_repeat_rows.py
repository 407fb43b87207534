"""What the ledger records for a repeated fund subscription (routes/fund_subscription, deal key
trace number + trade date), and how the demo's / soak's lost count (engine.sim.ledger_count) reads it.

A soak under heavy load reported one fund_subscription repeat "lost: no duplicate deal row" although it
was answered.  The paths a repeat can take, each driven here on the real engine over real sockets with a
real DuckDB ledger:

* its original is still in flight (the fund company has not answered) when the repeat arrives: the repeat
  waits for it and is recorded ``duplicate``, with the original's answer, nothing called again;
* its original's debit never left (the core account system unreachable, 91): nothing of the deal reached
  a counterpart, so the key is freed (engine.txn.keyhold) and the repeat runs as a new deal: recorded with
  a row of its own (not ``duplicate``), its ``accepted`` event naming the freed key.  That is the soak's
  "lost" repeat: answered, and recorded, but by a row of its own.  The lost count now finds it there.
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import trio
import trio.testing

from dsl.clock import engine_clock, parse_instant
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.ledger_count import SentRequest, count_lost, ledger_rows
from engine.sim.services import fund_subscription
from engine.sim.services.catalog import route_files
from engine.sim.services.counterpart import CounterpartSim
from engine.sim.services.harness import running_services
from engine.sim.services.model import run_tag
from engine.sim.services.registry import services_registry
from engine.sim.services.sims import service_sims
from formats.framing import make_framer
from tests.services.test_deal_keys import _rows

SERVICE = fund_subscription.SERVICE
AT = parse_instant("2026-11-25T02:00:00Z")[0]     # a dealing day, 10:00 in Shanghai (tests/services/test_deal_keys.py)


@pytest.fixture(autouse=True)
def _engine_clock_at():
    with engine_clock(AT):
        yield


class Down:
    """A counterpart whose port is bound and not listening: every connect is refused, nothing is sent."""

    def __init__(self) -> None:
        self.port = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket()
        with sock:
            await sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            task_status.started(self.port)
            await trio.sleep_forever()


class Gated(CounterpartSim):
    """The fund company simulator, answering only once ``gate`` is set; ``arrived`` set at the first request."""

    def __init__(self, sim: CounterpartSim) -> None:
        super().__init__(sim.name, sim.request_codec, sim.reply_codec, sim.answer_fn, framing=sim.framing,
                         ref=sim.ref_of)
        self.gate, self.arrived = trio.Event(), trio.Event()

    async def _conn(self, stream: trio.SocketStream) -> None:
        framer = make_framer(self.framing)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                frames = framer.feed(data)
                if frames:
                    self.arrived.set()
                    await self.gate.wait()
                    await stream.send_all(b"".join(framer.frame(self.reply_frame(p)) for p in frames))


def _program() -> tuple[Any, Any]:
    registry = services_registry()
    res = compile_paths(route_files(SERVICE.name), registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    return res.program, registry


def _request() -> Any:
    return SERVICE.make("good", 1, random.Random("repeat-rows"), run_tag())


async def _ask(port: int, payload: bytes) -> bytes:
    tx, rx = make_framer(SERVICE.framing), make_framer(SERVICE.framing)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(tx.frame(payload))
        with trio.fail_after(60):       # a hang guard, not a timing
            while True:
                data = await stream.receive_some(65536)
                assert data, "the engine closed the connection"
                got = rx.feed(data)
                if got:
                    return got[0]


def _count(path: Any, version: str, since: dt.datetime, ref: str, replies: list[bytes]) -> Any:
    keys, dups = ledger_rows(path, version, since)
    sent = [SentRequest(SERVICE.name, SERVICE.inbound, ref, bool(replies[0])),
            SentRequest(SERVICE.name, SERVICE.inbound, ref, bool(replies[1]), repeat=True)]
    return count_lost(sent, keys, duplicates=dups)


async def test_a_repeat_while_its_original_is_in_flight_is_recorded_as_a_duplicate(tmp_path):
    program, registry = _program()
    req = _request()
    path, since = tmp_path / "ledger.duckdb", dt.datetime.now(dt.timezone.utc)
    async with open_ledger(path, audit_key=None) as ledger:
        await ledger.record_config(program.version, program.sources)
        from engine.runtime.binder import Binder
        fundco = Gated(dict(service_sims(SERVICE, Binder(program, registry).codec))["fsub_fundco"])
        async with running_services(program, registry, ledger, [SERVICE], extra_sims={"fsub_fundco": fundco}) as rig:
            payload = rig.switchboard.ctx.codec(SERVICE.request_format).encode(req.values)
            port, replies = rig.port(SERVICE.inbound), [b"", b""]

            async def ask(i: int) -> None:
                replies[i] = await _ask(port, payload)

            async with trio.open_nursery() as n:
                n.start_soon(ask, 0)
                await fundco.arrived.wait()          # the original's order is at the fund company, unanswered
                n.start_soon(ask, 1)
                await trio.testing.wait_all_tasks_blocked(0.05)     # the repeat waits for its original
                fundco.gate.set()
            core = rig.sims["fsub_core"]
    assert replies[0] == replies[1] and replies[0]
    assert core.calls == {req.ref: 1} and fundco.calls == {req.ref: 1}
    rows = _rows(path, req.ref)
    assert [r["status"] for r in rows] == ["committed", "duplicate"], rows
    assert f"duplicate of deal {rows[0]['deal_id']}" in rows[1]["reason"]
    acc = _count(path, program.version, since, req.ref, replies)
    assert (acc.lost, acc.in_ledger, acc.ran_again) == (0, 2, 0), acc.lost_examples


async def _sent_twice(tmp_path: Any, down: str) -> tuple[Any, Any, Any, Any, list[bytes], dict[str, Any]]:
    """The same subscription sent twice, one after the other, with counterpart ``down`` unreachable: both
    answered 91.  Returns (program, ledger path, start time, request, replies, simulators)."""
    program, registry = _program()
    req = _request()
    path, since = tmp_path / "ledger.duckdb", dt.datetime.now(dt.timezone.utc)
    async with open_ledger(path, audit_key=None) as ledger:
        await ledger.record_config(program.version, program.sources)
        async with running_services(program, registry, ledger, [SERVICE], extra_sims={down: Down()}) as rig:
            payload = rig.switchboard.ctx.codec(SERVICE.request_format).encode(req.values)
            port = rig.port(SERVICE.inbound)
            replies = [await _ask(port, payload), await _ask(port, payload)]
            reply_codec = rig.switchboard.ctx.codec(SERVICE.reply_format)
            sims = dict(rig.sims)
    assert [SERVICE.code_of(reply_codec.decode(r)) for r in replies] == ["91", "91"]
    return program, path, since, req, replies, sims


async def test_a_repeat_whose_original_never_left_runs_again_and_is_counted_by_its_own_row(tmp_path):
    program, path, since, req, replies, sims = await _sent_twice(tmp_path, "fsub_core")
    fundco = sims["fsub_fundco"]
    assert fundco.requests == 0
    rows = _rows(path, req.ref)
    # every reply has its deal row: the repeat's is its own (a new deal), not a duplicate
    assert [r["status"] for r in rows] == ["failed", "failed"], rows
    assert rows[0]["deal_id"] != rows[1]["deal_id"]
    key = f"settled_subscription|{req.values['trace_no'].strip()}/{req.values['trade_date']}"
    for r in rows:
        assert ("accepted", {"key_freed": key}) in r["events"], r["events"]
    acc = _count(path, program.version, since, req.ref, replies)
    assert (acc.lost, acc.in_ledger, acc.ran_again) == (0, 2, 1), acc.lost_examples


def test_the_count_takes_a_repeat_by_its_own_row_only_beyond_its_originals():
    """A key with one row of another status (the original's) leaves its repeat lost; a second such row is the
    repeat's own (it ran again); a set of keys (no counts) never stands for a repeat."""
    from collections import Counter
    sent = [SentRequest("s", "c", "K", True), SentRequest("s", "c", "K", True, repeat=True)]
    lost = count_lost(sent, Counter({("c", "K"): 1}), duplicates={})
    assert (lost.lost, lost.ran_again) == (1, 0)
    assert "no duplicate deal row and no deal row of its own" in lost.lost_examples[0]
    ran = count_lost(sent, Counter({("c", "K"): 2}), duplicates={})
    assert (ran.lost, ran.in_ledger, ran.ran_again) == (0, 2, 1)
    dup = count_lost(sent, Counter({("c", "K"): 2}), duplicates={("c", "K"): 1})
    assert (dup.lost, dup.ran_again) == (0, 0)      # a duplicate row first: the extra row is not its
    assert count_lost(sent, {("c", "K")}, duplicates={}).lost == 1


async def test_a_repeat_whose_order_never_left_and_debit_was_cancelled_runs_again_by_its_own_row(tmp_path):
    """The fund company unreachable: the debit is made, the order never leaves (91), the debit's cancel is
    accepted, so nothing of the deal stays and the key is freed: the repeat debits (and cancels) again, as a
    new deal with a row of its own, which the lost count finds."""
    program, path, since, req, replies, sims = await _sent_twice(tmp_path, "fsub_fundco")
    core = sims["fsub_core"]
    assert core.calls == {req.ref: 2, f"{req.ref} cancel": 2}
    rows = _rows(path, req.ref)
    assert [r["status"] for r in rows] == ["failed", "failed"], rows
    acc = _count(path, program.version, since, req.ref, replies)
    assert (acc.lost, acc.in_ledger, acc.ran_again) == (0, 2, 1), acc.lost_examples


async def test_the_demo_counts_a_repeat_that_ran_again_apart_not_as_another_reply_or_paid_twice(tmp_path):
    """`make demo`'s check: a repeat answered otherwise than its original, or a reference that reached a
    counterpart twice, is a defect, unless the ledger records why it is right: the original freed its key (its
    ``accepted`` event names it ``key_freed``), so the repeat ran again as a new deal (here the debit made again
    after its cancel: the core system saw the reference twice, the deal once each).  Counted apart; a repeat of a
    key nothing freed stays a defect."""
    from engine.sim.ledger_count import repeat_marks, split_repeats, split_twice
    from engine.sim.summary import repeats_line

    program, path, since, req, replies, sims = await _sent_twice(tmp_path, "fsub_fundco")
    marks = repeat_marks(path, program.version, since)
    assert marks.freed == {(SERVICE.inbound, req.ref): 2} and not marks.past_retention
    calls = [(name, ref, n) for name, sim in sims.items() for ref, n in getattr(sim, "calls", {}).items() if n > 1]
    assert sorted(c[1] for c in calls) == [req.ref, f"{req.ref} cancel"]
    bad, again = split_twice(calls, marks)
    assert (bad, len(again)) == ([], 2)
    # with another reply than the original's (the counterpart back for the repeat: committed after a 91)
    split = split_repeats([(SERVICE.inbound, req.ref, True, "the repeat"),
                           (SERVICE.inbound, "NEVER-FREED", True, "another"),
                           (SERVICE.inbound, "SAME", False, "same")], marks)
    assert (split.same, split.ran_again, split.past_retention, split.differs) == (1, 1, 0, ["another"])
    assert split_twice([("fsub_core", "NEVER-FREED", 2)], marks)[0] == ["fsub_core NEVER-FREED (2 calls)"]
    line = repeats_line(3, split.same, len(bad), 4, ran_again=split.ran_again, again=len(again))
    assert ("1 answered with the original reply byte for byte, 1 ran again as new deals, their original having "
            "freed its key" in line and "; 0 of 4 references reached a counterpart twice (paid twice); 2 more "
            "reached one again for a deal that ran again" in line), line


async def test_a_repeat_answered_94_past_the_retention_is_counted_apart(tmp_path):
    """The ledger's ``duplicate`` event ``{"past_retention": true}`` (engine.txn.manager._duplicate_past): the
    repeat got 94, not its original's reply, rightly."""
    from decimal import Decimal

    from engine.deal import DealEvent, DealRecord
    from engine.sim.ledger_count import repeat_marks, split_repeats

    since = dt.datetime.now(dt.timezone.utc)
    path = tmp_path / "ledger.duckdb"

    def deal(status: str, events: list[DealEvent]) -> DealRecord:
        at = dt.datetime.now(dt.timezone.utc)
        return DealRecord(deal_type="FS", route="r", config_version="v1", channel="front", status=status,
                          received_at=at, finished_at=at, reference="R1", amount=Decimal("1"), currency="CNY",
                          request={"ref": "R1"}, response={"code": "94"}, events=events)

    now = dt.datetime.now(dt.timezone.utc)
    async with open_ledger(path, audit_key=None) as ledger:
        await ledger.commit(deal("duplicate", [DealEvent(now, None, "received"), DealEvent(
            now, "received", "duplicate", {"original": "x", "key": "k|R1", "past_retention": True})]))
        await ledger.commit(deal("duplicate", [DealEvent(now, None, "received"), DealEvent(
            now, "received", "duplicate", {"original": "x", "key": "k|R1"})]))
    marks = repeat_marks(path, "v1", since)
    assert marks.past_retention == {("front", "R1")} and not marks.freed
    split = split_repeats([("front", "R1", True, "a"), ("front", "R2", True, "b")], marks)
    assert (split.past_retention, split.differs) == (1, ["b"])
