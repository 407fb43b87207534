"""camt.052 intraday account reports as a first-class input: `bsp reconcile --type camt052`, the statements
checks (an intraday report's balances are the day's so far, never a closing balance: as an MT942, it is no
link of its account's chain, only its entries are checked against its TxsSummry), `bsp report
statement-continuity`, `bsp decode --statements --check-balances`, the file channel's split and the
`continuity` step.

The corpus's only camt.052 (genkgo's camt052.v2.xml: one report, one entry, no balance) is read as it is;
reports with balances, a TxsSummry and several reports in one file are built by tests/engine/camt052kit.py and
validated against the corpus's camt.052.001.02 XSD before use.  Real DuckDB ledgers in tmp_path.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.reconcile import load_statement, reconcile_file, statement_breaks
from engine.reports import ReportError
from tests.engine.camt052kit import SAMPLE, XSD, XSD_DIR, balance, document, entry, report, summary, valid
from tests.engine.test_reconcile import deals_for, write_deals

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"conformance corpus not found at {SAMPLE}")

R1 = report("INTRA-R1", 1, [balance("OPBD", "1000.00", "2026-11-27"), balance("ITBD", "1150.00", "2026-11-27T10:00:00"),
                            balance("OPAV", "1000.00", "2026-11-27"), balance("ITAV", "1100.00", "2026-11-27T10:00:00")],
            [entry("100.00", "E2E-1"), entry("80.00", "E2E-2"), entry("-30.00", "E2E-3", status="PDNG")],
            txs_summary=summary((2, "180.00"), (1, "30.00")), created="2026-11-27T10:00:00")
R2 = report("INTRA-R2", 2, [balance("ITBD", "1400.00", "2026-11-27T14:00:00"),
                            balance("ITAV", "1300.00", "2026-11-27T14:00:00")],
            [entry("250.00", "E2E-4")], txs_summary=summary((1, "250.00")), created="2026-11-27T14:00:00")


def _file(tmp_path: Path, data: bytes, name: str = "intraday.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _ledger(tmp_path: Path, path: Path, kind: str = "camt052") -> Path:
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals_for(load_statement(path, kind)))
    return ledger


def _statements(form) -> list[dict]:
    (table,) = [t for t in form.tables if t.name == "statements"]
    names = [c.name for c in table.columns]
    return [dict(zip(names, r)) for r in table.rows]


def test_corpus_camt052_reconciles_as_a_camt053_does(tmp_path: Path) -> None:
    """genkgo's camt.052: its one entry is a line (DBIT 200000 SEK, booked 2007-10-18, AcctSvcrRef), read the
    same with and without the XSD; it matches its deal; the report has no balance and no TxsSummry:
    unchecked, no statement break."""
    for xsd in (None, XSD_DIR):
        (line,) = load_statement(SAMPLE, "camt052", xsd_dir=xsd)
        assert line.where == f"{SAMPLE}: Rpt 1 / Ntry 1"
        assert (line.amount, line.currency, str(line.booking_date), str(line.value_date)) == (
            Decimal("-200000"), "SEK", "2007-10-18", "2007-10-18")
        assert line.refs == ("AAAASESS-FP-ACCR-01",) and line.text == "Credit"
    form, rows = reconcile_file(_ledger(tmp_path, SAMPLE), SAMPLE, "camt052", xsd_dir=XSD_DIR)
    assert [(r.status, r.matched_by) for r in rows] == [("matched", "reference")]
    (st,) = _statements(form)
    assert (st["statement"], st["reference"], st["status"], st["entries"], st["opening"], st["closing"]) == (
        "12312", "AAAASESS-FP-ACCR001", "unchecked", 1, None, None)
    assert st["note"] == ("intraday report (camt.052): no balances; no link of the account's chain; 1 entry, no "
                          "TxsSummry to check")
    assert statement_breaks(form) == 0 and dict(form.figures)["statement breaks"] == "0"


def test_intraday_balances_are_no_closing_balances(tmp_path: Path) -> None:
    """Two reports of one account: OPBD 1000.00 + the booked 180.00 is not R1's ITBD 1150.00, and R2's ITBD
    1400.00 is not where R1 left off; read as statement pages these would be breaks. As intraday reports
    each is unchecked (its balances named), its entries agree with its TxsSummry, and every entry (the
    pending one too) matches its deal by EndToEndId: fully matched, exit 0."""
    path = _file(tmp_path, document(R1, R2))
    form, rows = reconcile_file(_ledger(tmp_path, path), path, "camt052", xsd_dir=XSD_DIR)
    assert [(r.status, r.line.where.split(": ", 1)[1], r.deal.reference) for r in rows] == [
        ("matched", "Rpt 1 / Ntry 1", "E2E-1"), ("matched", "Rpt 1 / Ntry 2", "E2E-2"),
        ("matched", "Rpt 1 / Ntry 3", "E2E-3"), ("matched", "Rpt 2 / Ntry 1", "E2E-4")]
    first, second = _statements(form)
    assert (first["status"], second["status"]) == ("unchecked", "unchecked")
    assert (first["entries"], first["entries_total"], second["entries_total"]) == (3, Decimal("150.00"),
                                                                                  Decimal("250.00"))
    assert first["note"] == (
        "intraday report (camt.052): its balances (OPBD 1000.00 EUR of 2026-11-27, ITBD 1150.00 EUR of "
        "2026-11-27T10:00:00, OPAV 1000.00 EUR of 2026-11-27, ITAV 1100.00 EUR of 2026-11-27T10:00:00) are the "
        "day's so far, no closing balance; no link of the account's chain; its 3 entries agree with TxsSummry")
    assert first["where"] == f"{path}: Rpt 1 (byte {path.read_bytes().index(b'<Rpt>')})"
    assert statement_breaks(form) == 0
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(tmp_path / "bsp.duckdb"), "--against", str(path),
                                 "--type", "camt052", "--xsd-dir", str(XSD_DIR), "-q"])
    assert r.exit_code == 0, r.output
    assert "4 lines, fully matched" in r.output


def test_txs_summary_that_disagrees_with_the_entries_is_a_statement_break(tmp_path: Path) -> None:
    """R2's TxsSummry says 2 credits of 300.00 over its one credit of 250.00 (an entry missing from the
    report): does_not_add_up, exit 1 though every line matches, as an MT942 whose :90C: disagrees."""
    bad = R2.replace("<NbOfNtries>1</NbOfNtries><Sum>250.00</Sum>", "<NbOfNtries>2</NbOfNtries><Sum>300.00</Sum>")
    path = _file(tmp_path, document(R1, bad))
    ledger = _ledger(tmp_path, path)
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(ledger), "--against", str(path), "--type", "camt052",
                                 "--format", "json", "--out", "-"])
    assert r.exit_code == 1, r.output
    assert "4 lines, fully matched; 1 statement(s) break a control" in r.stderr
    (table,) = [t for t in json.loads(r.stdout)["tables"] if t["name"] == "statements"]
    assert [(row["statement"], row["status"]) for row in table["rows"]] == [("1", "unchecked"),
                                                                            ("2", "does_not_add_up")]
    assert table["rows"][1]["note"] == ("intraday report (camt.052): TxsSummry/TtlCdtNtries says 2 credit(s) of "
                                        "300.00 EUR, but the entries hold 1 of 250.00 (difference +50.00)")


def test_an_error_names_the_file_report_entry_and_byte_offset(tmp_path: Path) -> None:
    """An amount the ledger cannot hold (5 decimal places: the XSD allows them) is refused naming the file, the
    report (its place and Id), the entry and the byte offset of its <Ntry>."""
    data = document(R1, R2.replace('<Amt Ccy="EUR">250.00</Amt>', '<Amt Ccy="EUR">250.00001</Amt>'))
    path = _file(tmp_path, data)
    at = data.index(b"<Ntry>", data.index(b"<Id>INTRA-R2</Id>"))
    with pytest.raises(ReportError) as exc:
        load_statement(path, "camt052", xsd_dir=XSD_DIR)
    assert str(exc.value).startswith(f"{path}: Rpt 2 / Ntry 1 (report INTRA-R2, byte {at}): amount 250.00001: "
                                     f"more than 4 decimal places")


def test_the_other_camt_message_is_named_with_its_type(tmp_path: Path) -> None:
    """A camt.052 given as --type camt053 (or a camt.053 as camt052) says which --type reads it."""
    with pytest.raises(ReportError, match="it is a camt.052: give --type camt052"):
        load_statement(SAMPLE, "camt053")
    stmt053 = SAMPLE.parents[2] / "genkgo_camt053_v2_minimal" / "input" / "camt053.v2.minimal.xml"
    with pytest.raises(ReportError, match="it is a camt.053: give --type camt053"):
        load_statement(stmt053, "camt052")


def test_intraday_report_between_statements_does_not_break_the_chain() -> None:
    """A camt.053 statement, a camt.052 of the next morning (OPBD 1000.00, ITBD 1300.00), the next statement
    opening with the first's CLBD 1000.00: first, unchecked, ok: the intraday balance is no link."""
    from engine.reconcile.continuity import check, head_camt052, head_camt053

    def bal(code: str, amount: str, day: str) -> dict:
        return {"Tp": {"CdOrPrtry": {"Cd": code}}, "Amt": {"value": amount, "Ccy": "EUR"}, "CdtDbtInd": "CRDT",
                "Dt": {"Dt": day}}
    acct = {"Id": {"IBAN": "DE89370400440532013000"}}
    s1 = {"Id": "S1", "ElctrncSeqNb": "41", "Acct": acct, "Bal": [bal("OPBD", "1000.00", "2026-11-26"),
                                                                 bal("CLBD", "1000.00", "2026-11-26")]}
    rpt = {"Id": "R1", "ElctrncSeqNb": "7", "CreDtTm": "2026-11-27T10:00:00", "Acct": acct,
           "Bal": [bal("OPBD", "1000.00", "2026-11-27"), bal("ITBD", "1300.00", "2026-11-27")],
           "Ntry": [{"Amt": {"value": "300.00", "Ccy": "EUR"}, "CdtDbtInd": "CRDT", "Sts": "BOOK"}]}
    s2 = {"Id": "S2", "ElctrncSeqNb": "42", "Acct": acct,
          "Bal": [bal("OPBD", "1000.00", "2026-11-27"), bal("CLBD", "1300.00", "2026-11-27")],
          "Ntry": [{"Amt": {"value": "300.00", "Ccy": "EUR"}, "CdtDbtInd": "CRDT", "Sts": "BOOK"}]}
    found = check([head_camt053(s1, place="s1"), head_camt052(rpt, place="r1"), head_camt053(s2, place="s2")])
    assert [f.status for f in found] == ["first", "unchecked", "ok"]
    # read as a camt.053 page instead, its ITBD would close it and break the chain
    wrong = check([head_camt053(s1, place="s1"), head_camt053(rpt, place="r1"), head_camt053(s2, place="s2")])
    assert "balance_break" in [k for k, _ in wrong[2].problems]


async def _fill(path: Path, requests: list[dict]) -> None:
    from engine.deal import DealEvent, DealRecord
    from engine.ledger import open_ledger

    async with open_ledger(path) as ledger:
        for i, request in enumerate(requests):
            t = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc) + timedelta(hours=6 * i)
            await ledger.commit(DealRecord(
                deal_type="STATEMENT", route="statement_camt", config_version="v1", channel="ac_camt",
                status="committed", received_at=t, finished_at=t + timedelta(milliseconds=4), reference=f"S{i}",
                amount=Decimal("0"), currency="EUR", party="BANK", request=request,
                events=[DealEvent(t, None, "accepted", {"key": f"statement_camt|M0002/S{i}"})]))


def _ledger_docs(data: bytes, message: str) -> dict:
    """A document as the ledger keeps it: the codec's values, amounts as text."""
    from formats.iso20022 import Iso20022Codec

    doc = Iso20022Codec(message=message, validate=False).decode(data)
    return json.loads(json.dumps(doc, default=str))


def test_statement_continuity_report_lists_intraday_reports_as_no_link(tmp_path: Path) -> None:
    """The ledger's statements: a camt.053, then two camt.052 intraday reports (whose ITBDs are not the
    statement's CLBD), then the next camt.053 opening with that CLBD: the report lists the intraday reports
    unchecked and finds no break; a ledger holding only intraday reports has no last statement to open from."""
    stmt = (SAMPLE.parents[2] / "genkgo_camt053_v2_multi_statement" / "input"
            / "camt053.v2.multi.statement.xml").read_bytes()
    from formats.iso20022.statements_split import split_statements
    s253, s254 = (_ledger_docs(part, "camt.053") for _, part in split_statements(stmt))
    intraday = [_ledger_docs(part, "camt.052") for _, part in split_statements(document(R1, R2))]
    ledger = tmp_path / "bsp.duckdb"
    trio.run(_fill, ledger, [s253, *intraday, s254])
    r = CliRunner().invoke(app, ["report", "statement-continuity", "--ledger", str(ledger), "--from", "2026-11-01",
                                 "--to", "2026-11-30", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["tables"][0]["rows"]
    assert [(row["reference"], row["status"]) for row in rows] == [
        ("253EURNL26VAYB8060476890", "first"), ("INTRA-R1", "unchecked"), ("INTRA-R2", "unchecked"),
        ("254EURNL26VAYB8060476890", "ok")]
    assert all(row["account"] == "M0002" for row in rows)
    only = tmp_path / "only"
    only.mkdir()
    trio.run(_fill, only / "bsp.duckdb", intraday)
    r = CliRunner().invoke(app, ["report", "statement-continuity", "--ledger", str(only / "bsp.duckdb"), "--from",
                                 "2026-11-01", "--to", "2026-11-30", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["status"] for row in doc["tables"][0]["rows"]] == ["unchecked", "unchecked"]
    (acct,) = doc["tables"][1]["rows"]
    assert acct["statements"] == 2 and acct["last_statement"] is None
    assert acct["next"].startswith("any statement: only interim or intraday reports")


def test_decode_check_balances_reads_intraday_reports_as_such(tmp_path: Path) -> None:
    """bsp decode --statements --check-balances: each Rpt a record at its byte offset; R1's ITBD is not taken
    for a closing balance (OPBD 1000.00 + 180.00 is not 1150.00: no error), and a TxsSummry that disagrees is
    told at its <Rpt>."""
    data = document(R1, R2)
    good = _file(tmp_path, data)
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd", str(XSD),
                                 str(good)])
    assert r.exit_code == 0, r.stderr
    assert [json.loads(x)["BkToCstmrAcctRpt"]["Rpt"][0]["Id"] for x in r.stdout.split("\n") if x.strip()] == [
        "INTRA-R1", "INTRA-R2"]
    bad = _file(tmp_path, document(R1, R2.replace("<Sum>250.00</Sum>", "<Sum>250.10</Sum>")), "bad.xml")
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd", str(XSD),
                                 str(bad)])
    assert r.exit_code == 1
    at = bad.read_bytes().index(b"<Rpt>", bad.read_bytes().index(b"</Rpt>"))
    assert (f"record 2, byte {at}: intraday report INTRA-R2: TxsSummry/TtlCdtNtries says 1 credit(s) of 250.10 "
            f"EUR, but the entries hold 1 of 250.00 (difference +0.10)") in r.stderr


def test_file_channel_split_gives_each_report_as_a_valid_document() -> None:
    """A file watch channel's record = "camt053" (formats.iso20022.statements_split) cuts a camt.052 of two
    reports into two documents, each valid against the XSD, at the offset of its <Rpt> less the head."""
    from formats.iso20022.statements_split import split_statements

    data = document(R1, R2)
    (o1, p1), (o2, p2) = split_statements(data)
    for part, ident in ((p1, b"INTRA-R1"), (p2, b"INTRA-R2")):
        valid(part)
        assert part.count(b"<Rpt>") == 1 and b"<Id>" + ident in part
    head = data.index(b"<Rpt>")
    assert (o1, o2) == (0, data.index(b"<Rpt>", head + 1) - head)


def test_continuity_step_reads_a_camt052_message_as_an_intraday_report() -> None:
    """The `continuity` step's statement may be the message of a camt.052 (one Rpt): an intraday report, no
    link; a camt.053 message of one Stmt is read as its statement."""
    from engine.steps.continuity import head

    doc = _ledger_docs(document(R2), "camt.052")
    h = head(doc, "ac_camt message")
    assert h is not None and h.intraday and h.opening is None and h.closing is None and h.label == "INTRA-R2"
    stmt = _ledger_docs((SAMPLE.parents[2] / "genkgo_camt053_v2_minimal" / "input" / "camt053.v2.minimal.xml")
                        .read_bytes(), "camt.053")
    h = head(stmt, "ac_camt message")
    assert h is not None and not h.intraday and h.closing_tag == "CLBD"


def test_txs_summary_totals_and_net_are_checked_exactly() -> None:
    """TtlNtries: how many entries, the sum of their amounts and the net (TtlNetNtryAmt with its CdtDbtInd),
    each part only when given, in Decimal; a report without TxsSummry has nothing to check (None)."""
    from formats.iso20022.camt_balance import report_problem, summary_problems

    def rpt(total: dict) -> dict:
        return {"TxsSummry": {"TtlNtries": total},
                "Ntry": [{"Amt": {"value": "100.00", "Ccy": "EUR"}, "CdtDbtInd": "CRDT", "Sts": "BOOK"},
                         {"Amt": {"value": "30.00", "Ccy": "EUR"}, "CdtDbtInd": "DBIT", "Sts": "PDNG"}]}
    assert summary_problems(rpt({"NbOfNtries": "2", "Sum": "130.00", "TtlNetNtryAmt": "70.00",
                                 "CdtDbtInd": "CRDT"})) == []
    assert summary_problems({"Ntry": []}) is None and report_problem({"Ntry": []}) is None
    assert report_problem(rpt({"NbOfNtries": "3", "TtlNetNtryAmt": "70.00", "CdtDbtInd": "DBIT"})) == (
        "TxsSummry/TtlNtries says 3 entries, but the entries hold 2; TxsSummry/TtlNtries/TtlNetNtryAmt says a net "
        "-70.00 EUR, but the entries net +70.00 (difference -140.00)")
