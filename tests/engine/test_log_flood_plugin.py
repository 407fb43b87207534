"""A plugin with a bug does not flood the log (docs/operations.md#repeated-faults, docs/plugins.md): a
step that raises on every message, and a call channel whose ``request_many`` raises on every batch, are
logged once in full with the traceback, the rest counted and summed up in one line at the stop; each
deal is still failed (internal, or in doubt for the call) and dead-lettered.  Before: nothing for the
step (the ledger only), one traceback per batch for the channel.  tests/plugin_faulty (bsp-wreck)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from engine.registry import default_registry
from kit import Client, compile_text, deals, running
from pluginkit import on_path

ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code }
}
channel raise = liar connect { mode = "raise" }
route bad_step {
    receive from front as J when msg.op == "explode"
    explode e { why = msg.op }
    reply J { ok = "never" }
}
route bad_channel {
    receive from front as J
    call post = raise as J { ref = msg.ref }
    reply J { code = "00" }
}
"""
N = 30


@pytest.fixture
def wreck(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(("plugin_faulty",), tmp_path_factory, monkeypatch)


async def one_by_one(port: int, body: bytes, n: int) -> None:
    for _ in range(n):                      # a connection each: a batch each
        c = await Client.open(port)
        with trio.fail_after(10):
            await c.send(body)
            assert (await c.recv_json())[0]["code"] == "96"
        await c.aclose()


def lines(caplog, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.getMessage().startswith(start)]


async def test_a_plugin_step_or_channel_failing_every_message_is_logged_once_then_counted(
        wreck: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE, registry=reg), ledger, registry=reg) as sb:
        port = sb.channel("front").port
        await one_by_one(port, b'{"op": "explode", "ref": "E"}', N)
        await one_by_one(port, b'{"op": "call", "ref": "C"}', N)
        step_during, call_during = lines(caplog, "route bad_step:"), lines(caplog, "call post")
    step_after, call_after = lines(caplog, "route bad_step:"), lines(caplog, "call post")
    assert len(step_during) == 1 and "(RuntimeError), deal " in step_during[0], step_during
    assert "the ledger of the wreck is on fire (step kind explode, from plugin bsp-wreck" in step_during[0]
    assert "Traceback (most recent call last):" in step_during[0] and "runtime.py" in step_during[0]
    assert len(step_after) == 2 and f"{N - 1} more internal errors at " in step_after[1], step_after
    assert len(call_during) == 1, call_during
    assert "raised RuntimeError: liar lost its socket table; 1 deal(s) failed in doubt" in call_during[0]
    assert "Traceback (most recent call last):" in call_during[0] and "request_many" in call_during[0]
    assert len(call_after) == 2 and f"{N - 1} more deals failed in doubt (channel raise " in call_after[1], call_after
    rows = deals(ledger)
    assert sorted((d["route"], d["status"]) for d in rows) == \
        [("bad_channel", "failed")] * N + [("bad_step", "failed")] * N
    assert all(d["reason"].startswith("in_doubt: ") for d in rows if d["route"] == "bad_channel")
    assert all(d["reason"].startswith("internal: ") for d in rows if d["route"] == "bad_step")


EFFECT_ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code }
}
route book {
    receive from front as J
    deal BOOK { ref = msg.ref  amount = 1 }
    misfire m { ref = msg.ref }
    reply J { code = "00" }
}
"""


async def test_a_side_effect_step_failing_every_message_is_logged_once_then_counted(
        wreck: Path, tmp_path: Path, caplog) -> None:
    """A plugin step that acts outside bsp (side_effects) and raises fails its deal in doubt (it may have done
    its work): that stays so, and the error is logged as an internal error's, the first in full with its
    traceback, the same again counted.  Before: not logged at all (the ledger only)."""
    caplog.set_level(logging.WARNING)
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, EFFECT_ROUTE, registry=reg), ledger, registry=reg) as sb:
        await one_by_one(sb.channel("front").port, b'{"ref": "B"}', N)
        during = lines(caplog, "route book:")
    after = lines(caplog, "route book:")
    assert len(during) == 1, during
    assert "(ConnectionResetError), deal " in during[0], during
    assert "the wreck's booking desk hung up mid-booking (step kind misfire, from plugin bsp-wreck" in during[0]
    assert "may have done its work" in during[0]
    assert "Traceback (most recent call last):" in during[0] and "runtime.py" in during[0], during
    assert len(after) == 2 and f"{N - 1} more deals failed in doubt at " in after[1], after
    rows = deals(ledger)
    assert [(d["route"], d["status"]) for d in rows] == [("book", "failed")] * N
    assert all(d["reason"].startswith("in_doubt: ") and "flagged for an operator" in d["reason"] for d in rows), \
        rows[0]["reason"]
