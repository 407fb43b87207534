"""A TCP channel's framing header (an ISO 8583 TPDU) in the route's scope: `header.dest` classifies,
`header.src` is read, and with header_reply = swap each reply's TPDU has its addresses swapped."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from dsl.load import compile_paths
from engine.registry import default_registry
from formats.framing import make_framer
from kit import compile_text, deals, running

ROUTE = '''
format Req = json

channel pos = tcp listen {
    address      = "127.0.0.1:0"
    framing      = length2
    header_size  = 5
    header_reply = %s
}

route acquirer_a {
    receive from pos as Req when header.dest == "0003"
    deal PURCHASE { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { route = "a"  ref = msg.ref  terminal_nii = header.src  tpdu = header.hex }
}

route acquirer_b {
    receive from pos as Req when header.dest == "0004"
    deal PURCHASE { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { route = "b"  ref = msg.ref  terminal_nii = header.src  tpdu = header.hex }
}
'''


async def _exchange(port: int, tpdus: list[bytes]) -> list[tuple[bytes, dict]]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    wire = b"".join(make_framer("length2", header_size=5, header=t).frame(
        orjson.dumps({"ref": f"R{i}", "amount": 10})) for i, t in enumerate(tpdus))
    await stream.send_all(wire)
    rx = make_framer("length2", header_size=5)
    got: list[bytes] = []
    with trio.fail_after(10):
        while len(got) < len(tpdus):
            got.extend(rx.feed(await stream.receive_some(65536)))
    await stream.aclose()
    return list(zip(rx.headers, [orjson.loads(g) for g in got]))


async def test_tpdu_classifies_is_read_and_swapped_on_the_reply(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE % "swap")
    ledger = tmp_path / "l.duckdb"
    a, b = bytes.fromhex("6000030011"), bytes.fromhex("6000040012")
    async with running(prog, ledger) as sb:
        out = await _exchange(sb.channel("pos").port, [a, b, a])
    assert [(h.hex(), body["route"], body["terminal_nii"], body["tpdu"]) for h, body in out] == [
        ("6000110003", "a", "0011", "6000030011"),
        ("6000120004", "b", "0012", "6000040012"),
        ("6000110003", "a", "0011", "6000030011"),
    ]
    assert sorted(r["route"] for r in deals(ledger)) == ["acquirer_a", "acquirer_a", "acquirer_b"]


async def test_echo_keeps_the_request_tpdu_and_no_route_for_an_unknown_nii(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE % "echo")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        (h, body), = await _exchange(sb.channel("pos").port, [bytes.fromhex("6000030011")])
        assert h.hex() == "6000030011" and body["route"] == "a"
    stream_deals = deals(ledger)
    assert len(stream_deals) == 1


def test_header_without_header_size_is_a_check_error(tmp_path: Path) -> None:
    path = tmp_path / "r.route"
    path.write_text((ROUTE % "echo").replace("    header_size  = 5\n    header_reply = echo\n", ""))
    res = compile_paths([path], default_registry())
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert errors and all(d.message == "unknown name `header`" for d in errors), errors
    assert errors[0].pos.line == 10 and errors[0].pos.col == 34        # the first `when header.dest`
    assert "bound when the route receives from a channel with header_size" in errors[0].help


def test_swap_needs_a_five_byte_header(tmp_path: Path) -> None:
    path = tmp_path / "r.route"
    path.write_text((ROUTE % "swap").replace("header_size  = 5", "header_size  = 4"))
    res = compile_paths([path], default_registry())
    assert any("header_reply = swap" in d.message and "5-byte TPDU" in d.message for d in res.diagnostics), \
        res.diagnostics


def test_header_reply_needs_a_header_size(tmp_path: Path) -> None:
    path = tmp_path / "r.route"
    path.write_text((ROUTE % "swap").replace("    header_size  = 5\n", ""))
    res = compile_paths([path], default_registry())
    errs = [d for d in res.diagnostics if d.code == "E055"]
    assert len(errs) == 1 and "option header_reply needs header_size" in errs[0].message
    assert (errs[0].pos.line, errs[0].pos.col) == (7, 5)          # at `header_reply`
