"""A queued ISO 8583 reversal keeps in the transaction log only the fields the reversal carries (KEEP and
what DE 90 is made of): never the original's track 2 (DE 35) or PIN block (DE 52), classified ``secret``
by the spec and stored nowhere else, although the ``rev`` entry stays until the host acknowledges (days,
for a host that is down).  Real TCP host that never acknowledges, real engine, real transaction log."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.txn.log import TxnLog, log_path
from engine.txn.reversal import KEEP
from safkit import CODEC, ORIGINAL, ROUTE, Host, serving
from txnkit import Client, compile_text

TRACK2 = "4111111111111111=2512101123400001"
PIN_BLOCK = "0123456789ABCDEF"
REQUEST = {**ORIGINAL, "35": TRACK2, "52": PIN_BLOCK}
SAD_ROUTE = ROUTE.replace('"11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]\n    } expect',
                          '"11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]  "35" = msg["35"]  '
                          '"52" = msg["52"]\n    } expect')


async def test_a_queued_reversal_keeps_no_track_or_pin_block(nursery, tmp_path: Path) -> None:
    assert SAD_ROUTE != ROUTE

    async def never(n: int, msg: dict) -> bool:
        return False                              # the reversal stays queued

    host = Host(never)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, SAD_ROUTE % (port, "300ms")), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        await c.send(CODEC.encode(REQUEST))
        with trio.fail_after(10):
            (raw,) = await c.recv(1)
            await host.saw_reversal.wait()
        await c.aclose()
    assert CODEC.decode(raw)["39"] == "68"
    assert host.seen[0]["35"] == TRACK2 and host.seen[0]["52"] == PIN_BLOCK     # the 0200 carried them
    assert "35" not in host.seen[1] and "52" not in host.seen[1]                 # the 0420 does not
    (entry,) = TxnLog(log_path(ledger)).reversals.values()                      # still queued, in the log
    values = entry["values"]
    assert values["2"] == ORIGINAL["2"] and values["t"] == "0200"               # what the 0421 needs
    assert set(values) <= {"t", *KEEP}, sorted(values)
    assert TRACK2 not in str(entry) and PIN_BLOCK not in str(entry)


async def test_a_reversal_queued_again_on_restart_keeps_no_track_or_pin_block(nursery, tmp_path: Path) -> None:
    """The log could not be written when the reversal was queued (no ``rev``): the restart queues it again
    from the ``sending`` mark's values (engine/txn/recovery.py), which hold the whole request as sent."""
    from test_txn_saf_log_fails import FullDiskHost

    host = FullDiskHost()

    async def never(n: int, msg: dict) -> bool:
        return False
    host.ack = never
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    program = compile_text(tmp_path, SAD_ROUTE % (port, "300ms"))
    try:
        async with serving(program, ledger) as sb:
            (queue,) = sb.saf
            host.mgr = queue.mgr
            c = await Client.open(sb.channel("pos").port)
            await c.send(CODEC.encode(REQUEST))
            with trio.fail_after(10):
                await c.recv(1)
                await host.saw_reversal.wait()
            await c.aclose()
    finally:
        if host.unwritable is not None:
            host.unwritable.restore()
    assert TxnLog(log_path(ledger)).reversals == {}          # its rev never reached the log
    host.saw_reversal = trio.Event()
    async with serving(program, ledger) as sb:
        with trio.fail_after(10):
            await host.saw_reversal.wait()                    # queued again and sent
    (entry,) = TxnLog(log_path(ledger)).reversals.values()
    assert set(entry["values"]) <= {"t", *KEEP}, sorted(entry["values"])
    assert TRACK2 not in str(entry) and PIN_BLOCK not in str(entry)
