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
