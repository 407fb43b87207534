"""Statement continuity (engine/reconcile/continuity.py) over statements read by the real decoders: the
conformance corpus's MT940 exports and camt.053 files, and statements made to break one control each."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.reconcile.continuity import check, head_camt053, head_mt940
from formats.iso20022 import Iso20022Codec
from formats.swift import iter_statements

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


def _sta(text: str, name: str = "s.sta"):
    heads = []
    for start, fields in iter_statements(text):
        assert not isinstance(fields, Exception), fields
        heads.append(head_mt940(fields, place=f"{name}:{text.count(chr(10), 0, start) + 1}"))
    return check(heads)


def _corpus_sta(case: str):
    files = sorted((CORPUS / "swift" / case / "input").glob("*.sta"))
    if not files:
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    return _sta(files[0].read_bytes().decode("latin-1"), files[0].name)


def _statuses(found):
    return [(f.head.account, f.head.statement(), f.status) for f in found]


def test_corpus_statements_that_are_consistent_pass():
    """cmxl (three accounts), sberbank: each statement adds up and is the first of its account."""
    assert [f.status for f in _corpus_sta("mt940_cmxl_multi_txn")] == ["first", "first", "first"]
    assert [f.status for f in _corpus_sta("mt940_sberbank_ns_tags")] == ["first"]
    # betterplace's two statements are of two accounts, both numbered 4/1: no repeat across accounts
    found = _corpus_sta("mt940_betterplace_sepa_snippet")
    assert [f.status for f in found] == ["first", "does_not_add_up"]
    assert "difference +300.08" in found[1].note


def test_corpus_postfinance_page_chain_is_complete():
    """PostFinance's statement 999 in two pages: 999/1 closes with the intermediate :62M: 229.2, 999/2 opens
    with :60M: 229.2: the chain is whole; only page 2 does not add up (+0.2, upstream's test data)."""
    first, second = _corpus_sta("mt940_jejik_postfinance")
    assert (first.head.statement(), first.status) == ("999/1", "first")
    assert second.head.statement() == "999/2"
    assert [k for k, _ in second.problems] == ["does_not_add_up"]
    assert second.head.total == Decimal("-69.8") and "difference +0.2" in second.note


def test_corpus_abnamro_second_statement_breaks_the_chain():
    """ABN AMRO: 19321/1 closes with :62F: 876.84 EUR; 19322/1 opens with an intermediate :60M: 2876.84: a
    balance break of +2000.00 and an intermediate opening after a final closing (besides neither adding up): the page first, it may explain the break."""
    first, second = _corpus_sta("mt940_jejik_abnamro")
    assert first.head.statement() == "19321/1" and first.status == "does_not_add_up"
    kinds = [k for k, _ in second.problems]
    assert kinds == ["does_not_add_up", "page_chain", "balance_break"]
    assert ("statement 19322/1 opens with :60M: 2876.84 EUR of 2011-05-24, but statement 19321/1 before it "
            "(ABN AMRO BANK NV at abnamro.sta:4) closed with :62F: 876.84 EUR of 2011-05-23 (difference +2000.00)"
            ) in second.note


def test_corpus_camt053_multi_statement_carries_the_balance():
    path = CORPUS / "iso20022" / "genkgo_camt053_v2_multi_statement" / "input" / "camt053.v2.multi.statement.xml"
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    doc = Iso20022Codec(message="camt.053", validate=False).decode(path.read_bytes())
    stmts = doc["BkToCstmrStmt"]["Stmt"]
    found = check([head_camt053(s, place=f"Stmt {i}") for i, s in enumerate(stmts, 1)])
    assert [(f.head.label, f.status) for f in found] == [("253EURNL26VAYB8060476890", "first"),
                                                         ("254EURNL26VAYB8060476890", "ok")]
    assert found[1].head.opening == Decimal("27.00") == found[0].head.closing


def _stmt(number: str, opening: str, entries: list[str], closing: str, *, day: str = "261124",
          acct: str = "DE89370400440532013000", ref: str | None = None, o: str = "60F", c: str = "62F") -> str:
    lines = [f":20:{ref or 'R' + number.replace('/', '-')}", f":25:{acct}", f":28C:{number}",
             f":{o}:{'D' if opening.startswith('-') else 'C'}{day}EUR{opening.lstrip('-').replace('.', ',')}"]
    for e in entries:
        lines += [f":61:{day}{'D' if e.startswith('-') else 'C'}{e.lstrip('-').replace('.', ',')}NTRFNONREF",
                  ":86:PAYMENT"]
    lines.append(f":{c}:{'D' if closing.startswith('-') else 'C'}{day}EUR{closing.lstrip('-').replace('.', ',')}")
    return "\r\n".join(lines) + "\r\n-\r\n"


def test_a_consistent_chain_with_pages_and_a_new_year_passes():
    text = (_stmt("00041/001", "100.00", ["50.00"], "150.00", day="261230")
            + _stmt("00042/001", "150.00", ["-0.01"], "149.99", day="261231", c="62M")
            + _stmt("00042/002", "149.99", ["-200.00"], "-50.01", day="261231", o="60M")
            + _stmt("00001/001", "-50.01", [], "-50.01", day="270102"))       # numbered per year
    assert [f.status for f in _sta(text)] == ["first", "ok", "ok", "ok"]


def test_gap_repeat_balance_break_and_missing_page_are_named():
    text = (_stmt("00041/001", "100.00", ["50.00"], "150.00")
            + _stmt("00043/001", "150.00", [], "150.00", day="261125")                  # 42 missing
            + _stmt("00043/001", "150.00", [], "150.00", day="261125", ref="AGAIN")     # 43 again
            + _stmt("00044/001", "151.00", ["1.00"], "152.00", day="261126", c="62M")   # opens 1.00 off
            + _stmt("00045/001", "152.00", ["-2.00"], "150.00", day="261127"))          # 44/2 never came
    found = _sta(text)
    assert [f.status for f in found] == ["first", "gap", "repeat", "balance_break", "page_chain"]
    assert found[1].note == ("statement(s) 42 missing between statement 41/1 (R00041-001) and statement 43/1 "
                             "(R00043-001)")
    assert found[2].note.startswith("statement 43/1 again (first: R00043-001 at s.sta:")
    assert found[3].note == ("statement 44/1 opens with :60F: 151.00 EUR of 2026-11-26, but statement 43/1 before "
                             "it (R00043-001 at s.sta:9) closed with :62F: 150.00 EUR of 2026-11-25 "
                             "(difference +1.00)")
    assert "page 44/2 is missing" in found[4].note
    # another account's statements are a chain of their own
    other = _sta(text + _stmt("00007/001", "5.00", [], "5.00", acct="GB29NWBK60161331926819"))
    assert other[-1].status == "first"


def test_entries_that_do_not_add_up_give_the_difference_exactly():
    (f,) = _sta(_stmt("1/1", "0.10", ["0.20", "-0.05"], "0.26"))
    assert f.status == "does_not_add_up"
    assert f.note == ("opening :60F: 0.10 + 2 entries (+0.15) = 0.25 EUR, but the closing balance :62F: is "
                      "0.26 EUR (difference +0.01)")


def test_statements_out_of_order_in_the_file_are_checked_in_number_order():
    text = (_stmt("00002/001", "150.00", [], "150.00", day="261125")
            + _stmt("00001/001", "100.00", ["50.00"], "150.00", day="261124"))
    assert [f.status for f in _sta(text)] == ["ok", "first"]


# `bsp reconcile`: the statements table of the form, over every corpus file that reconciles
EXPECTED_STATEMENT_BREAKS = {   # corpus case -> statements that break a control (upstream's test data)
    "mt940_betterplace_sepa_snippet": 1,     # the second account's statement does not add up (+300.08)
    "mt940_cmxl_multi_txn": 0, "mt940_sberbank_ns_tags": 0,
    "mt940_gv_codes_structured_86": 0,       # no closing balance: a fragment, unchecked
    "mt940_jejik_abnamro": 2, "mt940_jejik_ing": 1, "mt940_jejik_postfinance": 1,
    "genkgo_camt053_v2_multi_statement": 0,
    "genkgo_camt053_v2_minimal": 1, "genkgo_camt053_v4": 1, "genkgo_camt053_v8": 1,   # CLBD DBIT 27.00 SEK
}


def test_reconcile_form_names_the_corpus_statements_that_break_a_control(tmp_path):
    import trio

    from engine.reconcile import load_statement, reconcile_file, statement_breaks
    from tests.engine.test_reconcile import CAMT053, MT940, deals_for, write_deals
    if not MT940:
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    got = {}
    for i, path in enumerate(MT940 + CAMT053):
        kind = "mt940" if path.suffix == ".sta" else "camt053"
        ledger = tmp_path / f"l{i}.duckdb"
        trio.run(write_deals, ledger, deals_for(load_statement(path, kind)))
        report, rows = reconcile_file(ledger, path, kind)
        assert dict(report.figures)["breaks"] == "0"              # every line matches its deal
        got[path.parent.parent.name] = statement_breaks(report)
        assert dict(report.figures)["statement breaks"] == str(got[path.parent.parent.name])
    assert got == EXPECTED_STATEMENT_BREAKS


def test_reconcile_exits_1_for_a_gap_even_when_every_line_matches(tmp_path, monkeypatch):
    import trio
    from typer.testing import CliRunner

    from engine.cli import app
    from engine.reconcile import load_statement
    from tests.engine.test_reconcile import deals_for, write_deals
    sta = tmp_path / "nostro.sta"
    sta.write_text(_stmt("00041/001", "100.00", ["50.00"], "150.00", ref="S41")
                   + _stmt("00043/001", "150.00", ["-20.00"], "130.00", day="261125", ref="S43"))
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals_for(load_statement(sta, "mt940")))
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(ledger), "--against", str(sta), "--type", "mt940",
                                 "--format", "json", "--out", "-"])
    assert r.exit_code == 1, r.output
    assert ("2 lines, fully matched; 1 statement(s) break a control (does not add up, gap, repeat, balance break): "
            "see the statements table") in r.stderr
    import json
    doc = json.loads(r.stdout)
    (table,) = [t for t in doc["tables"] if t["name"] == "statements"]
    assert [(row["statement"], row["status"]) for row in table["rows"]] == [("41/1", "first"), ("43/1", "gap")]
    assert table["rows"][1]["note"] == ("statement(s) 42 missing between statement 41/1 (S41) and statement 43/1 "
                                        "(S43)")
