"""``bsp run`` (the live engine, its generations) logs a route's repeated internal error once, then counts
it, across a reload, and writes the count at the stop (docs/operations.md#repeated-faults).  Its
generations are not run by ``Switchboard.run``: the engine runs their log of repeated faults itself.
Real loopback sockets, a real ledger."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import trio

from opskit import live, rows  # noqa: I001  (puts the engine tests' kit on the path)

from kit import Client  # noqa: E402

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route pay {
    receive from front as J
    let limits = "5"
    deal PAY { ref = msg.ref amount = 1.00 currency = "CNY" }
    let top = limits.max
    reply J { ref = msg.ref code = "00" }
    on error { reply J { code = error.code } }
}
"""


async def flood(port: int, n: int) -> None:
    c = await Client.open(port)
    try:
        with trio.fail_after(30):
            await c.send(*[json.dumps({"ref": f"R{i}"}).encode() for i in range(n)])
            assert all(r == {"code": "96"} for r in await c.recv_json(n))
    finally:
        await c.aclose()


def pay_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.getMessage().startswith("route pay:")]


async def test_live_engine_counts_a_repeated_internal_error_across_a_reload(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    route, ledger = tmp_path / "pay.route", tmp_path / "l.duckdb"
    route.write_text(ROUTE)
    async with live([route], ledger) as eng:
        await flood(eng.channels["front"].port, 100)
        route.write_text(ROUTE + "# a new version, the same route\n")
        result = await eng.reload()
        assert result.ok, result
        await flood(eng.channels["front"].port, 50)
        during = pay_lines(caplog)
    after = pay_lines(caplog)
    assert len(during) == 1 and "Traceback" in during[0] and "pay.route:8:15 (EvalError)" in during[0], during
    assert len(after) == 2 and "route pay: 149 more internal errors at " in after[1], after
    assert rows(ledger, "SELECT count(*) FROM deals WHERE status = 'failed'") == [(150,)]
