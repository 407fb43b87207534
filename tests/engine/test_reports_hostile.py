"""Reports over deals whose text a counterparty wrote: formula injection, CR, markup, control characters.

The ledger is a real one (``open_ledger``); every value below is one a
counterparty or a route can put into a reference, a party or a reason.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reports import build_report, period, write
from engine.reports.tabular import csv_text
from engine.reports.terminal import print_report

LAST_MS = datetime(2026, 3, 2, 23, 59, 59, 999000, tzinfo=timezone.utc)   # the day's last millisecond
HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "\tTAB", "\rCR first", "mid\rCR",
           'a,b"c\nd', "ünï € 中文", "\u202eevil\u202c", "<script>alert(1)</script>", "[/]",
           "\x1b]0;pwned\x07\x1b[31mred", "x" * 5000]
AMOUNTS = [("0.0001", "EUR"), ("-5.50", "EUR"), ("0", "JPY"), ("99999999999999999999.9999", "USD"),
           ("1.2345", "KWD")]


async def fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        i = 0
        for text in HOSTILE:
            for amount, cur in AMOUNTS:
                at = LAST_MS if i % 2 else LAST_MS - timedelta(hours=1)
                await ledger.commit(DealRecord(
                    deal_type="BILL_PAYMENT", route="bill", config_version="v1", channel="mainframe",
                    status=("committed", "rejected", "failed")[i % 3], received_at=at,
                    finished_at=at + timedelta(milliseconds=5), reference=text, amount=Decimal(amount),
                    currency=cur, party="=HYPERLINK(\"http://x\")", response_code="=1+1", reason=text))
                i += 1


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "bsp.duckdb"
    trio.run(fill, path)
    return path


def reports(ledger: Path):
    day = period("2026-03-02")
    return [build_report("daily-summary", ledger, day), build_report("rejections", ledger, day),
            build_report("counterparty-statement", ledger, day, party="=HYPERLINK(\"http://x\")")]


def test_csv_text_cells_never_start_a_formula(ledger: Path) -> None:
    for rep in reports(ledger):
        for table in rep.tables:
            rows = list(csv.reader(io.StringIO(csv_text(table), newline="")))
            assert len(rows) == len(table.rows) + 1
            for row in rows[1:]:
                for col, value in zip(table.columns, row):
                    if col.kind == "text":
                        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (table.name, col.name, value)


def test_csv_keeps_the_text_behind_the_quote_and_numbers_alone(ledger: Path) -> None:
    rep = build_report("counterparty-statement", ledger, period("2026-03-02"), party="=HYPERLINK(\"http://x\")")
    rows = list(csv.DictReader(io.StringIO(csv_text(rep.main), newline="")))
    refs = {r["reference"] for r in rows}
    assert "'=cmd|' /C calc'!A0" in refs and "'-2+3" in refs and "'\rCR first" in refs and "mid\rCR" in refs
    assert 'a,b"c\nd' in refs and "ünï € 中文" in refs and "x" * 5000 in refs
    assert {r["response_code"] for r in rows} == {"'=1+1"}
    assert "-5.5000" in {r["amount"] for r in rows}           # a negative amount stays a number


def test_a_carriage_return_never_splits_a_row(ledger: Path, tmp_path: Path) -> None:
    rep = build_report("rejections", ledger, period("2026-03-02"))
    (path, *_) = write(rep, "csv", tmp_path / "rej.csv")
    raw = path.read_bytes().decode()
    # read as a spreadsheet does: any CR or LF outside quotes ends a row
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert {len(r) for r in rows} == {len(rep.main.columns)}
    assert len(rows) == len(rep.main.rows) + 1
    assert '"mid\rCR"' in raw


def test_totals_exact_per_currency(ledger: Path) -> None:
    rep = build_report("daily-summary", ledger, period("2026-03-02"))
    totals = {r["currency"]: r for r in rep.tables[1].dicts()}
    assert set(totals) == {"EUR", "JPY", "USD", "KWD"}         # never mixed across currencies
    expect: dict[str, Decimal] = {}
    i = 0
    for _ in HOSTILE:
        for amount, cur in AMOUNTS:
            if i % 3 == 0:
                expect[cur] = expect.get(cur, Decimal(0)) + Decimal(amount)
            i += 1
    for cur, total in expect.items():
        assert totals[cur]["amount_committed"] == total and isinstance(totals[cur]["amount_committed"], Decimal)
    assert sum(r["deals"] for r in totals.values()) == len(HOSTILE) * len(AMOUNTS)   # 23:59:59.999 is in the day
    assert build_report("daily-summary", ledger, period("2026-03-03")).main.rows == []


def test_html_shows_every_value_escaped(ledger: Path, tmp_path: Path) -> None:
    for rep in reports(ledger):
        (path,) = write(rep, "html", tmp_path / f"{rep.name}.html")
        page = path.read_text(encoding="utf-8")
        assert "<script" not in page
        if rep.name != "daily-summary":
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_terminal_shows_control_characters_and_markup_as_text(ledger: Path) -> None:
    for rep in reports(ledger):
        buf = io.StringIO()
        print_report(rep, file=buf)
        out = buf.getvalue()
        assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[31mred" in out and "[/]" in out


async def _one_deal(path: Path) -> None:
    async with open_ledger(path) as ledger:
        at = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
        await ledger.commit(DealRecord(deal_type="PAYMENT", route="payments", config_version="v1",
                                       channel="mainframe", status="committed", received_at=at, finished_at=at,
                                       reference="-E2E-1", amount=Decimal("100.00"), currency="EUR", party="BANK"))


def test_reconciliation_form_from_a_hostile_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.reconcile import reconcile_file
    from engine.reports.html import render

    ledger = tmp_path / "bsp.duckdb"
    trio.run(_one_deal, ledger)
    monkeypatch.chdir(tmp_path)
    stmt = Path("=stmt.csv")          # the form names the statement as it was given: a file name is text too
    stmt.write_text('reference,amount,currency,date,text\n'
                    '-E2E-1,100.00,EUR,2026-03-02,ok\n'
                    '"=HYPERLINK(""http://evil"",""x"")",5.00,EUR,2026-03-02,"<script>alert(1)</script>"\n'
                    '"@SUM(1)",0.001,JPY,2026-03-02,x\n', encoding="utf-8")
    report, rows = reconcile_file(ledger, stmt, "csv")
    got = list(csv.DictReader(io.StringIO(csv_text(report.main), newline="")))
    assert {r["statement_reference"] for r in got} == {"'-E2E-1", "'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(1)"}
    assert {r["ledger_reference"] for r in got} == {"'-E2E-1", ""}
    assert sorted(r["statement_line"] for r in got) == ["'=stmt.csv:2", "'=stmt.csv:3", "'=stmt.csv:4"]
    totals = {r["currency"]: r for r in report.tables[1].dicts()}
    assert totals["EUR"]["statement_total"] == Decimal("105.00") and totals["JPY"]["statement_total"] == Decimal("0.001")
    assert "<script" not in render(report)


def test_xlsx_stays_well_formed_whatever_the_text(tmp_path: Path) -> None:
    import zipfile
    from xml.etree import ElementTree as ET

    from engine.reports import Column, Report, Table

    text = "a\x01b\ufffec\uffffd\U0001f600e\u202ef=1+1"
    rep = Report("x", "X", {}, [Table("main", "Main", (Column("reference"),), [(text,)])])
    (path,) = write(rep, "xlsx", tmp_path / "x.xlsx")
    with zipfile.ZipFile(path) as z:
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    cells = [c for c in sheet.iter(f"{ns}c")]
    assert cells[1].get("t") == "inlineStr"                 # a string, never a formula (<f>)
    assert cells[1].findtext(f".//{ns}t") == "abcd\U0001f600e\u202ef=1+1"
