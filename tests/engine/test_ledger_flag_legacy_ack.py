"""A ``reversal flagged`` closed by a later ``reversed NAME`` event written before bsp kept ``approved`` on it
(the event has the 0430's ``response_code`` alone): the read side (engine.deal_resolve.flag_state, the SQL of
engine.ledger_query) decides approval from the code by the rule the store-and-forward task uses
(engine.txn.approval.APPROVED).  Until 2026-11-26 such a flag never closed: ``bsp deals --flagged`` listed it
forever, and ``bsp deals resolve`` / ``bsp ledger archive`` treated it as open.

Real DuckDB file, the events appended through the audited store as the engine appends them (the chain stays
whole: ``bsp audit verify`` passes), the CLI in process."""
from __future__ import annotations

import base64
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.deal import DeadLetter, to_json
from engine.ledger_query import get_deal, query_dead_letters, query_deals
from engine.ledger_store import LedgerStore
from test_ledger_archive import JAN, KEY, deal, fill


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())


async def flagged_then_acked(tmp_path: Path, ack: dict) -> tuple[Path, str]:
    """A ledger with one failed deal (and its dead letter) whose reversal of call ``auth`` was flagged, then
    acknowledged with ``ack``."""
    led = tmp_path / "bsp.duckdb"
    rec = deal(7, JAN, status="failed")
    why = "call auth: timeout"
    rec = dataclasses.replace(rec, reason=why, response_code="91", dead_letter=DeadLetter(
        route="transfer", channel="front", reason=why, raw=b'{"ref": "R7"}', config_version="v1",
        error_kind="timeout", at=JAN, id=rec.deal_id))
    await fill(led, jan=0, feb=0, extra=[rec])
    at = JAN + timedelta(minutes=5)
    store = LedgerStore.open(led, KEY)
    try:
        done = store.append_stories([(rec.deal_id, [], [
            {"at": at, "to_state": "reversal flagged",
             "detail": to_json({"why": "reversal of call auth not acknowledged after 5 attempts",
                                "not_undone": ["auth"]})},
            {"at": at + timedelta(minutes=1), "to_state": "reversed auth",
             "detail": to_json({"attempts": 6, "mti": "0430", **ack})}], None)])
    finally:
        store.close()
    assert done == [True], done
    return led, rec.deal_id


def bsp(*args: str):
    return CliRunner().invoke(app, list(args))


async def test_an_ack_with_an_approving_code_and_no_approved_field_closes_the_flag(tmp_path: Path) -> None:
    led, did = await flagged_then_acked(tmp_path, {"response_code": "00"})
    assert query_deals(led, flagged=True) == []                                  # SQL side
    [listed] = query_deals(led, flagged=True, resolved=True)
    assert listed["deal_id"] == did and listed["resolution"]["outcome"] == "reversal acknowledged", listed
    assert get_deal(led, did)["flag"] == "acknowledged"                          # Python side
    res = bsp("deals", "--flagged", "--ledger", str(led), "--json")
    assert res.exit_code == 0 and did not in res.output, res.output
    res = bsp("deals", "--flagged", "--all", "--ledger", str(led), "--json")
    assert res.exit_code == 0, res.output
    [row] = [orjson.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert row["deal_id"] == did and row["resolution"]["outcome"] == "reversal acknowledged", row
    assert row["resolution"]["response_code"] == "00" and row["resolution"]["by"] == "host", row
    closed = "(code 00): the host reversed the original, the flag is closed: nothing is left to settle"
    assert row["reason"].endswith(closed), row["reason"]
    assert [d["id"] for d in query_dead_letters(led, reason=closed)] == [did]     # the reason filter's SQL note
    res = bsp("deals", "resolve", did, "--outcome", "undone", "--note", "by hand", "--ledger", str(led))
    assert res.exit_code == 1 and "already settled: the reversal was acknowledged at" in res.output, res.output
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 0, res.output


async def test_an_ack_with_a_code_not_an_approval_and_no_approved_field_leaves_it_open(tmp_path: Path) -> None:
    led, did = await flagged_then_acked(tmp_path, {"response_code": "25"})
    [listed] = query_deals(led, flagged=True)
    assert listed["deal_id"] == did and listed["resolution"] is None, listed
    assert get_deal(led, did)["flag"] == "open"
    assert listed["reason"].endswith("with code 25, not an approval: the flag stays open; ask the host about the "
                                     "original"), listed["reason"]
    res = bsp("deals", "--flagged", "--ledger", str(led), "--json")
    assert res.exit_code == 0 and did in res.output, res.output
    assert [d["id"] for d in query_dead_letters(led, reason="with code 25, not an approval")] == [did]
    res = bsp("audit", "verify", "--ledger", str(led))
    assert res.exit_code == 0, res.output


async def test_approved_when_present_wins_over_the_code(tmp_path: Path) -> None:
    """``approved`` as the engine writes it is what was decided then: ``false`` with 00 stays open."""
    led, did = await flagged_then_acked(tmp_path, {"response_code": "00", "approved": False})
    assert [d["deal_id"] for d in query_deals(led, flagged=True)] == [did]
    assert get_deal(led, did)["flag"] == "open"


def test_one_definition_of_an_approving_code() -> None:
    from engine.txn import approval, reversal
    from engine.txn.reversal import Attempt

    now = datetime.now(timezone.utc)
    for code in (*approval.APPROVED, "25", None):
        assert Attempt("0420", now, 1.0, "acknowledged", "", code).approved is approval.approves(code)
    assert not hasattr(reversal, "APPROVED") or reversal.APPROVED is approval.APPROVED


async def test_a_reversal_flag_the_host_approved_does_not_hold_back_an_archive(tmp_path: Path) -> None:
    # `bsp ledger archive` refused deals "flagged and not resolved" by a rule of its own (closed only by a
    # `resolved`), so a flag the host's approval had closed held the archive back for ever, while `bsp deals
    # resolve` refused it as already settled; it now takes the rule `--flagged` lists by
    led, did = await flagged_then_acked(tmp_path, {"response_code": "00", "approved": True})
    res = bsp("ledger", "archive", "--ledger", str(led), "--before", "2026-02-01", "--out",
              str(tmp_path / "arc.duckdb"), "--yes")
    assert "flagged for an operator and not resolved" not in res.output, res.output
    # a flag still open is refused as before
    open_led, open_id = await flagged_then_acked(tmp_path / "open", {"response_code": "25"})
    res = bsp("ledger", "archive", "--ledger", str(open_led), "--before", "2026-02-01", "--out",
              str(tmp_path / "open" / "arc.duckdb"), "--yes")
    assert res.exit_code == 1 and f"1 deal(s) flagged for an operator and not resolved: {open_id}" in res.output, \
        res.output
