"""A request whose values have the wrong shape for the route's expressions is the sender's error: rejected
with code 30 and a reason naming the field path, what was expected and what came, and the route's place
(dsl/inbound.py); until 2026-11-27 it failed the deal as `internal` (96), as if the route were broken.  A
failure on a value the route built stays `internal`.  A TCP/JSON route on real loopback sockets with a real
DuckDB ledger; the HTTP answers: tests/engine/test_channels_http_listen.py, tests/services/test_calling_bsp.py."""
from __future__ import annotations

from pathlib import Path

from kit import Client, compile_text, deals, running

ROUTE = """
format Req = json
format Rsp = json

channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    on error reply Rsp {
        code = error.code
        kind = error.kind
        text = error.text
    }
}

route pay {
    receive from front as Req
    let own = "CONSTANT"
    validate {
        msg.amount > 0                          else reject "13" "invalid amount"
        len(trim(msg.beneficiary.name)) > 0     else reject "30" "beneficiary name missing"
        msg.ref != "BUG" or own.code == "X"     else reject "99" "never"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Rsp { ref = msg.ref  code = "00" }
}
"""

GOOD = b'{"ref": "G1", "amount": 10, "beneficiary": {"name": "Ann"}}'
CASES = [
    (b'{"ref": "B1", "amount": 10, "beneficiary": "ACME"}', "rejected",
     "beneficiary: expected an object (with field 'name'), got text 'ACME'", (20, 18)),
    (b'{"ref": "B2", "amount": "10", "beneficiary": {"name": "Ann"}}', "rejected",
     "amount: expected a number, got text '10'", (19, 9)),
    (b'{"ref": "B3", "beneficiary": {"name": "Ann"}}', "rejected",
     "amount: expected a number, got nothing (absent or null)", (19, 9)),
    (b'[{"ref": "B4", "amount": 10}]', "malformed",
     "the request: expected an object (with field 'amount'), got a list of 1", (19, 9)),
    (b'"hello"', "malformed", "the request: expected an object (with field 'amount'), got text 'hello'", (19, 9)),
]


async def test_a_request_of_the_wrong_shape_is_rejected_30_naming_the_field(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(GOOD, *(body for body, *_ in CASES), b'{"ref": "BUG", "amount": 1, "beneficiary": {"name": "A"}}')
        replies = await c.recv_json(len(CASES) + 2)
        await c.aclose()
    assert replies[0] == {"ref": "G1", "code": "00"}
    for (body, kind, text, _), got in zip(CASES, replies[1:]):
        assert got == {"code": "30", "kind": kind, "text": text}, body
    # the route's own constant read wrongly: the route's error, as before
    assert replies[-1] == {"code": "96", "kind": "internal", "text": "internal error"}

    rows = deals(ledger)
    assert sorted(r["status"] for r in rows) == sorted(["committed"] + ["rejected"] * len(CASES) + ["failed"])
    reasons = {r["reason"] for r in rows if r["status"] == "rejected"}
    for body, kind, text, (line, col) in CASES:
        # the deal's reason: the kind, the field path, expected and got, and the place of the expression
        assert f"{kind}: {text} (at {tmp_path / 'test.route'}:{line}:{col})" in reasons, reasons
    bug = next(r for r in rows if r["status"] == "failed")
    assert bug["reason"].startswith("internal: ")
    assert "cannot read field 'code' of a string (own)" in bug["reason"]


async def test_a_list_where_a_when_reads_a_field_is_malformed_not_unrouted(tmp_path: Path) -> None:
    """A `when` that reads a field of a request that is no object does not take it; when no route does, the
    request is malformed (30, naming what was expected), not unrouted (12, "no route for this request")."""
    text = ROUTE.replace("receive from front as Req", 'receive from front as Req when msg.op == "pay"')
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'[1, 2]', b'{"op": "other"}')
        replies = await c.recv_json(2)
        await c.aclose()
    assert replies == [
        {"code": "30", "kind": "malformed", "text": "the request: expected an object (with field 'op'), got a list of 2"},
        {"code": "12", "kind": "unrouted", "text": "no route for this request"}]
    assert sorted(r["status"] for r in deals(ledger)) == ["rejected", "rejected"]
