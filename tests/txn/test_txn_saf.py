"""ISO 8583 reversals as store and forward (engine/txn/saf.py): the deal answers its client as soon as
its reversal is durably queued; the engine's SAF task repeats the reversal until the host acknowledges
(past 5 attempts, flagged for an operator), appends every attempt and the acknowledgement to the deal
in the ledger (audit chain intact), and resumes the queue after a SIGKILL.  Real TCP host, real engine
(in process, and `bsp run` for the crash), real DuckDB ledger and transaction log; the host is driven
by events, no sleep decides an outcome."""
from __future__ import annotations

import base64
import signal
from pathlib import Path

import trio

from engine.registry import default_registry
from engine.txn.log import TxnLog, log_path
from safkit import ROUTE, Host, ask, serving, story
from txnkit import AUDIT_KEY, audit_clean, compile_text, deals, engine_serving, start_engine


async def test_the_answer_leaves_before_the_reversal_is_acknowledged(nursery, tmp_path: Path) -> None:
    answered = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        await answered.wait()                 # no reversal is acknowledged before the client has its answer
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ROUTE % (port, "300ms")), ledger) as sb:
        answer = await ask(sb.channel("pos").port)
        assert host.acked == 0
        answered.set()
        (queue,) = sb.saf
        with trio.fail_after(10):
            await queue.wait_empty()
    assert (answer["t"], answer["39"], answer["11"]) == ("0210", "68", "000123")    # timed out: 68
    assert host.acked >= 1           # (a 0430 later than the 300 ms wait is not taken: another attempt is)
    (deal,) = deals(ledger)
    assert (deal["status"], deal["response_code"]) == ("failed", "68")
    steps, events = story(ledger, deal["deal_id"])
    # the row as answered: the call timed out, the reversal queued; then what the SAF task appended
    assert [e[2] for e in events[:4]] == ["accepted", "calling auth", "reversal queued", "failed"]
    assert events[-1][2] == "reversed auth" and events[-2][2] in ("reversal 0420", "reversal 0421")
    assert [e[0] for e in events] == list(range(1, len(events) + 1))           # numbered after its own
    assert all(e[1] == p[2] for p, e in zip(events, events[1:]))                # each from the previous state
    assert steps[0] == ("auth", "call", "timeout") and steps[-1][2] == "acknowledged"
    assert [s[0] for s in steps[1:]] == ["auth.reversal"] + ["auth.reversal.repeat"] * (len(steps) - 2)
    assert [m["t"] for m in host.seen][:2] == ["0200", "0420"]
    assert TxnLog(log_path(ledger)).reversals == {}                             # acknowledged: dropped
    audit_clean(ledger)


async def test_a_reversal_is_repeated_past_five_attempts_and_flagged_until_acknowledged(
        nursery, tmp_path: Path) -> None:
    sixth = trio.Event()
    seen_at_sixth: dict = {}
    box: dict = {}

    async def ack(n: int, msg: dict) -> bool:
        if n == 6:
            seen_at_sixth.update(box["saf"].status())
            sixth.set()
        return n >= 7

    host = Host(ack)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ROUTE % (port, "300ms")), ledger) as sb:
        (queue,) = sb.saf
        box["saf"] = queue
        queue.backoff_cap = 0.05          # pauses of 300 ms, 600 ms, ... capped: the test stays short
        answer = await ask(sb.channel("pos").port)
        with trio.fail_after(20):
            await queue.wait_empty()
    assert answer["39"] == "68"
    assert [m["t"] for m in host.seen] == ["0200", "0420"] + ["0421"] * 6
    assert sixth.is_set() and seen_at_sixth["pending"] == 1 and seen_at_sixth["flagged"] == 1
    assert seen_at_sixth["reversals"][0]["attempts"] == 6 and seen_at_sixth["reversals"][0]["flagged"]
    (deal,) = deals(ledger)
    steps, events = story(ledger, deal["deal_id"])
    assert steps == [("auth", "call", "timeout"), ("auth.reversal", "reversal", "timeout")] + \
        [("auth.reversal.repeat", "reversal", "timeout")] * 5 + [("auth.reversal.repeat", "reversal", "acknowledged")]
    names = [e[2] for e in events]
    assert names == (["accepted", "calling auth", "reversal queued", "failed", "reversal 0420"]
                     + ["reversal 0421"] * 4 + ["reversal flagged"] + ["reversal 0421"] * 2 + ["reversed auth"])
    audit_clean(ledger)


async def test_a_queued_reversal_survives_sigkill_and_is_acknowledged_after_the_restart(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    restarted = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        return restarted.is_set()             # nothing is acknowledged before the restart

    host = Host(ack)
    port = await host.serve(nursery)
    route = tmp_path / "pos.route"
    route.write_text(ROUTE % (port, "2s"))         # an acknowledgement is never late, even on a busy machine
    ledger = tmp_path / "ledger.duckdb"

    served = await start_engine(route, ledger)
    try:
        answer = await ask(served.ports["pos"])
        with trio.fail_after(10):
            await host.saw_reversal.wait()            # the SAF task is at work: kill it there
        served.proc.send_signal(signal.SIGKILL)
        await served.proc.wait()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    assert answer["39"] == "68"
    txlog = TxnLog(log_path(ledger))
    (pending,) = txlog.reversals.values()
    txlog.close()
    assert pending["step"] == "auth" and pending["n"] >= 1 and pending["ack"] is None
    before = host.reversals

    restarted.set()
    async with engine_serving(route, ledger):
        with trio.fail_after(20):                    # the log says when the acknowledgement is on the deal
            while _reversals_left(ledger):
                await trio.sleep(0.05)
    assert host.acked == 1
    after = [m["t"] for m in host.seen[1 + before:]]
    assert after == ["0421"]                                      # resumed as a repeat, once
    assert TxnLog(log_path(ledger)).reversals == {}               # acknowledged: never sent again
    (deal,) = deals(ledger)
    assert (deal["status"], deal["response_code"]) == ("failed", "68")
    steps, events = story(ledger, deal["deal_id"])
    names = [e[2] for e in events]
    assert names[:4] == ["accepted", "calling auth", "reversal queued", "failed"]
    assert names[-2:] == ["reversal 0421", "reversed auth"]
    assert steps[-1] == ("auth.reversal.repeat", "reversal", "acknowledged")
    audit_clean(ledger)


def _reversals_left(ledger: Path) -> bool:
    from engine.txn.log import read
    entries, _ = read(log_path(ledger))
    return not any(e.get("t") == "revrec" for e in entries)


async def test_the_live_engine_shows_a_pending_reversal_in_its_status(nursery, tmp_path: Path) -> None:
    from engine.commands.top import render
    from engine.ledger import open_ledger
    from engine.metrics import Metrics
    from engine.ops.backend import EngineBackend
    from engine.ops.live import LiveEngine
    from engine.ops.observe import Observer
    from rich.console import Console

    release = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        await release.wait()
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    route = tmp_path / "pos.route"
    route.write_text(ROUTE % (port, "300ms"))
    program = compile_text(tmp_path, route.read_text())
    async with open_ledger(tmp_path / "l.duckdb", audit_key=AUDIT_KEY, keyring=None) as ledger:
        obs = Observer(Metrics())
        eng = LiveEngine(default_registry(), ledger, load=lambda: ([route], {}), observer=obs, grace=5.0)
        async with trio.open_nursery() as n:
            await n.start(eng.run, program)
            answer = await ask(eng.current.channels["pos"].port)
            status = await EngineBackend(eng, obs).status()
            (queue,) = eng.saf
            release.set()
            with trio.fail_after(10):
                await queue.wait_empty()
            after = await EngineBackend(eng, obs).status()
            eng.drain()
    assert answer["39"] == "68"
    rev = status["reversals"]
    assert (rev["pending"], rev["flagged"], rev["alert_after"]) == (1, 0, 5)
    (deal,) = deals(tmp_path / "l.duckdb")
    assert [(r["deal_id"], r["route"], r["call"]) for r in rev["queue"]] == [(deal["deal_id"], "purchase", "auth")]
    out = Console(width=200, record=True)
    out.print(render({**status, "reversals": {**rev, "flagged": 1, "queue": [{**rev["queue"][0], "flagged": True}]}},
                     None, 0, {}))
    text = out.export_text()
    assert "reversals: 1 pending, 1 flagged for an operator" in text and deal["deal_id"] in text
    assert (after["reversals"]["pending"], after["reversals"]["acknowledged"], after["reversals"]["flagged_total"]) == (0, 1, 0)
