"""An effective-dated table (``key K effective from valid_from``) served as `bsp run` serves it: a request
priced at the rate in force on its own date, not today's, and a rate change (a new row from a day) taking
effect with `bsp reload` for the dates from that day only; a file with two rows of one key from one day is
refused at the reload (E150, naming its line) and the rates in force stay."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import trio

from formats.framing import LengthPrefixFramer
from opskit import live, rows

ROUTE = """
format Req = json
table rates = csv "rates.csv" key product effective from valid_from
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { ref = msg.ref  code = error.code }
}
route price {
    receive from front as Req
    deal PRICE { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    let traded = parse_date(msg.trade_date, "%Y-%m-%d")
    reply Req {
        ref   = msg.ref
        code  = "00"
        fee   = round(msg.amount * round(rates[msg.product at traded].rate, 4), 2)
        today = rates[msg.product].rate
    }
    on error reply Req { ref = msg.ref  code = error.code  text = error.text }
}
"""
RATES = "product,valid_from,rate\nFX,2000-01-01,0.0100\n"


async def ask(stream: trio.SocketStream, ref: str, trade_date: str) -> dict:
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    body = b'{"ref": "%s", "product": "FX", "amount": 1000.00, "trade_date": "%s"}' % (ref.encode(),
                                                                                      trade_date.encode())
    await stream.send_all(tx.frame(body))
    got: list[bytes] = []
    while not got:
        got.extend(rx.feed(await stream.receive_some(65536)))
    return json.loads(got[0], parse_float=Decimal)     # amounts as the reply wrote them, never floats


async def test_a_rate_change_reloaded_prices_deals_from_its_day_and_leaves_older_dates_at_the_old_rate(
        tmp_path: Path) -> None:
    (tmp_path / "rates.csv").write_text(RATES)
    route = tmp_path / "price.route"
    route.write_text(ROUTE)
    async with live([route], tmp_path / "l.duckdb") as eng:
        s = await trio.open_tcp_stream("127.0.0.1", eng.channels["front"].port)
        first = await ask(s, "a1", "2026-03-01")
        assert (first["code"], first["fee"], first["today"]) == ("00", Decimal("10.00"), "0.0100")
        before = await ask(s, "a0", "1999-12-31")
        assert before["code"] == "96"             # as a key the table does not hold: the reason says why

        # the rate falls to 0.75% from 2026-02-01 (a day already past): a new row, the old one kept
        (tmp_path / "rates.csv").write_text(RATES + "FX,2026-02-01,0.0075\n")
        result = await eng.reload()
        assert result.ok and result.plan["tables"]["changed"] == ["rates"]
        after = await ask(s, "a2", "2026-03-01")
        assert (after["code"], after["fee"], after["today"]) == ("00", Decimal("7.50"), "0.0075")
        older = await ask(s, "a3", "2026-01-31")
        assert (older["code"], older["fee"]) == ("00", Decimal("10.00"))    # a trade of before the change: the old rate

        # two rows of FX from one day: the reload is refused, naming the file's line; the rates stay in force
        (tmp_path / "rates.csv").write_text(RATES + "FX,2026-02-01,0.0075\nFX,2026-02-01,0.0050\n")
        refused = await eng.reload()
        assert not refused.ok
        assert any("E150" in d and "rates.csv:4" in d and "two rows in force from 2026-02-01" in d
                   for d in refused.diagnostics), refused.diagnostics
        kept = await ask(s, "a4", "2026-03-01")
        assert (kept["code"], kept["fee"]) == ("00", Decimal("7.50"))
        await s.aclose()
    (status, reason), = rows(tmp_path / "l.duckdb", "SELECT status, reason FROM deals WHERE reference = 'a0'")
    assert status == "failed"
    assert "table rates (rates.csv) has no row with product = 'FX' in force on 1999-12-31: its first applies " \
           "from 2000-01-01 (valid_from)" in reason
    # each deal names the version whose copy of rates.csv priced it: the reload made a new one
    (v1,), = rows(tmp_path / "l.duckdb", "SELECT config_version FROM deals WHERE reference = 'a1'")
    (v2,), = rows(tmp_path / "l.duckdb", "SELECT config_version FROM deals WHERE reference = 'a2'")
    (v4,), = rows(tmp_path / "l.duckdb", "SELECT config_version FROM deals WHERE reference = 'a4'")
    assert v1 != v2 == v4
