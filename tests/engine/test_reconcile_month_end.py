"""Month end in the back office: `bsp report` and `bsp reconcile` on a real ledger, with the statements
banks really send (semicolons and decimal commas, a BOM, quoted text over two lines), the mistakes they
hold (an exponent, an unclosed quote, a short line, a byte that is not UTF-8: each named file:line and
column), the ledger's enquiries (amount 0, no money moved) and repeats (duplicates), and an --out that
names the ledger or the statement (refused: the report would replace what it was made from)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.commands.reconcile import register as register_reconcile
from engine.commands.report import register as register_report
from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import load_statement, reconcile_file
from engine.reports import ReportError, build_report, period, write

DAY = date(2026, 11, 26)
T = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)

# (reference, amount, currency, status, deal_type); received a minute apart from 09:00 UTC, party ACME
DEALS = [
    ("E2E-001", "120.50", "EUR", "committed", "TRANSFER"),
    ("E2E-002", "7.125", "EUR", "committed", "TRANSFER"),
    ("E2E-001", "120.50", "EUR", "duplicate", "TRANSFER"),      # a repeat, answered with the original reply
    ("E2E-003", "99.99", "EUR", "failed", "TRANSFER"),
    ("ENQ-0001", "0", None, "committed", "BALANCE_ENQUIRY"),    # an enquiry: amount 0, no currency
    ("ENQ-0002", "0", "EUR", "committed", "BALANCE_ENQUIRY"),
]


async def _fill(path: Path, deals: list[tuple]) -> None:
    async with open_ledger(path) as ledger:
        for i, (ref, amount, ccy, status, typ) in enumerate(deals):
            t = T + timedelta(minutes=i)
            await ledger.commit(DealRecord(
                deal_type=typ, route=typ.lower(), config_version="v1", channel="mainframe", status=status,
                received_at=t, finished_at=t + timedelta(milliseconds=5), reference=ref, amount=Decimal(amount),
                currency=ccy, party="ACME"))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "bsp.duckdb"
    trio.run(_fill, path, DEALS)
    return path


def bsp(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register_report(app)
    register_reconcile(app)
    return CliRunner().invoke(app, list(args))


def statement(tmp_path: Path, text: str, name: str = "stmt.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


GOOD = "reference,amount,currency,date\nE2E-001,120.5,EUR,2026-11-26\nE2E-002,7.1250,EUR,2026-11-26\n"


# ------------------------------------------------------------------ what is compared

def test_enquiries_of_amount_zero_are_not_breaks(ledger: Path, tmp_path: Path) -> None:
    # before: the two enquiries (amount 0) were "only in ledger", one of them under an empty currency
    report, rows = reconcile_file(ledger, statement(tmp_path, GOOD), "csv", party="ACME")
    assert [(r.status, r.deal.reference) for r in rows] == [("matched", "E2E-001"), ("matched", "E2E-002")]
    assert [t[0] for t in report.tables[1].rows] == ["EUR"]


def test_totals_are_written_at_one_scale(ledger: Path, tmp_path: Path) -> None:
    # 120.5 on the statement matches 120.50 in the ledger; before, the totals mixed "0", "42.00", "1402.02"
    # and "1435.4900" in one column
    stmt = statement(tmp_path, GOOD + "XTRA-9,42.00,EUR,2026-11-26\n")
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--party", "ACME",
            "--out", str(tmp_path / "form.csv"), "-q")
    assert r.exit_code == 1, r.output
    (tot,) = list(csv.DictReader(io.StringIO((tmp_path / "form.totals.csv").read_text())))
    assert tot == {"currency": "EUR", "matched": "2", "matched_amount": "127.6250", "only_in_ledger": "0",
                   "only_in_ledger_amount": "0.0000", "only_in_statement": "1",
                   "only_in_statement_amount": "42.0000", "mismatches": "0", "mismatch_difference": "0.0000",
                   "ledger_total": "127.6250", "statement_total": "169.6250"}


def test_counterparty_statement_counts_repeats_apart(ledger: Path) -> None:
    # before: the duplicate was counted among the rejected/failed deals (other_deals 2)
    rep = build_report("counterparty-statement", ledger, period(DAY), party="ACME")
    by_ccy = {t["currency"]: t for t in rep.tables[1].dicts()}
    eur = by_ccy["EUR"]
    assert (eur["committed_deals"], eur["other_deals"], eur["duplicates"]) == (3, 1, 1)
    assert eur["movement"] == Decimal("127.625")
    assert [c.name for c in rep.tables[1].columns] == ["currency", "opening", "committed_deals", "other_deals",
                                                       "duplicates", "movement", "closing"]


# ------------------------------------------------------------------ statements as banks send them

@pytest.mark.parametrize("text", [
    "\ufeffReference;Amount;Currency;Date\nE2E-001;120,50;EUR;2026-11-26\nE2E-002;7,125;EUR;2026-11-26\n",
    "reference;amount;currency;date\r\nE2E-001;120.5;EUR;2026-11-26\r\nE2E-002;+7.125;EUR;2026-11-26\r\n",
    "reference\tamount\tcurrency\tdate\nE2E-001\t120,50\tEUR\t2026-11-26\nE2E-002\t7.12500\tEUR\t2026-11-26\n",
], ids=["bom-semicolon-decimal-comma", "semicolon-point-crlf", "tab"])
def test_semicolon_and_tab_separated_statements(ledger: Path, tmp_path: Path, text: str) -> None:
    # before: "the header has no amount, currency, date, reference column (it has: reference;amount;...)"
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(statement(tmp_path, text)), "--type", "csv",
            "--party", "ACME", "-q")
    assert r.exit_code == 0, r.output
    assert "2 lines, fully matched" in r.output


@pytest.mark.parametrize("text, message", [
    # a spreadsheet's scientific notation (it may have rounded the amount): before, read as 120.5
    ("reference,amount,currency,date\nE2E-001,1.205E2,EUR,2026-11-26\n",
     r"stmt.csv:2: column amount: '1.205E2' is not a decimal number; write it with a point and no thousands "
     r"separator nor exponent"),
    ("reference,amount,currency,date\nE2E-001,1_20.50,EUR,2026-11-26\n",      # before: read as 120.50
     r"stmt.csv:2: column amount: '1_20.50' is not a decimal number"),
    ("reference,amount,currency,date\nE2E-001,\u0661\u0662\u0660.50,EUR,2026-11-26\n",   # before: read as 120.50
     r"stmt.csv:2: column amount: '\u0661\u0662\u0660.50' is not a decimal number"),
    ("reference;amount;currency;date\nE2E-001;1.120,50;EUR;2026-11-26\n",
     r"stmt.csv:2: column amount: '1.120,50' is not a decimal number; write it with a point or a decimal comma"),
    ("reference,amount,currency,date\nE2E-001,\"120,50\",EUR,2026-11-26\n",   # a decimal comma needs ; or tab
     r"stmt.csv:2: column amount: '120,50' is not a decimal number"),
    # a text over two lines (quoted): the next line's mistake is on line 4, not 3 as before
    ("reference,amount,currency,date,text\nE2E-001,120.50,EUR,2026-11-26,\"two\nlines\"\nE2E-002,7.1x,EUR,"
     "2026-11-26,x\n", r"stmt.csv:4: column amount: '7.1x'"),
    # an unclosed quote: before, it swallowed every later line into one text, silently
    ("reference,amount,currency,date,text\nE2E-001,120.50,EUR,2026-11-26,\"pay\nE2E-002,7.125,EUR,"
     "2026-11-26,x\n", r"stmt.csv:2: not readable as CSV \(unexpected end of data\); check the quotes"),
    ("reference,amount,currency,date\nE2E-001,\"120.50\"x,EUR,2026-11-26\n",
     r"stmt.csv:2: not readable as CSV"),
    # a line short of fields: before, "column currency: ''" with no word of why
    ("reference,amount,currency,date\nE2E-001,120.50\n",
     r"stmt.csv:2: column currency: missing; the line has 2 field\(s\), the header 4 \(separated by ','\)"),
])
def test_bad_statement_lines_say_file_line_and_column(ledger: Path, tmp_path: Path, text: str,
                                                      message: str) -> None:
    path = statement(tmp_path, text)
    with pytest.raises(ReportError, match=message):
        load_statement(path, "csv")


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = statement(tmp_path, GOOD + "E2E-009,1.00,EUR,2026-11-26,Zahlung für Miete\n", encoding="latin-1")
    with pytest.raises(ReportError, match=r"stmt.csv:4: byte \d+: not UTF-8 text \(b'\\xfc'\)"):
        load_statement(path, "csv")


# ------------------------------------------------------------------ where the form is written

def test_report_out_never_replaces_the_ledger(ledger: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(ledger.read_bytes())
    before = copy.read_bytes()
    # before: exit 0, "wrote copy.duckdb", the ledger replaced by a 1 kB CSV
    r = bsp("report", "daily-summary", "--ledger", str(copy), "--from", str(DAY), "--format", "csv",
            "--out", str(copy))
    assert r.exit_code == 2, r.output
    assert f"--out {copy}: that is {copy}" in r.output and "would replace it" in r.output
    assert copy.read_bytes() == before
    rep = build_report("daily-summary", copy, period(DAY))
    with pytest.raises(ReportError, match="would replace it"):
        write(rep, "html", tmp_path / "copy.duckdb.wal", inputs=[copy])     # its write-ahead log
    assert write(rep, "html", tmp_path / "daily.html", inputs=[copy]) == [tmp_path / "daily.html"]


@pytest.mark.parametrize("out, against", [("stmt.csv", "stmt.csv"), ("form.csv", "form.totals.csv")],
                         ids=["the-statement", "the-statement-as-a-side-file"])
def test_reconcile_out_never_replaces_the_statement(ledger: Path, tmp_path: Path, out: str, against: str) -> None:
    stmt = statement(tmp_path, GOOD, name=against)
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--party", "ACME",
            "--out", str(tmp_path / out), "-q")
    assert r.exit_code == 2, r.output
    assert "would replace it" in r.output
    assert stmt.read_text() == GOOD


def test_a_reversal_on_the_statement_is_named_so_not_a_duplicate(ledger: Path, tmp_path: Path) -> None:
    # the bank books E2E-001 and takes it back (a storno, the other way): before, "duplicate of stmt.csv:2"
    stmt = statement(tmp_path, GOOD + "E2E-001,-120.50,EUR,2026-11-27\n")
    _, rows = reconcile_file(ledger, stmt, "csv", party="ACME")
    (extra,) = [r for r in rows if r.status != "matched"]
    assert (extra.status, extra.line.where) == ("only_in_statement", f"{stmt}:4")
    assert extra.note.startswith(f"reversal: {stmt}:2 books the same amount the other way")
    repeat = statement(tmp_path, GOOD + "E2E-001,120.50,EUR,2026-11-26\n", name="repeat.csv")
    (extra,) = [r for r in reconcile_file(ledger, repeat, "csv", party="ACME")[1] if r.status != "matched"]
    assert extra.note == f"duplicate of {repeat}:2 (the deal is already matched)"


# ------------------------------------------------------------------ UTC days

def test_a_deal_in_the_last_microsecond_of_a_day_pairs_with_the_next_days_booking(tmp_path: Path) -> None:
    path = tmp_path / "edge.duckdb"
    last = datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=timezone.utc)
    trio.run(_fill_at, path, [("LATE-001", last), ("EARLY-002", last + timedelta(microseconds=1))])
    stmt = statement(tmp_path, "reference,amount,currency,date\nLATE-001,10,EUR,2026-11-27\n"
                               "EARLY-002,10.00,EUR,2026-11-27\n")
    _, rows = reconcile_file(path, stmt, "csv")           # the statement's day: 2026-11-27
    assert sorted((r.status, r.deal.reference, str(r.deal.day)) for r in rows) == [
        ("matched", "EARLY-002", "2026-11-27"), ("matched", "LATE-001", "2026-11-26")]
    _, rows = reconcile_file(path, stmt, "csv", days=0)    # booked the next day: outside a window of 0 days
    assert sorted((r.status, r.deal.reference) for r in rows) == [
        ("date_mismatch", "LATE-001"), ("matched", "EARLY-002")]


async def _fill_at(path: Path, deals: list[tuple[str, datetime]]) -> None:
    async with open_ledger(path) as ledger:
        for ref, at in deals:
            await ledger.commit(DealRecord(
                deal_type="TRANSFER", route="transfer", config_version="v1", channel="mainframe",
                status="committed", received_at=at, finished_at=at, reference=ref, amount=Decimal("10.00"),
                currency="EUR", party="ACME"))


def test_an_out_that_is_a_folder_or_cannot_be_written_is_a_usage_error(ledger: Path, tmp_path: Path) -> None:
    # before: a traceback and exit 1, which for `bsp reconcile` means "breaks found"
    stmt = statement(tmp_path, GOOD)
    folder = tmp_path / "forms"
    folder.mkdir()
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--party", "ACME",
            "--format", "csv", "--out", str(folder), "-q")
    assert r.exit_code == 2, r.output
    assert f"--out {folder}: that is a folder; give a file name in it, e.g. {folder}/reconciliation.csv" in r.output
    (folder / "form.totals.csv").mkdir()
    r = bsp("reconcile", "--ledger", str(ledger), "--against", str(stmt), "--type", "csv", "--party", "ACME",
            "--out", str(folder / "form.csv"), "-q")
    assert r.exit_code == 2 and f"{folder}/form.totals.csv, is a folder" in r.output, r.output
    long = tmp_path / ("x" * 300 + ".html")        # longer than a file name may be (ENAMETOOLONG)
    r = bsp("report", "daily-summary", "--ledger", str(ledger), "--from", str(DAY), "--out", str(long),
            "--format", "html")
    assert r.exit_code == 2, r.output
    assert "cannot write" in r.output and "File name too long; choose another path" in r.output


def test_reading_the_ledger_reports_its_progress(ledger: Path, tmp_path: Path, monkeypatch) -> None:
    # before: a reconciliation against a large ledger was silent until its end (no progress argument)
    import engine.reconcile.ledger_side as ledger_side

    monkeypatch.setattr(ledger_side, "FETCH_ROWS", 1)       # a batch per row: a call per row read
    calls: list[tuple[int, int]] = []
    reconcile_file(ledger, statement(tmp_path, GOOD), "csv", party="ACME", progress=lambda d, t: calls.append((d, t)))
    # the window holds E2E-001 and E2E-002 (the enquiries of amount 0 are not read)
    assert calls[-1] == (2, 2)
    assert all(t == 2 for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert all(d < t for d, t in calls[:-1])                 # "done" only when it is


def test_the_csv_statement_of_the_docs_reads(tmp_path: Path) -> None:
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "reconciliation.md").read_text()
    (example,) = re.findall(r"^```csv\n(.*?)^```", page, re.M | re.S)
    lines = load_statement(statement(tmp_path, example), "csv")
    assert [(ln.reference, ln.amount, ln.currency, str(ln.booking_date)) for ln in lines] == [
        ("E2E-001", Decimal("100.00"), "EUR", "2026-03-02"), ("E2E-002", Decimal("250.02"), "EUR", "2026-03-02")]


def _deal(ref: str, at: datetime, amount: str = "10.00"):
    from engine.reconcile.lines import LedgerDeal
    return LedgerDeal(deal_id=ref, reference=ref, amount=Decimal(amount), currency="EUR", received_at=at)


def _line(n: int, day: date, amount: str = "10.00", ref: str = ""):
    from engine.reconcile.lines import StatementLine
    return StatementLine(where=f"s.csv:{n}", amount=Decimal(amount), currency="EUR", booking_date=day,
                         value_date=None, refs=(ref,))


def test_a_line_without_reference_pairs_with_yesterdays_last_second_deal() -> None:
    # before: the amount+date pass wanted the very same UTC day: a deal at 23:59:59.999999 booked the next
    # morning without a reference was two breaks (only in ledger, only in statement)
    from engine.reconcile import reconcile

    last = datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=timezone.utc)
    rows = reconcile([_deal("D1", last, "77.70"), _deal("D2", last - timedelta(hours=5), "5.00")],
                     [_line(2, date(2026, 11, 27), "77.7"), _line(3, date(2026, 11, 26), "5.00")])
    assert sorted((r.status, r.matched_by, r.deal.reference) for r in rows) == [
        ("matched", "amount+date", "D1"), ("matched", "amount+date", "D2")]
    assert [r.status for r in reconcile([_deal("D1", last, "77.70")], [_line(2, date(2026, 11, 27), "77.7")],
                                        days=0)] == ["only_in_ledger", "only_in_statement"]


def test_the_same_amount_every_day_still_pairs_day_by_day() -> None:
    # a standing order of 10.00 each day, no reference: the same-day pairing comes first, so the wider
    # window never makes the days ambiguous
    from engine.reconcile import reconcile

    days = [date(2026, 11, 23) + timedelta(days=i) for i in range(4)]
    deals = [_deal(f"SO{i}", datetime(d.year, d.month, d.day, 8, tzinfo=timezone.utc)) for i, d in enumerate(days)]
    rows = reconcile(deals, [_line(i + 2, d) for i, d in enumerate(days)])
    assert [(r.status, r.deal.reference, r.line.booking_date) for r in rows] == [
        ("matched", f"SO{i}", d) for i, d in enumerate(days)]
    # two deals of the amount a day apart, one line on the second day: the same day's deal, not a guess
    rows = reconcile(deals[:2], [_line(2, days[1])])
    assert [(r.status, r.deal.reference) for r in rows] == [("matched", "SO1"), ("only_in_ledger", "SO0")]


def test_counterparty_statement_read_in_batches_is_the_same(ledger: Path, monkeypatch) -> None:
    # the rows are fetched FETCH_ROWS at a time (the whole result was held twice: DuckDB's list and ours)
    import engine.reports.counterparty as counterparty

    whole = build_report("counterparty-statement", ledger, period(DAY), party="ACME")
    monkeypatch.setattr(counterparty, "FETCH_ROWS", 1)
    batched = build_report("counterparty-statement", ledger, period(DAY), party="ACME")
    assert [t.rows for t in batched.tables] == [t.rows for t in whole.tables]
    assert [r["running_total"] for r in batched.main.dicts()] == [
        Decimal("120.50"), Decimal("127.625"), Decimal("127.625"), Decimal("127.625"),
        Decimal("0"), Decimal("127.625")]     # the enquiry without a currency has a total of its own


async def _fill_why(path: Path) -> None:
    from engine.deal import DealEvent

    def deal(ref: str, at: datetime, status: str, party: str = "ACME", events=()) -> DealRecord:
        return DealRecord(deal_type="TRANSFER", route="transfer", config_version="v1", channel="mainframe",
                          status=status, received_at=at, finished_at=at, reference=ref, amount=Decimal("50.00"),
                          currency="EUR", party=party, events=list(events))

    async with open_ledger(path) as ledger:
        await ledger.commit(deal("OK-1", T, "committed"))
        await ledger.commit(deal("OLD-1", T - timedelta(days=20), "committed"))      # a booking 20 days late
        await ledger.commit(deal("BETA-1", T, "committed", party="BETA"))            # another party's deal
        await ledger.commit(deal("REJ-1", T, "rejected"))
        await ledger.commit(deal("FLAG-1", T, "failed", events=[DealEvent(T, "calling host", "flagged")]))
        await ledger.commit(deal("RES-1", T, "failed", events=[
            DealEvent(T, "calling host", "flagged"),
            DealEvent(T + timedelta(hours=2), "flagged", "resolved", {"outcome": "applied", "note": "n", "by": "a"})]))


def test_a_line_without_a_deal_says_what_the_ledger_holds_under_its_reference(tmp_path: Path) -> None:
    # before: every one of these lines said only "no deal with this reference"
    path = tmp_path / "why.duckdb"
    trio.run(_fill_why, path)
    refs = ["OK-1", "OLD-1", "BETA-1", "REJ-1", "FLAG-1", "RES-1", "NONE-1"]
    stmt = statement(tmp_path, "reference,amount,currency,date\n" + "".join(f"{r},50.00,EUR,2026-11-26\n" for r in refs))
    _, rows = reconcile_file(path, stmt, "csv", party="ACME")
    notes = {r.line.reference: r.note for r in rows if r.status == "only_in_statement"}
    ids = {r.deal.reference: r.deal.deal_id for r in rows if r.deal}
    assert set(notes) == set(refs) - {"OK-1"} and ids.keys() == {"OK-1"}
    has = "no committed deal of these days with this reference; the ledger has: deal "
    assert notes["NONE-1"] == "no deal with this reference"
    assert notes["OLD-1"].startswith(has) and notes["OLD-1"].endswith("(2026-11-06, committed, received outside "
                                                                      "the days read)")
    assert notes["BETA-1"].endswith("(2026-11-26, committed, party BETA)")
    assert notes["REJ-1"].endswith("(2026-11-26, rejected)")
    assert notes["FLAG-1"].endswith("(2026-11-26, failed, flagged for an operator, open: settle it, then bsp "
                                    "deals resolve)")
    assert notes["RES-1"].endswith("(2026-11-26, failed, flagged, resolved by an operator: applied)")


@pytest.mark.parametrize("kind, text, where", [
    ("csv", "reference,amount,currency,date\nE2E-001,120.50001,EUR,2026-11-26\n", "stmt.csv:2"),
    ("mt940", ":20:S\n:25:DE89370400440532013000\n:28C:1/1\n:60F:C261125EUR0,00\n"
              ":61:2611261126C120,50001NTRFE2E-001//B1\n:62F:C261126EUR120,50001\n-\n", "stmt.csv:5"),
])
def test_a_statement_amount_finer_than_the_ledger_is_refused(ledger: Path, tmp_path: Path, kind: str, text: str,
                                                              where: str) -> None:
    # before: compared as a break of 0.00001, then written to Parquet rounded to 120.5000 (difference 0.0000)
    with pytest.raises(ReportError, match=where + r": amount 120.50001: more than 4 decimal places; the ledger keeps 4"):
        reconcile_file(ledger, statement(tmp_path, text), kind, party="ACME")
    fine = statement(tmp_path, "reference,amount,currency,date\nE2E-001,120.500000,EUR,2026-11-26\n"
                               "E2E-002,7.125,EUR,2026-11-26\n", name="fine.csv")
    assert [r.status for r in reconcile_file(ledger, fine, "csv", party="ACME")[1]] == ["matched", "matched"]


def test_parquet_refuses_to_round_money(tmp_path: Path) -> None:
    from engine.reports.model import Column, Report, Table

    rep = Report(name="r", title="r", params={}, figures=[], charts=[], tables=[
        Table("main", "main", (Column("currency", "text"), Column("amount", "money", currency="currency")),
              [("EUR", Decimal("1.23456"))])])
    with pytest.raises(ReportError, match=r"main: column amount: 1.23456 has more decimal places than Parquet's 4"):
        write(rep, "parquet", tmp_path / "r.parquet")
    assert write(rep, "csv", tmp_path / "r.csv") == [tmp_path / "r.csv"]
    assert (tmp_path / "r.csv").read_text() == "currency,amount\nEUR,1.23456\n"


def test_the_example_run_of_the_docs(tmp_path: Path, monkeypatch) -> None:
    # the page's example, run as written on the ledger and MT940 statement of test_reconcile_breaks.py
    # (before: its header line lacked the "party: ACME" the command prints)
    import re

    from tests.engine.test_reconcile_breaks import fill, mt940

    page = (Path(__file__).resolve().parents[2] / "docs" / "reconciliation.md").read_text()
    block = next(b for b in re.findall(r"^```\n(\$ bsp reconcile .*?)^```", page, re.M | re.S))
    command, *expected = [ln for ln in block.splitlines() if not ln.startswith("...")]
    monkeypatch.chdir(tmp_path)
    trio.run(fill, tmp_path / "copy.duckdb")
    (tmp_path / "acme-0302.sta").write_text(mt940())
    r = bsp(*command.split()[2:])
    assert r.exit_code == 1, r.output
    shown = r.output.splitlines()
    for line in expected[:expected.index("$ echo $?")]:
        assert line in shown, line
    assert expected[-1] == "1"


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
 <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-26T18:00:00</CreDtTm></GrpHdr>
 <Stmt><Id>S1</Id><CreDtTm>2026-11-26T18:00:00</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
  <Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
   <BookgDt><Dt>2026-11-26</Dt></BookgDt><BkTxCd/>
   <NtryDtls><TxDtls><Refs><EndToEndId>E2E-001</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
 </Stmt></BkToCstmrStmt></Document>
"""


@pytest.mark.parametrize("amount", ["1.205E2", "NaN", "Infinity", "1_20.50", "\u0661\u0662\u0660.50"])
def test_a_camt053_amount_is_an_xs_decimal(ledger: Path, tmp_path: Path, amount: str) -> None:
    # before: 1.205E2 and 1_20.50 and the Arabic-Indic digits were read as 120.50 (fully matched), NaN and
    # Infinity went on into the matcher (Infinity: a traceback)
    stmt = statement(tmp_path, CAMT.format(amount=amount), name="stmt.xml")
    with pytest.raises(ReportError, match=r"stmt.xml: Stmt 1 / Ntry 1 \(statement S1, byte 310\): field Amt: "
                                          r"amount .* is not a decimal number"):
        reconcile_file(ledger, stmt, "camt053", party="ACME")
    fine = statement(tmp_path, CAMT.format(amount=" +120.5 "), name="fine.xml")
    assert [r.status for r in reconcile_file(ledger, fine, "camt053", party="ACME")[1]] == ["matched", "only_in_ledger"]


def test_an_mt940_amount_or_date_in_other_digits_is_refused(ledger: Path, tmp_path: Path) -> None:
    # before: ":61:2611261126C١٢٠,50..." was read as 120.50 and matched (Python's \d and Decimal take any
    # script's digits; SWIFT's character set has only ASCII)
    from formats.errors import FormatError
    from formats.swift.fields import parse_amount, parse_date6

    sta = (":20:S\n:25:DE89370400440532013000\n:28C:1/1\n:60F:C261125EUR0,00\n"
           ":61:2611261126C\u0661\u0662\u0660,50NTRFE2E-001//B1\n:62F:C261126EUR120,50\n-\n")
    with pytest.raises(ReportError, match=r"stmt.sta:5: not a readable MT940 statement: .*field 61: .* is not a "
                                          r"statement line"):
        reconcile_file(ledger, statement(tmp_path, sta, name="stmt.sta"), "mt940", party="ACME")
    with pytest.raises(FormatError, match="is not digits with a decimal comma"):
        parse_amount("\u0661\u0662\u0660,50", "32A", 0)
    with pytest.raises(FormatError, match="is not YYMMDD"):
        parse_date6("\u0662\u0666\u0661\u0661\u0662\u0666", "32A", 0)
    assert parse_amount("120,50", "32A", 0) == Decimal("120.50")


@pytest.mark.parametrize("amount", ["1" * 26 + ".50", "1" * 30])
def test_a_statement_amount_past_the_ledgers_digits_is_refused_by_name(tmp_path: Path, amount: str) -> None:
    # before: decimal.InvalidOperation "[<class 'decimal.InvalidOperation'>]" (the 28-digit context of quantize),
    # no file, line or column named
    path = statement(tmp_path, f"reference,amount,currency,date\nE2E-001,{amount},EUR,2026-11-26\n")
    with pytest.raises(ReportError, match=r"stmt.csv:2: amount 1{20}.*: more than 20 digits before the decimal "
                                          r"point; the ledger keeps DECIMAL\(24,4\)"):
        load_statement(path, "csv")


@pytest.mark.parametrize("amount", ["1" * 26 + ".50", "1" * 30])
def test_a_totals_file_amount_past_the_ledgers_digits_is_refused_by_name(amount: str) -> None:
    from engine.reconcile.totals_file import _amount
    with pytest.raises(ReportError, match=r"totals.csv:2: field amount: .*more than 20 digits before the decimal"):
        _amount(amount, "totals.csv:2", "amount")
