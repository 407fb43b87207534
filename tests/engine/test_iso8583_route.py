"""An ISO 8583 route written in the route language: numbered fields are named with quoted keys."""
from __future__ import annotations

from pathlib import Path

import trio

from formats.iso8583 import codec_for
from kit import Client, compile_text, deals, running

ROUTE = """
format Net = iso8583 iso8583_1987_ascii

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}

route echo {
    receive from front as Net when msg.t == "0800"
    deal ECHO { ref = msg["11"]  amount = 0 }
    reply Net {
        t    = "0810"
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = "00"
        "70" = msg["70"]
    }
}
"""


async def test_network_management_echo_round_trip(tmp_path: Path) -> None:
    codec = codec_for("iso8583_1987_ascii")
    request = codec.encode({"t": "0800", "7": "1125210000", "11": "000123", "70": "301"})
    prog = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(request)
        with trio.fail_after(10):
            (raw,) = await c.recv()
        await c.stream.aclose()
    reply = codec.decode(raw)
    assert (reply["t"], reply["7"], reply["11"], reply["39"], reply["70"]) == (
        "0810", "1125210000", "000123", "00", "301")
    (deal,) = deals(ledger)
    assert (deal["status"], deal["reference"]) == ("committed", "000123")


def test_quoted_field_names_compile_to_bracketed_paths(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE)
    reply = prog.routes[0].steps[-1]
    assert [a.path for a in reply.options["fields"]] == ["t", '["7"]', '["11"]', '["39"]', '["70"]']
