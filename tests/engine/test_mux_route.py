"""mainframe -> bsp -> ISO 8583 host over one persistent MUX connection -> reply, through a route file.

Faults: a declined, a dropped (timeout) and a keyless request each get their error reply while
the others on the same connection are answered; the ledger has every deal.
"""
from __future__ import annotations

import functools
from pathlib import Path

import trio

from engine.sim.iso_host import IsoHost
from formats.iso8583 import codec_for
from kit import REPO, Client, compile_text, deals, running

ROUTE = (REPO / "bench" / "bench_mux.route").read_text()
ISO = codec_for("iso8583_1987_ascii")


def req(stan: int, amount: str = "000000001000", term: str | None = "TERM0001") -> bytes:
    v = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": amount, "7": "0101120000",
         "11": f"{stan:06d}", "41": term, "49": "978"}
    return ISO.encode({k: x for k, x in v.items() if x is not None})


async def test_iso_through_mux_with_faults(tmp_path: Path, nursery) -> None:
    # only the 0200 of 000013 is dropped: its 0420 reversal is acknowledged at once.  Dropping the
    # reversals too made the engine send 0420 + 4 x 0421, each waiting the 1 s timeout (6 s for this
    # test); reversal retries are tested in tests/txn/test_txn_reversal.py.
    host = IsoHost(reverse=True, decline_amounts=("000000000666",),
                   drop=lambda r: r["11"] == "000013" and r["t"] == "0200")
    await nursery.start(functools.partial(host.serve, "127.0.0.1", 0))
    prog = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "l.duckdb"
    overrides = {"mainframe": {"address": "127.0.0.1:0"},
                 "issuer": {"address": f"127.0.0.1:{host.port}", "timeout": 1}}
    async with running(prog, ledger, overrides=overrides) as sb:
        c = await Client.open(sb.channel("mainframe").port)
        good = [req(i) for i in range(1, 11)]
        await c.send(*good, req(11, amount="000000000666"), req(12, term=None), req(13))
        with trio.fail_after(10):
            raw = await c.recv(13)
        await c.stream.aclose()
        issuer = sb.channel("issuer")
        assert issuer.connects == 1 and host.connections == 1
        assert host.dropped == 1 and host.requests == 12          # 10 good, the declined one, one 0420
    replies = [ISO.decode(r) for r in raw]
    assert [(r["11"], r["39"]) for r in replies] == (
        [(f"{i:06d}", "00") for i in range(1, 11)] + [("000011", "05"), ("000012", "96"), ("000013", "68")])
    by_ref = {d["reference"]: d for d in deals(ledger)}
    assert by_ref["000001"]["status"] == "committed"
    assert by_ref["000011"]["status"] == "failed" and "refused" in by_ref["000011"]["reason"]
    assert "DE 41 (terminal id) missing" in by_ref["000012"]["reason"]
    assert by_ref["000013"]["status"] == "failed" and "timeout" in by_ref["000013"]["reason"]


def test_bench_route_compiles_with_its_channel_options(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE)
    opts = prog.channels["issuer"].options
    assert (opts["pool"], opts["match"]) == (1, "iso8583")
