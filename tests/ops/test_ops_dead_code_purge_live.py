"""Dead letters of one error code, and a purge seen through the running engine.

`bsp dead retry --code` / `bsp dead purge --code` select the letters of one error code as `bsp dead list --code`
does (only list took it: an operator could not retry or purge every letter of, say, code 30 malformed at once).
`GET /dead-letters/{id}` of a purged letter answers its purge (when, by whom: its status event), so `bsp dead show
--live` says what the ledger-file path says; it printed `(purged)` alone.

Real engine (run_live) with its admin API on 127.0.0.1 port 0, a real counterpart on loopback, a real DuckDB
ledger in tmp_path, the real CLI."""
from __future__ import annotations

import base64
from pathlib import Path

import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.ledger_query import query_dead_letters
from engine.ops.ledger_reads import read_in_process
from formats.framing import LengthPrefixFramer
from opskit import json_counterpart
from test_ops_four_eyes import AUDIT_KEY, SECRETS, Back, _client, _engine, _letter


async def _malformed(eng) -> str:
    """Send bytes that are no JSON: the engine keeps them as a dead letter (code 30, malformed); its id."""
    before = {x["id"] for x in await read_in_process(query_dead_letters, Path(eng.ledger.path))}
    stream = await trio.open_tcp_stream("127.0.0.1", eng.channels["front"].port)
    async with stream:
        await stream.send_all(LengthPrefixFramer(2).frame(b"{not json"))
        await stream.receive_some(65536)
    with trio.fail_after(20):
        while not (new := [x for x in await read_in_process(query_dead_letters, Path(eng.ledger.path))
                           if x["id"] not in before]):
            await trio.sleep(0.02)
    return new[0]["id"]


async def test_retry_and_purge_take_a_code_and_a_live_show_says_who_purged(nursery, tmp_path: Path,
                                                                             monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_ADMIN_TOKEN", SECRETS["alice"])
    monkeypatch.delenv("BSP_ADMIN_TOKEN_FILE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    run = CliRunner()

    def bsp(*args: str):
        return trio.to_thread.run_sync(lambda: run.invoke(app, list(args)))

    back = Back()
    ledger = tmp_path / "l.duckdb"
    port = await json_counterpart(nursery, back)
    async with trio.open_nursery() as first:
        eng, url = await _engine(first, tmp_path, back, None, port)
        failed = await _letter(eng, "C1")
        bad = await _malformed(eng)
        codes = {x["id"]: x["error_code"] for x in await read_in_process(query_dead_letters, ledger)}
        assert codes[bad] == "30" and codes[failed] not in (None, "30"), codes
        # one code selects its letters alone: the dry run lists the failed call's, not the malformed one
        r = await bsp("dead", "retry", "--live", "--url", url, "--code", codes[failed], "--dry-run")
        assert r.exit_code == 0, r.output
        assert failed in r.output and bad not in r.output and "1 to retry" in r.output, r.output
        back.up = True
        r = await bsp("dead", "retry", "--live", "--url", url, "--code", codes[failed], "--yes")
        assert r.exit_code == 0, r.output
        now = {x["id"]: x["status"] for x in await read_in_process(query_dead_letters, ledger)}
        assert now[failed] == "retried" and now[bad] == "new", now
        eng.drain()
        first.cancel_scope.deadline = trio.current_time() + 30      # a hang guard
    # on the ledger file too: a dry run of code 30 lists the malformed letter, not the one retried (nor skips it)
    r = await bsp("dead", "retry", "--ledger", str(ledger), "--code", "30", "--dry-run")
    assert r.exit_code == 0 and bad in r.output and failed not in r.output, r.output
    assert "1 to retry, 0 already retried, 0 purged" in r.output, r.output
    # the purge of one code (on the ledger file, no engine): the malformed letter only
    r = await bsp("dead", "purge", "--ledger", str(ledger), "--code", "30", "--include-waiting", "--yes",
                  "--by", "carol")
    assert r.exit_code == 0 and "purged 1 dead letter(s)" in r.output, r.output
    now = {x["id"]: x["status"] for x in query_dead_letters(ledger, limit=None)}
    assert now[bad] == "purged" and now[failed] == "retried", now
    offline = await bsp("dead", "show", bad, "--ledger", str(ledger))
    (said,) = [ln for ln in offline.output.splitlines() if ln.strip().startswith("raw:")]
    assert " by carol (via bsp dead purge, os user " in said, offline.output
    async with trio.open_nursery() as second:
        eng, url = await _engine(second, tmp_path, back, None, port)
        async with _client(url, "bob") as bob:
            got = (await bob.get(f"/dead-letters/{bad}")).json()
        assert got["status"] == "purged" and got["purge"]["by"] == "carol", got
        assert got["purge"]["via"] == "bsp dead purge" and got["purge"]["at"], got
        # --live says what the ledger file says: when and by whom
        r = await bsp("dead", "show", bad, "--live", "--url", url)
        assert r.exit_code == 0, r.output
        (live,) = [ln for ln in r.output.splitlines() if ln.strip().startswith("raw:")]
        assert live == said, (live, said)
        eng.drain()
        second.cancel_scope.deadline = trio.current_time() + 30
