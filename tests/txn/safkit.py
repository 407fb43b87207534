"""Kit for the ISO 8583 store-and-forward tests (test_txn_saf*.py, test_txn_reversal.py): the purchase route
(a 0200 to an issuer over a MUX channel), an issuer host driven by events, the engine in process on a
journaled, audited ledger, a client asking once, and the deal's story as the ledger tells it."""
from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from engine.journal import open_ledger_sync
from engine.runtime.switchboard import Switchboard
from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for
from txnkit import AUDIT_KEY, Client, rows, switchboard

CODEC = codec_for("iso8583_1987_ascii", validate=False)
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


class Host:
    """An issuer over TCP (length2, MUX-friendly: one task per request) that never answers the 0200 and
    answers a reversal (0420 / 0421 -> 0430) only when ``ack(nth reversal, message)`` returns True
    (awaited: it may wait for an event).  ``held``: the reversals it is holding now (``ack`` not returned
    yet), ``peak``: the most it held at once; ``at``: each reversal's (trio time, DE 11, MTI)."""

    def __init__(self, ack: Callable[[int, dict], Awaitable[bool]]) -> None:
        self.ack = ack
        self.seen: list[dict] = []
        self.reversals = 0
        self.acked = 0
        self.saw_reversal = trio.Event()
        self.held = 0
        self.peak = 0
        self.at: list[tuple[float, str, str]] = []

    async def serve(self, nursery: trio.Nursery) -> int:
        ls = await nursery.start(functools.partial(trio.serve_tcp, self._conn, 0, host="127.0.0.1"))
        return ls[0].socket.getsockname()[1]

    async def _conn(self, stream: Any) -> None:
        f = LengthPrefixFramer(2)
        lock = trio.Lock()
        async with stream, trio.open_nursery() as n:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    n.cancel_scope.cancel()
                    return
                for p in f.feed(data):
                    n.start_soon(self._one, stream, f, lock, CODEC.decode(p))

    async def _one(self, stream: Any, f: Any, lock: trio.Lock, msg: dict) -> None:
        self.seen.append(msg)
        if msg["t"] not in ("0420", "0421"):
            return                                   # the 0200 is never answered: the engine times out
        self.reversals += 1
        self.at.append((trio.current_time(), msg.get("11"), msg["t"]))
        self.saw_reversal.set()
        self.held += 1
        self.peak = max(self.peak, self.held)
        try:
            if not await self.ack(self.reversals, msg):
                return
        finally:
            self.held -= 1
        self.acked += 1
        async with lock:
            try:
                await stream.send_all(f.frame(CODEC.encode({**msg, "t": "0430", "39": "00"})))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


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
