"""An ISO 8583 reversal (0400 / 0420, repeats 0401 / 0421) that no route of the channel takes: the engine cannot
locate its original (nothing here forwards reversals), so the channel's error reply gets ``error.code`` 25
("unable to locate original"), an acknowledgement by which the acquirer stops repeating it, instead of 12
("invalid transaction"), which some acquirers repeat without end.  Nothing is lost: the deal is recorded
(``(unrouted)``, rejected 25), its dead letter keeps the message with a reason that says what to settle, and the
deal is flagged for an operator (``bsp deals --flagged``): a purchase the issuer approved may stand.
Other unrouted requests (a 0100) keep 12.  docs/formats-iso8583.md#answering-what-cannot-be-read

Real loopback (127.0.0.1 port 0), a real DuckDB ledger in tmp_path, the strict decoder reading the answers."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.registry import default_registry
from formats.iso8583 import codec_for
from tests.engine.kit import Client, deals, running

LENIENT = codec_for("iso8583_1987_ascii", validate=False)
DE90 = "0200" + "000042" + "1125120000" + "0" * 22
REVERSAL = {"t": "0400", "2": "6228480000000011", "3": "000000", "4": "000000012550", "7": "1125120105",
            "11": "000043", "37": "CP000000042G", "41": "ATM00001", "49": "156", "90": DE90}

ROUTE = '''
format CardIso = iso8583 iso8583_1987_ascii
format CardIsoAnswer = iso8583 iso8583_1987_ascii validate false

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply CardIsoAnswer {
        t    = response_mti(msg.t)
        "2"  = if msg.t in ["0400", "0401", "0420", "0421"] then msg["2"] else null
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "37" = msg["37"]
        "39" = error.code
        "41" = msg["41"]
        "49" = msg["49"]
        "90" = msg["90"]
    }
}

route purchase {
    receive from front as CardIso when msg.t == "0200"
    reply CardIso {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "37" = msg["37"]
        "39" = "00"
        "41" = msg["41"]
        "49" = msg["49"]
    }
}
'''


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "front.route"
    path.write_text(ROUTE)
    res = compile_paths([path], default_registry())
    assert res.program is not None and not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics
    return res.program


async def _ask(port: int, values: dict) -> dict:
    c = await Client.open(port)
    try:
        await c.send(LENIENT.encode(values))
        (raw,) = await c.recv()
    finally:
        await c.aclose()
    return dict(LENIENT.decode(raw))


@pytest.mark.parametrize("mti", ["0400", "0421"])
async def test_an_unrouted_reversal_is_acknowledged_25_kept_and_flagged(program, tmp_path, mti) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, {"front": {"address": "127.0.0.1:0"}}) as sb:
        got = await _ask(sb.channel("front").port, {**REVERSAL, "t": mti})
    assert (got["t"], got["39"], got["11"], got["90"]) == ({"0400": "0410", "0421": "0430"}[mti], "25", "000043", DE90)
    (deal,) = deals(ledger)
    assert (deal["route"], deal["status"], deal["response_code"]) == ("(unrouted)", "rejected", "25"), deal
    assert "no route" in deal["reason"] and "original" in deal["reason"] and "flagged for an operator" in deal["reason"]
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--json"])
    assert out.exit_code == 0, out.output
    assert deal["deal_id"] in out.output
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--json"])
    assert out.exit_code == 0 and deal["deal_id"] in out.output, out.output
    # settled with the issuer: resolved like any flagged deal, then no longer listed
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "resolve", deal["deal_id"], "--outcome",
                                   "not-applied", "--note", "issuer has no such purchase", "--by", "ops-1"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--json"])
    assert out.exit_code == 0 and deal["deal_id"] not in out.output, out.output


async def test_an_unrouted_authorisation_keeps_12(program, tmp_path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, {"front": {"address": "127.0.0.1:0"}}) as sb:
        got = await _ask(sb.channel("front").port, {k: v for k, v in REVERSAL.items() if k != "90"} | {"t": "0100"})
    assert (got["t"], got["39"]) == ("0110", "12")
    (deal,) = deals(ledger)
    assert (deal["route"], deal["status"], deal["response_code"]) == ("(unrouted)", "rejected", "12"), deal
    assert "flagged" not in (deal["reason"] or "")
