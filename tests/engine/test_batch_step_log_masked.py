"""A batch step (a plugin's, or a call) that raises, or an ``on error`` step that fails: the log line
naming the failure masks the classified values its text quotes, as the deal's reason does (docs/security.md, Error texts).  It logged the
exception whole with ``log.exception``: a card holder's name in the exception's text reached the log in
clear (the log's scrubber masks Luhn card numbers only).  Real engine, real ledger, a registry with a
batch step kind whose exception quotes the request's classified values."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import trio

from engine.registry import default_registry
from formats.component import ComponentSpec, OptionSpec
from kit import Client, compile_text, deals, running

NAME = "Zanzibar Quux"
CVV = "S3cr3tCvv9"


class Notify:
    batch = True

    def __init__(self, step, ctx, route) -> None:
        self.step = step
        self.name = step.name
        self.where = str(step.pos)

    async def run_batch(self, exs) -> None:
        msg = exs[0].scope["msg"]
        raise RuntimeError(f"notification service refused holder {msg['holder']} (cvv {msg['cvv']})")


def _audit(values, scope):
    raise ValueError(f"audit trail refused {values['who']}")


def registry():
    from engine.steps.base import FunctionStep

    reg = default_registry(plugins=False)
    reg.register(ComponentSpec(category="step", name="audit", doc="Writes an audit line.",
                               options=(OptionSpec("who", "expr", "Whom."),),
                               build=lambda step, ctx, route: FunctionStep(step, ctx, _audit)))
    reg.register(ComponentSpec(category="step", name="notify", doc="Notifies, a batch at a time.",
                               options=(OptionSpec("to", "expr", "Whom."),), build=Notify))
    return reg


ROUTE = """
format J = json classify ["holder:personal", "cvv:secret"]
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route pay {
    receive from front as J
    notify n { to = msg.holder }
    reply J { code = "00" }
    on error {
        audit a { who = msg.holder }
        reply J { code = error.code }
    }
}
"""


async def test_a_batch_steps_failure_is_logged_masked(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    reg = registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        with trio.fail_after(10):
            await c.send(json.dumps({"holder": NAME, "cvv": CVV}).encode())
            await c.recv_json(1)
        await c.aclose()
    (d,) = deals(ledger)
    assert d["status"] == "failed" and "notification service refused holder" in d["reason"]
    assert NAME not in d["reason"] and CVV not in d["reason"]
    text = caplog.text
    assert "notification service refused holder" in text and "run_batch" in text      # named, with its frames
    assert "audit trail refused" in text                     # the on error step's failure (a warning)
    assert NAME not in text and CVV not in text and "Zanzibar" not in text, text
