"""Values at the edges of the ledger's columns, through a real engine (loopback sockets, a DuckDB file in
tmp_path, both sync modes): a deal is stored exactly, or refused at its deal step with a code and a dead
letter naming the field, or (a value the ledger cannot store at all) its message is kept as a dead letter
saying why; never lost, never stored mangled, and the deals around it are stored."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import duckdb
import orjson
import pytest

from engine.registry import default_registry
from formats.component import ComponentSpec
from kit import Client, compile_text, framed_counterpart, running

ROUTE = """
format Req = json classify ["party:personal"]
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

channel back = tcp connect {
    address = "127.0.0.1:1"
    framing = length4
    timeout = 5s
}

route pay {
    receive from front as FORMAT
    deal PAYMENT {
        ref      = msg.ref
        amount   = msg.amount
        currency = msg.cur
        party    = msg.party
    }
    call post = back as Rsp { ref = msg.ref } expect post.status == "OK"
    reply Rsp {
        ref  = msg.ref
        code = "00"
    }
}
"""


def rows(ledger: Any, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def serve(nursery: Any, tmp_path: Any, sync: str, payloads: list[bytes], fmt: str = "Req",
                extra: str = "", registry: Any = None) -> tuple[Any, list[dict], list[str]]:
    """Send ``payloads`` in one write on one connection; return (ledger, the replies that came, the refs the
    counterpart was called with).  A reply withheld (a deal not recorded) is simply not among them: the
    payloads end with a good request whose reply ends the wait."""
    called: list[str] = []

    def answer(p: bytes) -> bytes:
        called.append(orjson.loads(p)["ref"])
        return b'{"status":"OK"}'

    port = await framed_counterpart(nursery, answer, 4)
    program = compile_text(tmp_path, extra + ROUTE.replace("FORMAT", fmt), registry=registry)
    ledger = tmp_path / "ledger.duckdb"
    replies: list[dict] = []
    async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}, registry=registry,
                       sync=sync) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(*payloads)
        while not replies or replies[-1].get("ref") != "LAST":
            replies += await c.recv_json()
        await c.aclose()
    return ledger, replies, called


def pay(ref: Any, amount: str = "1.50", cur: Any = "CNY", party: Any = "P1", **more: str) -> bytes:
    extra = "".join(f',"{k}":{v}' for k, v in more.items())
    return (b'{"ref":%s,"amount":%s,"cur":%s,"party":%s%s}'
            % (orjson.dumps(ref), amount.encode(), orjson.dumps(cur), orjson.dumps(party), extra.encode()))


LAST = pay("LAST")


@pytest.mark.parametrize("sync", ["journal", "duckdb"])
async def test_an_integer_past_64_bits_in_a_classified_request_is_stored_exactly(nursery, tmp_path, sync) -> None:
    # the request has a classified field, so its column is rendered from the values (masked), not stored as
    # received: orjson refused the 25-digit integer, the deal was not recorded and its reply withheld, after
    # the counterpart had been called (a payment applied there, answered to nobody, in no ledger)
    big = "1234567890123456789012345"
    ledger, replies, called = await serve(nursery, tmp_path, sync, [pay("BIG", x=big, y=f"[-{big}]"), LAST])
    assert [(r["ref"], r["code"]) for r in replies] == [("BIG", "00"), ("LAST", "00")]
    assert called == ["BIG", "LAST"]
    got = dict(rows(ledger, "SELECT reference, request::VARCHAR FROM deals WHERE status = 'committed'"))
    assert f'"x":{big}' in got["BIG"] and f'"y":[-{big}]' in got["BIG"]    # a JSON number, every digit
    assert '"party":"P***"' in got["BIG"]                                   # still masked
    assert rows(ledger, "SELECT count(*) FROM dead_letters") == [(0,)]


@pytest.mark.parametrize("sync", ["journal", "duckdb"])
async def test_a_ref_or_party_that_is_not_text_is_rejected_at_the_deal_step(nursery, tmp_path, sync) -> None:
    # stored as Python's rendering ("{'a': 1}", "True") before, the counterpart called with it
    bad = [pay({"a": 1}), pay("R2", party=[1, 2]), pay(True)]
    ledger, replies, called = await serve(nursery, tmp_path, sync, [*bad, LAST])
    # the text names the request's field and what came (until 2026-11-27 "invalid ref": a partner sending
    # its claim id as an object was told of a "ref" its message has not)
    assert [(r.get("code"), r.get("text")) for r in replies] == [
        ("30", "invalid ref (ref: expected text or a number, got an object)"),
        ("30", "invalid party (party: expected text or a number, got a list of 2)"),
        ("30", "invalid ref (ref: expected text or a number, got boolean true)"), ("00", None)]
    assert called == ["LAST"]
    reasons = " | ".join(r for (r,) in rows(ledger, "SELECT reason FROM deals WHERE status = 'rejected'"))
    assert "deal PAYMENT: ref must be text or a number, got an object" in reasons
    assert "deal PAYMENT: party must be text or a number, got a list of 2" in reasons
    assert "deal PAYMENT: ref must be text or a number, got boolean true" in reasons
    assert rows(ledger, "SELECT count(*), min(error_code) FROM dead_letters") == [(3, "30")]


@pytest.mark.parametrize("sync", ["journal", "duckdb"])
async def test_a_currency_that_is_no_iso_4217_code_is_rejected_at_the_deal_step(nursery, tmp_path, sync) -> None:
    bad = [pay("C1", cur="C" * 1000), pay("C2", cur="EU"), pay("C3", cur="EUR\n"), pay("C4", cur="E U")]
    # a blank currency (a PIC X(3) of spaces, "") is no currency: recorded as null, as a route without one
    good = [pay("C5", cur="EUR"), pay("C6", cur=978), pay("C7", cur=""), pay("C8", cur="   ")]
    ledger, replies, called = await serve(nursery, tmp_path, sync, [*bad, *good, LAST])
    assert [r.get("text") for r in replies[:4]] == ["invalid currency"] * 4
    assert [(r["ref"], r["code"]) for r in replies[4:]] == [("C5", "00"), ("C6", "00"), ("C7", "00"), ("C8", "00"),
                                                           ("LAST", "00")]
    assert called == ["C5", "C6", "C7", "C8", "LAST"]
    stored = rows(ledger, "SELECT reference, currency FROM deals WHERE status = 'committed' ORDER BY reference")
    assert stored == [("C5", "EUR"), ("C6", "978"), ("C7", None), ("C8", None), ("LAST", "CNY")]
    reason = " | ".join(r for (r,) in rows(ledger, "SELECT reason FROM dead_letters"))
    assert "currency must be an ISO 4217 code, 3 letters (EUR) or 3 digits (978), got text 'CCCC" in reason
    assert "...' (1000 characters)" in reason and "got text 'EU'" in reason and "got text 'E U'" in reason


# A format plugin (a third party's component) whose decoder hands the route values the ledger cannot store:
# a complex number in the request (no JSON for it), a lone surrogate in the reference.
class _Odd:
    name = "odd"
    classify: dict = {}

    def decode(self, data: bytes) -> Any:
        v = orjson.loads(data)
        v["amount"] = Decimal(v["amount"])
        if v["ref"] == "CPLX":
            v["z"] = complex(1, 2)
        if v["ref"] == "SURR":
            v["ref"] = "S\udc80"
        return v

    def encode(self, values: Any) -> bytes:
        return orjson.dumps(values, default=str)


def _odd_registry() -> Any:
    reg = default_registry(plugins=False)
    reg.register(ComponentSpec(category="format", name="odd", doc="Decodes to values the ledger cannot store.",
                               build=lambda decl: _Odd()))
    return reg


@pytest.mark.parametrize("sync", ["journal", "duckdb"])
async def test_a_deal_the_ledger_refuses_keeps_its_message_as_a_dead_letter(nursery, tmp_path, sync) -> None:
    # before: "deal not recorded, reply withheld" in the log and nothing else: no deal row, no dead letter,
    # the counterpart called; in the journal mode the lone surrogate also failed every deal of its write
    cplx, surr = pay("CPLX"), pay("SURR")
    ledger, replies, called = await serve(nursery, tmp_path, sync, [cplx, surr, LAST], fmt="Odd",
                                          extra="format Odd = odd\n", registry=_odd_registry())
    assert [(r["ref"], r["code"]) for r in replies] == [("LAST", "00")]        # nothing answered unrecorded
    assert called == ["CPLX", "LAST"]        # SURR failed before its call: its body could not be encoded
    assert [r for (r,) in rows(ledger, "SELECT reference FROM deals")] == ["LAST"]
    dead = sorted(rows(ledger, "SELECT raw, error_kind, route, channel, reason FROM dead_letters"))
    assert [(bytes(raw), kind, route, channel) for raw, kind, route, channel, _ in dead] == [
        (cplx, "unrecorded", "pay", "front"), (surr, "unrecorded", "pay", "front")]
    c, s = dead[0][4], dead[1][4]
    assert c.startswith("unrecorded: deal ") and "was not recorded and no reply was sent: the ledger refused its " \
        "row: field request/response: Type is not JSON serializable: complex; the route's outcome: committed; " \
        "its calls may have been applied at the counterparts: check there before a retry" in c
    assert "field request/response: str is not valid UTF-8: surrogates not allowed; the route's outcome: failed " \
        "(internal: call post: cannot encode Rsp" in s


async def test_deals_as_received_with_numbers_past_a_double_read_back_exactly(nursery, tmp_path) -> None:
    # a plain JSON request is stored as received; the reads parsed it with orjson: `1e400` (a number the JSON
    # codec takes, as Decimal) made every `bsp deals` listing fail with a traceback and `bsp deals show` exit 1,
    # and `1.50` / a 25-digit integer were shown as 1.5 / 1.2345678901234568e+24
    from typer.testing import CliRunner

    from engine.cli import app as bsp_app
    big = "1234567890123456789012345"
    ledger, replies, _ = await serve(nursery, tmp_path, "journal", [pay("NUM", x="1e400", y=big), LAST],
                                     fmt="Plain", extra="format Plain = json\n")
    assert [(r["ref"], r["code"]) for r in replies] == [("NUM", "00"), ("LAST", "00")]
    runner = CliRunner()
    listed = runner.invoke(bsp_app, ["deals", "--ledger", str(ledger), "--json"])
    assert listed.exit_code == 0, listed.output
    (num,) = [json.loads(line) for line in listed.stdout.splitlines() if '"NUM"' in line]
    assert f'"amount":1.50,"cur":"CNY","party":"P1","x":1e400,"y":{big}}}' in listed.stdout
    shown = runner.invoke(bsp_app, ["deals", "show", num["deal_id"], "--ledger", str(ledger)])
    assert shown.exit_code == 0, shown.output
    assert '"amount": 1.50,' in shown.stdout and '"x": 1e400,' in shown.stdout and f'"y": {big}' in shown.stdout
    table = runner.invoke(bsp_app, ["deals", "--ledger", str(ledger)])
    assert table.exit_code == 0 and "NUM" in table.stdout and "LAST" in table.stdout


async def test_the_routes_counts_say_unrecorded_not_the_routes_outcome(nursery, tmp_path) -> None:
    """`bsp status` / `bsp top` / bsp_route_outcomes_total: a deal the ledger could not store was counted
    under its route's outcome (committed) although it was neither stored nor answered."""
    from engine.journal import open_ledger_sync
    from engine.metrics import Metrics
    from engine.ops.observe import Observer
    from kit import switchboard

    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    registry = _odd_registry()
    program = compile_text(tmp_path, "format Odd = odd\n" + ROUTE.replace("FORMAT", "Odd"), registry=registry)
    obs = Observer(Metrics())
    async with open_ledger_sync(tmp_path / "l.duckdb", "journal") as ledger, \
            switchboard(program, obs.ledger(ledger), {"back": {"address": f"127.0.0.1:{port}"}},
                        registry=registry) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(pay("CPLX"), LAST)
        (reply,) = await c.recv_json(1)
        assert reply["ref"] == "LAST"
        await c.aclose()
    counts = obs.routes["pay"].as_dict()
    assert (counts["received"], counts["committed"], counts["unrecorded"]) == (2, 1, 1), counts
    assert obs.metrics.route_outcomes.labels("pay", "unrecorded")._value.get() == 1
