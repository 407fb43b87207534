"""A plugin step kind that acts outside bsp declares it (``ComponentSpec.side_effects``): a keyed route
checks its key before the first such step, as before a call, so that a repeat never runs it again."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.registry import default_registry
from formats.component import ComponentSpec, OptionSpec
from txnkit import Client, compile_text, deals, running

POSTED: list[str] = []


def _build(step, ctx, route):
    from engine.steps.base import FunctionStep

    def post(values, scope):
        POSTED.append(str(values.get("ref")))          # what a real plugin would send to its own system
        return "POSTED:" + str(values.get("ref"))

    return FunctionStep(step, ctx, post)


def registry(side_effects: bool):
    reg = default_registry(plugins=False)
    reg.register(ComponentSpec(category="step", name="book", doc="Books the deal in a system of its own.",
                               options=(OptionSpec("ref", "expr", "The reference."),), build=_build,
                               side_effects=side_effects))
    return reg


ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    book b { ref = msg.ref }
    reply J { ref = msg.ref  code = "00"  booked = b }
}
"""


async def _twice(tmp_path: Path, side_effects: bool) -> list[dict]:
    POSTED.clear()
    reg = registry(side_effects)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        got = []
        with trio.fail_after(10):
            for _ in range(2):
                await c.send(b'{"ref": "K1"}')
                got += await c.recv_json(1)
        await c.aclose()
    return got


async def test_a_step_with_side_effects_runs_once_for_a_repeated_key(tmp_path: Path) -> None:
    got = await _twice(tmp_path, side_effects=True)
    assert got == [{"ref": "K1", "code": "00", "booked": "POSTED:K1"}] * 2
    assert POSTED == ["K1"]                                # the repeat was answered, not booked again
    assert [d["status"] for d in deals(tmp_path / "l.duckdb")] == ["committed", "duplicate"]


async def test_a_pure_step_is_run_before_the_key_is_checked(tmp_path: Path) -> None:
    """Without the flag a step is taken as pure (a stamp, a lookup): the key is checked after the
    route's last step; the answer is still the original one."""
    got = await _twice(tmp_path, side_effects=False)
    assert got == [{"ref": "K1", "code": "00", "booked": "POSTED:K1"}] * 2
    assert POSTED == ["K1", "K1"]
    assert [d["status"] for d in deals(tmp_path / "l.duckdb")] == ["committed", "duplicate"]


CRASH_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route book {
    receive from front as J
    on restart compensate
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    book b { ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
}
"""


async def _crash_during_the_call(program, ledger: Path, reg, credit, ref: str) -> None:
    """Serve ``program``, send one request, and stop the engine dead (no drain, no answer, no deal row)
    once its call has reached ``credit``: a crash with the deal in flight during the call."""
    with trio.CancelScope() as crash:
        async with running(program, ledger, registry=reg) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref": "%s"}' % ref.encode())
                with trio.fail_after(10):
                    while credit.counts[("post", ref)] == 0:      # the call has left: in flight
                        await trio.sleep(0.005)
                crash.cancel()
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)


async def test_a_deal_left_in_flight_after_a_step_with_side_effects_goes_to_an_operator(nursery, tmp_path: Path) -> None:
    """The plugin step started before the crash (its `running` mark is in the log) and keeps no trace to
    resume from: on restart it is not run again, and the deal is flagged whatever the route's `on restart`
    policy."""
    from test_txn_startup import Silent
    from txnkit import json_counterpart, rows

    POSTED.clear()
    reg = registry(True)
    credit = Silent()
    program = compile_text(tmp_path, CRASH_ROUTE % await json_counterpart(nursery, credit.answer), registry=reg)
    ledger = tmp_path / "l.duckdb"
    await _crash_during_the_call(program, ledger, reg, credit, "S1")
    assert POSTED == ["S1"] and deals(ledger) == []
    credit.mute = False
    async with running(program, ledger, registry=reg):
        pass
    (d,) = deals(ledger)
    assert (d["reference"], d["status"]) == ("S1", "failed")
    assert "flagged for an operator" in d["reason"] and "step(s) 2:book act outside bsp" in d["reason"], d["reason"]
    assert POSTED == ["S1"]                                        # not booked again on restart
    assert credit.counts[("cancel", "S1")] == 0                     # nor compensated blindly
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                          [d["deal_id"]])]
    assert "flagged" in events


KILL_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    stall s { ref = msg.ref  mark = "%s" }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def test_sigkill_while_a_plugin_step_with_side_effects_runs_leaves_a_deal_to_flag(
        tmp_path: Path, tmp_path_factory, monkeypatch) -> None:
    """A real `bsp run` is killed (SIGKILL) while the plugin step `stall` of bsp-wreck (side_effects) runs,
    on a keyed route without a call.  Its deal's begin is durable before the step runs, so on restart
    recovery finds it in flight and flags it (the step may have booked), and a repeat of the key is not
    booked again.  Without that begin the log is empty: the deal vanishes and the repeat books twice."""
    from engine.txn.log import TxnLog, log_path
    from pluginkit import install
    from txnkit import engine_serving, start_engine

    monkeypatch.setenv("PYTHONPATH", str(install(("plugin_faulty",), tmp_path_factory)))
    mark = tmp_path / "booked.txt"
    route = tmp_path / "book.route"
    route.write_text(KILL_ROUTE % mark)
    ledger = tmp_path / "l.duckdb"
    served = await start_engine(route, ledger)
    proc = served.proc
    try:
        c = await Client.open(served.ports["front"])
        await c.send(b'{"ref": "K9"}')
        with trio.fail_after(20):
            while not mark.exists():                       # the step has booked and now hangs
                await trio.sleep(0.01)
        proc.kill()                                        # SIGKILL while the step runs
        await proc.wait()
        await trio.aclose_forcefully(c.stream)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    txlog = TxnLog(log_path(ledger))
    pending = {p.begin.get("key"): dict(p.phases) for p in txlog.pending.values()}
    txlog.close()
    assert pending == {"book|K9": {"2:stall": "running"}}   # durable before the step ran

    async with engine_serving(route, ledger) as again:      # recovery, then a repeat of the key
        c = await Client.open(again.ports["front"])
        await c.send(b'{"ref": "K9"}')
        with trio.fail_after(20):
            (answer,) = await c.recv_json(1)
        await c.aclose()
    assert answer == {"ref": "K9", "code": "96"}            # the original's code, failed without an answer: not run again
    assert mark.read_text().splitlines() == ["K9"]          # booked once
    by_status = {d["status"]: d for d in deals(ledger)}
    assert set(by_status) == {"failed", "duplicate"}
    assert "flagged for an operator" in by_status["failed"]["reason"]
    assert "step(s) 2:stall act outside bsp" in by_status["failed"]["reason"]
    assert by_status["failed"]["response"] is None          # recovery built no answer for it (no `reply` run)
    assert "without an answer to repeat" in by_status["duplicate"]["reason"]


EARLY_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 60s }
route book {
    receive from front as J
    on restart compensate
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    stall s { ref = msg.ref  mark = "%s" }
    reply J { ref = msg.ref  code = "00" }
}
"""


async def test_sigkill_during_a_call_before_a_plugin_step_with_side_effects_follows_the_route_policy(
        nursery, tmp_path: Path, tmp_path_factory, monkeypatch) -> None:
    """A real `bsp run` is killed (SIGKILL) while the call before the plugin step `stall` (side_effects) waits
    for its answer.  The log has no `running` mark for the step and its `begin` says such marks are written:
    the step never started, so on restart the route's own policy applies (`on restart compensate`): the call
    is compensated, the deal is not flagged, and the step is not run (it books nothing)."""
    from engine.txn.log import TxnLog, log_path
    from pluginkit import install
    from test_txn_startup import Silent
    from txnkit import engine_serving, json_counterpart, rows, start_engine

    monkeypatch.setenv("PYTHONPATH", str(install(("plugin_faulty",), tmp_path_factory)))
    credit = Silent()                                  # never answers a post: the call stays in flight
    mark = tmp_path / "booked.txt"
    route = tmp_path / "book.route"
    route.write_text(EARLY_ROUTE % (await json_counterpart(nursery, credit.answer), mark))
    ledger = tmp_path / "l.duckdb"
    served = await start_engine(route, ledger)
    proc = served.proc
    try:
        c = await Client.open(served.ports["front"])
        await c.send(b'{"ref": "E1"}')
        with trio.fail_after(20):
            while credit.counts[("post", "E1")] == 0:      # the call has left: in flight
                await trio.sleep(0.01)
        proc.kill()                                        # SIGKILL during the call, before the step
        await proc.wait()
        await trio.aclose_forcefully(c.stream)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    txlog = TxnLog(log_path(ledger))
    pending = [(p.begin.get("effects"), dict(p.phases)) for p in txlog.pending.values()]
    txlog.close()
    assert pending == [(["3:stall"], {"c": "sending"})]    # no mark for the step: it never started

    async with engine_serving(route, ledger):               # recovery runs before the engine serves
        pass
    (d,) = deals(ledger)
    assert (d["reference"], d["status"]) == ("E1", "failed")
    assert "compensated on restart (calls undone: c)" in d["reason"], d["reason"]
    assert "flagged" not in d["reason"]
    assert credit.counts[("cancel", "E1")] == 1             # the call was compensated once
    assert not mark.exists()                                # the step never ran: nothing booked
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                          [d["deal_id"]])]
    assert "flagged" not in events and "recovered" in events, events


OLD_LOG_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route book {
    receive from front as J
    on restart compensate
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    book b { ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
}
"""


async def test_a_log_that_cannot_tell_whether_a_plugin_step_started_still_flags(nursery, tmp_path: Path) -> None:
    """A deal in flight during the call before the plugin step, in a log whose `begin` does not name the
    steps marked `running` (an older bsp's): no mark proves nothing, so the deal is flagged, not compensated."""
    from engine.txn.log import TxnLog, log_path
    from test_txn_startup import Silent
    from txnkit import json_counterpart

    POSTED.clear()
    reg = registry(True)
    credit = Silent()
    program = compile_text(tmp_path, OLD_LOG_ROUTE % await json_counterpart(nursery, credit.answer), registry=reg)
    ledger = tmp_path / "l.duckdb"
    await _crash_during_the_call(program, ledger, reg, credit, "O1")
    path = log_path(ledger)
    txlog = TxnLog(path)
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.begin.pop("effects") == ["3:book"] and p.phases == {"c": "sending"}
    path.unlink()                                                  # the same deal as an older bsp logged it
    old = TxnLog(path)
    old.append([p.begin, {"t": "step", "id": p.id, "step": "c", "phase": "sending"}])
    old.close()
    credit.mute = False
    async with running(program, ledger, registry=reg):
        pass
    (d,) = deals(ledger)
    assert (d["reference"], d["status"]) == ("O1", "failed")
    assert "flagged for an operator" in d["reason"] and "the log cannot tell whether they started" in d["reason"]
    assert POSTED == [] and credit.counts[("cancel", "O1")] == 0   # neither run nor compensated blindly
