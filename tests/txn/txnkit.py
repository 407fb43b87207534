"""Helpers for the transaction tests: real loopback servers, real ledgers (no mocks)."""
from __future__ import annotations

import os
import re
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

from engine.audit import verify

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

from kit import (Client, Counterpart, compile_text, deals, free_port, json_counterpart,  # noqa: E402
                 running, switchboard)

AUDIT_KEY = b"k" * 32          # the audit key of the tests whose ledgers are opened with one


def rows(ledger: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


def audit_clean(ledger: Path, key: bytes = AUDIT_KEY) -> None:
    """The ledger's audit chain verifies with ``key``: no break."""
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        report = verify(con, ledger, key)
    finally:
        con.close()
    assert report.ok, [str(b) for b in report.breaks]


class Unwritable:
    """A real ``TxnLog`` whose file cannot be written, in this process: its write descriptor is swapped for
    a read-only one of the same file, so the log's own ``pwrite`` fails (EBADF) as it would on a full disk
    (ENOSPC), at the moment a test chooses (a counterpart's handler: after a call went out).  ``restore``
    puts the real descriptor back (there is room again)."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.fd = log._fd
        log._fd = os.open(log.path, os.O_RDONLY)

    def restore(self) -> None:
        if self.fd is not None:
            os.close(self.log._fd)
            self.log._fd, self.fd = self.fd, None


__all__ = ["AUDIT_KEY", "Client", "Counterpart", "Gate", "REPO", "Served", "Unwritable", "audit_clean", "compile_text",
           "deals", "engine_serving", "free_port", "gated_counterpart", "json_counterpart", "load_until_sigkill", "rows",
           "running", "start_engine", "switchboard"]


class Gate:
    """A counterpart's rule for the crash tests: the first ``answer_first`` requests are answered OK,
    the later ones are counted and held (never answered) until ``open()``.  ``holding`` is set once a
    request is held: it reached the counterpart, so its deal was accepted and logged (before its call
    left) and, unanswered, cannot have a ledger row: the kill lands with that deal in flight, whatever
    the timing of the machine (no sleep, no clock)."""

    def __init__(self, counts: Counter, answer_first: int) -> None:
        self.counts = counts
        self.answer_first = answer_first
        self.answered = 0
        self.held = 0
        self.holding = trio.Event()
        self.is_open = False

    def __call__(self, req: dict) -> dict | None:
        self.counts[(req["op"], req["ref"])] += 1
        if not self.is_open and self.answered >= self.answer_first:
            self.held += 1
            self.holding.set()
            return None
        self.answered += 1
        return {"status": "OK", "ref": req["ref"]}

    def open(self) -> None:
        """Answer every request from now on (the restart's recovery and resends)."""
        self.is_open = True


async def gated_counterpart(nursery, counts: Counter, answer_first: int) -> tuple[int, Gate]:
    """A counting counterpart behind a ``Gate``; returns (its port, the gate)."""
    gate = Gate(counts, answer_first)
    return await json_counterpart(nursery, gate), gate


class Served:
    """A started `bsp run`: the process and the port each channel reported (``channel NAME: ROLE HOST:PORT``)."""

    def __init__(self, proc: Any, ports: dict[str, int]) -> None:
        self.proc = proc
        self.ports = ports


async def start_engine(route: Path, ledger: Path) -> Served:
    """`bsp run` until it says it serves; route files listen on port 0 (no port picked ahead and
    released, which another process could take): the ports are read from what it prints."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    with trio.fail_after(30):
        while b"serving" not in buf:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"bsp run exited early: {buf.decode()}"
            buf += chunk
    ports = {m.group(1).decode(): int(m.group(2))
             for m in re.finditer(rb"^channel (\S+): \S+ [\d.]+:(\d+)( \(.*\))?$", buf, re.M)}
    return Served(proc, ports)


@asynccontextmanager
async def engine_serving(route: Path, ledger: Path) -> AsyncIterator[Served]:
    """`bsp run` for the block; then SIGTERM, and it must drain and exit 0."""
    served = await start_engine(route, ledger)
    proc = served.proc
    try:
        yield served
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()


async def load_until_sigkill(route: Path, ledger: Path, gate: Gate, refs: list[str],
                             *, clients: int = 8) -> tuple[Any, dict[str, dict]]:
    """Start `bsp run`, drive ``refs`` over ``clients`` connections (one request at a time each) to
    its channel ``front`` and SIGKILL the engine once the ``gate``'s answered requests are all
    acknowledged and at least one more is held at the counterpart; then open the gate.  Returns
    (the dead process, {ref: reply} for what the clients saw)."""
    acked: dict[str, dict] = {}
    all_acked = trio.Event()
    served = await start_engine(route, ledger)
    proc, front = served.proc, served.ports["front"]
    try:
        async def client(part: list[str]) -> None:
            c = await Client.open(front)
            try:
                for ref in part:
                    await c.send(orjson.dumps({"ref": ref}))
                    (r,) = await c.recv_json()
                    acked[ref] = r
                    if len(acked) >= gate.answer_first:
                        all_acked.set()
            except (AssertionError, trio.BrokenResourceError, OSError):
                return              # the engine died under us
            finally:
                await c.aclose()
        async with trio.open_nursery() as n:
            for k in range(clients):
                n.start_soon(client, refs[k::clients])
            with trio.fail_after(60):                         # a guard against a hang, not a timing
                await all_acked.wait()
                await gate.holding.wait()
            proc.kill()                                       # SIGKILL with calls in flight
        await proc.wait()
    finally:
        gate.open()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    assert len(acked) == gate.answer_first, "every answered call was acknowledged, nothing else"
    assert gate.held >= 1 and len(acked) < len(refs)
    return proc, acked
