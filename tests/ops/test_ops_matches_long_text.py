"""matches() on a request field longer than the 1,000 characters a pattern is run on: the request is
rejected (30) naming the field, never answered as "does not match" -- which let an over-long text through a
deny-list rule, `not matches(msg.narrative, ".*DROP.*") else reject ...`.  Real engine, real socket, real
DuckDB ledger."""
from __future__ import annotations

from pathlib import Path

import trio

from opskit import live, rows
from kit import Client  # noqa: E402  (tests/engine, put on the path by opskit)

ROUTE = r'''
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { ref = error.code  text = error.text }
}
route pay {
    receive from front as Req
    validate {
        not matches(msg.narrative, ".*DROP.*") else reject "13" "narrative refused"
    }
    deal PAY { ref = msg.ref  amount = 1.00  currency = "EUR" }
    reply Req { ref = msg.ref  code = "00" }
}
'''


async def test_an_over_long_field_is_rejected_naming_it(tmp_path: Path) -> None:
    route = tmp_path / "r.route"
    route.write_text(ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        c = await Client.open(eng.current.channels["front"].port)
        with trio.fail_after(10):
            await c.send(b'{"ref":"A1","narrative":"pay rent"}',
                         b'{"ref":"A2","narrative":"DROP TABLE"}',
                         b'{"ref":"A3","narrative":"DROP TABLE ' + b"x" * 1000 + b'"}',
                         b'{"ref":"A4","narrative":["DROP TABLE"]}')
            replies = await c.recv_json(4)
        await c.aclose()
    assert replies[0] == {"ref": "A1", "code": "00"}
    assert replies[1]["ref"] == "13"
    assert replies[2]["ref"] == "30", replies[2]
    assert replies[3]["ref"] == "30", replies[3]                 # a list is not text: not let through either
    got = sorted(rows(ledger, "SELECT status, response_code, reason FROM deals"))
    assert [(s, c) for s, c, _ in got][1:] == [("rejected", "13"), ("rejected", "30"), ("rejected", "30")] \
        and got[0][0] == "committed"
    assert any("narrative: matches: expected text, got a list" in (r or "") for _, _, r in got), got
    assert any("narrative: matches: the text is 1,011 characters long, more than the 1,000 a pattern is matched "
               "against" in (r or "") for _, _, r in got), got
