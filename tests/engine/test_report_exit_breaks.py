"""`bsp report`'s exit status is its verdict, as `bsp reconcile`'s is: 1 when the report found breaks (a
statement of statement-continuity that does not follow on), 0 when it found none, 2 on a usage error; the
report is written either way.  Real ledger files (DuckDB) filled through the ledger writer."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.deal import DealEvent, DealRecord
from engine.ledger import open_ledger


def _block4(ref: str, number: str, opening: str, entries: list[str], closing: str, day: str) -> list[dict]:
    def bal(tag: str, amount: str) -> dict:
        a = Decimal(amount)
        return {"tag": tag, "value": {"mark": "D" if a < 0 else "C", "date": day, "currency": "EUR",
                                      "amount": str(abs(a))}}
    lines = [{"tag": "61", "value": {"mark": "D" if Decimal(e) < 0 else "C", "amount": str(abs(Decimal(e))),
                                     "date": day}} for e in entries]
    return [{"tag": "20", "value": ref}, {"tag": "25", "value": "M0002"}, {"tag": "28C", "value": number},
            bal("60F", opening), *lines, bal("62F", closing)]


async def _fill(path: Path, statements: list[list[dict]]) -> None:
    async with open_ledger(path) as ledger:
        for i, block4 in enumerate(statements):
            t = datetime(2026, 11, 23 + i, 9, 0, tzinfo=timezone.utc)
            ref = block4[0]["value"]
            await ledger.commit(DealRecord(
                deal_type="STATEMENT", route="statement_mt940", config_version="v1", channel="ac_swift",
                status="committed", received_at=t, finished_at=t + timedelta(milliseconds=4), reference=ref,
                amount=Decimal("0"), currency="EUR", party="BANK", request={"block4": block4},
                events=[DealEvent(t, None, "accepted", {"key": f"statement_mt940|M0002/{ref}"})]))


def _ledger(tmp_path: Path, statements: list[list[dict]]) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(_fill, path, statements)
    return path


def report(*args: str):
    return CliRunner().invoke(app, ["report", *args])


def test_statement_breaks_exit_1_with_the_report_written(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, [
        _block4("STA0101", "101/1", "1000.00", ["250.00"], "1250.00", "2026-11-23"),
        _block4("STA0103", "103/1", "1250.00", ["-50.00"], "1200.00", "2026-11-24"),     # 102 never came
    ])
    res = report("statement-continuity", "--ledger", str(ledger), "--from", "2026-11-01", "--to", "2026-11-30",
                 "--format", "csv")
    assert res.exit_code == 1, res.output
    assert ",103/1,STA0103,2026-11-24,1250.00,1,-50.00,1200.00,EUR,gap," in res.stdout     # written all the same
    assert "statement-continuity: 1 break(s) found (exit 1)" in res.stderr
    out = tmp_path / "sc.json"
    res = report("statement-continuity", "--ledger", str(ledger), "--from", "2026-11-01", "--to", "2026-11-30",
                 "--format", "json", "--out", str(out))
    assert res.exit_code == 1 and out.is_file(), res.output


def test_a_clean_chain_and_the_reports_of_totals_exit_0(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, [
        _block4("STA0101", "101/1", "1000.00", ["250.00"], "1250.00", "2026-11-23"),
        _block4("STA0102", "102/1", "1250.00", ["-50.00"], "1200.00", "2026-11-24"),
    ])
    res = report("statement-continuity", "--ledger", str(ledger), "--from", "2026-11-01", "--to", "2026-11-30",
                 "--format", "csv")
    assert res.exit_code == 0, res.output
    assert "break(s) found" not in res.stderr
    for name in ("daily-summary", "rejections"):
        assert report(name, "--ledger", str(ledger), "--from", "2026-11-23", "--format", "csv").exit_code == 0
    # a break outside the period reported is no break of this report: only the statements listed count
    (tmp_path / "b").mkdir()
    ledger2 = _ledger(tmp_path / "b", [
        _block4("STA0101", "101/1", "1000.00", ["250.00"], "1250.00", "2026-11-23"),
        _block4("STA0103", "103/1", "1250.00", ["-50.00"], "1200.00", "2026-11-24"),
    ])
    res = report("statement-continuity", "--ledger", str(ledger2), "--from", "2026-11-23", "--format", "csv")
    assert res.exit_code == 0, res.output


def test_a_usage_error_is_still_2(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, [_block4("STA0101", "101/1", "1000.00", [], "1000.00", "2026-11-23")])
    assert report("no-such-report", "--ledger", str(ledger), "--from", "2026-11-23").exit_code == 2
    assert report("statement-continuity", "--ledger", str(ledger), "--from", "2026-13-01").exit_code == 2
