"""A side-effect plugin step's failure texts quote no classified value in clear (docs/security.md, Error
texts): neither its own exception (the deal's reason, masked by ``Exchange.fail``) nor the exception of
its ``compensate`` hook (the ``NAME.compensate`` trace line's reason and the ``compensation of NAME
failed`` event), whose text is the plugin's and may quote the values it was given.  Real engine, real
ledger, a route whose format classifies the account ``personal`` and the card number ``pan``."""
from __future__ import annotations

import json
from pathlib import Path

import trio

from engine.registry import default_registry
from formats.component import ComponentSpec, OptionSpec
from txnkit import Client, compile_text, deals, rows, running

ACCT = "DE89370400440532013000"
PAN = "4111111111111111"


def _hold(values, scope):
    if values["acct"] == "boom":
        raise RuntimeError("never")
    if scope["msg"]["op"] == "bug":             # after the work: in doubt; the text quotes the values
        raise RuntimeError(f"hold system lost the answer for account {values['acct']} card {values['card']}")
    return "H-1"


def _release(values, scope):
    raise RuntimeError(f"hold system refuses the release of account {values['acct']} (card {values['card']})")


def registry():
    from engine.steps.base import FunctionStep

    reg = default_registry(plugins=False)
    opts = (OptionSpec("acct", "expr", "The account."), OptionSpec("card", "expr", "The card."))
    reg.register(ComponentSpec(category="step", name="hold", doc="Holds funds; released when the deal fails.",
                               options=opts, side_effects=True,
                               build=lambda step, ctx, route: FunctionStep(step, ctx, _hold, compensate=_release)))
    return reg


ROUTE = """
format J = json classify ["acct:personal", "card:pan"]
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1  currency = "EUR" }
    hold h { acct = msg.acct  card = msg.card }
    validate { msg.op != "late" else reject "05" "refused after the hold" }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def test_a_compensation_hooks_failure_text_is_masked(tmp_path: Path) -> None:
    reg = registry()
    program = compile_text(tmp_path, ROUTE, registry=reg)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        with trio.fail_after(10):
            for op, ref in (("late", "L1"), ("bug", "B1")):
                await c.send(json.dumps({"op": op, "ref": ref, "acct": ACCT, "card": PAN}).encode())
                await c.recv_json(1)
        await c.aclose()
    by_ref = {d["reference"]: d for d in deals(ledger)}
    assert by_ref["L1"]["status"] == "rejected" and by_ref["B1"]["reason"].startswith("in_doubt")
    for ref in ("L1", "B1"):
        d = by_ref[ref]
        steps = rows(ledger, "SELECT step, outcome, detail FROM deal_steps WHERE deal_id = ?", [d["deal_id"]])
        events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ?", [d["deal_id"]])
        assert ("2:hold.compensate", "internal") in [(s["step"], s["outcome"]) for s in steps], steps
        assert "compensation of 2:hold failed" in [e["to_state"] for e in events], events
        stored = json.dumps([d["reason"], [s["detail"] for s in steps], [e["detail"] for e in events]])
        assert "refuses the release of account" in stored           # the text is there, masked
        assert ACCT not in stored and PAN not in stored, stored
