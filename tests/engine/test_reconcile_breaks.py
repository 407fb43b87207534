"""Generated statements (MT940, camt.053, CSV) with known breaks: the exact form, and the command's exit codes."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.commands.reconcile import register
from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file
from engine.reconcile.form import totals
from engine.reports import ReportError

DAY = date(2026, 3, 2)

# the ledger: five committed deals (+ a rejected one, which never counts)
LEDGER = [("E2E-001", "100.00"), ("E2E-002", "250.00"), ("E2E-003", "75.50"),
          ("E2E-004", "10.00"), ("E2E-005", "999.99")]
# the statement: E2E-003 missing, an extra line, E2E-002 off by 0.02, E2E-004 off by 0.01
STATEMENT = [("E2E-001", "100.00"), ("E2E-002", "250.02"), ("E2E-004", "10.01"),
             ("E2E-005", "999.99"), ("XTRA-9", "42.00")]

EXPECTED = [
    # status, ledger ref, ledger amount, statement ref, statement amount, difference
    ("matched", "E2E-001", "100.00", "E2E-001", "100.00", "0.00"),
    ("matched", "E2E-004", "10.00", "E2E-004", "10.01", "0.01"),
    ("matched", "E2E-005", "999.99", "E2E-005", "999.99", "0.00"),
    ("amount_mismatch", "E2E-002", "250.00", "E2E-002", "250.02", "0.02"),
    ("only_in_ledger", "E2E-003", "75.50", None, None, None),
    ("only_in_statement", None, None, "XTRA-9", "42.00", None),
]


async def fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i, (ref, amount) in enumerate(LEDGER):
            t = datetime.combine(DAY, time(9, i), tzinfo=timezone.utc)
            await ledger.commit(DealRecord(
                deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe", status="committed",
                received_at=t, finished_at=t + timedelta(milliseconds=4), reference=ref, amount=Decimal(amount),
                currency="EUR", party="ACME"))
        t = datetime.combine(DAY, time(11), tzinfo=timezone.utc)
        await ledger.commit(DealRecord(
            deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe", status="rejected",
            received_at=t, finished_at=t, reference="E2E-006", amount=Decimal("5.00"), currency="EUR", party="ACME"))
        # a committed deal two days later: outside the statement's day, never reported
        t = datetime.combine(DAY + timedelta(days=2), time(9), tzinfo=timezone.utc)
        await ledger.commit(DealRecord(
            deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe", status="committed",
            received_at=t, finished_at=t, reference="E2E-777", amount=Decimal("1.00"), currency="EUR", party="ACME"))


def mt940() -> str:
    lines = [":20:STMT0302", ":25:DE89370400440532013000", ":28C:61/1", ":60F:C260301EUR1000,00"]
    for ref, amount in STATEMENT:
        lines += [f":61:2603020302C{amount.replace('.', ',')}NTRF{ref}//B{ref[-3:]}", f":86:PAYMENT {ref}"]
    return "\n".join(lines + [":62F:C260302EUR2402,02", "-"]) + "\n"


def camt053() -> str:
    entries = "".join(f"""
   <Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{DAY}</Dt></BookgDt><ValDt><Dt>{DAY}</Dt></ValDt><AcctSvcrRef>BANK-{i}</AcctSvcrRef>
    <BkTxCd/><NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"""
                      for i, (ref, amount) in enumerate(STATEMENT))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
 <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-03-02T18:00:00</CreDtTm></GrpHdr>
 <Stmt><Id>S1</Id><CreDtTm>2026-03-02T18:00:00</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{entries}
 </Stmt></BkToCstmrStmt></Document>
"""


def csv_statement() -> str:
    return "Reference,Amount,Currency,Date,Text\n" + "".join(
        f"{ref},{amount},EUR,{DAY},payment {ref}\n" for ref, amount in STATEMENT)


STATEMENTS = {"mt940": ("stmt.sta", mt940), "camt053": ("stmt.xml", camt053), "csv": ("stmt.csv", csv_statement)}


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(fill, path)
    return path


def statement(tmp_path: Path, kind: str) -> Path:
    name, make = STATEMENTS[kind]
    p = tmp_path / name
    p.write_text(make(), encoding="utf-8")
    return p


def shown(value):
    return None if value is None else f"{value:.2f}"


@pytest.mark.parametrize("kind", list(STATEMENTS))
def test_exact_form_with_known_breaks(ledger: Path, tmp_path: Path, kind: str) -> None:
    report, rows = reconcile_file(ledger, statement(tmp_path, kind), kind, tolerance=Decimal("0.01"))
    got = [(r.status, r.deal and r.deal.reference, shown(r.deal and r.deal.amount),
            r.line and r.line.reference, shown(r.line and r.line.amount), shown(r.difference)) for r in rows]
    assert got == EXPECTED
    assert [r.matched_by for r in rows] == ["reference"] * 4 + ["", ""]
    assert rows[3].note == "statement +0.02 beyond tolerance 0.01"
    assert rows[1].note == "difference +0.01 within tolerance 0.01"
    (tot,) = totals(rows)
    assert tot == ("EUR", 3, Decimal("1109.99"), 1, Decimal("75.50"), 1, Decimal("42.00"), 1, Decimal("0.02"),
                   Decimal("1435.49"), Decimal("1402.02"))
    assert dict(report.figures)["breaks"] == "3"


def test_zero_tolerance_makes_the_cent_a_break(ledger: Path, tmp_path: Path) -> None:
    _, rows = reconcile_file(ledger, statement(tmp_path, "csv"), "csv")
    assert [r.status for r in rows].count("amount_mismatch") == 2


def test_date_window(ledger: Path, tmp_path: Path) -> None:
    p = tmp_path / "late.csv"
    p.write_text(f"reference,amount,currency,date\nE2E-001,100.00,EUR,{DAY + timedelta(days=3)}\n")
    _, rows = reconcile_file(ledger, p, "csv", days=1)
    assert [(r.status, r.note) for r in rows][:1] == [
        ("date_mismatch", "booked 2026-03-05, deal 2026-03-02: 3 days apart (allowed 1)")]
    _, rows = reconcile_file(ledger, p, "csv", on=DAY + timedelta(days=3), days=3)
    assert [r.status for r in rows] == ["matched"]     # 3 days allowed; E2E-777 (03-04) is not in scope


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return app


def run(*args: str):
    return CliRunner().invoke(make_app(), ["reconcile", *args])


def test_cli_exit_1_with_breaks_and_exports(ledger: Path, tmp_path: Path) -> None:
    stmt = statement(tmp_path, "mt940")
    out = tmp_path / "form.xlsx"
    r = run("--ledger", str(ledger), "--against", str(stmt), "--type", "mt940", "--tolerance", "0.01",
            "--format", "xlsx", "--out", str(out))
    assert r.exit_code == 1, r.output
    assert "6 lines, 3 break(s)" in r.output and "amount_mismatch" in r.output and "E2E-003" in r.output
    assert out.stat().st_size > 0
    r = run("--ledger", str(ledger), "--against", str(stmt), "--type", "mt940", "--tolerance", "0.01",
            "--format", "csv", "--out", str(tmp_path / "form.csv"), "-q")
    assert r.exit_code == 1
    assert (tmp_path / "form.totals.csv").read_text().splitlines()[1] == "EUR,3,1109.9900,1,75.5000,1,42.0000,1,0.0200,1435.4900,1402.0200"


def test_cli_exit_0_when_fully_matched(ledger: Path, tmp_path: Path) -> None:
    p = tmp_path / "ok.csv"
    p.write_text("ref,amount,ccy,date\n" + "".join(f"{r},{a},EUR,{DAY}\n" for r, a in LEDGER))
    r = run("--ledger", str(ledger), "--against", str(p), "--type", "csv", "-q")
    assert r.exit_code == 0, r.output
    assert "5 lines, fully matched" in r.output


@pytest.mark.parametrize("content, kind, message", [
    ("reference,amount,currency,date\nA,12,50,EUR,2026-03-02\n", "csv", "column currency: '50'"),
    ("reference,amount,currency,date\nA,1.234.5,EUR,2026-03-02\n", "csv",
     "stmt.txt:2: column amount: '1.234.5' is not a decimal number"),
    ("reference,amount,currency,date\nA,12.50,EUR,02.03.2026\n", "csv", "stmt.txt:2: column date: '02.03.2026' is not a date"),
    ("ref,sum\nA,1\n", "csv", "stmt.txt:1: the header has no amount, currency, date column"),
    (":20:X\n:61:2613020302C1,00NTRFA\n-\n", "mt940", "stmt.txt:2: not a readable MT940 statement"),
    ("<Document/>", "camt053", "not a readable camt.053 statement"),
    ("x", "pdf", "--type 'pdf': expected one of csv, mt940, camt053"),
])
def test_bad_statements_say_where(ledger: Path, tmp_path: Path, content: str, kind: str, message: str) -> None:
    p = tmp_path / "stmt.txt"
    p.write_text(content)
    with pytest.raises(ReportError) as err:
        reconcile_file(ledger, p, kind)
    assert message in str(err.value)
    r = run("--ledger", str(ledger), "--against", str(p), "--type", kind)
    assert r.exit_code == 2 and message in r.output


def test_cli_bad_options(ledger: Path, tmp_path: Path) -> None:
    p = statement(tmp_path, "csv")
    r = run("--ledger", str(ledger), "--against", str(p), "--type", "csv", "--tolerance", "1c")
    assert r.exit_code == 2 and "--tolerance '1c': expected a decimal amount" in r.output
    r = run("--ledger", str(tmp_path / "none.duckdb"), "--against", str(p), "--type", "csv")
    assert r.exit_code == 2 and "no ledger file here" in r.output
