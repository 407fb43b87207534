"""Who purged a dead letter, as `bsp dead show` tells it.  Every purge records who since 2026-11-28 (`bsp dead
purge`: its letter's chained status event, by / via / host); `bsp dead show` of a purged letter said only
`raw: (purged)`, so the admin reading it learnt neither when nor by whom (and a purge of before then, which
recorded nobody, looked the same).  Now its raw line says when and by whom, or that it was not recorded.
Real DuckDB ledgers, the real command."""
from __future__ import annotations

import base64
import getpass
import socket
from pathlib import Path

import pytest
import trio

from engine.ledger_query import letter_purge, query_dead_letters
from engine.ledger_store import LedgerStore
from tests.engine.test_deadletter import KEY, chain_ok, cli, fill


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    return path


def _raw_line(output: str) -> str:
    [line] = [ln for ln in output.splitlines() if ln.startswith("            raw: ")]
    return line.removeprefix("            raw: ")


def test_dead_show_says_who_purged_and_when(ledger: Path) -> None:
    assert cli("purge", "d-web", "--yes", "--ledger", str(ledger), "--by", "auditor-ann").exit_code == 0
    assert cli("purge", "d-old", "--yes", "--ledger", str(ledger)).exit_code == 0
    me, host = getpass.getuser(), socket.gethostname()
    web = letter_purge(ledger, "d-web")
    assert web is not None and (web["by"], web["via"], web["host"]) == ("auditor-ann", "bsp dead purge", host), web
    at = web["at"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    res = cli("show", "d-web", "--ledger", str(ledger))
    assert res.exit_code == 0, res.output
    assert _raw_line(res.output) == (f"(purged at {at} by auditor-ann (via bsp dead purge, os user {me}, host "
                                     f"{host}); the row stays as a tombstone, the message is gone)"), res.output
    res = cli("show", "d-old", "--ledger", str(ledger))
    assert res.exit_code == 0 and f" by {me} (via bsp dead purge, host {host}); " in _raw_line(res.output), res.output
    assert letter_purge(ledger, "d-timeout") is None                    # never purged
    assert chain_ok(ledger)


def test_a_purge_that_recorded_nobody_is_said_so(ledger: Path) -> None:
    # as bsp purged before 2026-11-28: the status event without who (the ledger writer's own update, no actor)
    store = LedgerStore.open(ledger, KEY)
    try:
        assert store.update_dead_letters(["d-old"], status="purged", drop_raw=True) == 1
    finally:
        store.close()
    assert query_dead_letters(ledger, ids=["d-old"])[0]["status"] == "purged"
    purge = letter_purge(ledger, "d-old")
    assert purge is not None and "by" not in purge, purge
    res = cli("show", "d-old", "--ledger", str(ledger))
    assert res.exit_code == 0, res.output
    line = _raw_line(res.output)
    assert line.startswith("(purged at ") and ("; who purged it was not recorded: a purge before 2026-11-28, when "
                                               "bsp did not keep the name;") in line, line
    assert chain_ok(ledger)
