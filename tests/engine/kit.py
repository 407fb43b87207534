"""Test kit for engine tests: compile route text, run a real switchboard on loopback
with a real DuckDB ledger, a real TCP counterpart, and read the ledger back."""
from __future__ import annotations

import functools
import re
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import duckdb
import orjson
import trio

from dsl.load import compile_paths
from engine.journal import open_ledger_sync
from engine.registry import default_registry
from engine.runtime import Switchboard
from formats.framing import LengthPrefixFramer

REPO = Path(__file__).resolve().parents[2]


def compile_text(tmp_path: Path, text: str, name: str = "test.route", registry: Any = None) -> Any:
    path = tmp_path / name
    path.write_text(text)
    res = compile_paths([path], registry or default_registry())
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert res.program is not None and not errors, res.diagnostics
    return res.program


@asynccontextmanager
async def running(program: Any, ledger_path: Path, overrides: dict | None = None,
                  registry: Any = None, grace: float = 5.0, sync: str = "duckdb") -> AsyncIterator[Switchboard]:
    """A switchboard serving ``program``; drained and the ledger flushed on exit.  ``sync``: the ledger's
    sync mode (``bsp run --ledger-sync``); ``duckdb`` (each commit waits for DuckDB) unless told."""
    async with open_ledger_sync(ledger_path, sync) as ledger, \
            switchboard(program, ledger, overrides=overrides, registry=registry, grace=grace) as sb:
        yield sb


@asynccontextmanager
async def switchboard(program: Any, ledger: Any, overrides: dict | None = None, registry: Any = None,
                      grace: float = 5.0) -> AsyncIterator[Switchboard]:
    """A switchboard serving ``program`` on a ledger the test opened itself (its sync mode, audit key,
    clock, ...) for the block; drained on exit."""
    sb = Switchboard(program, registry or default_registry(), ledger=ledger, overrides=overrides, grace=grace)
    async with trio.open_nursery() as nursery:
        await nursery.start(sb.run)
        try:
            yield sb
        finally:
            sb.drain()


async def exchange_refs(tmp_path: Path, text: str, refs: list[str], amount: str = "1.5") -> tuple[list, list]:
    """Compile ``text``, serve it on a fresh ledger, send ``{"ref": REF, "amount": AMOUNT}`` for each of
    ``refs`` to its ``front`` channel (length2 JSON) and return (the JSON replies, the deals)."""
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        for ref in refs:
            await c.send(b'{"ref": "%s", "amount": %s}' % (ref.encode(), amount.encode()))
        replies = await c.recv_json(len(refs))
        await c.aclose()
    return replies, deals(ledger)


def deals(ledger_path: Path) -> list[dict[str, Any]]:
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        cur = con.execute("SELECT * FROM deals ORDER BY received_at, deal_id")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


class Client:
    """A framed TCP client on a real socket."""

    def __init__(self, stream: trio.SocketStream, width: int) -> None:
        self.stream = stream
        self.tx = LengthPrefixFramer(width)
        self.rx = LengthPrefixFramer(width)
        self.pending: list[bytes] = []

    @classmethod
    async def open(cls, port: int, width: int = 2) -> "Client":
        return cls(await trio.open_tcp_stream("127.0.0.1", port), width)

    async def send(self, *payloads: bytes) -> None:
        await self.stream.send_all(b"".join(self.tx.frame(p) for p in payloads))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def recv(self, n: int = 1) -> list[bytes]:
        while len(self.pending) < n:
            data = await self.stream.receive_some(65536)
            assert data, f"connection closed with {len(self.pending)} of {n} replies"
            self.pending.extend(self.rx.feed(data))
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    async def recv_json(self, n: int = 1) -> list[Any]:
        return [orjson.loads(r) for r in await self.recv(n)]

    async def closed(self) -> bool:
        return await self.stream.receive_some(16) == b""

    async def aclose(self) -> None:
        await self.stream.aclose()


CLOSE = object()      # what an ``answer`` returns to drop the connection without replying


async def framed_counterpart(nursery: trio.Nursery, answer: Callable[[bytes], Any], width: int = 4, *,
                             delay: float = 0.0) -> int:
    """A real TCP server of length-prefixed frames: one reply per request, in order.  ``answer``
    returns the reply's bytes, None (no reply) or ``CLOSE`` (close the connection, nothing of that
    read answered); ``delay``: seconds before each batch of replies leaves (a slow counterpart)."""

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(width)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                out = []
                for p in f.feed(data):
                    r = answer(p)
                    if r is CLOSE:
                        return
                    if r is not None:
                        out.append(f.frame(r))
                if out:
                    if delay:
                        await trio.sleep(delay)
                    try:
                        await stream.send_all(b"".join(out))
                    except trio.BrokenResourceError:
                        return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def json_counterpart(nursery: trio.Nursery, answer: Callable[[dict], Any], width: int = 4, *,
                           delay: float = 0.0) -> int:
    """``framed_counterpart`` speaking JSON: ``answer`` takes the request's dict and returns a dict,
    None (no reply) or ``CLOSE``."""

    def answer_bytes(p: bytes) -> Any:
        r = answer(orjson.loads(p))
        return r if r is None or r is CLOSE else orjson.dumps(r)

    return await framed_counterpart(nursery, answer_bytes, width, delay=delay)


async def read_until(stream: Any, pattern: bytes, buf: bytes = b"") -> tuple[re.Match[bytes], bytes]:
    """Read a child process's output (``stream``) until ``pattern`` (a regular expression) matches what was
    read; the match and all that was read.  The process ending first fails the test with what it printed."""
    while (m := re.search(pattern, buf)) is None:
        chunk = await stream.receive_some(4096)
        assert chunk, f"the engine exited before printing {pattern!r}: {buf.decode(errors='replace')}"
        buf += chunk
    return m, buf


def free_port() -> int:
    """A port free a moment ago: another test or process may bind it before this one does.  Where the engine
    or a counterpart listens, prefer port 0 and read back the port it bound; where nobody may listen, the
    ``dead_port`` fixture (tests/conftest.py); where nobody listens at first and the test serves there
    later, the ``held_port`` fixture."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port



class Counterpart:
    """Counts each request by (op, reference); refuses the references in ``refuse`` (not their cancel)."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.counts: Counter = Counter()
        self.refuse = refuse or set()

    def answer(self, req: dict) -> dict:
        op = req.get("op", "post")
        self.counts[(op, req.get("ref"))] += 1
        if req.get("ref") in self.refuse and op != "cancel":
            return {"status": "NO", "ref": req.get("ref")}
        return {"status": "OK", "ref": req.get("ref"), "conf": f"C-{req.get('ref')}-{op}"}


# a keyed transfer: debit then credit, each compensated; `% (debit port, credit port)`
TRANSFER_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route transfer {
    receive from front as J
    on restart compensate
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code }
}
"""
