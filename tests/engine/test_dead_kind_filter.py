"""`--kind` on `bsp dead list`, `bsp dead purge` and `bsp dead retry`: the same filter on each (the runbook goes
list -> retry), applied in the ledger query (``query_dead_letters(kind=...)``, as ``GET /dead-letters?kind=``);
an unknown kind is a usage error listing the kinds.  Real DuckDB ledgers, no mocks."""
from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import trio

from engine.defaults import DEAD_KINDS
from engine.ledger_query import query_dead_letters
from engine.runtime.exchange import DEFAULT_CODES
from tests.engine.test_dead_retry_once import KEY, cli, fill, letter, one_line


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    path = tmp_path / "l.duckdb"
    trio.run(fill, path, [letter("u1", "R1", age=timedelta(hours=2)), letter("u2", "R2"),
                          letter("t1", "R3", kind="timeout"), letter("rej", "R4", kind="rejected"),
                          letter("old", "R5", kind="rejected", age=timedelta(days=40))])
    return path


def test_the_kinds_are_every_failure_kind_and_unrecorded() -> None:
    # a kind the engine gives a dead letter that --kind refused could not be listed by it
    assert set(DEAD_KINDS) == set(DEFAULT_CODES) | {"unrecorded"}


def test_dead_list_kind_selects_by_error_kind(ledger: Path) -> None:
    res = cli("list", "--ledger", str(ledger), "--kind", "unreachable", "--json")
    assert res.exit_code == 0, res.output
    assert [orjson.loads(line)["id"] for line in res.output.splitlines()] == ["u2", "u1"]   # newest first
    res = cli("list", "--ledger", str(ledger), "--kind", "rejected", "--since", "1d")
    assert res.exit_code == 0, res.output
    rows = res.output.splitlines()[2:]
    assert len(rows) == 1 and rows[0].split()[0] == "rej" and "rejected" in rows[0].split()
    res = cli("list", "--ledger", str(ledger), "--kind", "malformed")
    assert res.exit_code == 0 and "no dead letters match these filters" in res.output, res.output
    assert [r["id"] for r in query_dead_letters(ledger, kind="timeout")] == ["t1"]


def test_an_unknown_kind_is_a_usage_error_listing_the_kinds(ledger: Path) -> None:
    for args in (("list",), ("purge", "--yes"), ("retry", "--dry-run")):
        res = cli(*args, "--ledger", str(ledger), "--kind", "unreacheable")
        out = one_line(res.output)
        assert res.exit_code == 2, (args, res.output)
        assert "'unreacheable' is not an error kind; use one of unreachable, timeout, lost," in out, out
        assert "unrecorded" in out and "--kind" in out
    assert len(query_dead_letters(ledger, limit=None)) == 5       # nothing purged


def test_dead_purge_kind_purges_only_that_kind(ledger: Path) -> None:
    res = cli("purge", "--ledger", str(ledger), "--kind", "rejected", "--yes", "--include-waiting")
    assert res.exit_code == 0 and "purged 2 dead letter(s)" in res.output, res.output
    status = {r["id"]: r["status"] for r in query_dead_letters(ledger, limit=None)}
    assert status == {"u1": "new", "u2": "new", "t1": "new", "rej": "purged", "old": "purged"}


def test_dead_retry_kind_selects_what_dead_list_kind_lists(ledger: Path) -> None:
    res = cli("retry", "--ledger", str(ledger), "--kind", "rejected", "--since", "1d", "--dry-run")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"would retry 1 dead letter(s) in {ledger}, oldest first" and lines[2].split()[0] == "rej"
    assert lines[-1] == "1 to retry, 0 already retried, 0 purged"
