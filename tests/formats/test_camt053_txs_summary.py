"""A camt.053 statement's own TxsSummry (TtlNtries, TtlCdtNtries, TtlDbtNtries: number and Sum of its entries,
and the net) checked against its entries, as a camt.052 report's is; camt.052 Rpt and camt.053 Stmt told apart.

The corpus's camt.053 files are read as they are (none has a TxsSummry: nothing changes for them); the files
with a TxsSummry are the corpus's own, a TxsSummry written into them (tests/formats/camt053kit.py) and each
validated against its case's XSD before use.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from formats.iso20022 import Iso20022Codec
from formats.iso20022.camt_balance import (balance_problem, item_kind, item_problem, message_items,
                                           summary_problems)
from tests.formats.camt053kit import (CAMT053, CORPUS, MULTI_XML, MULTI_XSD, V8_XML, V8_XSD, side, totals_v2,
                                      totals_v4, valid, with_summary)

pytestmark = pytest.mark.skipif(not MULTI_XML.is_file(), reason=f"conformance corpus not found at {CORPUS}")

# genkgo's multi-statement file: 253 (one CRDT entry 8.85), 254 (one DBIT entry 7.00)
GOOD_253 = totals_v2(1, "8.85", "8.85", "CRDT") + side("TtlCdtNtries", 1, "8.85") + side("TtlDbtNtries", 0, "0")
GOOD_254 = totals_v2(1, "7.00", "7.00", "DBIT") + side("TtlCdtNtries", 0, "0") + side("TtlDbtNtries", 1, "7.00")


def _stmts(data: bytes, xsd=MULTI_XSD) -> list[dict]:
    return Iso20022Codec(xsd=str(xsd)).decode(valid(data, xsd))["BkToCstmrStmt"]["Stmt"]


def test_corpus_camt053_files_have_no_txs_summary_and_are_judged_as_before() -> None:
    """Every camt.053 of the corpus: no TxsSummry (summary_problems None), so balance_problem says what it said
    before the TxsSummry check: the multi-statement file adds up, minimal/v4/v8 do not (a CLBD of DBIT 27.00 SEK
    after an OPBD of 18.15 EUR: upstream's fixtures), prowide's has no opening booked balance; each is a Stmt."""
    said = {}
    for case, name, _xsd in CAMT053:
        doc = Iso20022Codec(validate=False).decode((CORPUS / case / "input" / name).read_bytes())
        kind, items = message_items(doc)
        assert kind == "Stmt" and items, case
        for stmt in items:
            assert summary_problems(stmt) is None, case
            assert item_kind(stmt) in (None, "Stmt"), case
            said.setdefault(case, []).append(balance_problem(stmt))
    assert said["genkgo_camt053_v2_multi_statement"] == [None, None]
    for case in ("genkgo_camt053_v2_minimal", "genkgo_camt053_v4", "genkgo_camt053_v8"):
        assert said[case][0].endswith("but the closing balance CLBD is -27.00 SEK (difference -54.00)"), case
    assert said["prowide_pacs008_pacs009_camt053_with_apphdr"] == [
        "no opening booked balance (OPBD or PRCD): the statement cannot be checked"]


def test_corpus_statement_with_its_own_txs_summary_that_agrees_adds_up() -> None:
    s253, s254 = _stmts(with_summary(MULTI_XML.read_bytes(), GOOD_253, GOOD_254))
    assert summary_problems(s253) == [] and summary_problems(s254) == []
    assert balance_problem(s253) is None and balance_problem(s254) is None


def test_corpus_statement_whose_txs_summary_disagrees_is_a_problem_in_decimal() -> None:
    """Each figure said and found, with the difference, exactly (Decimal): a credit sum one cent off, a count
    one too many, a net of the wrong sign."""
    bad_253 = GOOD_253.replace(side("TtlCdtNtries", 1, "8.85"), side("TtlCdtNtries", 1, "8.86"))
    bad_254 = (totals_v2(2, "7.00", "7.00", "CRDT") + side("TtlCdtNtries", 0, "0")
               + side("TtlDbtNtries", 1, "7.00"))
    s253, s254 = _stmts(with_summary(MULTI_XML.read_bytes(), bad_253, bad_254))
    assert balance_problem(s253) == ("TxsSummry/TtlCdtNtries says 1 credit(s) of 8.86 EUR, but the entries hold 1 "
                                     "of 8.85 (difference +0.01)")
    assert balance_problem(s254) == ("TxsSummry/TtlNtries says 2 entries of 7.00 EUR, but the entries hold 1 of 7.00; "
                                     "TxsSummry/TtlNtries/TtlNetNtryAmt says a net +7.00 EUR, but the entries net "
                                     "-7.00 (difference +14.00)")
    # the balances still come first when they do not add up either
    s253["Bal"][1]["Amt"]["value"] = Decimal("27.01")
    assert balance_problem(s253).startswith("opening balance OPBD 18.15 EUR + 1 booked entry (+8.85) = 27.00 EUR, "
                                            "but the closing balance CLBD is 27.01 EUR (difference +0.01); "
                                            "TxsSummry/TtlCdtNtries says")


def test_corpus_v8_statement_net_is_read_from_ttl_net_ntry() -> None:
    """From camt.053.001.04 on the net is TtlNetNtry (Amt, CdtDbtInd), not TtlNetNtryAmt: genkgo's v8 file (one
    CRDT entry 8.85 EUR) with a net said DBIT is told so (before, a .04+ net was never compared)."""
    good = with_summary(V8_XML.read_bytes(), totals_v4(1, "8.85", "8.85", "CRDT"))
    (stmt,) = _stmts(good, V8_XSD)
    assert summary_problems(stmt) == []
    (stmt,) = _stmts(good.replace(b"<CdtDbtInd>CRDT</CdtDbtInd></TtlNetNtry>", b"<CdtDbtInd>DBIT</CdtDbtInd></TtlNetNtry>"),
                     V8_XSD)
    assert summary_problems(stmt) == ["TxsSummry/TtlNtries/TtlNetNtry says a net -8.85 EUR, but the entries net "
                                      "+8.85 (difference -17.70)"]


def test_corpus_camt052_report_is_told_from_a_statement() -> None:
    """genkgo's camt052.v2.xml: the message's group (BkToCstmrAcctRpt) says Rpt, and its report says so itself
    (AddtlRptInf); checked as a report: no balances, no TxsSummry, nothing wrong."""
    case = CORPUS / "genkgo_camt052_v2"
    doc = Iso20022Codec(xsd=str(case / "xsd" / "camt.052.001.02.xsd")).decode(
        (case / "input" / "camt052.v2.xml").read_bytes())
    kind, (rpt,) = message_items(doc)
    assert kind == "Rpt" and item_kind(rpt) == "Rpt" and "AddtlRptInf" in rpt
    assert item_problem(rpt, "Rpt") is None
    # as a statement it would be refused: it has no booked balances at all
    assert item_problem(rpt, "Stmt") == "no opening booked balance (OPBD or PRCD): the statement cannot be checked"
    rpt["TxsSummry"] = {"TtlDbtNtries": {"NbOfNtries": "1", "Sum": "200000.01"}}
    assert item_problem(rpt, "Rpt") == ("intraday report (camt.052): TxsSummry/TtlDbtNtries says 1 debit(s) of "
                                        "200000.01 SEK, but the entries hold 1 of 200000 (difference +0.01)")
