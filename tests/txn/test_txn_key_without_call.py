"""A deal key on a route that calls no one (its only booking is the ledger itself, or its reply):
a repeat is answered with the original reply (not built again) and recorded as a duplicate, as on
a route with calls.  The key used to be checked only before a first call, so such a route booked
every repeat again."""
from __future__ import annotations

from pathlib import Path

import trio

from txnkit import Client, compile_text, deals, running

ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply J { ref = msg.ref  code = "00"  booking = uuid() }
}
"""


async def test_a_repeat_gets_the_original_reply_and_is_a_duplicate(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE), ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        with trio.fail_after(10):
            got = []
            for ref in ("B1", "B2", "B1"):          # one at a time: the repeat comes after the original
                await c.send(b'{"ref": "%s", "amount": 12.50}' % ref.encode())
                got += await c.recv_json(1)
            await c.send(b'{"ref": "B3", "amount": 1}', b'{"ref": "B3", "amount": 1}')   # one batch
            got += await c.recv_json(2)
        await c.aclose()
    assert [g["ref"] for g in got] == ["B1", "B2", "B1", "B3", "B3"]
    assert got[2] == got[0]                          # the same booking id: the original reply, not a new one
    assert got[4] == got[3] and got[0]["booking"] != got[1]["booking"]
    d = deals(ledger)
    assert [(x["reference"], x["status"]) for x in d[:3]] == [("B1", "committed"), ("B2", "committed"),
                                                          ("B1", "duplicate")]
    # the two B3 of one batch share their received time: their order in the ledger is the deal ids'
    assert sorted((x["reference"], x["status"]) for x in d[3:]) == [("B3", "committed"), ("B3", "duplicate")]
    assert d[2]["reason"].startswith("duplicate of deal ") and "original answer repeated" in d[2]["reason"]


async def test_a_keyed_route_without_a_reply_is_checked_after_its_steps(tmp_path: Path) -> None:
    text = ROUTE.replace('    reply J { ref = msg.ref  code = "00"  booking = uuid() }\n', "")
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, text), ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        for _ in range(2):
            await c.send(b'{"ref": "N1", "amount": 3}')
            with trio.move_on_after(0.5):            # no reply is sent: give the engine the request
                await c.recv(1)
        await c.aclose()
    assert [(x["reference"], x["status"]) for x in deals(ledger)] == [("N1", "committed"), ("N1", "duplicate")]
