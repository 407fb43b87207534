"""The saga pivot rule on the light path (engine/txn/manager.py ``run_light``, engine/txn/pivot.py).

A light route (no key, no ``compensate call``) whose first call is an ISO 8583 0200 (reversed automatically
when the deal fails after it), then a JSON booking with no compensation that goes through (the pivot), then a
notification that is refused.  The 0200 must not be reversed (the booking stands): no 0420 is queued or sent;
the deal fails, flagged for an operator.  A booking refused is no pivot: the 0200 is reversed as before.

Real engine in process, a real loopback issuer and JSON counterparts, a journaled ledger and transaction log."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.sim.reversal_host import CODEC
from safkit import ask, serving
from txnkit import Counterpart, compile_text, deals, json_counterpart, rows
from kit import framed_counterpart

ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
format J = json
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect { address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = 2s }
channel book = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel notify = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
route purchase {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    call b = book as J reply J { op = "post"  ref = msg["11"] } expect b.status == "OK"
    call n = notify as J reply J { op = "post"  ref = msg["11"] } expect n.status == "OK"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


async def _run(nursery, tmp_path: Path, refuse_at: str) -> tuple[list[str], dict, list[str], Counterpart]:
    seen: list[str] = []

    def issuer(p: bytes) -> bytes:
        m = CODEC.decode(p)
        seen.append(str(m["t"]))
        return CODEC.encode({**m, "t": "0210" if m["t"] == "0200" else "0430", "39": "00"})

    book, notify = Counterpart(refuse={"000123"} if refuse_at == "book" else set()), \
        Counterpart(refuse={"000123"} if refuse_at == "notify" else set())
    ports = [await framed_counterpart(nursery, issuer, 2)] + \
        [await json_counterpart(nursery, cp.answer) for cp in (book, notify)]
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ROUTE % tuple(ports)), ledger) as sb:
        got = await ask(sb.channel("pos").port)
        with trio.fail_after(10):                    # a guard against a hang, not a timing
            for q in sb.saf:
                await q.wait_empty()
    (deal,) = deals(ledger)
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                          [deal["deal_id"]])]
    return seen, {**deal, "39": got["39"]}, events, notify


async def test_a_failure_after_a_booking_that_went_through_does_not_reverse_the_0200(nursery, tmp_path: Path) -> None:
    seen, deal, events, notify = await _run(nursery, tmp_path, "notify")
    assert seen == ["0200"], seen                       # no 0420: the booking stands
    assert deal["status"] == "failed" and deal["39"] == "05"
    assert "flagged" in events and "reversal queued" not in events, events
    assert "call b to book went through and has no compensation: call auth to issuer not undone" in deal["reason"]


async def test_a_refused_booking_is_no_pivot_the_0200_is_reversed(nursery, tmp_path: Path) -> None:
    seen, deal, events, notify = await _run(nursery, tmp_path, "book")
    assert seen == ["0200", "0420"], seen
    assert deal["status"] == "failed" and "flagged" not in events, events
    assert notify.counts == {}
