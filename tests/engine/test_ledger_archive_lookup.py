"""A deal or dead letter moved out by ``bsp ledger archive`` (docs/ledger.md "Archiving") is not just "no deal ID":
``bsp deals show``, ``bsp dead show``, ``bsp dead retry`` and the admin API (``GET /deals/{id}``,
``GET /dead-letters/{id}``, ``POST /dead-letters/{id}/retry``, and ``--live``) name the archive file and the command that reads it there (engine/archive_lookup.py); exit 1 as
for any id not found.  Real DuckDB files, the CLI in process, a real engine serving its admin API on loopback."""
from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio
from typer.testing import CliRunner

from engine.commands import dead as dead_cmd, deals as deals_cmd
from engine.deal import new_deal_id
from test_ledger_archive import JAN, KEY, app, archive, deal, fill, q

TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")
TOKEN = "archive-lookup-token-" + "z" * 20
ECHO = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())

    def run(*args: str):
        a = app()
        deals_cmd.register(a)
        dead_cmd.register(a)
        return CliRunner().invoke(a, list(args))
    return run


async def archived_ledger(tmp_path: Path, bsp) -> tuple[Path, Path, str, str]:
    """A ledger whose January (keyed deals, one with a time-ordered id, the dead letter) went to ``arc``."""
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    odd = dataclasses.replace(deal(50, JAN + timedelta(days=7)), deal_id=new_deal_id())
    await fill(led, extra=[odd])
    (letter,) = q(led, "SELECT id FROM dead_letters")[0]
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    assert q(led, "SELECT count(*) FROM deals WHERE deal_id = ?", [odd.deal_id]) == [(0,)]
    return led, arc, odd.deal_id, letter


async def test_show_names_the_archive_of_an_archived_deal_or_dead_letter(tmp_path: Path, bsp) -> None:
    led, arc, moved, letter = await archived_ledger(tmp_path, bsp)
    res = bsp("deals", "show", moved, "--ledger", str(led))
    assert res.exit_code == 1, res.output
    assert (f"no deal '{moved}': deal {moved} was archived to {arc} (archive of {TODAY}, records 1..30): "
            f"`bsp deals show {moved} --ledger {arc}`") in res.output, res.output
    res = bsp("deals", "show", moved[:16], "--ledger", str(led))            # a prefix: the whole id is named
    assert res.exit_code == 1 and f"deal {moved} was archived to {arc}" in res.output, res.output
    assert bsp("deals", "show", moved, "--ledger", str(arc)).exit_code == 0   # as told: it is there

    # a dead letter leaves no key behind: its id's time says it was made before the archive
    res = bsp("dead", "show", letter, "--ledger", str(led))
    assert res.exit_code == 1, res.output
    assert (f"dead letter {letter} may have been archived: its id dates from" in res.output and
            f"before {arc} was made (archive of {TODAY}, records 1..30): `bsp dead show {letter} --ledger {arc}`"
            in res.output), res.output
    assert bsp("dead", "show", letter, "--ledger", str(arc)).exit_code == 0

    # an id made after the archive, or none archived: not found, as before
    later = new_deal_id(int((datetime.now(timezone.utc) + timedelta(minutes=5)).timestamp() * 1000))
    res = bsp("deals", "show", later, "--ledger", str(led))
    assert res.exit_code == 1 and f"no deal '{later}'. List deals with" in res.output and "archived" not in res.output
    res = bsp("deals", "show", moved, "--ledger", str(arc))
    assert res.exit_code == 0
    # the archive file elsewhere than beside the ledger: its name, and where to look
    arc.rename(tmp_path / "kept.duckdb")
    res = bsp("deals", "show", moved, "--ledger", str(led))
    assert res.exit_code == 1 and f"was archived to arc.duckdb (archive of {TODAY}" in res.output, res.output
    assert "give the path of arc.duckdb where your archives are kept" in res.output


async def test_resolve_names_the_archive_and_says_nothing_is_left_to_resolve(tmp_path: Path, bsp) -> None:
    led, arc, moved, _ = await archived_ledger(tmp_path, bsp)
    args = ("--outcome", "undone", "--note", "reversed by hand, ref OPS-1")
    res = bsp("deals", "resolve", moved, *args, "--ledger", str(led))
    assert res.exit_code == 1, res.output                      # as for any id not found
    assert (f"no deal '{moved}': deal {moved} was archived to {arc} (archive of {TODAY}, records 1..30) and cannot "
            f"be resolved there: an archive is read-only, and `bsp ledger archive` moves no deal flagged for an "
            f"operator and not resolved, so it has nothing to resolve; see how it ended with `bsp deals show "
            f"{moved} --ledger {arc}`") in res.output, res.output
    res = bsp("deals", "resolve", moved[:16], *args, "--ledger", str(led))    # a prefix: the whole id is named
    assert res.exit_code == 1 and f"deal {moved} was archived to {arc}" in res.output, res.output
    later = new_deal_id(int((datetime.now(timezone.utc) + timedelta(minutes=5)).timestamp() * 1000))
    res = bsp("deals", "resolve", later, *args, "--ledger", str(led))
    assert res.exit_code == 1 and "List the flagged ones with" in res.output and "archived" not in res.output
    assert q(led, "SELECT count(*) FROM deal_events WHERE to_state = 'resolved'") == [(0,)]


async def test_retry_names_the_archive_and_says_it_cannot_retry_from_there(tmp_path: Path, bsp) -> None:
    led, arc, _, letter = await archived_ledger(tmp_path, bsp)
    route = tmp_path / "echo.route"
    route.write_text(ECHO)
    res = bsp("dead", "retry", letter, "--routes", str(route), "--ledger", str(led))
    assert res.exit_code == 1, res.output                      # as for any id not found
    assert (f"no dead letter '{letter}': dead letter {letter} may have been archived: its id dates from"
            in res.output and f"before {arc} was made (archive of {TODAY}, records 1..30); a dead letter there "
            f"cannot be retried: an archive is read-only; read its message with `bsp dead show {letter} --ledger "
            f"{arc}` and, if it still matters, have its source send it again" in res.output), res.output
    later = new_deal_id(int((datetime.now(timezone.utc) + timedelta(minutes=5)).timestamp() * 1000))
    res = bsp("dead", "retry", later, "--routes", str(route), "--ledger", str(led))
    assert res.exit_code == 1 and "list them with `bsp dead list`" in res.output and "archived" not in res.output
    assert q(led, "SELECT count(*) FROM dead_letters WHERE status = 'retried'") == [(0,)]


async def test_the_admin_api_and_live_name_the_archive(nursery, tmp_path: Path, bsp) -> None:
    from dsl.load import compile_paths
    from engine.ops.serve import AdminOptions, OpsOptions, run_live
    from engine.registry import default_registry

    led, arc, moved, letter = await archived_ledger(tmp_path, bsp)
    route = tmp_path / "echo.route"
    route.write_text(ECHO)
    registry = default_registry()
    program = compile_paths([route], registry).program
    box: list = []
    ready = trio.Event()

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
    nursery.start_soon(partial(run_live, program, registry, ledger_path=led, load=lambda: ([route], {}), grace=2.0,
                               ops=ops, keys=SimpleNamespace(audit_key=KEY, keyring=None)))
    with trio.fail_after(30):
        await ready.wait()
    url = f"http://127.0.0.1:{box[0].admin_port}"
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        r = await client.get(f"/deals/{moved}")
        assert r.status_code == 404, r.text
        body = r.json()
        assert body["archived"]["archive"] == "arc.duckdb" and body["archived"]["certain"] is True
        assert body["archived"]["first_seq"] == 1 and body["archived"]["last_seq"] == 30
        assert f"deal {moved} was archived to arc.duckdb (archive of {TODAY}, records 1..30)" in body["detail"]
        r = await client.get(f"/dead-letters/{letter}")
        assert r.status_code == 404 and r.json()["archived"]["certain"] is False, r.text
        r = await client.get(f"/deals/{'f' * 32}")                # from the far future: no archive holds it
        assert r.status_code == 404 and "archived" not in r.json(), r.text
        body = {"outcome": "applied", "note": "biller confirms, ref B-77", "by": "alice"}
        r = await client.post(f"/deals/{moved}/resolve", json=body)   # 404 as for any deal not found, and where
        assert r.status_code == 404, r.text
        assert r.json()["archived"]["archive"] == "arc.duckdb" and r.json()["archived"]["certain"] is True
        assert (f"deal {moved} was archived to arc.duckdb (archive of {TODAY}, records 1..30) and cannot be "
                f"resolved there" in r.json()["detail"] and "it has nothing to resolve" in r.json()["detail"]), r.text
        r = await client.post(f"/deals/{'f' * 32}/resolve", json=body)
        assert r.status_code == 404 and "archived" not in r.json(), r.text
        r = await client.post(f"/dead-letters/{letter}/retry")      # 404 as for any letter not found, and where
        assert r.status_code == 404 and r.json()["archived"]["archive"] == "arc.duckdb", r.text
        assert r.json()["archived"]["certain"] is False and r.json()["archived"]["id"] == letter
        assert (f"no dead letter '{letter}': dead letter {letter} may have been archived" in r.json()["detail"] and
                "a dead letter there cannot be retried: an archive is read-only; read its message with "
                f"`bsp dead show {letter} --ledger arc.duckdb`" in r.json()["detail"]), r.text
        r = await client.post(f"/dead-letters/{'f' * 32}/retry")
        assert r.status_code == 404 and "archived" not in r.json(), r.text
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": url}

    def cli(*args: str):
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    r = await trio.to_thread.run_sync(cli, "deals", "show", moved, "--live")
    assert r.returncode == 1, r.stderr
    assert (f"has no deal '{moved}': deal {moved} was archived to arc.duckdb (archive of {TODAY}, records 1..30): "
            f"`bsp deals show {moved} --ledger arc.duckdb`") in r.stderr, r.stderr
    r = await trio.to_thread.run_sync(cli, "dead", "show", letter, "--live")
    assert r.returncode == 1 and f"dead letter {letter} may have been archived" in r.stderr, r.stderr
    r = await trio.to_thread.run_sync(cli, "dead", "retry", letter, "--live")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert (f"{letter}: NOT retried: no dead letter '{letter}' in the engine at {url}; dead letter {letter} may "
            f"have been archived" in r.stdout and "cannot be retried: an archive is read-only; read its message "
            f"with `bsp dead show {letter} --ledger arc.duckdb` (give the path of arc.duckdb" in r.stdout), r.stdout
    r = await trio.to_thread.run_sync(cli, "deals", "resolve", moved, "--live", "--outcome", "applied", "--note",
                                      "biller confirms")
    assert r.returncode == 1, r.stderr
    assert (f"has no deal '{moved}': deal {moved} was archived to arc.duckdb (archive of {TODAY}, records 1..30) "
            f"and cannot be resolved there" in r.stderr and "it has nothing to resolve; see how it ended with "
            f"`bsp deals show {moved} --ledger arc.duckdb` (give the path of arc.duckdb" in r.stderr), r.stderr
    box[0].drain()
