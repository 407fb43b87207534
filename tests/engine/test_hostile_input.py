"""Hostile input to a running engine (docs/security.md#hostile-input): a request whose values the ledger
cannot store is refused before any call, recorded with its reason and dead-lettered, and answered;
the engine keeps serving.  Real loopback sockets, a real counterpart, a real DuckDB ledger."""
from __future__ import annotations

import duckdb
import pytest
import trio

from kit import Client, compile_text, deals, framed_counterpart, running

ROUTE = """
format Req = json
format Rsp = json
channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length4
    on error reply Rsp { code = error.code kind = error.kind text = error.text }
}
channel back = tcp connect { address = "127.0.0.1:1" framing = length4 timeout = 2s }
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref amount = msg.amount currency = "CNY" }
    call post = back as Req reply Rsp { ref = msg.ref amount = msg.amount } expect post.status == "OK"
    reply Rsp { ref = msg.ref code = "00" }
}
"""


def dead_letters(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT error_kind, error_code, reason FROM dead_letters").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("body, kind, code, words", [
    # refused by the decoder since 2026-11-27 (formats/json_codec.py MAX_EXPONENT: written out it is a gigabyte
    # of digits); before, the deal step refused it (13, more than 20 digits)
    (b'{"ref":"E1","amount":1e999999999}', "malformed", "30",
     "the number 1e999999999 has more than 4300 digits written out"),
    (b'{"ref":"E2","amount":' + b"9" * 4000 + b"}", "rejected", "13",
     "deal PAYMENT: amount 999999999999... (4000 characters) has more than 20 digits"),
    (b'{"ref":"E3","amount":1.23456}', "rejected", "13", "has more than 4 decimal places"),
    (b'{"ref":"\\ud800","amount":1}', "malformed", "30", "half of a UTF-16 surrogate pair"),
])
async def test_a_value_the_ledger_cannot_store_is_refused_before_any_call_and_recorded(
        nursery, tmp_path, body, kind, code, words) -> None:
    # before: the counterpart was called, then "deal not recorded, reply withheld": no deal, no dead
    # letter, no answer - the message was lost with the posting done
    calls: list[bytes] = []

    def answer(req: bytes) -> bytes:
        calls.append(req)
        return b'{"status":"OK"}'

    back = await framed_counterpart(nursery, answer)
    ledger = tmp_path / "l.duckdb"
    prog = compile_text(tmp_path, ROUTE)
    async with running(prog, ledger, {"back": {"address": f"127.0.0.1:{back}"}}) as sb:
        c = await Client.open(sb.channel("front").port, width=4)
        try:
            await c.send(body, b'{"ref":"OK1","amount":1}')
            with trio.fail_after(10):
                r1, r2 = await c.recv_json(2)
        finally:
            await c.aclose()
    assert (r1["kind"], r1["code"]) == (kind, code)
    assert r2 == {"ref": "OK1", "code": "00"}
    assert [b'"OK1"' in c for c in calls] == [True]           # the hostile request reached no counterpart
    rows = {d["reference"]: d for d in deals(ledger)}
    assert rows["OK1"]["status"] == "committed"
    (bad,) = [d for ref, d in rows.items() if ref != "OK1"]
    assert bad["status"] == "rejected" and words in bad["reason"] and bad["amount"] is None
    ((dkind, dcode, dreason),) = dead_letters(ledger)
    assert (dkind, dcode) == (kind, code) and words in dreason
