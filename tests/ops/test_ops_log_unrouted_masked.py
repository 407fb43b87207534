"""The `bsp.deal` log line of a request no route takes masks what its format classifies.

A request the channel's format decodes but whose `when` no route matches is an `(unrouted)` deal,
stored with the classification of the format that read it (docs/security.md); its log line at info
(`deal ... (unrouted) rejected ... request={...}`) must mask the same fields.  Found by
tests/tools/leak_scan.py: bill payment's `account` (personal) was logged in clear for the mainframe
simulator's unrouted transaction codes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from opskit import live, rows

from kit import Client  # noqa: E402  (opskit puts tests/engine on the path)

ACCOUNT = "ACC565412094"
PAN = "4111111111111111"
ROUTE = """
format Req = json classify ["account:personal", "card:pan"]
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { kind = error.kind }
}
route pay {
    receive from front as Req when msg.op == "pay"
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def test_unrouted_deal_log_line_masks_classified_fields(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bsp.deal")
    route = tmp_path / "r.route"
    route.write_text(ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        c = await Client.open(eng.current.channels["front"].port)
        for op in ("pay", "XX99"):                    # routed, then no route takes it
            await c.send(json.dumps({"op": op, "ref": f"R-{op}", "account": ACCOUNT, "card": PAN}).encode())
            with trio.fail_after(10):
                await c.recv()
        await c.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "bsp.deal"]
    assert len(lines) == 2, lines
    unrouted = next(line for line in lines if "(unrouted)" in line)
    assert ACCOUNT not in unrouted and PAN not in unrouted, unrouted
    assert '"account":"A***"' in unrouted and "411111******1111" in unrouted, unrouted
    routed = next(line for line in lines if " pay " in line)
    assert ACCOUNT not in routed and PAN not in routed, routed
    # the ledger row of the same deal was already masked: the log now says what the ledger says
    (stored,), = rows(ledger, "SELECT request FROM deals WHERE route = '(unrouted)'")
    assert ACCOUNT not in stored and PAN not in stored
