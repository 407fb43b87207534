"""The deployment file's ``calendars: {warn_days: N}`` sets how early the running engine warns of a business-day
calendar about to run out (engine/calexpiry.py): its log line, the calendar's warning in `bsp status` and
``bsp_calendar_warn_days`` for the alert rule, as `bsp check platform.yaml` warns (W020) unless given
--calendar-warn-days.  A bad value is named with its file, line, column and key, as every deployment error.
The engine in process (``run_live`` as `bsp run platform.yaml` calls it) with its admin API on loopback."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from dsl.clock import engine_clock
from engine.deploy import DeploymentError, load_deployment
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import compile_file
from test_ops_calendar_expiry import files

TOKEN = "ops-calendar-warn-token-" + "c" * 20
NOV_1 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)      # hols.csv lists 2026: 61 days left, quiet at 60


def _deployment(tmp_path: Path, calendars: str) -> Path:
    files(tmp_path)
    path = tmp_path / "platform.yaml"
    path.write_text(f"version: 1\nroutes: [r.route]\nledger: l.duckdb\n{calendars}")
    return path


def test_a_bad_warn_days_is_named_with_its_file_line_and_key(tmp_path: Path) -> None:
    path = _deployment(tmp_path, "calendars:\n  warn_days: -5\n"
                                 "environments:\n  uat:\n    calendars: {warn_days: sixty}\n")
    with pytest.raises(DeploymentError) as exc:
        load_deployment(path)
    assert [str(p) for p in exc.value.problems] == [
        f"error: {path}:5:14: calendars.warn_days: expected a whole number of days, 0 or more, got a number -5; "
        f"write how many days before a business-day calendar runs out bsp warns (e.g. calendars: {{warn_days: "
        f"90}}; 60 when not set)",
        f"error: {path}:8:28: environments.uat.calendars.warn_days: expected a whole number of days, 0 or more, "
        f"got a string 'sixty'; write how many days before a business-day calendar runs out bsp warns (e.g. "
        f"calendars: {{warn_days: 90}}; 60 when not set)"]


def test_an_environment_s_warn_days_replaces_the_base_one(tmp_path: Path) -> None:
    path = _deployment(tmp_path, "calendars: {warn_days: 90}\nenvironments:\n  uat:\n    calendars: {warn_days: 120}\n"
                                 "  prod: {}\n")
    assert load_deployment(path).calendar_warn_days == 90
    assert load_deployment(path, env="uat").calendar_warn_days == 120
    assert load_deployment(path, env="prod").calendar_warn_days == 90
    assert load_deployment(_deployment(tmp_path, "")).calendar_warn_days is None


async def test_the_engine_warns_as_early_as_the_deployment_says(nursery, tmp_path: Path, caplog) -> None:
    dep = load_deployment(_deployment(tmp_path, "calendars: {warn_days: 120}\n"))
    registry = default_registry()
    program = compile_file(dep.route_files[0], registry)
    caplog.set_level(logging.WARNING, logger="bsp.calendars")
    ready, box = trio.Event(), []
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[lambda e: (box.append(e), ready.set())])
    with engine_clock(NOV_1):
        nursery.start_soon(partial(run_live, program, registry, ledger_path=dep.ledger_path,
                                   load=lambda: (dep.route_files, {}), grace=2.0, ops=ops,
                                   calendar_warn_days=dep.calendar_warn_days))
        with trio.fail_after(10):
            await ready.wait()
        engine = box[0]
        said = [r.getMessage() for r in caplog.records if r.name == "bsp.calendars"]
        assert len(said) == 1 and "runs out on 2027-01-01 (in 61 days)" in said[0], said
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                     headers={"authorization": f"Bearer {TOKEN}"}) as client:
            row, = (await client.get("/status")).json()["calendars"]
            assert row["days_left"] == 61 and row["warning"] == said[0]
            text = (await client.get("/metrics")).text
        assert re.search(r"^bsp_calendar_warn_days 120\.0$", text, re.M), text
        assert 'bsp_calendar_days_left{table="hols"} 61.0' in text
        engine.drain()


def test_bsp_check_of_the_deployment_warns_as_early_as_the_engine(tmp_path: Path, capsys) -> None:
    from engine.commands.check import run_check
    path = _deployment(tmp_path, "calendars: {warn_days: 120}\n")
    with engine_clock(NOV_1):
        assert run_check([path], explain=False, as_json=False) == 0
        assert "W020" in capsys.readouterr().out
        assert run_check([path], explain=False, as_json=False, calendar_warn_days=60) == 0    # the flag wins
        assert "W020" not in capsys.readouterr().out
