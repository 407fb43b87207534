"""A lost key index is made again in a worker thread (engine/txn/keyopen.py): the engine's loop goes on meanwhile
(its admin status says ``rebuilding key index: N of M``, ``/ready`` answers not ready), requests wait for it and are
then answered as before (a repeat gets its original reply from the rebuilt index, no call made again), a drain
during the rebuild stops it with nothing of it kept, and the next start makes it again whole.

The rebuild is held at a chunk by ``Rebuild.after_chunk`` (a ``threading.Event``, no sleeps): what the loop does
meanwhile is what is asserted.  Without the worker thread the loop itself would be held there, and nothing of it
would run until the hook gave up."""
from __future__ import annotations

import sqlite3
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from engine.ledger import open_ledger
from engine.ops.backend import EngineBackend
from engine.ops.live import LiveEngine
from engine.registry import default_registry
from engine.txn import answers as answers_mod
from engine.txn import manager_for
from engine.txn.answers import Answers, answers_dir
from engine.txn.answers_rebuild import Rebuild, RebuildStopped
from engine.txn.log import TxnLog, log_path
from test_txn_answers_file import Clock, T0, _ends, _record
from test_txn_flow import _req, _setup
from test_txn_key_retention import Clock as EngineClock, ask, serving
from txnkit import Client

HOLD = 10.0     # seconds the held rebuild waits for the test before it gives up (a fail-safe, not a timing)


class Gate:
    """Holds the rebuild's thread after its first chunk until ``go``; ``reached`` is set when it is held."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        self.seen: list[int] = []

    def __call__(self, rb: Rebuild) -> None:
        self.seen.append(rb.answers)
        if len(self.seen) == 1:
            self.reached.set()
            self.go.wait(HOLD)


def _lose_index(folder: Path) -> None:
    for p in folder.glob("index.sqlite*"):
        p.unlink()


def _rows(folder: Path) -> tuple[list, list, list]:
    con = sqlite3.connect(folder / "index.sqlite")
    try:
        return (sorted(con.execute("SELECT h, i, fin, day, off FROM a").fetchall()),
                sorted(con.execute("SELECT day, size, last FROM files").fetchall()),
                sorted(con.execute("SELECT day, kid, off FROM sealed").fetchall()))
    finally:
        con.close()


def test_a_rebuild_in_chunks_gives_the_index_of_the_old_path_and_a_stopped_one_keeps_nothing(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, clock=Clock())
    _record(log, _ends(40, T0) + _ends(25, T0 + 86400.0, prefix="D"))
    log._compact()
    log.close()
    folder = answers_dir(path)
    _lose_index(folder)
    Answers(folder).close()                     # the old path: no Rebuild, one open on the opening thread
    before = _rows(folder)
    assert len(before[0]) == 65

    _lose_index(folder)
    monkeypatch.setattr(answers_mod, "REBUILD_CHUNK", 7)
    rb = Rebuild()
    seen: list[int] = []

    def stop_at_third(r: Rebuild) -> None:
        seen.append(r.answers)
        if len(seen) == 3:
            r.stop()                            # as the engine's drain does, from another thread
    rb.after_chunk = stop_at_third
    try:
        Answers(folder, rebuild=rb)
    except RebuildStopped:
        pass
    else:
        raise AssertionError("the stopped rebuild went on")
    assert seen == [7, 14, 21] and rb.total > 0 and not rb.done
    con = sqlite3.connect(folder / "index.sqlite")
    assert con.execute("SELECT count(*) FROM a").fetchone() == (0,)     # nothing of it committed
    assert con.execute("SELECT count(*) FROM files").fetchone() == (0,)
    con.close()

    rb = Rebuild()                               # the next open makes it again, whole, as the old path did
    answers = Answers(folder, rebuild=rb)
    assert rb.done and rb.answers == 65 and rb.read == rb.total and answers.count == 65
    answers.close()
    assert _rows(folder) == before


@asynccontextmanager
async def _live(program, ledger_path: Path, clock, grace: float = 5.0):
    registry = default_registry()
    async with open_ledger(ledger_path) as ledger:
        manager_for(ledger).clock = clock
        eng = LiveEngine(registry, ledger, load=lambda: ([], {}), grace=grace)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program)
            try:
                yield eng
            finally:
                eng.drain()


async def _with_lost_index(nursery, tmp_path: Path):
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    clock = EngineClock()
    async with serving(program, ledger, clock) as sb:
        first = await ask(sb, _req("K1"), _req("K2"))
    async with serving(program, ledger, clock) as sb:        # this open moves K1's answer to the files
        assert manager_for(sb.ledger).log.answers.count == 1
    _lose_index(answers_dir(log_path(ledger)))
    return program, debit, credit, ledger, clock, first


async def test_the_loop_serves_the_admin_api_while_the_key_index_is_made_again_and_requests_wait_for_it(
        nursery, tmp_path: Path, monkeypatch) -> None:
    program, debit, credit, ledger, clock, first = await _with_lost_index(nursery, tmp_path)
    gate = Gate()
    monkeypatch.setattr(answers_mod, "REBUILD_CHUNK", 1)
    monkeypatch.setattr(Rebuild, "after_chunk", gate)
    try:
        async with _live(program, ledger, clock) as eng:
            # started (the channels listen), and the rebuild is held in its thread: the loop is free
            assert await trio.to_thread.run_sync(gate.reached.wait, HOLD) and not gate.go.is_set()
            backend = EngineBackend(eng)
            status = await backend.status()
            assert status["key_index"]["state"] == "rebuilding" and status["key_index"]["answers"] == 1
            assert status["key_index"]["text"].startswith("rebuilding key index: ")
            assert " of " in status["key_index"]["text"] and status["state"] == "not_ready"
            ready = await backend.ready()
            assert not ready.ready and ready.reason.startswith("rebuilding key index: ")
            got: list[bytes] = []

            async def repeat() -> None:
                c = await Client.open(eng.current.channels["front"].port)
                await c.send(_req("K1"))
                got.extend(await c.recv(1))
                await c.aclose()
            async with trio.open_nursery() as inner:
                inner.start_soon(repeat)
                await trio.testing.wait_all_tasks_blocked()
                assert got == [] and not gate.go.is_set()    # read, and waiting for the key index
                gate.go.set()
            assert (await backend.status())["key_index"] is None and (await backend.ready()).ready
            assert got == [first[0]]                          # the original reply, from the rebuilt index
    finally:
        gate.go.set()
    assert debit.counts[("post", "K1")] == 1 and credit.counts[("post", "K1")] == 1     # never run again
    assert gate.seen[0] == 1


async def test_a_drain_during_the_rebuild_stops_it_and_the_next_start_makes_it_again(
        nursery, tmp_path: Path, monkeypatch, caplog) -> None:
    program, debit, credit, ledger, clock, first = await _with_lost_index(nursery, tmp_path)
    folder = answers_dir(log_path(ledger))
    gate = Gate()
    monkeypatch.setattr(answers_mod, "REBUILD_CHUNK", 1)
    monkeypatch.setattr(Rebuild, "after_chunk", gate)
    try:
        async with open_ledger(ledger) as led:
            manager_for(led).clock = clock
            eng = LiveEngine(default_registry(), led, load=lambda: ([], {}), grace=30.0)
            async with trio.open_nursery() as n:
                await n.start(eng.run, program)
                assert await trio.to_thread.run_sync(gate.reached.wait, HOLD)
                waiting = await Client.open(eng.current.channels["front"].port)
                await waiting.send(_req("W1"))                # read, waiting for the key index
                await trio.testing.wait_all_tasks_blocked()
                eng.drain()                                   # as SIGTERM does
                await trio.testing.wait_all_tasks_blocked()   # the drain has told the rebuild to stop
                gate.go.set()
            assert eng.finished.is_set() and manager_for(led)._log is None
            await trio.aclose_forcefully(waiting.stream)
    finally:
        gate.go.set()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drain: ")]
    assert len(said) == 1 and "; 1 request(s) waiting for it were not run" in said[0], said     # counted
    con = sqlite3.connect(folder / "index.sqlite")
    assert con.execute("SELECT count(*) FROM a").fetchone() == (0,)     # nothing of the stopped rebuild kept
    con.close()
    monkeypatch.setattr(Rebuild, "after_chunk", None)
    async with _live(program, ledger, clock) as eng:
        c = await Client.open(eng.current.channels["front"].port)
        await c.send(_req("K1"))
        (again,) = await c.recv(1)
        await c.aclose()
        log = manager_for(eng.ledger).log
        assert log.answers.count >= 1 and "transfer|K1/20240501" not in log.ends.hot    # from the rebuilt index
    assert again == first[0] and debit.counts[("post", "K1")] == 1


async def test_the_admin_api_answers_during_the_rebuild_and_sigterm_stops_it_cleanly(
        nursery, tmp_path: Path, monkeypatch) -> None:
    """``bsp run`` as it serves (``run_live``: the admin API on a loopback port, SIGTERM heard by the engine's
    loop): /health, /status and /ready answer while the rebuild is held; SIGTERM then stops the engine with no
    error and nothing of the rebuild kept; the next start makes the index again and answers the repeat."""
    import os
    import signal

    import httpx

    from engine.ops.serve import AdminOptions, OpsOptions, run_live
    from engine.txn.keyopen import open_log

    program, debit, credit, ledger, clock, first = await _with_lost_index(nursery, tmp_path)
    gate = Gate()
    monkeypatch.setattr(answers_mod, "REBUILD_CHUNK", 1)
    monkeypatch.setattr(Rebuild, "after_chunk", gate)
    started, ended = trio.Event(), trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        started.set()

    async def serve() -> None:
        ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token="t" * 32), hooks=[hook])
        try:
            box.append(await run_live(program, default_registry(), ledger_path=ledger, load=lambda: ([], {}),
                                      grace=30.0, ops=ops))
        finally:
            ended.set()
    try:
        nursery.start_soon(serve)
        await started.wait()
        assert await trio.to_thread.run_sync(gate.reached.wait, HOLD)
        eng = box[0]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{eng.admin_port}",
                                     headers={"authorization": "Bearer " + "t" * 32}) as admin:
            assert (await admin.get("/health")).json() == {"status": "ok"}
            status = (await admin.get("/status")).json()
            assert status["key_index"]["state"] == "rebuilding" and status["state"] == "not_ready"
            assert any(r.startswith("rebuilding key index: ") for r in status["reasons"])
            ready = await admin.get("/ready")
            assert ready.status_code == 503 and ready.json()["reason"].startswith("rebuilding key index: ")
        os.kill(os.getpid(), signal.SIGTERM)
        await trio.testing.wait_all_tasks_blocked()      # the drain has told the rebuild to stop
        gate.go.set()
        await ended.wait()
    finally:
        gate.go.set()
    assert len(box) == 2 and box[1] is eng and manager_for(eng.ledger)._log is None     # returned, no error
    con = sqlite3.connect(answers_dir(log_path(ledger)) / "index.sqlite")
    assert con.execute("SELECT count(*) FROM a").fetchone() == (0,)
    con.close()
    monkeypatch.setattr(Rebuild, "after_chunk", None)
    async with _live(program, ledger, clock) as eng:
        await open_log(manager_for(eng.ledger))
        c = await Client.open(eng.current.channels["front"].port)
        await c.send(_req("K1"))
        (again,) = await c.recv(1)
        await c.aclose()
    assert again == first[0] and debit.counts[("post", "K1")] == 1


async def test_run_program_serves_during_the_rebuild_and_sigterm_stops_it_counting_the_waiting_requests(
        nursery, tmp_path: Path, monkeypatch, caplog) -> None:
    """``run_program`` (the switchboard embedders and the tests run) as ``bsp run`` does: the rebuild of a lost
    key index runs in the background (the channels listen, a request read waits for it), and SIGTERM stops it
    with nothing of it kept (before, recovery was awaited in the foreground: the signal was heard, the rebuild
    went on to its end).  The drain's warning counts the requests that were waiting for it (they are in no
    route's running exchanges yet: it could not say how many it cancelled)."""
    import logging
    import os
    import signal

    from engine.runtime.switchboard import run_program

    program, debit, credit, ledger, clock, first = await _with_lost_index(nursery, tmp_path)
    gate = Gate()
    monkeypatch.setattr(answers_mod, "REBUILD_CHUNK", 1)
    monkeypatch.setattr(Rebuild, "after_chunk", gate)
    started, ended = trio.Event(), trio.Event()
    box: list = []

    async def serve() -> None:
        try:
            box.append(await run_program(program, default_registry(), ledger_path=ledger,
                                         ready=lambda sb: (box.append(sb), started.set())))
        finally:
            ended.set()
    clients: list[Client] = []
    try:
        with caplog.at_level(logging.WARNING):
            nursery.start_soon(serve)
            with trio.move_on_after(HOLD):
                await started.wait()
            assert started.is_set() and not gate.go.is_set()       # serving while the rebuild is held
            assert await trio.to_thread.run_sync(gate.reached.wait, HOLD)
            sb = box[0]
            for ref in ("W1", "W2"):
                c = await Client.open(sb.channel("front").port)
                clients.append(c)
                await c.send(_req(ref))
            await trio.testing.wait_all_tasks_blocked()
            assert sum(d.waiting for d in sb.dispatchers.values()) == 2
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()      # the drain has told the rebuild to stop
            gate.go.set()
            await ended.wait()
    finally:
        gate.go.set()
        for c in clients:
            await trio.aclose_forcefully(c.stream)
    assert len(box) == 2 and box[1] is sb
    con = sqlite3.connect(answers_dir(log_path(ledger)) / "index.sqlite")
    assert con.execute("SELECT count(*) FROM a").fetchone() == (0,)     # stopped: nothing of it kept
    con.close()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drain: ")]
    assert said == ["drain: the key store's index was still being made again: stopped, nothing of it kept (the "
                    "next start makes it again); 2 request(s) waiting for it were not run, nothing of them "
                    "recorded: their clients get no reply and may send them again"], said
    assert debit.counts[("post", "W1")] == 0 and debit.counts[("post", "W2")] == 0
