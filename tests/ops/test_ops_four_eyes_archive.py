"""Four eyes on `bsp ledger archive` (ledger.archive): with the engine stopped, the first run records a request
(who: the OS user; what: --before as an exact time, --out as an absolute path, the plan) and moves nothing; the
requester's token cannot approve it, another operator's token does, through the running engine's admin API; the
next run with the same --before and --out (the engine stopped again) claims the approval and archives, once; the
audit chain of the ledger and its archive verifies.

A real engine (run_live) writing real deals into a real DuckDB ledger, its admin API on 127.0.0.1 (port 0) with
named tokens; the real CLI on the ledger file (the policy the engine recorded in it: no deployment file)."""
from __future__ import annotations

import base64
import getpass
from pathlib import Path

import httpx
import trio
from typer.testing import CliRunner

from engine.admin.auth import NamedToken
from engine.cli import app
from engine.four_eyes import Policy, requests_in_file
from engine.ledger_query import query_deals
from opskit import json_counterpart
from test_ops_four_eyes import AUDIT_KEY, TOKENS, Back, _ask, _client, _engine

ME = getpass.getuser()      # the requester on the ledger file: the OS user running bsp


def _bsp(*args: str):
    return CliRunner().invoke(app, list(args))


async def test_an_archive_is_requested_on_the_file_approved_live_and_run_once(nursery, tmp_path: Path,
                                                                             monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    back = Back()
    back.up = True
    ledger = tmp_path / "l.duckdb"
    out = tmp_path / "arc.duckdb"
    policy = Policy(("ledger.archive",), 3600)
    port = await json_counterpart(nursery, back)
    async with trio.open_nursery() as first:
        eng, url = await _engine(first, tmp_path, back, policy, port)
        for ref in ("A1", "A2"):
            assert (await _ask(eng.channels["front"].port, ref))["code"] == "00"
        eng.drain()
        first.cancel_scope.deadline = trio.current_time() + 30      # a hang guard
    deals = {d["reference"]: d for d in query_deals(ledger)}
    before = deals["A2"]["received_at"].isoformat()                   # A1 moves, A2 stays
    args = ("ledger", "archive", "--before", before, "--out", str(out), "--ledger", str(ledger), "--yes")
    r = await trio.to_thread.run_sync(lambda: _bsp(*args))
    assert r.exit_code == 0 and "NOT done yet: four eyes: ledger.archive of the ledger needs a second operator" \
        in r.output and "Nothing was changed" in r.output, r.output
    assert not out.exists() and len(query_deals(ledger)) == 2
    (req,) = requests_in_file(ledger)
    assert req["action"] == "ledger.archive" and req["by"] == ME and req["via"] == "ledger file", req
    assert req["params"]["out"] == str(out.resolve()) and req["params"]["deals"] == 1, req
    r = await trio.to_thread.run_sync(lambda: _bsp(*args))           # asked again: the request waits, no other
    assert r.exit_code == 0 and f"NOT archived: four eyes: request {req['id']}" in r.output, r.output
    assert len(requests_in_file(ledger)) == 1
    me = NamedToken(ME, "me-secret-" + "m" * 24, frozenset({"operate", "read"}))
    monkeypatch.setattr("test_ops_four_eyes.TOKENS", TOKENS + (me,))
    async with trio.open_nursery() as second:
        eng, url = await _engine(second, tmp_path, back, policy, port)
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {me.secret}"},
                                     timeout=30) as mine, _client(url, "alice") as alice:
            own = await mine.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
            assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
            ok = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "older than the retention"})
            assert ok.status_code == 200 and ok.json()["run"]["ok"] is True, ok.text
            assert f"bsp ledger archive --before {req['params']['before']} --out {out.resolve()}" in \
                ok.json()["run"]["outcome"], ok.text
        eng.drain()
        second.cancel_scope.deadline = trio.current_time() + 30
    assert not out.exists()                    # an approval moves nothing by itself
    rerun = ("ledger", "archive", "--before", req["params"]["before"], "--out", str(out), "--ledger", str(ledger),
             "--yes")
    r = await trio.to_thread.run_sync(lambda: _bsp(*rerun))
    assert r.exit_code == 0, r.output
    assert f"four eyes: archive requested by {ME}, approved by alice (request {req['id']})" in r.output, r.output
    assert "archived records " in r.output and out.exists(), r.output
    assert [d["reference"] for d in query_deals(ledger)] == ["A2"]
    (done,) = [q for q in requests_in_file(ledger, every=True) if q["id"] == req["id"]]
    assert done["state"] == "approved" and done["run"]["outcome"].startswith("archive started: records "), done
    r = await trio.to_thread.run_sync(lambda: _bsp("audit", "verify", "--ledger", str(ledger), "--archive", str(out)))
    assert r.exit_code == 0, r.output
