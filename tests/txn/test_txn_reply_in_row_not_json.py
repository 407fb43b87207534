"""A deal answered while the transaction log could not be written, with a reply that is NOT plain JSON (a
fixed-width record, an ISO 8583 message): its ledger row's ``response`` column holds the reply's values as
JSON, not the bytes sent, so after a restart a repeat must never be answered with that JSON: it is not run
again and fails ``duplicate`` (94) (engine/txn/manager.py ``_answers_not_logged``: no ``reply_in_row`` event;
engine/txn/recovery.py ``_answered_rows``).

Real engine in process, real TCP counterparts on 127.0.0.1 port 0, a real DuckDB ledger; the log is a real
``TxnLog`` made unwritable when the credit call reaches its counterpart (after the call went out)."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
import trio

from formats.iso8583 import codec_for
from test_txn_log_fails_after_call import Bank, _events
from txnkit import Client, compile_text, deals, running

ISO = codec_for("iso8583_1987_ascii", validate=False)

CALLS = """
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
"""

FIXED = """
format J = json
format F = fixed {
    ref   string(8)
    amt   string(10)
}
format R = fixed {
    ref   string(8)
    code  string(2)
    conf  string(16)
}
""" + CALLS + """
route transfer {
    receive from front as F
    on restart compensate
    deal TRANSFER { ref = msg.ref  amount = 10.00  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = 10.00 } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = 10.00 } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    reply R { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply R { ref = msg.ref  code = error.code  conf = "" }
}
"""

ISO_ROUTE = """
format J = json
format Iso = iso8583 iso8583_1987_ascii
""" + CALLS + """
route transfer {
    receive from front as Iso when msg.t == "0200"
    on restart compensate
    deal TRANSFER { ref = msg["11"]  amount = 10.00  currency = "EUR"  key = msg["11"] }
    call d = debit as J reply J { op = "post"  ref = msg["11"]  amount = 10.00 } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg["11"] }
    call c = credit as J reply J { op = "post"  ref = msg["11"]  amount = 10.00 } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg["11"] }
    reply Iso { t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = "00"
                "41" = msg["41"]  "49" = msg["49"] }
    on error reply Iso { t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                         "39" = error.code  "41" = msg["41"]  "49" = msg["49"] }
}
"""

CASES = {
    "fixed": (FIXED, "A1", b"A1      " + b"0000001000",
              lambda raw: {"ref": raw[:8].decode().strip(), "code": raw[8:10].decode()}),
    "iso8583": (ISO_ROUTE, "000451", ISO.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": "0501120000",
                                       "11": "000451", "49": "978",
                                       "41": "TERM0001"}),
                lambda raw: {"ref": ISO.decode(raw)["11"], "code": ISO.decode(raw)["39"]}),
}


async def _ask(port: int, request: bytes) -> bytes:
    c = await Client.open(port)
    await c.send(request)
    with trio.fail_after(10):                 # a guard against a hang, not a timing
        (raw,) = await c.recv(1)
    await c.aclose()
    return raw


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_repeat_after_a_restart_never_gets_the_rows_json_for_a_reply_that_was_not_json(
        nursery, tmp_path: Path, case: str) -> None:
    route, ref, request, read = CASES[case]
    bank = Bank()
    bank.debit_port = await _serve(nursery, bank, "debit")
    bank.credit_port = await _serve(nursery, bank, "credit")
    program = compile_text(tmp_path, route % (bank.debit_port, bank.credit_port))
    ledger = tmp_path / "l.duckdb"
    bank.breaks_at = ("credit", "post", ref)          # the last call is out: only the answer is left to log
    async with bank.running(program, ledger) as sb:     # stopped while the log still cannot be written
        sent = await _ask(sb.channel("front").port, request)
    assert read(sent) == {"ref": ref, "code": "00"}
    assert bank.unwritable is not None
    (a1,) = deals(ledger)
    assert a1["status"] == "committed"
    assert a1["response"] is not None and orjson.loads(a1["response"])   # the reply's values, as JSON
    assert a1["response"].encode() != sent             # ... not the bytes sent
    detail = json.loads(_events(ledger, a1["deal_id"])[-1]["detail"])
    assert "answer_not_logged" in detail and "reply_in_row" not in detail, detail
    async with running(program, ledger) as sb:         # recovery: the row says it was answered
        repeated = await _ask(sb.channel("front").port, request)
    assert not repeated.lstrip().startswith(b"{"), repeated    # never the row's JSON
    assert read(repeated) == {"ref": ref, "code": "94"}
    d = deals(ledger)
    # the codes answered: the original's 00 (its reply's code field, docs/ledger.md), the repeat's 94; not the
    # original's 00 for a repeat that could not be answered with its reply
    assert [(x["status"], x["response_code"]) for x in d] == [("committed", "00"), ("duplicate", "94")], d
    assert "the original ended committed without an answer to repeat" in d[1]["reason"], d[1]["reason"]
    assert bank.debit.counts[("post", ref)] == 1 and bank.credit.counts[("post", ref)] == 1
    assert not any(op == "cancel" for op, _ in bank.debit.counts | bank.credit.counts)


async def _serve(nursery, bank: Bank, who: str) -> int:
    from txnkit import json_counterpart

    def handler(req: dict) -> dict:
        bank._hook(who, req)
        return getattr(bank, who).answer(req)
    return await json_counterpart(nursery, handler)
