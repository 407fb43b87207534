"""The other readers of a table by key, given an effective-dated one, read the row in force on the deal's day
(today by the exchange's clock, a route test's `at`): a `limit` step's `max` (a cap changed from a date),
`in` / `not in`, `lookup` and `T[KEY]` (a fee or rate table); run through `bsp test`."""
from __future__ import annotations

from pathlib import Path

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format J = json
channel api = memory
table caps = csv "caps.csv" key currency effective from valid_from
table fees = csv "fees.csv" key product effective from valid_from
route r {
    receive from api as J
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "USD"  key = msg.ref }
    validate {
        msg.product in fees                    else reject "12" "no fee in force for the product"
        not (msg.product not in fees)          else reject "12" "no fee in force for the product"
    }
    limit day { key = msg.who  max = caps["USD"].daily_max  per = "day"  code = "61"  text = "over the cap" }
    reply J { code = "00"  fee = fees[msg.product].fee  again = lookup(fees, msg.product, "fee", "none") }
    on error reply J { code = error.code }
}
'''

TESTS = '''use "r.route"

test "before December: the old cap" at "2026-11-20T10:00:00Z" {
    given api sends J { ref = "A1"  who = "W"  amount = 150.00  product = "A" }
    expect reply { code = "61" }
}

test "before December: the old fee" at "2026-11-20T10:00:00Z" {
    given api sends J { ref = "A2"  who = "V"  amount = 50.00  product = "A" }
    expect reply { code = "00"  fee = "1.00"  again = "1.00" }
}

test "before December: no fee for product B yet" at "2026-11-20T10:00:00Z" {
    given api sends J { ref = "A3"  who = "U"  amount = 50.00  product = "B" }
    expect reply { code = "12" }
}

test "from December: the new cap and fee" at "2026-12-02T10:00:00Z" {
    given api sends J { ref = "B1"  who = "W"  amount = 150.00  product = "A" }
    expect reply { code = "00"  fee = "1.50"  again = "1.50" }
}

test "from December: product B" at "2026-12-02T10:00:00Z" {
    given api sends J { ref = "B2"  who = "U"  amount = 50.00  product = "B" }
    expect reply { code = "00"  fee = "2.00" }
}
'''


def test_limit_in_lookup_and_a_plain_read_take_the_row_in_force_on_the_deals_day(tmp_path: Path) -> None:
    (tmp_path / "caps.csv").write_text("currency,valid_from,daily_max\nUSD,2020-01-01,100.00\n"
                                       "USD,2026-12-01,200.00\n")
    (tmp_path / "fees.csv").write_text("product,valid_from,fee\nA,2020-01-01,1.00\nA,2026-12-01,1.50\n"
                                       "B,2026-12-01,2.00\n")
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text(TESTS)
    ran = run_paths([tmp_path], default_registry())
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert [(o.passed, o.failures) for o in ran.outcomes] == [(True, [])] * 5
