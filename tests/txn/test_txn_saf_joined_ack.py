"""A front end's reversal that **joined** the engine's own queued reversal of the same original (the same MUX key
and DE 90: not queued twice, engine/txn/manager.py ``compensate_step``) gets the host's acknowledgement on its own
deal when that one reversal is acknowledged: a trace line ``NAME.reversal`` (outcome ``acknowledged``) and the
event ``reversed NAME`` naming the deal it joined (``joined``), its MTI, ``response_code`` and ``approved``; and
``bsp deals show`` says so.  Before 2026-11-28 its story ended at ``reversal queued``: it looked unresolved.

Real loopback: the card_payments route in process on 127.0.0.1 port 0, a real DuckDB ledger in tmp_path, the
card host a scripted TCP server on 127.0.0.1 port 0; trio's MockClock for the time-outs."""
from __future__ import annotations

import json

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from tests.engine.kit import Client, deals, running
from tests.services.test_card_certification import (DE90, PURCHASE, REVERSAL, Host, answered, ask, frame, overrides,
                                                     program, rows)

__all__ = ["program"]      # the fixture, imported


async def _purchase_then_joined_advice(sb, rev_held: trio.Event, joined: trio.Event) -> None:
    """The purchase (its 0200 unanswered: the engine queues its own 0420, which the host holds, ``rev_held``),
    then the front end's 0420 of the same purchase (its STAN), which rides on it and joins the queued reversal;
    ``joined`` lets the host go on once the channel counted the join; the front end's answer read."""
    await ask(sb.channel("cp_mainframe").port, PURCHASE)
    with trio.fail_after(60):
        await rev_held.wait()
    c = await Client.open(sb.channel("cp_mainframe").port)
    await c.send(frame({**REVERSAL, "11": PURCHASE["11"]}))
    with trio.move_on_after(30):
        while not getattr(sb.channel("cp_host"), "joined", 0):
            await trio.sleep(0.25)
    joined.set()
    with trio.fail_after(60):
        await c.recv()
    await c.aclose()


@pytest.mark.parametrize("code", ["00", "25"])
async def test_a_reversal_joined_to_the_engines_queued_one_records_its_acknowledgement(
        program, tmp_path, nursery, mock_clock, code) -> None:
    # the 0200 times out: the engine's own 0420 of it goes to the host, which holds it while the front end's
    # 0420 of the same purchase (its STAN, DE 90 the same) rides on it on the MUX; that attempt goes unanswered,
    # so the front end's advice, left in doubt, joins the engine's queued reversal. The host acknowledges the
    # 0421 that follows: both deals must say so
    mock_clock.autojump_threshold = 0.1
    rev_held, joined = trio.Event(), trio.Event()

    async def answer(msg, send):
        if msg["t"] == "0200":
            return
        if msg["t"] == "0420" and not rev_held.is_set():
            rev_held.set()
            await joined.wait()
            return                                 # unanswered: the front end's deal joins the queued reversal
        await send(answered(msg, code))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port, "3s")) as sb:
        await _purchase_then_joined_advice(sb, rev_held, joined)
        (queue,) = sb.saf
        with trio.fail_after(600):                 # a guard against a hang (MockClock time), not a timing
            await queue.wait_empty()
    assert host.mtis() == ["0200", "0420", "0421"]
    purchase, = [d for d in deals(ledger) if d["route"] == "card_purchase"]
    rev, = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq",
                  [rev["deal_id"]])
    names = [e["to_state"] for e in events]
    (queued,) = [json.loads(e["detail"]) for e in events if e["to_state"] == "reversal queued"]
    assert queued["joined"] == purchase["deal_id"], queued
    assert names[-1] == "reversed rev", names
    ack = json.loads(events[-1]["detail"])
    assert (ack["joined"], ack["joined_call"], ack["mti"], ack["response_code"], ack["approved"]) == \
        (purchase["deal_id"], "auth", "0421", code, code == "00"), ack
    steps = rows(ledger, "SELECT step, kind, outcome, detail FROM deal_steps WHERE deal_id = ? ORDER BY seq",
                 [rev["deal_id"]])
    line = steps[-1]
    assert (line["step"], line["kind"], line["outcome"]) == ("rev.reversal.repeat", "reversal", "acknowledged"), steps
    assert json.loads(line["detail"])["joined"] == purchase["deal_id"], line
    # the purchase's own story is as before: its reversal acknowledged once
    assert [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                        [purchase["deal_id"]])].count("reversed auth") == 1
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "show", rev["deal_id"]])
    assert out.exit_code == 0, out.output
    said = f"reversal of call rev: joined deal {purchase['deal_id']}'s reversal (call auth); acknowledged"
    assert said in out.output, out.output
    assert f"code {code}" in out.output.split(said)[1].splitlines()[0], out.output
    assert DE90 in out.output
    # its dead letter (the advice timed out) waits, but the reversal it joined was acknowledged: the story does not
    # send the operator to `bsp dead retry` (it would send the reversal again) but says what to do instead
    (letter,) = rows(ledger, "SELECT id, status FROM dead_letters WHERE id = ?", [rev["deal_id"]])
    assert letter["status"] == "new", letter
    story = out.output.split("dead letter:")[1]
    assert "bsp dead retry" not in story, story
    assert "but its reversal was acknowledged" in story and "no retry is needed" in story, story
    assert (f"`bsp dead purge {rev['deal_id']}`" in story) == (code == "00"), story
    assert (f"ask the host about the original (`bsp deals show {purchase['deal_id']}`)" in story) == (code != "00"), story


async def test_a_reversal_joined_before_a_restart_gets_the_acknowledgement_after_it(
        program, tmp_path, nursery, mock_clock) -> None:
    # the same join, the host silent; the engine stops with the reversal still queued (it stays in the log). On
    # the next start the queued reversal is acknowledged: the deal that joined it in the previous run (found in
    # the ledger by its `reversal queued` event) gets the acknowledgement, once
    mock_clock.autojump_threshold = 0.1
    rev_held, joined, answering = trio.Event(), trio.Event(), trio.Event()

    async def answer(msg, send):
        if msg["t"] == "0200" or not answering.is_set():
            if msg["t"] == "0420" and not rev_held.is_set():
                rev_held.set()
                await joined.wait()
            return
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port, "3s")) as sb:
        await _purchase_then_joined_advice(sb, rev_held, joined)
        (queue,) = sb.saf
        assert queue.status()["pending"] == 1
    rev, = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    purchase, = [d for d in deals(ledger) if d["route"] == "card_purchase"]
    assert "reversed rev" not in [e["to_state"] for e in rows(
        ledger, "SELECT to_state FROM deal_events WHERE deal_id = ?", [rev["deal_id"]])]
    answering.set()
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (queue,) = sb.saf
        with trio.fail_after(600):                 # a guard against a hang (MockClock time), not a timing
            await queue.wait_empty()
        assert queue.status()["acknowledged"] == 1
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq",
                  [rev["deal_id"]])
    acks = [json.loads(e["detail"]) for e in events if e["to_state"] == "reversed rev"]
    assert len(acks) == 1 and acks[0]["joined"] == purchase["deal_id"] and acks[0]["response_code"] == "00", events
