"""W014: a deal's amount computed with `*` or `/` and not rounded is refused when a currency has fewer decimals
than the result (the `deal` step, docs/money.md); `bsp check` says so where it can see it, and stays silent for
rounded, received or summed amounts (no noise: every shipped route checks with 0 warnings)."""
from __future__ import annotations

import pytest

from dsl.load import compile_source

HEAD = '''channel mf = memory
format Req = fixed {
    code   string(4)
    ccy    string(3)
    units  decimal(12, 2)
    amount decimal(12, 2)
    nav    decimal(8, 4)
}
route r {
    receive from mf as Req
'''


def _w014(tmp_path, registry, body: str) -> list:
    r = compile_source(HEAD + body + "}\n", registry, tmp_path / "main.route")
    assert r.program is not None, [d.message for d in r.diagnostics]
    return [d for d in r.diagnostics if d.code == "W014"]


@pytest.mark.parametrize("body, shown", [
    ('    deal PAY { ref = msg.code  amount = msg.units * msg.nav  currency = msg.ccy }\n', "msg.units * msg.nav"),
    ('    let fx = msg.amount / 7.1234\n    let total = fx + 1.00\n'
     '    deal PAY { ref = msg.code  amount = total  currency = msg.ccy }\n', "msg.amount / 7.1234"),
    ('    deal PAY { ref = msg.code  amount = if msg.code == "A" then msg.amount else msg.amount * 1.5  '
     'currency = msg.ccy }\n', "msg.amount * 1.5"),
])
def test_an_unrounded_product_or_quotient_is_warned(tmp_path, registry, body: str, shown: str) -> None:
    (d,) = _w014(tmp_path, registry, body)
    assert d.severity == "warning" and f"(`{shown}`) and not rounded" in d.message, d.message
    assert d.help.startswith(f"round it where the business rule says so: `round({shown}, minor_units(ccy))`")
    line = (HEAD + body).splitlines().index(next(x for x in body.splitlines() if "deal PAY" in x)) + 1
    assert d.pos.line == line


@pytest.mark.parametrize("body", [
    '    deal PAY { ref = msg.code  amount = round(msg.units * msg.nav, minor_units(msg.ccy))  currency = msg.ccy }\n',
    '    let est = round(msg.units * msg.nav, 2)\n    deal PAY { ref = msg.code  amount = est  currency = msg.ccy }\n',
    '    deal PAY { ref = msg.code  amount = msg.amount - msg.amount % 0.01  currency = msg.ccy }\n',
    '    deal PAY { ref = msg.code  amount = msg.amount + msg.units  currency = msg.ccy }\n',
    '    deal PAY { ref = msg.code  amount = msg.amount  currency = msg.ccy }\n',
])
def test_rounded_received_or_summed_amounts_are_not_warned(tmp_path, registry, body: str) -> None:
    assert _w014(tmp_path, registry, body) == []
