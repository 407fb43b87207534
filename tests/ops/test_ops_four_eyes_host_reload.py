"""Four eyes on the reloads the host asks for: with `config.reload` listed, a `bsp run --watch` file change and a
SIGHUP do not switch to the new files: they compile them (a dry run) and record a request for that version (by
`file change` / `SIGHUP`, the files named), the running configuration keeps answering meanwhile (no message
lost), and only another operator's approval through the admin API switches to that version.

A real engine (run_live) watching its real route file, a real SIGHUP sent to this process, the admin API on
127.0.0.1 (port 0) with named tokens, a real DuckDB ledger."""
from __future__ import annotations

import base64
import logging
import os
import signal
from pathlib import Path

import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.four_eyes import Policy
from engine.ops.runsettings import RunKeys
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import compile_file, json_counterpart
from test_ops_four_eyes import AUDIT_KEY, TOKENS, Back, _client
from test_ops_four_eyes_reveal_reload import NAME, ROUTE, _ask


async def _pending(client, by: str) -> dict:
    """The pending reload request made by ``by`` (file change, SIGHUP), once the engine recorded it."""
    with trio.fail_after(30):
        while True:
            found = [a for a in (await client.get("/approvals")).json()["approvals"] if a["by"] == by]
            if found:
                return found[0]
            await trio.sleep(0.05)


async def test_a_watched_change_and_a_sighup_wait_for_a_second_operator(nursery, tmp_path: Path, caplog,
                                                                       monkeypatch) -> None:
    caplog.set_level(logging.INFO)
    back = Back()
    back.up = True
    port = await json_counterpart(nursery, back)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (port, "00"))
    registry = default_registry()
    ready = trio.Event()
    box: list = []
    ops = OpsOptions(watch=True, debounce=0.1, admin=AdminOptions(listen="127.0.0.1:0", token="", tokens=TOKENS),
                     hooks=[lambda e: (box.append(e), ready.set())], four_eyes=Policy(("config.reload",), 3600))
    async with trio.open_nursery() as running:
        running.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                            load=lambda: ([route], {}), grace=2.0, ops=ops,
                                            keys=RunKeys(audit_key=AUDIT_KEY)))
        await _exercise(box, ready, route, port, caplog)
        running.cancel_scope.deadline = trio.current_time() + 30      # a hang guard
    # the requests on their own ids are in the audit chain, which verifies
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    r = await trio.to_thread.run_sync(lambda: CliRunner().invoke(app, ["audit", "verify", "--ledger",
                                                                       str(tmp_path / "l.duckdb")]))
    assert r.exit_code == 0, r.output


async def _exercise(box: list, ready, route: Path, port: int, caplog) -> None:
    with trio.fail_after(10):
        await ready.wait()
    eng = box[0]
    url = f"http://127.0.0.1:{eng.admin_port}"
    first = eng.current.version
    front = eng.channels["front"].port
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        route.write_text(ROUTE % (port, "01"))                 # the watcher sees it: a request, not a reload
        req = await _pending(alice, "file change")
        asked = req["params"]["version"]
        assert req["action"] == "config.reload" and req["via"] == "watch" and asked != first, req
        assert str(route.resolve()) in req["params"]["files"], req
        assert eng.current.version == first
        assert (await _ask(front, "W1", NAME))["code"] == "00"      # the running configuration answers
        assert f"a file change (bsp run --watch) ({route.resolve()}) compiled to version {asked}, NOT reloaded: " \
               f"config.reload needs a second operator: request {req['id']} recorded" in caplog.text, caplog.text
        r = await bob.post(f"/approvals/{req['id']}/reject", json={"reason": "not announced"})
        assert r.status_code == 200, r.text
        os.kill(os.getpid(), signal.SIGHUP)                     # the host's signal: a request too
        hup = await _pending(alice, "SIGHUP")
        assert hup["via"] == "signal" and hup["params"]["version"] == asked and hup["id"] != req["id"], hup
        assert eng.current.version == first
        assert (await _ask(front, "W2", NAME))["code"] == "00"
        ok = await alice.post(f"/approvals/{hup['id']}/approve", json={"reason": "change CHG-42 reviewed"})
        assert ok.status_code == 200 and ok.json()["run"]["ok"] is True, ok.text
        assert eng.current.version == asked
        assert (await _ask(front, "W3", NAME))["code"] == "01"      # switched once approved
    eng.drain()
