"""Recovery at start-up: deals a crash left in flight are resolved before any channel takes traffic.

The first run is cut off (its task tree cancelled, no drain) while a deal waits for a counterpart
that never answers: the transaction log holds the deal as begun with both calls sent.  The restart
sends no request at all; by the time the engine is serving, the deal is compensated and final.
"""
from __future__ import annotations

from pathlib import Path

import trio

from engine.ledger import open_ledger
from engine.ops.live import LiveEngine
from engine.registry import default_registry
from engine.txn import manager_for
from engine.txn.log import TxnLog, log_path
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route transfer {
    receive from front as J
    on restart compensate
    deal TRANSFER { ref = msg.ref  amount = msg.amount  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


class Silent(Counterpart):
    """Counts every request; never answers a ``post`` while ``mute`` (the deal stays in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.mute = True

    def answer(self, req: dict):
        out = super().answer(req)
        return None if self.mute and req.get("op") == "post" else out


async def _crash_mid_deal(tmp_path: Path, nursery) -> tuple[object, Path, Counterpart, Silent]:
    debit, credit = Counterpart(), Silent()
    program = compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, debit.answer),
                                              await json_counterpart(nursery, credit.answer)))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref":"S1","amount":5}')
                with trio.fail_after(10):
                    while credit.counts[("post", "S1")] == 0:      # both calls have left: in flight
                        await trio.sleep(0.005)
                crash.cancel()                                     # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert [d["reference"] for d in deals(ledger)] == []
    txlog = TxnLog(log_path(ledger))
    assert list(txlog.pending) and txlog.pending[next(iter(txlog.pending))].phases == {"d": "done", "c": "sending"}
    txlog.close()
    credit.mute = False
    return program, ledger, debit, credit


def _assert_resolved(ledger: Path, debit: Counterpart, credit: Counterpart) -> None:
    (d,) = deals(ledger)
    assert (d["reference"], d["status"]) == ("S1", "failed")
    assert "compensated on restart" in d["reason"]
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? "
                                          "ORDER BY seq", [d["deal_id"]])]
    assert events[:2] == ["in flight at restart", "recovered"] and events[-1] == "failed"
    assert "compensated c" in events and "compensated d" in events
    # newest first, each once; nothing posted again
    assert credit.counts[("cancel", "S1")] == 1 and debit.counts[("cancel", "S1")] == 1
    assert credit.counts[("post", "S1")] == 1 and debit.counts[("post", "S1")] == 1
    txlog = TxnLog(log_path(ledger))
    assert txlog.pending == {}
    txlog.close()


async def test_switchboard_resolves_deals_left_in_flight_before_serving(nursery, tmp_path: Path) -> None:
    program, ledger, debit, credit = await _crash_mid_deal(tmp_path, nursery)
    async with running(program, ledger) as sb:     # serving: not one request is sent
        at_start = (sb.stats.failed, list(manager_for(sb.ledger).log.pending))
    assert at_start == (1, [])                     # recorded (row committed) before serving began
    _assert_resolved(ledger, debit, credit)


async def test_live_engine_resolves_deals_left_in_flight_before_serving(nursery, tmp_path: Path) -> None:
    program, ledger, debit, credit = await _crash_mid_deal(tmp_path, nursery)
    async with open_ledger(ledger) as led:
        engine = LiveEngine(default_registry(), led, load=lambda: ([], {}))
        async with trio.open_nursery() as n:
            await n.start(engine.run, program)
            at_start = (engine.stats.failed, list(manager_for(led).log.pending))
            engine.drain()
    assert at_start == (1, [])                     # final before the first request could arrive
    _assert_resolved(ledger, debit, credit)


async def test_a_restart_says_in_one_line_how_many_deals_it_found_in_flight(nursery, tmp_path: Path, caplog) -> None:
    # the deals' own lines are at info: a start after a kill (or an upgrade started on a killed engine's files)
    # said nothing at the default level about the deals it had to settle
    import logging

    program, ledger, debit, credit = await _crash_mid_deal(tmp_path, nursery)
    with caplog.at_level(logging.WARNING, logger="bsp.txn"):
        async with running(program, ledger):
            pass
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bsp.txn") and "in flight" in r.getMessage()]
    assert said == ["recovery: 1 deal(s) of channel front were in flight when the engine last stopped (killed or "
                    "crashed): resolved by their route's on restart policy (those flagged for an operator: "
                    "bsp deals --flagged; bsp status open_flags)"], caplog.text
    _assert_resolved(ledger, debit, credit)
