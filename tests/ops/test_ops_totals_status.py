"""`limit` totals as the admin sees them (`bsp status`, GET /status ``totals``), and kept across a reload:
a reload builds a new generation, the running totals belong to the ledger.  Real engine (LiveEngine as
`bsp run` runs it), real sockets, a real DuckDB ledger."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from engine.ops.backend import EngineBackend
from opskit import json_counterpart, live
from kit import Client

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 5s }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    limit lc_drawn { key = msg.lc  max = 100.00  code = "61"  text = "over the LC amount" }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
    reply J { ref = msg.ref  code = "00"  left = lc_drawn.left }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def _send(port: int, ref: str, amount: str, lc: str = "LC-1") -> dict:
    c = await Client.open(port)
    try:
        await c.send(b'{"ref": "%s", "amount": %s, "lc": "%s"}' % (ref.encode(), amount.encode(), lc.encode()))
        (r,) = await c.recv()
        return json.loads(r, parse_float=Decimal)         # money as it was written: 40.00, not 40.0
    finally:
        await c.aclose()


async def test_status_shows_the_totals_and_a_reload_keeps_them(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    route = tmp_path / "r.route"
    route.write_text(ROUTE % back)
    async with live([route], tmp_path / "l.duckdb") as eng:
        port = eng.channels["front"].port
        assert await _send(port, "D1", "60.00") == {"ref": "D1", "code": "00", "left": Decimal("40.00")}
        doc = await EngineBackend(eng, eng.observer).status()
        assert doc["totals"]["buckets"] == 1
        assert doc["totals"]["fullest"] == [{"total": "lc_drawn", "key": "LC-1", "currency": "EUR", "day": None,
                                             "confirmed": "60.00", "reserved": "0"}]
        route.write_text(ROUTE.replace("over the LC amount", "drawing over the LC") % back)
        result = await eng.reload()
        assert result.ok, result
        assert (await _send(port, "D2", "50.00"))["code"] == "61"        # 60 + 50 > 100, after the reload
        assert (await _send(port, "D3", "40.00"))["left"] == Decimal("0.00")
        assert (await _send(port, "D4", "40.00", lc="LC-2"))["code"] == "00"
        doc = await EngineBackend(eng, eng.observer).status()
        assert [(r["key"], r["confirmed"]) for r in doc["totals"]["fullest"]] == [("LC-1", "100.00"),
                                                                                 ("LC-2", "40.00")]
        from rich.console import Console

        from engine.commands.top import render
        console = Console(width=200, record=True)
        console.print(render(doc, None, 0, {}))
        shown = console.export_text()
        assert "limit totals: 2 kept" in shown and "LC-1" in shown and "100.00" in shown
