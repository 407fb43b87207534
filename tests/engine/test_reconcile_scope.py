"""`bsp reconcile` in a real subprocess, on a real ledger: a --date or --party that selects nothing is a
usage error (never "fully matched"), totals count every statement line in its own currency, a repeated
line is named a duplicate, and camt.053 mistakes say which Stmt / Ntry."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file

REPO = Path(__file__).resolve().parents[2]
N = 14


async def _fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i in range(1, N + 1):
            t = datetime(2026, 11, 26, 9, i, tzinfo=timezone.utc)
            await ledger.commit(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
                status="committed", received_at=t, finished_at=t + timedelta(milliseconds=4),
                reference=f"{i:012d}", amount=Decimal(f"{i}.33"), currency="CNY", party="EL0001"))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "bsp.duckdb"
    trio.run(_fill, path)
    return path


def csv_lines(extra: str = "", replace: tuple[str, str] | None = None) -> str:
    rows = [f"{i:012d},{i}.33,CNY,2026-11-26,bill {i}" for i in range(1, N + 1)]
    text = "reference,amount,currency,date,text\n" + "\n".join(rows) + "\n" + extra
    return text.replace(*replace) if replace else text


def bsp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_a_date_outside_the_statement_is_a_usage_error_naming_its_days(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "el.csv").write_text(csv_lines())
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "--party", "EL0001",
              "--date", "2026-01-01", "-q", cwd=tmp_path)
    assert res.returncode == 2, res
    assert "fully matched" not in res.stdout
    assert res.stderr.startswith("error: --date 2026-01-01: no line of el.csv is booked or valued that day; "
                                 "the statement holds day(s) 2026-11-26"), res.stderr
    assert "Traceback" not in res.stderr
    ok = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "--party", "EL0001",
             "--date", "2026-11-26", "-q", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{N} lines, fully matched", ok


def test_a_party_without_deals_is_a_usage_error_listing_the_parties(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "el.csv").write_text(csv_lines())
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "--party", "NOPE", "-q",
              cwd=tmp_path)
    assert res.returncode == 2, res
    assert "break" not in res.stdout
    assert "error: --party 'NOPE': no deal of this party in" in res.stderr
    assert "(parties in this ledger: EL0001)" in res.stderr


def test_totals_count_each_statement_line_in_its_own_currency(ledger: Path, tmp_path: Path) -> None:
    stmt = tmp_path / "cur.csv"
    stmt.write_text(csv_lines(replace=("000000000005,5.33,CNY", "000000000005,33.33,EUR")))
    report, rows = reconcile_file(ledger, stmt, "csv")
    (bad,) = [r for r in rows if r.status != "matched"]
    assert (bad.status, bad.currency) == ("amount_mismatch", "CNY")
    totals = {t[0]: t for t in report.tables[1].rows}
    assert set(totals) == {"CNY", "EUR"}
    # statement total per currency: every line of the file, in the line's currency
    assert totals["EUR"][-1] == Decimal("33.33")
    assert totals["CNY"][-1] == sum(Decimal(f"{i}.33") for i in range(1, N + 1) if i != 5)
    assert totals["CNY"][-2] == sum(Decimal(f"{i}.33") for i in range(1, N + 1))     # ledger total
    assert sum(t[-1] for t in totals.values()) == sum(abs(r.line.amount) for r in rows if r.line)


def test_a_repeated_line_is_named_a_duplicate(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text(csv_lines(extra="000000000001,1.33,CNY,2026-11-26,bill 1\n"))
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "dup.csv", "--type", "csv", "--format", "csv",
              "--out", "form.csv", "-q", cwd=tmp_path)
    assert res.returncode == 1, res
    form = (tmp_path / "form.csv").read_text().splitlines()
    (line,) = [ln for ln in form if ln.startswith("only_in_statement")]
    assert "duplicate of dup.csv:2 (the deal is already matched)" in line and line.endswith("dup.csv:16"), line


def camt(bad_date: str = "2026-11-26", amount: str = "2.33") -> str:
    entries = "".join(f"""
   <Ntry><Amt Ccy="CNY">{amount if i == 2 else f"{i}.33"}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{bad_date if i == 2 else "2026-11-26"}</Dt></BookgDt><ValDt><Dt>2026-11-26</Dt></ValDt>
    <NtryDtls><TxDtls><Refs><EndToEndId>{i:012d}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"""
                      for i in range(1, 4))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
 <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-26T18:00:00</CreDtTm></GrpHdr>
 <Stmt><Id>S1</Id><CreDtTm>2026-11-26T18:00:00</CreDtTm>{entries}
 </Stmt></BkToCstmrStmt></Document>
"""


@pytest.mark.parametrize("content, extra, message", [
    (camt(bad_date="2026-11-31"), (), "error: s.xml: Stmt 1 / Ntry 2 (statement S1, byte {at}): field BookgDt: "
                                      "'2026-11-31' is not a date"),
    (camt(amount="49,999.99"), (), "error: s.xml: Stmt 1 / Ntry 2 (statement S1, byte {at}): field Amt: amount "
                                   "'49,999.99' is not a decimal number; write it with a point"),
    (camt(), ("--xsd-dir", "/nonexistent"), "error: --xsd-dir /nonexistent: no such folder; give the folder "
                                            "that holds the camt.053 XSD"),
])
def test_camt053_mistakes_say_where(ledger: Path, tmp_path: Path, content: str, extra: tuple, message: str) -> None:
    (tmp_path / "s.xml").write_text(content)
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "s.xml", "--type", "camt053", *extra, "-q",
              cwd=tmp_path)
    assert res.returncode == 2, res
    data = content.encode()
    at = data.index(b"<Ntry>", data.index(b"<Ntry>") + 1)         # the second entry's start tag
    assert res.stderr.startswith(message.format(at=at)), res.stderr
    assert "Traceback" not in res.stderr and "format option" not in res.stderr
