"""With a field keyring, no PAN reaches the transaction log (``<ledger>.txn``) in plain text: the raw
bytes, the ISO 8583 request values as sent (``a`` records' ``v``, ``sending`` marks' ``values``) and
the decoded replies of ``done`` marks are all sealed; a restart still reverses with them."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from engine.sim.iso_host import IsoHost
from engine.txn.log import TxnLog, log_path
from engine.txn.reversal import original_data_elements
from safkit import ROUTE
from test_txn_reversal import ORIGINAL, _codec
from txnkit import Client, compile_text, deals, running

PAN = ORIGINAL["2"]
KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()

FULL_ROUTE = ROUTE.replace('receive from pos as Iso when msg.t == "0200"',
                           'receive from pos as Iso when msg.t == "0200"\n    on restart compensate')


def _plain_pan_in_log(ledger: Path) -> bool:
    data = log_path(ledger).read_bytes()
    return PAN.encode() in data or PAN.encode().hex().encode() in data


async def test_light_route_logs_no_plain_pan(nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    host = IsoHost()                                  # answers 0210 with DE 2 copied back
    port = await nursery.start(host.serve)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE % (port, "300ms")), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        await c.send(_codec().encode(ORIGINAL))
        with trio.fail_after(10):
            await c.recv(1)
        await c.aclose()
    assert [d["status"] for d in deals(ledger)] == ["committed"]
    assert not _plain_pan_in_log(ledger)


async def test_full_route_logs_no_plain_pan_and_reverses_after_a_crash(
        nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    seen: list[dict] = []
    mute = [True]

    def drop(req: dict) -> bool:
        seen.append(dict(req))
        return mute[0]

    host = IsoHost(drop=drop)
    port = await nursery.start(host.serve)
    program = compile_text(tmp_path, FULL_ROUTE % (port, "30s"))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("pos").port)
            try:
                await c.send(_codec().encode(ORIGINAL))
                with trio.fail_after(10):
                    while not seen:                      # the 0200 has left: in flight
                        await trio.sleep(0.005)
                crash.cancel()                           # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    txlog = TxnLog(log_path(ledger))
    (pending,) = txlog.pending.values()
    assert pending.phases == {"auth": "sending"}
    txlog.close()
    assert not _plain_pan_in_log(ledger)                 # request values sealed, not plain

    mute[0] = False
    async with running(program, ledger) as sb:           # recovery reverses the 0200 as it was sent
        (queue,) = sb.saf                                # (queued for store and forward: wait for it)
        with trio.fail_after(10):
            await queue.wait_empty()
    assert [r["t"] for r in seen] == ["0200", "0420"]
    assert seen[1]["90"] == original_data_elements(seen[0]) and seen[1]["2"] == PAN
    (deal,) = deals(ledger)
    assert deal["status"] == "failed"
    assert not _plain_pan_in_log(ledger)
