"""bsp reconcile against real statements: the corpus's MT940 and camt.053 files, and generated ones with known breaks.

The ledger is a real DuckDB file written by engine.ledger.open_ledger.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import StatementLine, load_statement, reconcile_file
from engine.reconcile.form import totals

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "corpus"
MT940 = sorted(p for p in (CORPUS / "swift").glob("mt940_*/input/*.sta") if ":61:" in p.read_text("latin-1"))
CAMT053 = sorted(p for p in (CORPUS / "iso20022").glob("genkgo_camt053_*/input/*.xml") if "wrong" not in str(p))


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


async def write_deals(path: Path, deals: list[dict]) -> None:
    async with open_ledger(path) as ledger:
        for d in deals:
            t = d.pop("at")
            await ledger.commit(DealRecord(deal_type="PAYMENT", route="payments", config_version="v1",
                                           channel="mainframe", received_at=t, finished_at=t + timedelta(milliseconds=3),
                                           **{"status": "committed", **d}))


def deals_for(lines: list[StatementLine]) -> list[dict]:
    """One committed deal per statement line: its reference (when it has one), amount, currency, day."""
    return [{"at": at(ln.day), "reference": ln.reference or f"OWN-{i}", "amount": abs(ln.amount),
             "currency": ln.currency, "party": "BANK"} for i, ln in enumerate(lines)]


def test_corpus_is_there() -> None:
    assert len(MT940) >= 7 and len(CAMT053) >= 4, CORPUS


def test_statement_without_lines_is_refused(tmp_path: Path) -> None:
    from engine.reports import ReportError
    path = CORPUS / "swift" / "mt940_betterplace_amount_formats" / "input" / "amount_formats.sta"
    with pytest.raises(ReportError, match="amount_formats.sta: the MT940 file has no :61: statement lines"):
        load_statement(path, "mt940")


@pytest.mark.parametrize("path", MT940 + CAMT053, ids=lambda p: p.parent.parent.name)
def test_corpus_statement_fully_matches_its_ledger(path: Path, tmp_path: Path) -> None:
    kind = "mt940" if path.suffix == ".sta" else "camt053"
    lines = load_statement(path, kind)
    assert lines
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals_for(lines))
    report, rows = reconcile_file(ledger, path, kind)
    bad = [(r.status, r.line.where if r.line else r.deal.deal_id, r.note) for r in rows if r.status != "matched"]
    assert bad == []
    assert len(rows) == len(lines)
    assert dict(report.figures)["breaks"] == "0"
    for cur, matched, amount, *_rest, ledger_total, statement_total in totals(rows):
        assert ledger_total == statement_total == amount


def test_mt940_references_used(tmp_path: Path) -> None:
    """sepa_snippet: EREF+ end-to-end ids (split over :86: sub-fields and lines) are the first reference."""
    path = CORPUS / "swift" / "mt940_betterplace_sepa_snippet" / "input" / "sepa_snippet.sta"
    lines = load_statement(path, "mt940")
    assert lines[0].refs[:2] == ("EndToEndId TFNR 22 004 00001", "NONREF")
    assert lines[0].where.endswith("sepa_snippet.sta:5")
    assert lines[0].amount == Decimal("50990.05") and lines[0].booking_date == date(2007, 9, 4)
    assert lines[3].refs[:2] == ("KREF+", "536D80EFEC56ACF8")
    assert lines[3].refs[2].startswith("TFNr 01022 MSGID CTSc-01 EBB")   # KREF+ value (runs on to the next keyword)
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals_for(lines))
    _, rows = reconcile_file(ledger, path, "mt940")
    by = {r.line.where.rsplit(":", 1)[1]: r.matched_by for r in rows}
    assert by["5"] == "reference"
    assert "amount+date" in by.values()          # the SAMMLER line has no reference at all


def test_reference_only_in_86_text(tmp_path: Path) -> None:
    """A deal whose reference appears only in the :86: free text is found there."""
    path = CORPUS / "swift" / "mt940_jejik_abnamro" / "input" / "abnamro.sta"
    lines = load_statement(path, "mt940")
    deals = deals_for(lines)
    deals[0]["reference"] = "000000042188659"     # BETALINGSKENM. in the first :86:
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals)
    _, rows = reconcile_file(ledger, path, "mt940")
    (row,) = [r for r in rows if r.deal and r.deal.reference == "000000042188659"]
    assert (row.status, row.matched_by, row.line.where) == ("matched", "text", f"{path}:8")


def test_camt053_uetr_is_a_candidate_reference(tmp_path: Path) -> None:
    """camt.053.001.08 carries a SWIFT gpi payment's UETR in Refs: a deal recorded under it is matched, after the
    end-to-end id (here NOTPROVIDED, which counts as none)."""
    from engine.reconcile.statement_camt053 import load_camt053
    uetr = "eb6305c9-1f7f-49de-aed0-16487c27b42d"
    path = tmp_path / "stmt.xml"
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
 <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-03-02T18:00:00</CreDtTm></GrpHdr>
 <Stmt><Id>S1</Id><CreDtTm>2026-03-02T18:00:00</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
  <Ntry><Amt Ccy="EUR">120.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
   <BookgDt><Dt>2026-03-02</Dt></BookgDt><ValDt><Dt>2026-03-02</Dt></ValDt><BkTxCd/>
   <NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId><UETR>{uetr}</UETR><TxId>TX-9</TxId></Refs>
   </TxDtls></NtryDtls></Ntry>
 </Stmt></BkToCstmrStmt></Document>
""", encoding="utf-8")
    (line,) = load_camt053(path)
    assert line.refs[:3] == ("NOTPROVIDED", uetr, "TX-9"), line.refs     # NOTPROVIDED: no reference when matched
