"""Helpers for the transaction tests: real loopback servers, real ledgers (no mocks)."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import duckdb
import orjson
import trio


HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

from kit import Client, compile_text, deals, free_port, json_counterpart, running  # noqa: E402


def rows(ledger: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


class Counterpart:
    """Counts each request by (op, reference); answers by a rule."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.counts: Counter = Counter()
        self.refuse = refuse or set()

    def answer(self, req: dict) -> dict:
        op = req.get("op", "post")
        self.counts[(op, req.get("ref"))] += 1
        if req.get("ref") in self.refuse and op != "cancel":
            return {"status": "NO", "ref": req.get("ref")}
        return {"status": "OK", "ref": req.get("ref"), "conf": f"C-{req.get('ref')}-{op}"}


__all__ = ["Client", "Counterpart", "REPO", "compile_text", "deals", "free_port", "json_counterpart",
           "rows", "running"]


async def slow_counterpart(nursery, counts: Counter, delay: float) -> int:
    """Counts each (op, ref) it is asked, answers OK ``delay`` seconds after each read."""
    def answer(req: dict) -> dict:
        counts[(req["op"], req["ref"])] += 1
        return {"status": "OK", "ref": req["ref"]}
    return await json_counterpart(nursery, answer, delay=delay)


async def start_engine(route: Path, ledger: Path):
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    with trio.fail_after(30):
        while b"serving" not in buf:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"bsp run exited early: {buf.decode()}"
            buf += chunk
    return proc


@asynccontextmanager
async def engine_serving(route: Path, ledger: Path) -> AsyncIterator[Any]:
    """`bsp run` for the block; then SIGTERM, and it must drain and exit 0."""
    proc = await start_engine(route, ledger)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()


async def load_until_sigkill(route: Path, ledger: Path, front: int, refs: list[str],
                             *, clients: int = 8) -> tuple[Any, dict[str, dict]]:
    """Start `bsp run`, drive ``refs`` over ``clients`` connections and SIGKILL the engine once a
    quarter are acknowledged.  Returns (the dead process, {ref: reply} for what the clients saw)."""
    acked: dict[str, dict] = {}
    proc = await start_engine(route, ledger)
    try:
        async def client(part: list[str]) -> None:
            c = await Client.open(front)
            try:
                for ref in part:
                    await c.send(orjson.dumps({"ref": ref}))
                    (r,) = await c.recv_json()
                    acked[ref] = r
            except (AssertionError, trio.BrokenResourceError, OSError):
                return              # the engine died under us
            finally:
                await c.aclose()
        async with trio.open_nursery() as n:
            for k in range(clients):
                n.start_soon(client, refs[k::clients])
            with trio.fail_after(30):
                while len(acked) < len(refs) // 4:
                    await trio.sleep(0.005)
            proc.kill()                                       # SIGKILL mid-load
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    assert len(refs) // 4 <= len(acked) < len(refs), "the kill must land in the middle of the load"
    return proc, acked
