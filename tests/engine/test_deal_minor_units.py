"""A recorded deal amount is an accounting fact: the deal step refuses one finer than its currency's ISO 4217
minor units (100.5 JPY, 12.345 EUR), naming the route place, the field and the currency, before any call; it is
never rounded.  Real loopback sockets, real DuckDB ledger files."""
from __future__ import annotations

from decimal import Decimal

import duckdb

from kit import Client, compile_text, deals, json_counterpart, running

ROUTE = """
format Req = json
format Rsp = json

channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    on error reply Rsp {
        code = error.code
        text = error.text
    }
}

channel back = tcp connect {
    address = "127.0.0.1:1"
    framing = length4
    timeout = 2s
}

route pay {
    receive from front as Req
    deal PAYMENT {
        ref      = msg.ref
        amount   = msg.amount
        currency = msg.ccy
    }
    call post = back as Req reply Rsp {
        ref    = msg.ref
    } expect post.status == "OK"
    reply Rsp {
        ref  = msg.ref
        code = "00"
    }
}
"""


async def _send(nursery, tmp_path, bodies: list[bytes], route: str = ROUTE) -> tuple[list, list, list, list]:
    called: list[dict] = []

    def answer(req: dict) -> dict:
        called.append(req)
        return {"status": "OK"}

    port = await json_counterpart(nursery, answer)
    program = compile_text(tmp_path, route)
    ledger = tmp_path / "ledger.duckdb"
    async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
        c = await Client.open(sb.channel("front").port)
        replies = []
        for body in bodies:
            await c.send(body)
            replies.extend(await c.recv_json())
        await c.aclose()
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        letters = con.execute("SELECT error_kind, reason FROM dead_letters").fetchall()
    finally:
        con.close()
    return replies, deals(ledger), letters, called


async def test_an_amount_finer_than_its_currency_is_refused_not_recorded(nursery, tmp_path) -> None:
    replies, rows, letters, called = await _send(nursery, tmp_path, [
        b'{"ref":"J1","amount":100.5,"ccy":"JPY"}',
        b'{"ref":"E1","amount":12.345,"ccy":"EUR"}',
        b'{"ref":"B1","amount":1.2345,"ccy":"048"}',
    ])
    assert [r["code"] for r in replies] == ["13", "13", "13"], replies
    assert replies[0]["text"] == "invalid amount (more decimals than JPY has)"
    assert called == []                         # refused before the counterpart is called
    assert [(d["reference"], d["status"], d["response_code"]) for d in rows] == [
        ("J1", "rejected", "13"), ("E1", "rejected", "13"), ("B1", "rejected", "13")]
    line = next(i for i, t in enumerate(ROUTE.splitlines(), 1) if t.startswith("    deal PAYMENT"))
    jpy, eur, bhd = (d["reason"] for d in rows)
    assert f"test.route:{line}:5" in jpy, jpy
    assert "deal PAYMENT: amount (amount) 100.5 has 1 decimal, but JPY has no decimals (ISO 4217 minor units)" \
        in jpy, jpy
    assert "round(x, minor_units(ccy))" in jpy and "fits_currency(x, ccy)" in jpy
    assert "12.345 has 3 decimals, but EUR has 2 decimals" in eur, eur
    assert "1.2345 has 4 decimals, but BHD has 3 decimals" in bhd, bhd
    assert len(letters) == 3 and all(kind == "rejected" for kind, _ in letters), letters


async def test_an_amount_that_fits_is_recorded_as_sent(nursery, tmp_path) -> None:
    replies, rows, letters, called = await _send(nursery, tmp_path, [
        b'{"ref":"J2","amount":150000.00,"ccy":"JPY"}',     # trailing zeros are no decimals
        b'{"ref":"E2","amount":12.34,"ccy":"978"}',
        b'{"ref":"X2","amount":1.2345,"ccy":"XTS"}',         # a currency bsp does not list: not checked
    ])
    assert [r["code"] for r in replies] == ["00", "00", "00"], replies
    assert [(d["reference"], d["status"], d["amount"]) for d in rows] == [
        ("J2", "committed", Decimal("150000")), ("E2", "committed", Decimal("12.34")),
        ("X2", "committed", Decimal("1.2345"))]
    assert letters == [] and len(called) == 3


async def test_the_validate_steps_after_the_deal_answer_first_then_refuse_it(nursery, tmp_path) -> None:
    """A route that checks the amount itself right after its deal step answers with its own rule's text; a
    validate step after the deal that does not check it still refuses the amount, naming the deal step."""
    route = ROUTE.replace('''        currency = msg.ccy
    }
''', '''        currency = msg.ccy
    }
    validate {
        msg.ref != "X" else reject "30" "no ref"
    }
    let half = msg.amount
    validate {
        msg.ref != "OWN" or fits_currency(msg.amount, msg.ccy) else reject "13" "too many decimals for the currency"
    }
''')
    replies, rows, letters, called = await _send(nursery, tmp_path, [
        b'{"ref":"OWN","amount":100.5,"ccy":"JPY"}',
        b'{"ref":"ANY","amount":100.5,"ccy":"JPY"}',
    ], route)
    assert [(r["code"], r["text"]) for r in replies] == [
        ("13", "too many decimals for the currency"), ("13", "invalid amount (more decimals than JPY has)")]
    assert called == [] and len(letters) == 2
    assert "100.5 has 1 decimal, but JPY has no decimals" in rows[1]["reason"]
    line = next(i for i, t in enumerate(route.splitlines(), 1) if t.startswith("    deal PAYMENT"))
    assert f"test.route:{line}:5" in rows[1]["reason"], rows[1]["reason"]
