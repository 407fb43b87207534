"""Helpers for the replay tests (a uniquely named module; conftest imports from it).

A recorded session of the shipped bill payment service: real loopback sockets (mainframe
simulator -> bsp -> biller simulator), a real ledger, and the recording taps on both channels."""
from __future__ import annotations

import shutil
from pathlib import Path

import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.tap import recording
from engine.runtime import Switchboard
from engine.sim.biller import BillerSim
from engine.sim.mainframe import MainframeSim

REPO = Path(__file__).resolve().parents[2]
BILL = REPO / "routes" / "bill_payment"
SESSION = 1200


def config_copy(dest: Path, edit=None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("bill_payment.route", "billers.csv"):
        shutil.copy(BILL / name, dest / name)
    if edit is not None:
        p = dest / "bill_payment.route"
        text = p.read_text()
        new = edit(text)
        assert new != text, "the edit changed nothing"
        p.write_text(new)
    return dest


def record_session(tmp: Path, config: Path, count: int, *, mask: bool = False, as_bsp_run: bool = False) -> Path:
    """``as_bsp_run``: the program's sources (``capture_sources``) also hold the files it reads (billers.csv),
    as `bsp run` records them."""
    registry = default_registry()
    program = compile_paths([config / "bill_payment.route"], registry).program
    if as_bsp_run:
        from engine.ops.files import with_referenced_files
        program = with_referenced_files(program)
    capture = tmp / "session.duckdb"
    with recording(program, registry, capture, mask=mask) as (rreg, rec):
        async def main() -> None:
            biller = BillerSim()
            async with trio.open_nursery() as sims:
                await sims.start(biller.serve)
                async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                    sb = Switchboard(program, rreg, ledger=ledger, overrides={
                        "mainframe": {"address": "127.0.0.1:0"},
                        "biller": {"address": f"127.0.0.1:{biller.port}"}})
                    async with trio.open_nursery() as nursery:
                        await nursery.start(sb.run)
                        mf = MainframeSim(sb.ctx.codec("BillPayReq"))
                        res = await mf.run(sb.channel("mainframe").port, total=count, connections=3)
                        assert res.replies == count
                        sb.drain()
                sims.cancel_scope.cancel()

        trio.run(main)
    return capture


def replay_cli(*args: str):
    """``bsp replay ARGS`` through typer's test runner (the command alone in an app, and a second command so
    that typer does not collapse the app to that one)."""
    import typer
    from typer.testing import CliRunner

    from engine.commands import replay as replay_cmd

    app = typer.Typer()
    replay_cmd.register(app)

    @app.command("noop")
    def _noop() -> None:
        pass

    return CliRunner().invoke(app, ["replay", *args])
