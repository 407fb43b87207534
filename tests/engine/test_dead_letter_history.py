"""The operator's view of a message whose retry was refused again: one letter waits (the retry's deal's own),
the first is retried and names it.  `bsp dead list` shows what waits by default (--all every status),
`bsp dead show` of either letter tells the history both ways (text and JSON), the audit chain verifies.
Real `bsp dead retry --routes` on a real keyed DuckDB ledger, the bill payment routes of the repository."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import trio

from engine.ledger_query import count_new_dead_letters, letter_history, query_dead_letters, query_deals
from test_deadletter import KEY, chain_ok, cli, fill

ROUTES = Path(__file__).resolve().parents[2] / "routes" / "bill_payment"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())


def _ids(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[2:] if line.strip()]


def test_a_message_refused_again_waits_in_one_letter_and_show_tells_its_history(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    # PAY1 is too short for the bill payment layout: the retry's deal is rejected again, with its own letter
    res = cli("retry", "d-timeout", "--ledger", str(path), "--routes", str(ROUTES))
    assert res.exit_code == 1, res.output
    [deal] = query_deals(path)
    new = deal["deal_id"]
    assert res.output.rstrip().endswith(f"; the message waits again as dead letter {new}"), res.output

    # list: what waits by default (d-timeout, retried, is not shown); --all every status; --status one
    res = cli("list", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"dead letters waiting (new or retrying; --all lists every status) in {path}\n")
    assert sorted(_ids(res.output)) == sorted([new, "d-web", "d-old"]), res.output
    res = cli("list", "--ledger", str(path), "--all", "--json")
    assert sorted(json.loads(x)["id"] for x in res.stdout.splitlines()) == sorted([new, "d-web", "d-timeout",
                                                                                      "d-old"])
    res = cli("list", "--ledger", str(path), "--status", "retried", "--json")
    assert [json.loads(x)["id"] for x in res.stdout.splitlines()] == ["d-timeout"]
    res = cli("list", "--ledger", str(path), "--status", "new", "--all")
    assert res.exit_code == 2 and "--all lists every status, --status one" in res.output, res.output
    assert sum(count_new_dead_letters(path).values()) == 3            # bsp status / bsp_dead_letters_new

    # show, either letter: the history both ways, the one where the message waits pointed at
    want = [{"id": "d-timeout", "status": "retried"}, {"id": new, "status": "new"}]
    assert letter_history(path, "d-timeout") == letter_history(path, new) == want
    assert letter_history(path, "d-web") == []
    for lid in ("d-timeout", new):
        res = cli("show", lid, "--ledger", str(path))
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("history:"))
        assert lines[at + 1].split()[:2] == ["d-timeout", "retried"], lines
        assert lines[at + 2].split()[:2] == [new, "new"], lines
        assert f"<- the message waits here: bsp dead retry {new}" in lines[at + 2]
        assert "<- this one" in lines[at + (1 if lid == "d-timeout" else 2)]
        res = cli("show", lid, "--ledger", str(path), "--json")
        assert json.loads(res.stdout)["history"] == want
    res = cli("show", "d-web", "--ledger", str(path))
    assert "history:" not in res.output

    # retried by filters: the waiting letter only (once), never the first one again
    res = cli("retry", "--channel", "mainframe", "--ledger", str(path), "--routes", str(ROUTES), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "2 to retry, 1 already retried, 0 purged" in res.output, res.output      # the new one and d-old
    run, skipped = res.output.split("would skip 1 already retried")
    assert new in run and "d-timeout" not in run and "d-timeout" in skipped, res.output
    [row] = query_dead_letters(path, ids=["d-timeout"])
    assert row["status"] == "retried"
    assert chain_ok(path)
