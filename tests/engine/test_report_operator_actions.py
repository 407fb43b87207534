"""``bsp report operator-actions``: who did what to which deal, and when, from the ledger alone.

A real keyed ledger (the real writer), real operator actions through the real commands (``bsp deals resolve``,
``bsp deals show --reveal``, ``bsp dead purge``) and a real retry (``engine.deadletter.retry_once``, as
``bsp dead retry`` runs it); the report is read back as CSV and JSON.
"""
from __future__ import annotations

import base64
import csv
import getpass
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.deal import DeadLetter, DealEvent, DealRecord
from engine.deadletter import retry_once
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters
from engine.reports import build_report, period

KEY = bytes(range(32))
T0 = datetime.now(timezone.utc) - timedelta(minutes=5)


def _deal(n: int, status: str, events: list[DealEvent] | None = None) -> DealRecord:
    at = T0 + timedelta(seconds=n)
    return DealRecord(deal_type="TRANSFER", route="transfer", config_version="v1", channel="front", status=status,
                      received_at=at, finished_at=at + timedelta(milliseconds=5), reference=f"REF{n}",
                      amount=Decimal("1234.56"), currency="EUR", party="BK1", response_code="91",
                      reason="host timed out" if status == "failed" else None, events=events or [])


async def _fill(path: Path) -> dict[str, str]:
    flag = [DealEvent(T0, None, "received"),
            DealEvent(T0, "received", "flagged", {"why": "call host left in doubt", "call": "host"})]
    ids: dict[str, str] = {}
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        for name, rec in (("flagged", _deal(1, "failed", flag)), ("retried", _deal(2, "failed")),
                          ("purged", _deal(3, "failed"))):
            await ledger.commit(rec)
            ids[name] = rec.deal_id
            if name != "flagged":
                await ledger.dead_letter(DeadLetter(route="transfer", channel="front", reason="host timed out",
                                                    raw=b"PAY" + name.encode(), config_version="v1",
                                                    error_kind="timeout", id=rec.deal_id))
    return ids


def _bsp(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def acted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    for name in ("BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "bsp.duckdb"
    ids = trio.run(_fill, path)

    async def retry() -> None:
        async def inject(channel: str, raw: bytes) -> str:
            return "committed"

        [letter] = query_dead_letters(path, ids=[ids["retried"]], with_raw=True)
        async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
            res = await retry_once(ledger, letter, inject, by="alice", via="bsp dead retry", by_what="by",
                                   who="bsp dead retry by 'alice'")
            assert res.ok, res.outcome

    trio.run(retry)
    res = _bsp("deals", "resolve", ids["flagged"], "--outcome", "applied", "--note", "confirmed, ticket OPS-7",
               "--by", "carol", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("BSP_FIELD_KEYS", "k1:" + base64.b64encode(bytes(range(1, 33))).decode())
    res = _bsp("deals", "show", ids["flagged"], "--reveal", "--by", "dave", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    res = _bsp("dead", "purge", ids["purged"], "--yes", "--by", "erin", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    return path, ids


def test_every_operator_action_is_listed_with_who_and_the_deal(acted: tuple[Path, dict[str, str]]) -> None:
    path, ids = acted
    rep = build_report("operator-actions", path, period("today"))
    rows = rep.main.dicts()
    got = [(r["action"], r["by"], r["via"], r["target"]) for r in rows]
    assert got == [
        ("retry (started)", "alice", "bsp dead retry", ids["retried"]),
        ("retry", "alice", "bsp dead retry", ids["retried"]),
        ("resolve", "carol", "ledger file", ids["flagged"]),
        ("reveal", "dave", "bsp deals show", ids["flagged"]),
        ("purge", "erin", "bsp dead purge", ids["purged"]),
    ], got
    resolve = rows[2]
    assert resolve["what"] == "outcome applied; confirmed, ticket OPS-7"
    assert resolve["reference"] == "REF1" and resolve["amount"] == Decimal("1234.56")
    assert isinstance(resolve["amount"], Decimal) and resolve["currency"] == "EUR"
    assert f"os_user {getpass.getuser()}" in rows[3]["where"] and "host " in rows[3]["where"]
    assert rows[1]["what"].startswith("status retried: committed")
    seqs = [r["chain_seq"] for r in rows]
    assert seqs == sorted(seqs) and all(isinstance(s, int) for s in seqs)
    by = {(r["by"], r["action"]): r["actions"] for r in rep.tables[1].dicts()}
    assert by == {("alice", "retry"): 1, ("alice", "retry (started)"): 1, ("carol", "resolve"): 1,
                  ("dave", "reveal"): 1, ("erin", "purge"): 1}
    figures = dict(rep.figures)
    assert figures["operator actions"] == "5" and figures["operators"] == "4" and figures["reveals"] == "1"
    # another day holds none of them: the period is the action's time, not the deal's
    assert build_report("operator-actions", path, period("2026-01-01")).main.rows == []


def test_cli_csv_and_json_are_well_formed(acted: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, ids = acted
    res = _bsp("report", "operator-actions", "--ledger", str(path), "--from", "today", "--format", "csv")
    assert res.exit_code == 0, res.output
    lines = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["by"] for r in lines] == ["alice", "alice", "carol", "dave", "erin"]
    assert lines[2]["amount"] == "1234.5600" and lines[2]["what"] == "outcome applied; confirmed, ticket OPS-7"
    out = tmp_path / "ops.json"
    res = _bsp("report", "operator-actions", "--ledger", str(path), "--from", "today", "--format", "json",
               "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["report"] == "operator-actions"
    assert [t["name"] for t in doc["tables"]] == ["actions", "by_operator"]
    rows = doc["tables"][0]["rows"]
    assert rows[2]["amount"] == "1234.5600" and rows[2]["by"] == "carol"       # money as exact text
    assert rows[4]["target"] == ids["purged"] and isinstance(rows[4]["chain_seq"], int)
    text = out.read_text(encoding="utf-8")
    assert "PAYretried" not in text and "PAYpurged" not in text          # no message bytes, ever


def test_text_an_operator_typed_is_shown_as_text(acted: tuple[Path, dict[str, str]], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A name or note an operator typed never runs as a spreadsheet formula, nor as HTML or terminal markup."""
    path, ids = acted
    monkeypatch.setenv("BSP_FIELD_KEYS", "k1:" + base64.b64encode(bytes(range(1, 33))).decode())
    res = _bsp("dead", "show", ids["retried"], "--reveal", "--by", "=HYPERLINK(\"http://x\")<b>", "--ledger",
               str(path))
    assert res.exit_code == 0, res.output
    res = _bsp("report", "operator-actions", "--ledger", str(path), "--from", "today", "--format", "csv")
    last = list(csv.DictReader(io.StringIO(res.stdout)))[-1]
    assert last["action"] == "reveal" and last["by"] == "'=HYPERLINK(\"http://x\")<b>", last
    out = tmp_path / "ops.html"
    assert _bsp("report", "operator-actions", "--ledger", str(path), "--from", "today", "--format", "html",
                "--out", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "HYPERLINK(&quot;http://x&quot;)&lt;b&gt;" in page and ")<b>" not in page
