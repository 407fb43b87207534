"""An operator's resolution of a deal stops its queued ISO 8583 reversals (engine/txn/safcancel.py,
docs/transactions.md "Resolving a flagged deal").

A 0200 that timed out has its reversal stored and forwarded until the host acknowledges it, flagged after
``alert_after`` attempts and still repeated.  Once the operator has settled the deal by hand with the host
(``bsp deals resolve``: ``applied``, the customer stays charged; ``undone``, reversed by hand; ...) a reversal
still queued would, when the host comes back, undo what the operator settled.  Until 2026-11-28 ``resolve``
only warned that "a running engine goes on sending it".  Now: live, the engine drops the deal's reversals at
once; offline (engine stopped, the reversal in the transaction log ``<ledger>.txn``), the next start drops it
before sending anything; either way with an event ``reversal cancelled`` on the deal, the chain intact.

Real loopback sockets: an ISO 8583 issuer (engine.sim.reversal_host) that never answers the 0200 nor any
reversal, and counts the reversals it receives; a real keyed ledger and transaction log; the live engine (its
admin API, as `bsp run` serves it); ``bsp`` in a subprocess."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import orjson
import pytest
import trio
from rich.console import Console

from engine.admin.backend import DealQuery
from engine.commands.top import render
from engine.ops.backend import EngineBackend
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from engine.sim.reversal_host import ReversalHost
from engine.txn.log import TxnLog, log_path
from opskit import alter_deal_events, compile_file, live, rows
from test_ops_reload_saf import ISSUER, _purchase

TOKEN = "resolve-cancels-token-" + "c" * 24
KEY = base64.b64encode(b"k" * 32).decode()


async def _never(n: int, msg: dict) -> bool:
    return False                                     # no 0430 ever: each attempt times out


def _bsp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _states(ledger: Path, deal: str) -> list[str]:
    return [s for (s,) in rows(ledger, f"SELECT to_state FROM deal_events WHERE deal_id = '{deal}' ORDER BY seq")]


def _fast(eng) -> None:
    (q,) = eng.saf
    q.alert_after, q.backoff_cap = 2, 0.2            # flagged after 2 attempts of 0.2 s, 0.1-0.2 s apart


async def _flagged(backend: EngineBackend) -> str:
    with trio.fail_after(10):                        # the flag is appended after the row
        while not (flagged := await backend.deals(DealQuery(flagged=True))):
            await trio.sleep(0.02)
    return flagged[0]["deal_id"]


async def test_a_live_resolution_stops_the_reversals_at_once(nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    host = ReversalHost(_never)
    port = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ISSUER % {"port": port, "timeout": "200ms", "route": "purchase"})
    ledger = tmp_path / "l.duckdb"
    registry = default_registry()
    box: list = []
    ready, stopped = trio.Event(), trio.Event()

    async def serve() -> None:
        ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN),
                         hooks=[lambda e: (box.append(e), ready.set())])
        await run_live(compile_file(route, registry), registry, ledger_path=ledger, load=lambda: ([route], {}),
                       grace=2.0, ops=ops)
        stopped.set()

    nursery.start_soon(serve)
    with trio.fail_after(10):
        await ready.wait()
    eng = box[0]
    _fast(eng)
    (q,) = eng.saf
    backend = EngineBackend(eng, eng.observer)
    await _purchase(eng, "000123")                   # the 0200 times out: answered 68, reversal queued
    deal = await _flagged(backend)
    with trio.fail_after(10):
        while host.reversals < 3:                    # flagged, still repeated
            await trio.sleep(0.02)
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": f"http://127.0.0.1:{eng.admin_port}"}
    r = await trio.to_thread.run_sync(partial(
        _bsp, env, "deals", "resolve", deal, "--live", "--outcome", "applied", "--by", "alice",
        "--note", "the issuer holds the 0200 and the bank accepts it, ref ISS-4"))
    at_resolve = host.reversals
    assert r.returncode == 0, r.stderr
    # by the admin token's name (the single token: admin), --by kept as what the caller stated
    assert f"deal {deal} resolved (applied) by admin (stated by alice)" in r.stdout, r.stdout
    in_flight = "was at the host when the deal was resolved" in r.stderr     # an attempt already on its way
    if not in_flight:
        assert "the queued reversal of call auth (" in r.stdout and "is cancelled: the engine does not send it " \
            "again (event `reversal cancelled` on the deal)" in r.stdout, (r.stdout, r.stderr)
    with trio.fail_after(10):
        while "reversal cancelled" not in [e["to_state"] for e in (await backend.deal(deal) or {})["events"]]:
            await trio.sleep(0.05)
    await trio.sleep(1.5)                            # it was repeated every 0.3-0.4 s: five more by now
    status = await backend.status()
    # no 0420 / 0421 reached the host after the resolution (but the one in flight then, if any, a moment later)
    assert host.reversals <= at_resolve + in_flight, (host.reversals, at_resolve, in_flight)
    assert host.acked == 0
    assert status["reversals"]["pending"] == 0 and status["reversals"]["cancelled"] == 1, status["reversals"]
    assert status["flagged_deals"] == 1 and status["resolved_deals"] == 1, status      # counted since start
    table = Console(width=240, record=True, file=io.StringIO())
    table.print(render(dict(status), None, 0, {}))      # bsp status --table, bsp top
    assert "1 cancelled by an operator's resolution of their deal" in table.export_text()
    assert q.flagged_deals == set() and not q.items
    assert await backend.deals(DealQuery(flagged=True)) == []
    eng.drain()
    with trio.fail_after(20):
        await stopped.wait()
    assert TxnLog(log_path(ledger)).reversals == {}          # dropped from the log: not sent at the next start
    states = _states(ledger, deal)
    assert states.count("reversal cancelled") == 1 and states.index("resolved") < states.index("reversal cancelled")
    assert states.count("reversal flagged") == 1 and not any(s.startswith("reversed ") for s in states), states
    [(detail,)] = rows(ledger, f"SELECT detail FROM deal_events WHERE deal_id = '{deal}' "
                               f"AND to_state = 'reversal cancelled'")
    d = orjson.loads(detail)
    assert d["call"] == "auth" and d["resolution"]["outcome"] == "applied" and d["resolution"]["by"] == "admin", d
    assert "is not sent again" in d["why"], d
    r = _bsp({**os.environ, "BSP_AUDIT_KEY": KEY}, "audit", "verify", "--ledger", str(ledger))
    assert r.returncode == 0, r.stdout + r.stderr


async def _left_queued(nursery, tmp_path: Path, monkeypatch) -> tuple[ReversalHost, Path, Path, str]:
    """An engine that stopped with a flagged deal's reversal queued in its transaction log (the host never
    answers): (the host, the route file, the ledger, the deal)."""
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    host = ReversalHost(_never)
    port = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ISSUER % {"port": port, "timeout": "200ms", "route": "purchase"})
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        _fast(eng)
        await _purchase(eng, "000123")
        deal = await _flagged(EngineBackend(eng, eng.observer))
    return host, route, ledger, deal


@pytest.mark.parametrize("outcome", ["applied", "undone"])
async def test_an_offline_resolution_stops_the_reversals_at_the_next_start(
        nursery, tmp_path: Path, monkeypatch, outcome: str) -> None:
    host, route, ledger, deal = await _left_queued(nursery, tmp_path, monkeypatch)
    (left,) = TxnLog(log_path(ledger)).reversals.values()        # the engine stopped with the reversal queued
    assert left["id"] == deal and left["ack"] is None and left["n"] >= 2
    before = host.reversals

    env = {**os.environ, "BSP_AUDIT_KEY": KEY}
    r = _bsp(env, "deals", "resolve", deal, "--ledger", str(ledger), "--outcome", outcome, "--by", "bob",
             "--note", "settled with the issuer by phone, ref ISS-9")
    assert r.returncode == 0, r.stderr
    assert "the reversal of call auth is still queued in the engine's transaction log" in r.stdout, r.stdout
    assert "the engine cancels it when it next starts, before sending anything" in r.stdout, r.stdout
    assert "goes on sending it" not in r.stderr, r.stderr

    async with live([route], ledger) as eng:         # the host is still silent: it would be repeated at once
        _fast(eng)
        (q,) = eng.saf
        with trio.fail_after(10):
            while q.cancelled == 0:
                await trio.sleep(0.02)
        await trio.sleep(1.0)                        # a reversal sent would have reached the host by now
        status = q.status()
    assert host.reversals == before, (host.reversals, before)     # none sent after the restart
    assert status["pending"] == 0 and status["cancelled"] == 1 and status["attempts"] == 0, status
    assert TxnLog(log_path(ledger)).reversals == {}
    states = _states(ledger, deal)
    assert states.count("reversal cancelled") == 1 and states[-1] == "reversal cancelled", states
    assert states.index("resolved") < states.index("reversal cancelled")
    [(detail,)] = rows(ledger, f"SELECT detail FROM deal_events WHERE deal_id = '{deal}' "
                               f"AND to_state = 'reversal cancelled'")
    d = orjson.loads(detail)
    assert d["resolution"]["outcome"] == outcome and d["resolution"]["by"] == "bob" and d["attempts"] >= 2, d
    r = _bsp(env, "deals", "--flagged", "--json", "--ledger", str(ledger))
    assert r.returncode == 0 and deal not in r.stdout, r.stdout
    r = _bsp(env, "audit", "verify", "--ledger", str(ledger))
    assert r.returncode == 0, r.stdout + r.stderr


async def test_the_start_lookup_failing_holds_the_reversals_and_says_where_and_what_to_do(
        nursery, tmp_path: Path, monkeypatch, caplog) -> None:
    host, route, ledger, deal = await _left_queued(nursery, tmp_path, monkeypatch)
    before = host.reversals
    # the column the look-up reads is gone: the query fails
    alter_deal_events(ledger, "ALTER TABLE deal_events RENAME COLUMN to_state TO to_state_moved")

    with caplog.at_level("ERROR", logger="bsp.txn.saf"):
        async with live([route], ledger) as eng:
            _fast(eng)
            with trio.fail_after(10):                # a guard against a hang, not a timing
                while not [r for r in caplog.records if "cannot ask the ledger" in r.getMessage()]:
                    await trio.sleep(0.02)
            (q,) = eng.saf
            status = q.status()
    assert host.reversals == before and status["attempts"] == 0 and status["pending"] == 1, (host.reversals, status)
    text = next(r.getMessage() for r in caplog.records if "cannot ask the ledger" in r.getMessage())
    assert f"cannot ask the ledger ({ledger}) whether" in text, text
    assert f"deal(s) {deal}" in text, text
    assert "they are held, not sent, and it is asked again in 1s" in text, text
    assert f"if it goes on failing, stop the engine and check the ledger with `bsp audit verify --ledger {ledger}` " \
           "(`bsp status` shows them pending)" in text, text
