"""ISO 8583 reversals against a real host simulator over TCP that drops the first answer: the
reversal itself, and end to end through a route, the engine and a MUX channel (match = iso8583)."""
from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import trio

from engine.channels.tcp_connect import TcpConnector
from engine.registry import default_registry
from engine.sim.iso_host import IsoHost
from engine.txn.reversal import original_data_elements, reversal_of, reverse
from formats.framing import LengthPrefixFramer
from safkit import ROUTE
from txnkit import Client, compile_text, deals, rows, running

ORIGINAL = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
            "7": "0501120000", "11": "000123", "32": "12345", "41": "TERM0001", "49": "978", "52": "ABCDEF0123456789"}


def _codec():
    spec = default_registry().get("format", "iso8583")
    return spec.build(SimpleNamespace(name="Auth", kind="iso8583", options={"spec": "iso8583_1987_ascii"},
                                      fields=(), positional=("iso8583_1987_ascii",)))


def test_reversal_carries_de90_and_no_pin() -> None:
    rev = reversal_of(ORIGINAL)
    assert rev["t"] == "0420" and reversal_of(ORIGINAL, repeat=True)["t"] == "0421"
    assert rev["90"] == original_data_elements(ORIGINAL) == "0200" + "000123" + "0501120000" + "00000012345" + "0" * 11
    assert len(rev["90"]) == 42 and "52" not in rev and rev["2"] == ORIGINAL["2"]


async def test_unanswered_reversal_is_repeated_until_acknowledged(nursery) -> None:
    codec = _codec()
    seen: list[str] = []

    async def host(stream):
        f = LengthPrefixFramer(2)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for p in f.feed(data):
                    msg = codec.decode(p)
                    seen.append(msg["t"])
                    if len(seen) == 1:
                        continue                     # drop the first answer
                    ans = dict(msg)
                    ans.update({"t": "0430", "39": "00"})
                    await stream.send_all(f.frame(codec.encode(ans)))

    ls = await nursery.start(functools.partial(trio.serve_tcp, host, 0, host="127.0.0.1"))
    port = ls[0].socket.getsockname()[1]
    ch = TcpConnector("host", {"address": f"127.0.0.1:{port}", "framing": "length2"})
    call = SimpleNamespace(channel=ch, codec=codec, timeout=0.3)
    attempts = await reverse(ORIGINAL, call)
    assert [a.mti for a in attempts] == ["0420", "0421"]
    assert [a.outcome for a in attempts] == ["timeout", "acknowledged"]
    assert seen == ["0420", "0421"]


# ------------------------------------------------------------ end to end: route + engine + host simulator
# (the purchase route of tests/txn/safkit.py, timeout 300ms)

async def test_a_timed_out_0200_is_reversed_through_the_mux_until_acknowledged(nursery, tmp_path: Path) -> None:
    seen: list[dict] = []

    def drop(req: dict) -> bool:
        seen.append(dict(req))
        return [r["t"] for r in seen].count(req["t"]) == 1 and req["t"] in ("0200", "0420")   # first of each

    host = IsoHost(drop=drop)                 # answers the repeats too (0421 -> 0430)
    port = await nursery.start(host.serve)
    program = compile_text(tmp_path, ROUTE % (port, "300ms"))
    ledger = tmp_path / "l.duckdb"
    codec = _codec()
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        await c.send(codec.encode(ORIGINAL))
        with trio.fail_after(10):
            (raw,) = await c.recv(1)
        await c.aclose()
        (queue,) = sb.saf                 # the reversal is stored and forwarded: wait for its acknowledgement
        with trio.fail_after(10):
            await queue.wait_empty()
    answer = codec.decode(raw)
    assert (answer["t"], answer["39"], answer["11"]) == ("0210", "68", "000123")     # timed out: 68
    assert [r["t"] for r in seen] == ["0200", "0420", "0421"]
    assert host.connections == 1                    # the reversals used the MUX pool connection
    for rev in seen[1:]:
        assert rev["90"] == original_data_elements(seen[0])            # DE 90 = the 0200 as it was sent
        assert rev["11"] == "000123" and rev["41"] == "TERM0001" and rev["4"] == ORIGINAL["4"]
        assert "52" not in rev
    (deal,) = deals(ledger)
    assert (deal["status"], deal["response_code"]) == ("failed", "68")
    steps = rows(ledger, "SELECT step, kind, outcome FROM deal_steps WHERE deal_id = ? ORDER BY seq",
                 [deal["deal_id"]])
    # a light route (no key/compensation/on restart): its trace starts at the call that needed undoing;
    # the reversal's attempts were appended to the deal after its row (engine/txn/saf.py)
    assert [(s["step"], s["kind"], s["outcome"]) for s in steps] == [
        ("auth", "call", "timeout"),
        ("auth.reversal", "reversal", "timeout"), ("auth.reversal.repeat", "reversal", "acknowledged")]
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? "
                                          "ORDER BY seq", [deal["deal_id"]])]
    assert events == ["accepted", "calling auth", "reversal queued", "failed", "reversal 0420", "reversal 0421",
                      "reversed auth"]
