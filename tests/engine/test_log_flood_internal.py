"""A route with a bug does not flood the log (docs/operations.md#repeated-faults): a route failing every
message with the same internal error (an expression failing on the route's own values, docs/language.md
"What a failure is") logs the first in full with its traceback, counts the rest and sums them up in one
line; another place or route is logged at once; every deal is still recorded failed (internal, 96) with
its reason and its dead letter.  Before: nothing for a step that runs per message (the error was in the
ledger only), one traceback per batch for a batch step, one warning per message for a failing ``on
error`` step.  Real loopback sockets, a real engine and DuckDB ledger."""
from __future__ import annotations

import json
import logging

import duckdb
import trio

from engine.ops.logs import Scrubber, TextFormatter
from kit import Client, compile_text, deals, running

ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code kind = error.kind }
}
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code kind = error.kind }
}
route pay {
    receive from front as J
    let limits = "5"
    deal PAY { ref = msg.ref amount = 1.00 currency = "CNY" }
    let top = limits.max
    reply J { ref = msg.ref code = "00" }
}
route fee {
    receive from side as J
    let card = "A4111111111111111"
    deal FEE { ref = msg.ref amount = 1.00 currency = "CNY" }
    let n = number(card) + 1
    reply J { ref = msg.ref code = "00" }
}
"""
N = 200


async def send(port: int, n: int, prefix: str = "R") -> list[dict]:
    c = await Client.open(port)
    try:
        with trio.fail_after(30):
            await c.send(*[json.dumps({"ref": f"{prefix}{i}"}).encode() for i in range(n)])
            return await c.recv_json(n)
    finally:
        await c.aclose()


def route_lines(caplog, route: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.getMessage().startswith(f"route {route}:")]


def dead_letters(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT error_kind, reason FROM dead_letters").fetchall()
    finally:
        con.close()


async def test_a_route_failing_every_message_the_same_way_logs_once_then_counts(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE, name="pay.route"), ledger) as sb:
        replies = await send(sb.channel("front").port, N)
        during = route_lines(caplog, "pay")
        # another route's internal error is logged at once, in full, while pay's are being counted
        (fee,) = await send(sb.channel("side").port, 1, "F")
        fee_during = route_lines(caplog, "fee")
    after = route_lines(caplog, "pay")
    assert all(r == {"code": "96", "kind": "internal"} for r in replies) and fee["code"] == "96"
    assert len(during) == 1, during
    first = during[0]
    # the first in full: the route, the place of the expression, the exception's type, the deal, the
    # reason as the ledger has it, and the traceback's frames
    assert first.startswith("route pay: internal error at ") and "pay.route:17:15 (EvalError), deal " in first, first
    assert "cannot read field 'max' of a string (limits)" in first, first
    assert "\nTraceback (most recent call last):\n" in first and 'File "' in first, first
    # the rest summed up in one line at the stop (the window of 30 s is not over), naming how many
    assert len(after) == 2, after
    summary = after[1]
    assert f"route pay: {N - 1:,} more internal errors at " in summary, summary
    assert "pay.route:17:15 (EvalError) since " in summary and "(counted, not logged one by one)" in summary
    assert ", last deal " in summary and "cannot read field 'max' of a string (limits)" in summary, summary
    assert "Traceback" not in summary
    assert len(fee_during) == 1 and "pay.route:24:13" in fee_during[0] and "Traceback" in fee_during[0], fee_during
    # nothing of the recording changed: each message is a failed internal deal with its reason and a dead letter
    rows = [d for d in deals(ledger) if d["route"] == "pay"]
    assert len(rows) == N and all(r["status"] == "failed" and r["response_code"] == "96" for r in rows)
    assert all((r["reason"] or "").startswith("internal: ") and "cannot read field 'max'" in r["reason"] for r in rows)
    letters = [d for d in dead_letters(ledger) if "limits" in d[1]]
    assert len(letters) == N and all(kind == "internal" for kind, _ in letters)
    # the summary's last deal is one of them
    last = summary.split(", last deal ", 1)[1].split(":", 1)[0]
    assert last in {r["deal_id"] for r in rows}


async def test_the_summary_goes_through_the_logs_scrubber(tmp_path, caplog) -> None:
    # the route's own constant holds a card number; its error quotes it: the log's scrubber masks it in the
    # first line and in the summary, as in every line (engine/ops/logs.py)
    caplog.set_level(logging.WARNING)
    async with running(compile_text(tmp_path, ROUTE, name="pay.route"), tmp_path / "l.duckdb") as sb:
        await send(sb.channel("side").port, 5, "F")
    fmt = TextFormatter(Scrubber())
    lines = [fmt.format(r) for r in caplog.records if r.getMessage().startswith("route fee:")]
    assert len(lines) == 2 and "4 more internal errors at " in lines[1], lines
    assert all("4111111111111111" not in line and "411111******1111" in line for line in lines), lines


ON_ERROR = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code kind = error.kind }
}
route pay {
    receive from front as J
    let limits = "5"
    let top = limits.max
    reply J { ref = msg.ref code = "00" }
    on error {
        reply J { code = error.code why = limits.why }
    }
}
"""


async def test_an_on_error_step_failing_for_every_message_is_logged_once_then_counted(tmp_path, caplog) -> None:
    # before: one warning per message
    caplog.set_level(logging.WARNING)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ON_ERROR, name="oe.route"), ledger) as sb:
        replies = await send(sb.channel("front").port, 50)
    lines = route_lines(caplog, "pay")
    assert all(r == {"code": "96", "kind": "internal"} for r in replies)    # the channel's error reply
    warned = [x for x in lines if "on error step" in x]
    assert len(warned) == 2, lines
    assert "on error step at " in warned[0] and "oe.route:14:9 failed: " in warned[0], warned
    assert "cannot read field 'why' of a string (limits)" in warned[0], warned
    assert "49 more on error step failures at " in warned[1], warned
    internal = [x for x in lines if "internal error" in x]
    assert len(internal) == 2 and "49 more internal errors at " in internal[1], lines
    assert len(deals(ledger)) == 50
