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
    d = deals(ledger)
    assert [(x["reference"], x["status"]) for x in d] == [("N1", "committed"), ("N1", "duplicate")]
    # nothing was answered the first time: the reason does not claim an answer was repeated
    assert d[1]["reason"].endswith("not run again; the original ended committed without an answer to repeat"), d[1]


SHAPES = """
format J = json
format Inner = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route book {
    receive from front as J
%s
}
"""


async def _one_at_a_time(tmp_path: Path, body: str, requests: list[bytes]) -> tuple[list[dict], list[dict]]:
    tmp_path.mkdir(exist_ok=True)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, SHAPES % body), ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        got = []
        with trio.fail_after(10):
            for r in requests:
                await c.send(r)
                got += await c.recv_json(1)
        await c.aclose()
    return got, deals(ledger)


async def test_the_key_is_the_one_the_deal_step_saw(tmp_path: Path) -> None:
    """The key was evaluated at admission, in whatever scope the route had there: a key built by a
    `let` after the reply was unbound at the reply (None: every repeat booked again), and a `decode`
    between the deal and the reply rebinds msg (two payments with one inner reference were taken for
    one deal: the second was answered with the first one's reply and never booked)."""
    let_after_reply = """    reply J { ref = msg.ref  code = "00"  booking = uuid() }
    let k = msg.ref + "/" + msg.day
    deal BOOKING { key = k  ref = msg.ref  amount = 1 }"""
    got, d = await _one_at_a_time(tmp_path / "let", let_after_reply, [b'{"ref": "A", "day": "1"}'] * 2)
    assert got[1] == got[0]
    assert [(x["reference"], x["status"]) for x in d] == [("A", "committed"), ("A", "duplicate")]
    assert d[1]["response"] is None              # the reply its own reply step built was not sent

    decode_after_deal = """    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1 }
    decode msg.inner as Inner
    reply J { ref = msg.ref  code = "00"  booking = uuid() }"""
    got, d = await _one_at_a_time(tmp_path / "decode", decode_after_deal,
                                  [b'{"ref": "P1", "inner": "{\\"ref\\": \\"X\\"}"}',
                                   b'{"ref": "P2", "inner": "{\\"ref\\": \\"X\\"}"}'])
    assert got[0]["booking"] != got[1]["booking"]
    assert [(x["reference"], x["status"]) for x in d] == [("P1", "committed"), ("P2", "committed")]


async def test_a_step_that_rejects_after_the_reply_does_not_take_the_key(tmp_path: Path) -> None:
    """A route without a call books nothing before its last step: a request that a validate after the
    reply rejects must leave the key free for the corrected repeat (it was taken at the reply, and
    the corrected request got the rejection back as 'the original answer')."""
    body = """    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1 }
    reply J { ref = msg.ref  code = "00"  booking = uuid() }
    validate { msg.ok == 1 else reject "30" "not ok" }
    on error reply J { ref = msg.ref  code = error.code }"""
    got, d = await _one_at_a_time(tmp_path, body, [b'{"ref": "V", "ok": 0}', b'{"ref": "V", "ok": 1}',
                                                   b'{"ref": "V", "ok": 1}'])
    assert got[0] == {"ref": "V", "code": "30"}
    assert got[1]["code"] == "00" and got[2] == got[1]
    assert [x["status"] for x in d] == ["rejected", "committed", "duplicate"]
