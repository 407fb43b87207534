"""The index of a dated screening list a new day brings is built in a worker thread (``ScreenStep.before_batch``),
not on the engine's loop: the loop goes on meanwhile (another connection's request is read, the build is held by a
``threading.Event``, no sleeps), the deals of that day wait for it, none is screened against the day before's list
or a part of the new one, and each gets what the old path (the index built in ``run``) gave: the same codes."""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timezone

import trio
import trio.testing

from dsl.clock import engine_clock
from engine.steps import screen
from kit import Client, compile_text, framed_counterpart, running
from test_screen import req
from test_screen_dated import DATED, DATED_ROUTE

HOLD = 10.0     # seconds the held build waits for the test before it gives up (a fail-safe, not a timing)


async def test_a_new_days_list_is_indexed_off_the_loop_and_that_days_deals_wait_for_it(
        nursery, tmp_path, monkeypatch) -> None:
    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    program = compile_text(tmp_path, DATED_ROUTE)
    real = screen._index_of_rows
    monkeypatch.setattr(screen, "_BUILT", OrderedDict())       # no index another test built for these rows
    reached, go = threading.Event(), threading.Event()
    builds: list[tuple[bool, int]] = []       # (built on the main thread, entries)

    def held(table, rows):
        builds.append((threading.current_thread() is threading.main_thread(), len(rows)))
        reached.set()
        go.wait(HOLD)
        return real(table, rows)

    try:
        with engine_clock(datetime(2026, 11, 30, 10, tzinfo=timezone.utc)):
            async with running(program, tmp_path / "l.duckdb", {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
                c = await Client.open(sb.channel("front").port)
                await c.send(req("D1", "Marta Elena Rossi Vance"))
                [first] = await c.recv_json(1)
                monkeypatch.setattr(screen, "_index_of_rows", held)
                with engine_clock(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)):
                    got: dict[str, str] = {}

                    async def ask(ref: str, name: str) -> None:
                        cc = await Client.open(sb.channel("front").port)
                        await cc.send(req(ref, name))
                        [r] = await cc.recv_json(1)
                        got[r["ref"]] = r["code"]
                        await cc.aclose()
                    async with trio.open_nursery() as n:
                        n.start_soon(ask, "D2", "Marta Elena Rossi Vance")
                        assert await trio.to_thread.run_sync(reached.wait, HOLD)
                        n.start_soon(ask, "D3", "Ilse Kovac")        # read while the build is held
                        n.start_soon(ask, "D4", "Nobody Anyone")
                        await trio.testing.wait_all_tasks_blocked()
                        assert got == {} and not go.is_set()       # waiting for the new day's list
                        go.set()
                await c.aclose()
    finally:
        go.set()
    assert first["code"] == "00"                                    # not listed before 1 December
    assert got == {"D2": "62", "D3": "62", "D4": "00"}              # the list in force on 1 December, whole
    assert builds == [(False, 3)]                                   # once, in a worker thread


async def test_a_deal_recovery_runs_again_is_screened_against_a_new_days_list_indexed_off_the_loop(
        nursery, tmp_path, monkeypatch) -> None:
    """Start-up recovery runs the steps before a deal's first call again (engine/txn/recovery.py): when the day
    has turned since the bind (midnight during a long key index rebuild), the new day's index is built in a
    worker thread there too (``before_batch``), not by ``run`` on the loop."""
    from contextlib import ExitStack

    from engine.txn.log import TxnLog, log_path

    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    sent = trio.Event()

    def silent(p: bytes) -> None:           # the call leaves and is never answered: the deal is in flight
        sent.set()
    port = await framed_counterpart(nursery, silent, 4)
    program = compile_text(tmp_path, DATED_ROUTE)
    ledger = tmp_path / "l.duckdb"
    with engine_clock(datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc)):
        with trio.CancelScope() as crash:
            async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
                c = await Client.open(sb.channel("front").port)
                try:
                    await c.send(req("R1", "Marta Elena Rossi Vance"))
                    await sent.wait()
                    crash.cancel()                      # no drain, no answer: left in flight
                    await trio.sleep_forever()
                finally:
                    await trio.aclose_forcefully(c.stream)
        txlog = TxnLog(log_path(ledger))
        assert len(txlog.pending) == 1
        txlog.close()

        real = screen._index_of_rows
        monkeypatch.setattr(screen, "_BUILT", OrderedDict())
        builds: list[tuple[bool, int]] = []         # (built on the main thread, entries)
        with ExitStack() as midnight:
            def watched(table, rows):
                builds.append((threading.current_thread() is threading.main_thread(), len(rows)))
                if len(builds) == 1:                # the bind's (30 November): the day turns right after it
                    midnight.enter_context(engine_clock(datetime(2026, 12, 1, 0, 1, tzinfo=timezone.utc)))
                return real(table, rows)
            monkeypatch.setattr(screen, "_index_of_rows", watched)
            async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}):
                pass
    assert builds == [(True, 2), (False, 3)]        # the bind's on the loop; 1 December's in a worker thread
