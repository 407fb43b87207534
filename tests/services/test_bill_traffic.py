"""``python -m engine.sim.bill_traffic``: traffic for an engine a newcomer started (README tour, tour-tester)."""
from __future__ import annotations

import socket

import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.runtime import Switchboard
from engine.sim import bill_traffic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_plays_the_biller_and_sends_the_mix_to_a_running_engine(tmp_path):
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    biller_port = _free_port()

    async def main():
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port),
                                               ("127.0.0.1", biller_port), 60)
                sb.drain()
        return res

    res = trio.run(main)
    assert res.sent == res.replies == 60 and not res.unexpected      # the biller answered: 00 and 05 as meant
    assert res.by_code.get("00", 0) > 0 and res.by_code.get("05", 0) > 0
    text = bill_traffic.summary(res)
    assert text.startswith("sent 60 bill payment request(s)") and "60 replies" in text


def test_no_engine_is_an_error_that_says_what_to_start(capsys):
    rc = bill_traffic.main(["--count", "3", "--mainframe", f"127.0.0.1:{_free_port()}",
                            "--biller", f"127.0.0.1:{_free_port()}"])
    assert rc == 1
    assert "is the engine running (bsp run routes/platform.yaml)" in capsys.readouterr().err
