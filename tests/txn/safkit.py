"""Kit for the ISO 8583 store-and-forward tests (test_txn_saf*.py, test_txn_reversal.py): the purchase route
(a 0200 to an issuer over a MUX channel), an issuer host driven by events, the engine in process on a
journaled, audited ledger, a client asking once, and the deal's story as the ledger tells it."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import trio

from engine.journal import open_ledger_sync
from engine.runtime.switchboard import Switchboard
from engine.sim.reversal_host import CODEC, ReversalHost
from txnkit import AUDIT_KEY, Client, rows, switchboard

Host = ReversalHost            # the issuer the tests drive (engine/sim/reversal_host.py)
ORIGINAL = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
            "7": "0501120000", "11": "000123", "41": "TERM0001", "49": "978"}

# the purchase route: a 0200 to the issuer (MUX, match = iso8583); ``ROUTE % (issuer port, call timeout)``
ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = %s
}
route purchase {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


@asynccontextmanager
async def serving(program: Any, ledger: Path) -> AsyncIterator[Switchboard]:
    """The engine in process on a journaled ledger with the audit key, for the block."""
    async with open_ledger_sync(ledger, "journal", audit_key=AUDIT_KEY, keyring=None) as led, \
            switchboard(program, led) as sb:
        yield sb


def story(ledger: Path, deal_id: str) -> tuple[list[tuple], list[tuple]]:
    steps = rows(ledger, "SELECT step, kind, outcome, detail FROM deal_steps WHERE deal_id = ? ORDER BY seq",
                 [deal_id])
    events = rows(ledger, "SELECT seq, from_state, to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                  [deal_id])
    return ([(s["step"], s["kind"], s["outcome"]) for s in steps],
            [(e["seq"], e["from_state"], e["to_state"]) for e in events])


async def ask(port: int, stan: str = "000123", guard: float = 10) -> dict:
    c = await Client.open(port)
    await c.send(CODEC.encode({**ORIGINAL, "11": stan}))
    with trio.fail_after(guard):              # a guard against a hang, not a timing
        (raw,) = await c.recv(1)
    await c.aclose()
    return CODEC.decode(raw)
