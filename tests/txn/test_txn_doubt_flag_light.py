"""A call left in doubt that nothing can undo, on the light path (engine/txn/manager.py ``run_light``,
engine/txn/flagging.py; docs/transactions.md "Flagged for an operator").

A light route (no key, no ``compensate call``) has nothing to undo a JSON call with: when its request was
written and the connection then closed without an answer (``lost``), the counterpart may have applied it,
so the deal is flagged for an operator (``error.flagged`` true in ``on error``), naming the call. After an
ISO 8583 0200 that was approved, a booking left in doubt may have gone through: by default (``on doubt
flag``) the 0200 is kept (no 0420: reversing it while the booking stands would pay the booking from the
bank's funds) and the deal is flagged, naming the booking and the 0200 kept; under ``on doubt compensate``
the booking is no pivot: the 0200 is reversed (0420), and the deal is flagged for the booking (the default
until 2026-11-28). Until 2026-11-27 both failed without a flag.

Real engine in process, real loopback counterparts, a journaled ledger and transaction log."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from engine.sim.reversal_host import CODEC
from safkit import ask, serving
from txnkit import Client, compile_text, deals, json_counterpart, rows, running
from kit import CLOSE, framed_counterpart

PLAIN = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
route pay {
    receive from front as J
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  flagged = error.flagged  undone = error.undone }
}
"""

ISO = """
format Iso = iso8583 iso8583_1987_ascii
format J = json
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect { address = "127.0.0.1:%d" framing = length2  pool = 1  match = iso8583  timeout = 2s }
channel book = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
route purchase {
    receive from pos as Iso when msg.t == "0200"
    %s
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    call b = book as J reply J { op = "post"  ref = msg["11"] } expect b.status == "OK"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]  "44" = if error.flagged then "FLAGGED" else "NOT FLAGGED"
    }
}
"""


def _events(ledger: Path, deal_id: str) -> list[dict]:
    return rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [deal_id])


async def test_a_light_call_lost_after_it_was_written_is_flagged(nursery, tmp_path: Path) -> None:
    seen: list[str] = []

    def credit(r: dict):
        seen.append(r["ref"])
        return CLOSE                                 # read, then the connection closes: lost

    program = compile_text(tmp_path, PLAIN % await json_counterpart(nursery, credit))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        with trio.fail_after(10):                    # a guard against a hang, not a timing
            await c.send(b'{"ref": "L1"}')
            (got,) = await c.recv_json(1)
        await c.aclose()
    assert got == {"ref": "L1", "code": "91", "flagged": True, "undone": False}, got
    assert seen == ["L1"]
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "91"
    assert "; flagged for an operator: call c to credit got no answer it can trust (lost): its outcome at the " \
           "counterpart is unknown" in d["reason"], d["reason"]
    events = _events(ledger, d["deal_id"])
    assert [e["to_state"] for e in events] == ["accepted", "calling c", "flagged", "failed"], events
    assert orjson.loads(events[2]["detail"])["not_undone"] == ["c"]


async def _purchase(nursery, tmp_path: Path, policy: str) -> tuple[dict, list[str], list[str], Path]:
    seen: list[str] = []

    def issuer(p: bytes) -> bytes:
        m = CODEC.decode(p)
        seen.append(str(m["t"]))
        return CODEC.encode({**m, "t": "0210" if m["t"] == "0200" else "0430", "39": "00"})

    booked: list[str] = []

    def book(r: dict):
        booked.append(r["ref"])
        return CLOSE

    ports = (await framed_counterpart(nursery, issuer, 2), await json_counterpart(nursery, book))
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ISO % (ports + (policy,))), ledger) as sb:
        got = await ask(sb.channel("pos").port)
        with trio.fail_after(10):                    # a guard against a hang, not a timing
            for q in sb.saf:
                await q.wait_empty()
    return got, seen, booked, ledger


@pytest.mark.parametrize("policy", ["", "on doubt flag"], ids=["default", "on_doubt_flag"])
async def test_a_booking_in_doubt_after_the_0200_keeps_it_and_flags_the_deal(nursery, tmp_path: Path,
                                                                             policy: str) -> None:
    got, seen, booked, ledger = await _purchase(nursery, tmp_path, policy)
    assert got["39"] == "91" and got["44"] == "FLAGGED", got
    assert seen == ["0200"], seen                    # the booking may have gone through: the 0200 is kept
    assert booked == ["000123"]
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "91"
    assert "flagged for an operator: call b to book got no answer it can trust (lost) and nothing can undo it " \
           "(it has no compensation): it may have gone through, so call auth to issuer is kept, not undone (on " \
           "doubt flag)" in d["reason"], d["reason"]
    assert "if it did not, undo call auth to issuer" in d["reason"], d["reason"]
    events = _events(ledger, d["deal_id"])
    states = [e["to_state"] for e in events]
    assert states == ["accepted", "calling auth", "calling b", "flagged", "failed"], states
    assert orjson.loads(events[3]["detail"])["not_undone"] == ["auth", "b"]


async def test_on_doubt_compensate_reverses_the_0200_and_flags_the_deal(nursery, tmp_path: Path) -> None:
    got, seen, booked, ledger = await _purchase(nursery, tmp_path, "on doubt compensate")
    assert got["39"] == "91" and got["44"] == "FLAGGED", got
    assert seen == ["0200", "0420"], seen            # the booking is no pivot: the 0200 is reversed
    assert booked == ["000123"]
    (d,) = deals(ledger)
    assert d["status"] == "failed"
    assert "flagged for an operator: call b to book got no answer it can trust (lost): its outcome" in d["reason"], \
        d["reason"]
    states = [e["to_state"] for e in _events(ledger, d["deal_id"])]
    assert "reversal queued" in states and "flagged" in states, states
