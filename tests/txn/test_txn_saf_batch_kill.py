"""Group commit of the reversals' lines on their deals (engine/ledger.py ``append_stories``) keeps what store and
forward makes durable: a real `bsp run` SIGKILLed while a recovered host is acknowledging a queue of reversals
(their lines waiting for, or in, a shared ledger transaction), restarted: no reversal whose acknowledgement
the log holds is sent again, every other one is sent once (a 0421 if it was tried before the kill), each deal ends with one ``reversed auth``,
and the audit chain is clean.  Real TCP host, real engine process, real DuckDB ledger and transaction log."""
from __future__ import annotations

import base64
import signal
from pathlib import Path

import trio

from engine.txn.log import TxnLog, log_path
from safkit import ROUTE, Host, ask
from txnkit import AUDIT_KEY, audit_clean, deals, engine_serving, rows, start_engine


async def test_sigkill_amid_batched_acknowledgements_resends_only_what_the_log_does_not_hold_as_acknowledged(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    up = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        await up.wait()                     # down while the deals time out: every reversal queued
        await trio.sleep(0.02)              # then it acknowledges each, 16 at a time (reversal_in_flight)
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    route = tmp_path / "pos.route"
    route.write_text(ROUTE % (port, "2s"))
    ledger = tmp_path / "ledger.duckdb"
    stans = [f"{k:06d}" for k in range(1, 81)]

    served = await start_engine(route, ledger)
    try:
        async def one(stan: str) -> None:
            assert (await ask(served.ports["pos"], stan))["39"] == "68"

        async with trio.open_nursery() as n:
            for stan in stans:
                n.start_soon(one, stan)
        up.set()
        with trio.fail_after(20):           # some acknowledged and on their deals, others on their way: kill it
            while len(_recorded(ledger)) < 20:
                await trio.sleep(0.005)
        served.proc.send_signal(signal.SIGKILL)
        await served.proc.wait()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    txlog = TxnLog(log_path(ledger))
    left = {e["values"]["11"]: e for e in txlog.reversals.values()}
    txlog.close()
    acked_in_log = {s for s, e in left.items() if e.get("ack")}
    before = len(host.seen)

    async with engine_serving(route, ledger):
        with trio.fail_after(30):           # the log says when each is acknowledged and on its deal
            while not _recorded(ledger) >= {e["id"] for e in left.values()}:
                await trio.sleep(0.05)
    after = [(m["11"], m["t"]) for m in host.seen[before:]]
    assert not {s for s, _ in after} & acked_in_log            # acknowledged before the kill: never sent again
    expected = [(s, "0421" if e.get("n") else "0420") for s, e in left.items() if s not in acked_in_log]
    assert sorted(after) == sorted(expected)          # the others once: a repeat if tried before the kill
    assert sorted(_reversed(ledger)) == sorted(d["deal_id"] for d in deals(ledger))      # each once on its deal
    assert TxnLog(log_path(ledger)).reversals == {}
    audit_clean(ledger)


def _recorded(ledger: Path) -> set[str]:
    from engine.txn.log import read
    entries, _ = read(log_path(ledger))
    return {e["id"] for e in entries if e.get("t") == "revrec"}


def _reversed(ledger: Path) -> list[str]:
    return [r["deal_id"] for r in rows(ledger, "SELECT deal_id FROM deal_events WHERE to_state = 'reversed auth'")]
