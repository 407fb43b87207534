"""The demo's simulators give up on replies only after a stall, not at a deadline from the start: on a slow or
busy machine the engine answers late but keeps answering, and the demo must count those replies, not report
them lost (before 2026-11-27 a batch file's acknowledgements after 30 s from the drop were "lost" though the
deals were in the ledger).  The batch-file client against a stand-in ERP counterpart: acknowledgement files
written by the test itself, one every 5 s of MockClock time (a real folder, the client's own polling)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from engine.sim.services.batch_files import BatchFileClient
from engine.sim.services.model import Request


class Lines:
    """JSON lines, as a codec (encode values -> bytes, decode bytes -> values)."""

    def encode(self, values):
        return json.dumps(values).encode() + b"\n"

    def decode(self, data):
        return json.loads(data)


def service() -> SimpleNamespace:
    return SimpleNamespace(
        name="stall", mix={"good": 1}, batch_header=None, file_header=b"", trailer=None, ack_header=False,
        record_key=None, batch_of=None, code_of=lambda v: v["code"],
        make=lambda kind, n, rng, tag: Request(kind, {"batch_id": "B1", "record_no": n}, "00", f"B1-{n}"))


async def acknowledge_slowly(outbox: Path, n: int, every: float) -> None:
    for k in range(1, n + 1):
        await trio.sleep(every)
        (outbox / f"ACK-{k}.json").write_bytes(Lines().encode({"batch_id": "B1", "record_no": k, "code": "00"}))


@pytest.mark.parametrize("way", ["stall", "deadline"])
async def test_late_but_steady_acknowledgements_are_counted_with_a_stall_not_a_deadline(
        tmp_path, mock_clock, nursery, way) -> None:
    mock_clock.autojump_threshold = 0          # nothing but this test's tasks and the folder: jump at once
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    client = BatchFileClient(service(), Lines(), Lines(), inbox=inbox, outbox=outbox)
    nursery.start_soon(acknowledge_slowly, outbox, 8, 5.0)        # 40 s in all, one every 5 s
    limit = {"stall": {"stall": 8.0}, "deadline": {"deadline": 8.0}}[way]
    result = await client.run(total=8, **limit)
    codes = [o.code for o in result.outcomes]
    if way == "stall":
        assert codes == ["00"] * 8                                 # each came within 8 s of the one before
    else:
        assert codes[:1] == ["00"] and None in codes               # a deadline from the drop: the rest "lost"
