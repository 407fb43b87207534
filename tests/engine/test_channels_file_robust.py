"""file.watch / file.write robustness, under the engine `bsp run` uses (LiveEngine, its handlers
forwarded to the current generation), on real directories with a real ledger."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import trio

from engine.ledger import open_ledger
from engine.ops.live import LiveEngine
from engine.registry import default_registry
from kit import compile_text, deals

ROUTE = '''
format Pay = json
format Out = json
format Written = json

channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
    %s
}

channel outbox = file write {
    dir   = "out"
    name  = "PAY-{date}-{seq}.json"
    fsync = false
}

route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = outbox as Out reply Written {
        ref    = msg.ref
        amount = msg.amount
    }
}
'''


@asynccontextmanager
async def live(tmp_path: Path, options: str = "") -> AsyncIterator[LiveEngine]:
    """The route above served as `bsp run` serves it."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    registry = default_registry()
    program = compile_text(tmp_path, ROUTE % options, registry=registry)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([tmp_path / "test.route"], {}), grace=5)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, None)
            try:
                yield eng
            finally:
                eng.drain()


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


def drop(folder: Path, name: str, data: bytes) -> Path:
    """A writer that follows the contract: a hidden temporary name, renamed into place."""
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)
    return folder / name


async def test_under_bsp_run_a_file_with_bad_records_goes_to_error_with_its_reason(tmp_path: Path) -> None:
    """`bsp run` hands channels a forwarding handler (reloads swap its dispatcher); the file channel
    used to get no outcome through it ("unknown" for every record), so a file whose records were
    rejected went to done/ with no reason file."""
    inbox = tmp_path / "in"
    async with live(tmp_path):
        drop(inbox, "bad.jsonl", b'{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": \n{"ref": "B3", "amount": -1}\n')
        await wait_for(lambda: not (inbox / "bad.jsonl").exists(), "the file handled")
    assert (inbox / "error" / "bad.jsonl").exists() and not (inbox / "done" / "bad.jsonl").exists()
    reason = (inbox / "error" / "bad.jsonl.reason.txt").read_text()
    assert "2 problem(s) in 3 record(s)" in reason
    assert "record 2, byte offset 27: rejected (malformed" in reason
    assert "record 3, byte offset 52: rejected (rejected, code 13): invalid amount" in reason
    assert {r["reference"]: r["status"] for r in deals(tmp_path / "l.duckdb") if r["reference"]} == {"B1": "committed"}
