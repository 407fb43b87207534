"""`bsp report --format json` and `bsp reconcile --format json`: the whole report in one JSON document for a
program to read, every table in it, amounts and rates as exact decimal text (a JSON number is a binary float
to most readers: 7.125 + 120.50 must not come back as 127.62499999), days and times as ISO text; without
--out on standard output (report) or with `--out -` (reconcile, whose summary line then goes to stderr)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.reports import Column, Report, Table, write
from engine.reports.jsondoc import write_json_doc
from test_reconcile_month_end import DEALS, GOOD, _fill, bsp, statement


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "bsp.duckdb"
    trio.run(_fill, path, DEALS)
    return path


def test_every_kind_of_value_keeps_its_exact_form(tmp_path: Path) -> None:
    cols = [Column("day", "date"), Column("at", "timestamp"), Column("n", "int"), Column("amount", "money",
            currency="currency"), Column("currency"), Column("rate", "rate"), Column("p50", "ms"),
            Column("note")]
    rep = Report("t", "T", {"ledger": "x.duckdb"}, [
        Table("main", "Main", cols, [(date(2026, 11, 26), datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc), 3,
                                      Decimal("1234.50"), "EUR", Decimal("0.975"), 1.2345, 'a "quoted"\nnote'),
                                     (None, None, None, None, None, None, None, None)]),
        Table("empty", "Empty", [Column("x")], [])], figures=[("deals", "3")])
    (path,) = write(rep, "json", tmp_path / "r.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["report"] == "t" and doc["params"] == {"ledger": "x.duckdb"}
    assert doc["figures"] == [{"label": "deals", "value": "3"}]
    main, empty = doc["tables"]
    assert main["rows"][0] == {"day": "2026-11-26", "at": "2026-11-26T09:00:00+00:00", "n": 3,
                               "amount": "1234.50", "currency": "EUR", "rate": "0.975", "p50": 1.234,
                               "note": 'a "quoted"\nnote'}
    assert set(main["rows"][1].values()) == {None}
    assert main["columns"][3] == {"name": "amount", "kind": "money", "title": "amount", "currency": "currency"}
    assert empty == {"name": "empty", "title": "Empty", "columns": [{"name": "x", "kind": "text", "title": "x"}],
                     "rows": []}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_report_json_goes_to_standard_output_with_every_table(ledger: Path) -> None:
    r = bsp("report", "daily-summary", "--ledger", str(ledger), "--from", "2026-11-26", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["report"] == "daily-summary"
    assert len(doc["tables"]) >= 2          # CSV on stdout carries the main table only
    transfers = [row for row in doc["tables"][0]["rows"] if row["deal_type"] == "TRANSFER"]
    assert transfers and all(isinstance(row["deals"], int) for row in transfers)
    amounts = [v for row in transfers for k, v in row.items() if k.startswith("amount") and v is not None]
    assert amounts and all(isinstance(v, str) for v in amounts)
    assert "127.625" in r.stdout                 # 120.50 + 7.125 committed: exact, not 127.62499999999999


def test_reconcile_json_to_standard_output_keeps_the_summary_on_stderr(ledger: Path, tmp_path: Path) -> None:
    stmt = statement(tmp_path, GOOD + "XTRA-9,42.00,EUR,2026-11-26\n")
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--party", "ACME",
            "--format", "json", "--out", "-")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)                  # nothing else on stdout: no form, no summary line
    lines = doc["tables"][0]["rows"]
    assert [(x["status"], x["statement_reference"], x["statement_amount"]) for x in lines
            if x["status"] != "matched"] == \
        [("only_in_statement", "XTRA-9", "42.00")]
    assert "3 lines, 1 break(s)" in r.stderr


def test_reconcile_out_dash_needs_json(ledger: Path, tmp_path: Path) -> None:
    stmt = statement(tmp_path, GOOD)
    for extra in ([], ["--format", "csv"]):
        r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--out", "-", *extra)
        assert r.exit_code == 2, r.output
        assert "--out -: standard output takes the form as --format json" in r.stderr
    assert not (tmp_path / "-").exists()


def test_a_large_table_is_written_row_by_row(tmp_path: Path) -> None:
    class Counting:
        writes = 0

        def write(self, text: str) -> None:
            self.writes += 1

    rows = [(f"R{i}", Decimal(i)) for i in range(1000)]
    out = Counting()
    write_json_doc(Report("t", "T", {}, [Table("m", "M", [Column("ref"), Column("amount", "money")], rows)]), out)
    assert out.writes > 1000                      # one write a row, never one string of the whole table
