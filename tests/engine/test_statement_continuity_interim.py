"""Intermediate (interim) balances in the statement chain: a page of a statement closes with an interim
balance and the next page must open with it.  MT940 ``:62M:`` / ``:60M:`` (PostFinance's two pages in the
conformance corpus); camt.053 ``ITBD`` (interim booked: the prowide camt.053.001.07 file carries one), and an
``OPBD`` / ``CLBD`` of sub-type ``INTM`` (SWIFT's MT940-to-camt.053 translation of :60M: / :62M:), over the
genkgo two-statement file made into two pages.  Real decoders, Decimal amounts."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from engine.reconcile.continuity import check, head_camt053, head_mt940
from formats.iso20022 import Iso20022Codec
from formats.swift import iter_statements

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
GENKGO = CORPUS / "iso20022" / "genkgo_camt053_v2_multi_statement" / "input" / "camt053.v2.multi.statement.xml"
PROWIDE = CORPUS / "iso20022" / "prowide_pacs008_pacs009_camt053_with_apphdr" / "input" / "camt.053.001.07.xml"
POSTFINANCE = CORPUS / "swift" / "mt940_jejik_postfinance" / "input" / "postfinance.sta"


def _read(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    return path.read_bytes().decode("latin-1")


def _camt(xml: str):
    doc = Iso20022Codec(message="camt.053", validate=False).decode(xml.encode())
    stmts = doc["BkToCstmrStmt"]["Stmt"]
    stmts = stmts if isinstance(stmts, list) else [stmts]
    return check([head_camt053(s, place=f"Stmt {i}") for i, s in enumerate(stmts, 1)])


def _pages(xml: str, first_close: str, second_open: str) -> str:
    """genkgo's statements 253 (OPBD 18.15 + 8.85 = CLBD 27.00) and 254 (OPBD 27.00 - 7.00 = CLBD 20.00) as
    pages 1 and 2 of statement 12312: 253's closing and 254's opening become the given balance elements (a
    code, or a code and a sub-type)."""
    clbd, opbd = "<Cd>CLBD</Cd>", "<Cd>OPBD</Cd>"
    i = xml.index(clbd)                                       # the first statement's closing
    xml = xml[:i] + first_close + xml[i + len(clbd):]
    j = xml.index(opbd, xml.index("254EURNL26VAYB8060476890"))  # the second statement's opening
    xml = xml[:j] + second_open + xml[j + len(opbd):]
    xml = xml.replace("<Id>253EURNL26VAYB8060476890</Id>", "<Id>253EURNL26VAYB8060476890</Id><StmtPgntn>"
                      "<PgNb>1</PgNb><LastPgInd>false</LastPgInd></StmtPgntn>")
    xml = xml.replace("<Id>254EURNL26VAYB8060476890</Id>", "<Id>254EURNL26VAYB8060476890</Id><StmtPgntn>"
                      "<PgNb>2</PgNb><LastPgInd>true</LastPgInd></StmtPgntn><ElctrncSeqNb>12312</ElctrncSeqNb>")
    return re.sub(r"<CdOrPrtry>\s*</CdOrPrtry>", "", xml)


ITBD = "<Cd>ITBD</Cd>"


def test_camt053_pages_with_interim_booked_balances_are_a_chain():
    xml = _pages(_read(GENKGO), ITBD, ITBD)
    first, second = _camt(xml)
    assert (first.head.closing_tag, first.head.closing, first.status) == ("ITBD", Decimal("27.00"), "first")
    assert (second.head.opening_tag, second.head.opening, second.head.closing_tag) == ("ITBD", Decimal("27.00"), "CLBD")
    assert second.status == "ok", second.note
    assert first.head.intermediate_close and second.head.intermediate_open


def test_camt053_a_page_opening_off_the_interim_closing_before_it_is_a_balance_break():
    xml = _pages(_read(GENKGO), ITBD, ITBD)
    k = xml.index('<Amt Ccy="EUR">27.00</Amt>', xml.index("254EURNL26VAYB8060476890"))
    xml = xml[:k] + '<Amt Ccy="EUR">26.00</Amt>' + xml[k + len('<Amt Ccy="EUR">27.00</Amt>'):]
    first, second = _camt(xml)
    assert first.status == "first"
    assert [kind for kind, _ in second.problems] == ["does_not_add_up", "balance_break"]
    assert ("statement 12312/2 opens with ITBD 26.00 EUR of 2014-12-31, but statement 12312/1 before it "
            "(253EURNL26VAYB8060476890 at Stmt 1) closed with ITBD 27.00 EUR") in second.note
    assert "(difference -1.00)" in second.note


def test_camt053_opening_and_closing_of_sub_type_intm_are_intermediate():
    sub = "<Cd>{}</Cd></CdOrPrtry><SubTp><Cd>INTM</Cd></SubTp><CdOrPrtry>"
    xml = _pages(_read(GENKGO), sub.format("CLBD"), sub.format("OPBD"))
    first, second = _camt(xml)
    assert (first.head.closing_tag, second.head.opening_tag) == ("CLBD/INTM", "OPBD/INTM")
    assert [f.status for f in (first, second)] == ["first", "ok"]
    # an intermediate opening after a final closing: a page before it is missing
    xml = _pages(_read(GENKGO), "<Cd>CLBD</Cd>", sub.format("OPBD"))
    xml = xml.replace("<LastPgInd>false</LastPgInd>", "<LastPgInd>true</LastPgInd>")
    first, second = _camt(xml)
    assert second.status == "page_chain"
    assert "opens with an intermediate balance OPBD/INTM, but statement" in second.note


def test_prowide_camt053_interim_report_reads_its_itbd_as_the_closing():
    """prowide's camt.053.001.07 carries OPAV (available, not booked) and ITBD 234299 USD: the ITBD is the
    statement's (interim) closing; with no opening booked balance it cannot be checked, and says so."""
    doc = Iso20022Codec(message="camt.053", validate=False).decode(_read(PROWIDE).encode())
    (f,) = check([head_camt053(doc["BkToCstmrStmt"]["Stmt"], place="Stmt 1")])
    assert (f.head.closing, f.head.closing_tag, f.head.currency) == (Decimal("234299"), "ITBD", "USD")
    assert f.status == "unchecked" and f.note.startswith("no opening balance")


def test_mt940_second_page_must_open_with_the_first_pages_intermediate_closing():
    """PostFinance 999/1 closes with :62M: 229.2; a 999/2 opening with :60M: 229.3 is a balance break of
    +0.1 (besides not adding up), named with both intermediate balances."""
    text = _read(POSTFINANCE).replace(":60M:C140407CHF229,2", ":60M:C140407CHF229,3")
    heads = [head_mt940(fields, place=f"postfinance.sta:{text.count(chr(10), 0, start) + 1}")
             for start, fields in iter_statements(text)]
    first, second = check(heads)
    assert (first.head.closing_tag, second.head.opening_tag) == (":62M:", ":60M:")
    assert [k for k, _ in second.problems] == ["does_not_add_up", "balance_break"]
    assert ("statement 999/2 opens with :60M: 229.3 CHF of 2014-04-07, but statement 999/1 before it "
            "(2014040708285927 at postfinance.sta:1) closed with :62M: 229.2 CHF of 2014-04-07 (difference +0.1)"
            ) in second.note


MBANK = CORPUS / "swift" / "mt942_mbank" / "input" / "mt942.sta"


def _sta(text: str, name: str):
    return check([head_mt940(fields, place=f"{name}:{text.count(chr(10), 0, start) + 1}")
                  for start, fields in iter_statements(text)])


def test_mt942_interim_report_entries_agree_with_its_90d_90c():
    """mBank's MT942 carries no balance, only :90D:0PLN0,00 and :90C:3PLN0,03 over three credits of 0.01:
    no link of the chain (unchecked), and it says its entries agree."""
    (f,) = _sta(_read(MBANK), "mt942.sta")
    assert (f.status, f.head.currency, f.head.entries) == ("unchecked", "PLN", 3)
    assert f.note == ("interim report (MT942): no balances, no link of the account's chain; its 3 entries agree "
                      "with :90D: / :90C:")


def test_mt942_interim_report_whose_sums_differ_from_its_lines_does_not_add_up():
    text = _read(MBANK).replace(":90C:3PLN0,03", ":90C:4PLN0,05")      # a credit line missing from the report
    (f,) = _sta(text, "mt942.sta")
    assert f.status == "does_not_add_up"
    assert f.note == ("interim report (MT942): :90C: says 4 credit(s) of 0.05 PLN, but the :61: lines hold 3 of "
                      "0.03 (difference +0.02)")


def test_a_page_with_interim_booked_balances_adds_up_for_the_route_and_bsp_codec():
    """`statement_check` (the account consolidation route's test of a statement before it is posted) and
    `bsp decode --statements --check-balances` read an ITBD page as the continuity checks do: page 1 OPBD
    18.15 + 8.85 = ITBD 27.00 adds up (it was refused: no CLBD), page 2 ITBD 27.00 - 7.00 = CLBD 20.00 too;
    and a page that does not add up names its ITBD."""
    from formats.iso20022.camt_balance import balance_problem, continuity_problem

    xml = _pages(_read(GENKGO), ITBD, ITBD)
    doc = Iso20022Codec(message="camt.053", validate=False).decode(xml.encode())
    first, second = doc["BkToCstmrStmt"]["Stmt"]
    assert balance_problem(first) is None and balance_problem(second) is None
    closed: dict = {}
    assert continuity_problem(first, closed) is None and continuity_problem(second, closed) is None
    bad = xml.replace('<Amt Ccy="EUR">8.85</Amt>', '<Amt Ccy="EUR">8.86</Amt>', 1)
    first = Iso20022Codec(message="camt.053", validate=False).decode(bad.encode())["BkToCstmrStmt"]["Stmt"][0]
    assert balance_problem(first) == ("opening balance OPBD 18.15 EUR + 1 booked entry (+8.86) = 27.01 EUR, but "
                                      "the closing balance ITBD is 27.00 EUR (difference -0.01)")


def test_a_page_closing_with_itbd_and_no_page_number_names_the_missing_page_plainly():
    """A camt.053 page that closes with an ITBD but gives no PgNb, followed by another statement: the note
    says the next page is missing (not "page 12312/1", which would be the page itself)."""
    xml = _pages(_read(GENKGO), ITBD, "<Cd>OPBD</Cd>").replace("<PgNb>1</PgNb>", "")
    xml = xml.replace("<PgNb>2</PgNb><LastPgInd>true</LastPgInd></StmtPgntn><ElctrncSeqNb>12312",
                      "<PgNb>1</PgNb><LastPgInd>true</LastPgInd></StmtPgntn><ElctrncSeqNb>12313")
    first, second = _camt(xml)
    assert second.status == "page_chain"
    assert second.note.startswith("statement 12312 (253EURNL26VAYB8060476890) closes with an intermediate balance "
                                  "ITBD, but the next is statement 12313/1 opening with OPBD: the next page of "
                                  "statement 12312 is missing")
