"""Helpers for the operations tests: a live engine over real files, a real ledger, real sockets."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import duckdb
import trio

import sys

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.metrics import Metrics
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "engine"))
from kit import CLOSE, free_port, json_counterpart  # noqa: E402  (the engine tests' kit, re-exported)

__all__ = ["CALL", "CLOSE", "CORPUS", "ECHO", "REPO", "compile_file", "free_port", "json_counterpart", "live",
           "live_recording", "rows"]
CORPUS = REPO / ".." / "shared" / "corpus"

ECHO = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  tag = "%s" }
}
"""

# ECHO whose channel answers a failure (`on error reply`): no compile warning (W010) is printed by `bsp run`
# before the lines a test reads from its stderr
ANSWERED_ECHO = ECHO.replace("    framing = length2\n}", "    framing = length2\n    on error reply Req { ref = error.code  tag = error.text }\n}")

# ``front`` -> a call to ``back`` (a JSON counterpart on 127.0.0.1) -> the reply:
# ``CALL % {"back": port, "timeout": "10s", "reply": "via = post.via"}`` (``reply``: its fields after ``ref``)
CALL = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:%(back)d"
    framing = length4
    timeout = %(timeout)s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  %(reply)s }
}
"""


def compile_file(path: Path, registry: Any = None) -> Any:
    res = compile_paths([path], registry or default_registry())
    assert res.program is not None, [str(d) for d in res.diagnostics]
    return res.program


@asynccontextmanager
async def live(paths: list[Path], ledger_path: Path, *, overrides: dict | None = None,
               grace: float = 5.0, registry: Any = None, audit_key: bytes | None = None) -> AsyncIterator[LiveEngine]:
    """``paths`` served as `bsp run` serves them (``registry``: e.g. a recording one, engine.replay.tap;
    ``audit_key``: the ledger's, as ledger.audit_key gives it)."""
    registry = registry or default_registry()
    program = compile_file(paths[0], registry) if len(paths) == 1 else None
    if program is None:
        res = compile_paths(paths, registry)
        assert res.program is not None
        program = res.program
    async with open_ledger(ledger_path, **({"audit_key": audit_key} if audit_key is not None else {})) as ledger:
        obs = Observer(Metrics())
        eng = LiveEngine(registry, ledger, load=lambda: (paths, overrides or {}), observer=obs, grace=grace)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, overrides)
            try:
                yield eng
            finally:
                eng.drain()


@asynccontextmanager
async def live_recording(paths: list[Path], ledger_path: Path, capture: Path, *,
                         overrides: dict | None = None, grace: float = 5.0,
                         mask: bool = False) -> AsyncIterator[LiveEngine]:
    """``live`` as `bsp run --record CAPTURE [--mask]` runs it (engine.replay.tap.recording); the capture
    file is complete once the block ends."""
    from engine.replay.tap import recording
    registry = default_registry()
    program = compile_paths(paths, registry).program
    assert program is not None
    with recording(program, registry, capture, mask=mask) as (reg, rec):
        assert rec is not None
        async with live(paths, ledger_path, overrides=overrides, grace=grace, registry=reg) as eng:
            yield eng


def alter_deal_events(ledger_path: Path, stmt: str) -> None:
    """Damage the ledger's ``deal_events`` by ``stmt`` (an ALTER TABLE; its indexes dropped first, which
    DuckDB requires), through a connection that joins a writer of this process when one holds the file."""
    con = duckdb.connect(str(ledger_path))
    try:
        for (index,) in con.execute("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'deal_events'"
                                    ).fetchall():
            con.execute(f"DROP INDEX {index}").fetchall()
        con.execute(stmt).fetchall()
    finally:
        con.close()


def rows(ledger_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def recorded_sources(ledger_path: Path) -> dict[str, Any]:
    """``{version: {path: text}}`` the ledger keeps (engine/config_sources.py: manifest + config_files)."""
    from engine.config_sources import all_sources

    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        return all_sources(con)
    finally:
        con.close()


async def serve_with_admin(route: Path, tmp_path: Path, nursery: trio.Nursery, token: str) -> tuple[Any, Any]:
    """``run_live`` of ``route`` (ledger ``tmp_path/l.duckdb``) with its admin API on a loopback port: the engine,
    and an ``httpx.AsyncClient`` for that API holding ``token``."""
    from functools import partial

    import httpx

    from engine.ops.serve import AdminOptions, OpsOptions, run_live

    registry = default_registry()
    program = compile_file(route, registry)
    ready = trio.Event()
    box: list = []

    def hook(engine: Any) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=token), hooks=[hook])
    nursery.start_soon(partial(run_live, program, registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    engine = box[0]
    return engine, httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                     headers={"authorization": f"Bearer {token}"})


def configurations_reachable(root: Any, skip: tuple[Any, ...] = ()) -> list[Any]:
    """The configurations (binders, generations, programs) reachable from ``root`` by strong references, not
    through the objects of ``skip`` (the engine, the other channels: each is looked at by itself).  What a kept
    channel holds across reloads (tests/ops/test_ops_reload_*_kept.py)."""
    import gc
    import types

    from engine.ops.generation import Generation
    from engine.runtime.binder import Binder

    seen = {id(root)} | {id(s) for s in skip if s is not root}
    todo = [root]
    found = []
    while todo:
        obj = todo.pop()
        for ref in gc.get_referents(obj):
            if id(ref) in seen or isinstance(ref, (types.ModuleType, type, types.FrameType, trio.Event)):
                continue      # an Event reaches the tasks waiting on it, and through them the whole engine
            if isinstance(ref, dict) and "__builtins__" in ref:
                continue
            seen.add(id(ref))
            if isinstance(ref, (Binder, Generation)) or type(ref).__name__ == "Program":
                found.append(ref)
            todo.append(ref)
    return found


def configuration_version(obj: Any) -> str:
    """The configuration version of a binder, generation or program ``configurations_reachable`` found."""
    return getattr(obj, "version", None) or obj.program.version
