"""A repeat over `http listen` of a deal that failed is answered as the original was: its body and its HTTP
status (502, 504 ...), also after a restart, when the key store holds the original's answer in its compact
form (``engine.txn.log._ANSWER`` keeps the failure's kind).  Until 2026-11-26 the repeat got the failure's
body with status 200, which an HTTP client reads as success.

Real engine in process, a real JSON counterpart and an HTTP client on 127.0.0.1 port 0, a real DuckDB ledger
and transaction log."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from test_txn_pivot_restart import Silent
from txnkit import compile_text, json_counterpart, running

ROUTE = """
format J = json
channel api = http listen { address = "127.0.0.1:0"  path = "/transfers" }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 300ms }
route transfer {
    receive from api as J
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def test_a_repeat_of_a_timed_out_deal_gets_its_504_before_and_after_a_restart(nursery, tmp_path: Path) -> None:
    debit = Silent()                                  # reads the post, never answers: the call times out (300 ms)
    port = await json_counterpart(nursery, debit.answer)
    program = compile_text(tmp_path, ROUTE % port)
    ledger = tmp_path / "l.duckdb"
    answers = []
    for _run in range(2):                             # the second run reads the key store from the log
        async with running(program, ledger) as sb:
            url = f"http://127.0.0.1:{sb.channel('api').port}/transfers"
            async with httpx.AsyncClient() as c:
                for _ in range(2):
                    r = await c.post(url, json={"ref": "R1", "amount": 5})
                    answers.append((r.status_code, r.json()))
    # 504 is the timeout's status (a plain `failed` would be 502): the kind travels with the answer
    assert answers == [(504, {"ref": "R1", "code": "68"})] * 4, answers
    assert Counter(k for k in debit.counts if k[1] == "R1") == Counter({("post", "R1"): 1}), debit.counts
