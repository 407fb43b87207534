"""Bad input never crashes the engine: each case gets its error reply, is recorded
(rejected or failed, with the reason) and the engine keeps serving others.
Real loopback sockets, real DuckDB ledger files."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from engine.registry import default_registry
from kit import Client, compile_text, deals, json_counterpart, running

ROUTE = """
format Req = json
format Rsp = json

channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    max_frame = 256
    on error reply Rsp {
        code = error.code
        kind = error.kind
        text = error.text
    }
}

channel back = tcp connect {
    address = "127.0.0.1:1"
    framing = length4
    timeout = 2s
}

route pay {
    receive from front as Req when msg.op == "pay"
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT {
        ref      = msg.ref
        amount   = msg.amount
        currency = "CNY"
    }
    call post = back as Req reply Rsp {
        ref    = msg.ref
        amount = msg.amount
    } expect post.status == "OK"
    reply Rsp {
        ref  = msg.ref
        code = "00"
        conf = post.confirmation
    }
}
"""


def pay(ref: str, amount: str = "10.50", op: str = "pay") -> bytes:
    return b'{"op":"%s","ref":"%s","amount":%s}' % (op.encode(), ref.encode(), amount.encode())


def answer(req: dict) -> dict:
    if req["ref"].startswith("refuse"):
        return {"status": "NO", "confirmation": None}
    return {"status": "OK", "confirmation": "C-" + req["ref"]}


@pytest.fixture
def program(tmp_path):
    return compile_text(tmp_path, ROUTE)


async def start(nursery, program, tmp_path, back_port=None):
    if back_port is None:
        back_port = await json_counterpart(nursery, answer)
    ledger = tmp_path / "ledger.duckdb"
    return ledger, {"back": {"address": f"127.0.0.1:{back_port}"}}


async def test_good_request_is_committed(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("A1"))
        (r,) = await c.recv_json()
        assert r == {"ref": "A1", "code": "00", "conf": "C-A1"}
        await c.aclose()
    (d,) = deals(ledger)
    assert (d["status"], d["deal_type"], d["reference"], d["amount"]) == ("committed", "PAYMENT", "A1", Decimal("10.50"))


async def test_malformed_frame(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        port = sb.channel("front").port
        bad = await Client.open(port)
        good = await Client.open(port)
        await bad.send_raw(b"\x01\x01" + b"x" * 20)          # declares 257 bytes, max_frame is 256
        (r,) = await bad.recv_json()
        assert r["kind"] == "malformed" and r["code"] == "30"
        assert await bad.closed()
        await good.send(pay("G1"))
        assert (await good.recv_json())[0]["code"] == "00"
        await bad.aclose()
        await good.aclose()
    rows = {d["status"]: d for d in deals(ledger)}
    assert rows["rejected"]["route"] == "(malformed)"
    assert "257 payload bytes, over the limit of 256" in rows["rejected"]["reason"]
    assert rows["committed"]["reference"] == "G1"


async def test_undecodable_body(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b"{not json", pay("G2"))
        r1, r2 = await c.recv_json(2)
        assert (r1["kind"], r1["code"]) == ("malformed", "30")
        assert r1["text"] == "malformed request"
        assert r2["code"] == "00"                     # same connection keeps serving
        await c.aclose()
    rows = sorted(deals(ledger), key=lambda d: d["status"])
    assert [(d["status"], d["route"]) for d in rows] == [("committed", "pay"), ("rejected", "(malformed)")]
    assert "not a valid Req" in rows[1]["reason"] and "test.route:" in rows[1]["reason"]


async def test_request_matching_no_route(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("U1", op="refund"))
        (r,) = await c.recv_json()
        assert (r["kind"], r["code"]) == ("unrouted", "12")
        assert r["text"] == "no route for this request"
        await c.aclose()
    (d,) = deals(ledger)
    assert (d["status"], d["route"], d["response_code"]) == ("rejected", "(unrouted)", "12")
    assert orjson.loads(d["request"])["op"] == "refund"
    assert "routes tried: pay" in d["reason"]


async def test_failed_validation(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("V1", amount="-5.00"))
        (r,) = await c.recv_json()
        assert (r["kind"], r["code"], r["text"]) == ("rejected", "13", "invalid amount")
        await c.aclose()
    (d,) = deals(ledger)
    assert (d["status"], d["route"], d["response_code"]) == ("rejected", "pay", "13")
    assert "invalid amount" in d["reason"] and "test.route:" in d["reason"]


async def test_an_amount_sent_as_text_names_the_deal_step_and_the_fix(nursery, tmp_path) -> None:
    program = compile_text(tmp_path, ROUTE.replace('        msg.amount > 0 else reject "13" "invalid amount"\n',
                                                   '        msg.ref != "" else reject "30" "no ref"\n'))
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("T1", amount='"ten"'))
        (r,) = await c.recv_json()
        assert (r["kind"], r["code"], r["text"]) == ("rejected", "13", "invalid amount")
        await c.aclose()
    (d,) = deals(ledger)
    assert (d["status"], d["response_code"]) == ("rejected", "13")
    line = next(i for i, t in enumerate(ROUTE.splitlines(), 1) if t.startswith("    deal PAYMENT"))
    assert f"test.route:{line}:" in d["reason"], d["reason"]
    assert "deal PAYMENT: amount must be a number, got text 'ten'" in d["reason"], d["reason"]
    assert "a sender that sends it as text: write `amount = number(...)` in the deal" in d["reason"], d["reason"]


async def test_unreachable_counterpart(nursery, program, tmp_path, dead_port) -> None:
    ledger, ov = await start(nursery, program, tmp_path, back_port=dead_port)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("X1"))
        (r,) = await c.recv_json()
        assert (r["kind"], r["code"]) == ("unreachable", "91")
        await c.send(pay("X2", amount="0"))     # other requests still handled
        (r2,) = await c.recv_json()
        assert r2["code"] == "13"
        await c.aclose()
    rows = deals(ledger)
    assert [(d["reference"], d["status"]) for d in rows] == [("X1", "failed"), (None, "rejected")]
    assert "cannot connect" in rows[0]["reason"]


async def test_counterpart_refusal(nursery, program, tmp_path) -> None:
    ledger, ov = await start(nursery, program, tmp_path)
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("refuse1"))
        (r,) = await c.recv_json()
        assert (r["kind"], r["code"]) == ("refused", "05")
        await c.aclose()
    (d,) = deals(ledger)
    assert d["status"] == "failed" and "refused" in d["reason"]


def test_fast_field_paths_read_exactly_like_the_general_evaluator(tmp_path: Path) -> None:
    """The runtime's fast paths for ``msg.a`` and flat field mappings (engine/runtime/fastpath.py)
    give what dsl.compiler gives, for dicts, missing fields, None and non-dict values."""
    from dsl.compiler import compile_assigns, compile_expr
    from engine.runtime.binder import Binder

    program = compile_text(tmp_path, ROUTE_FOR_FASTPATH)
    route = program.routes[0]
    reply = next(s for s in route.steps if s.kind == "reply")
    assigns = tuple(reply.options["fields"])
    ctx = Binder(program, default_registry())
    fast, general = ctx.assigns(assigns), compile_assigns(assigns)
    scopes = [
        {"msg": {"ref": "R1", "amount": Decimal("1.50")}, "post": {"status": "OK"}},
        {"msg": {"ref": "R1"}, "post": None},
        {"msg": None, "post": {"status": "OK"}},
        {"msg": {"ref": {"nested": 1}, "amount": None}, "post": {}},
    ]
    for scope in scopes:
        assert fast(scope) == general(scope), scope
        for a in assigns:
            assert ctx.expr(a.value)(scope) == compile_expr(a.value)(scope), (a.path, scope)
    for bad in ({"msg": "text", "post": {}}, {"msg": [1, 2], "post": {}}):
        with pytest.raises(Exception) as fast_err:
            fast(bad)
        with pytest.raises(Exception) as general_err:
            general(bad)
        assert str(fast_err.value) == str(general_err.value)


ROUTE_FOR_FASTPATH = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:1"  framing = length4 }
route pay {
    receive from front as Req
    call post = back as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref  amount = msg.amount  status = post.status }
}
"""


def test_every_failure_kind_the_engine_raises_has_a_code_and_a_short_text() -> None:
    """error.text goes into reply fields: a kind without a short text handed its whole reason (a crash's
    story, a deal key) to the client; every kind the engine raises has one, and its code."""
    import re
    from engine.runtime.exchange import DEFAULT_CODES, SHORT_TEXTS, StepFailure
    repo = Path(__file__).resolve().parents[2]
    kinds = set()
    for f in (repo / "engine").rglob("*.py"):
        kinds |= set(re.findall(r'StepFailure\(\s*"([a-z_]+)"', f.read_text(encoding="utf-8")))
    assert kinds >= {"in_doubt", "recovered", "duplicate", "internal"}
    assert not kinds - set(SHORT_TEXTS) - {"rejected", "duplicate"} and not kinds - set(DEFAULT_CODES)
    f = StepFailure("in_doubt", "in flight at crash; flagged for an operator: call(s) pay may have reached ...")
    assert (f.code, f.text) == ("96", "outcome unknown")
    assert (StepFailure("duplicate", "repeats deal X (key 'k') ...").code, StepFailure("recovered", "x").text) == \
        ("94", "undone after a restart")
