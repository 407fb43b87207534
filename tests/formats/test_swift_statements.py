"""MT940/942 bank exports (formats.swift.statement): statement boundaries, per-statement errors,
mandatory fields."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from formats.errors import FormatError
from formats.swift import check_balances, check_statement, iter_statements, parse_statements, statement_view

OK = ":25:1\n:28C:3/1\n:60F:C191014EUR800,00\n:62F:C191014EUR800,00\n"


def test_a_new_20_starts_a_new_statement_without_a_dash_line() -> None:
    text = (":20:STMT-3\n:25:1\n:28C:3/1\n:60F:C191014EUR1800,00\n:61:1910141014D1000,00NTRFNONREF\n"
            ":62F:C191014EUR800,00\n:20:STMT-4\n:25:1\n:28C:3/1\n:60F:C191014EUR800,00\n:62F:C191014EUR800,00\n")
    views = [statement_view(s) for s in parse_statements(text)]
    assert [v["statement"]["transaction_reference"] for v in views] == ["STMT-3", "STMT-4"]
    assert [len(v["transactions"]) for v in views] == [1, 0]
    assert views[0]["transactions"][0]["amount"]["amount"] == Decimal("-1000.00")


def test_header_lines_and_dash_lines_still_separate() -> None:
    text = "ABNANL2A\n940\n:20:A\n" + OK + "-\nABNANL2A\n:20:B\n" + OK + "-}\n"
    starts = [(start, item[0]["value"]) for start, item in iter_statements(text)]
    assert starts == [(text.index(":20:A"), "A"), (text.index(":20:B"), "B")]


def test_one_bad_statement_does_not_hide_the_others() -> None:
    text = ":20:S1\n" + OK + "-\n:20:S2\n:25:1\n:61:HELLO\n" + OK[6:] + "-\n:20:S3\n" + OK
    got = list(iter_statements(text))
    assert [s for s, _ in got] == [text.index(":20:S1"), text.index(":20:S2"), text.index(":20:S3")]
    assert got[0][1][0]["value"] == "S1" and got[2][1][0]["value"] == "S3"
    err = got[1][1]
    assert isinstance(err, FormatError) and err.field == "61" and err.offset == text.index("HELLO")
    with pytest.raises(FormatError) as info:       # the list form still stops at the first bad field
        parse_statements(text)
    assert info.value.offset == text.index("HELLO")


@pytest.mark.parametrize("drop, tag", [(":60F:C191014EUR800,00\n", "60F"), (":62F:C191014EUR800,00\n", "62F"),
                                       (":25:1\n", "25")])
def test_mandatory_fields_are_named(drop: str, tag: str) -> None:
    text = ":20:S1\n" + OK.replace(drop, "")
    assert parse_statements(text)          # the lenient reader (and the conformance corpus) accepts it
    ((start, err),) = iter_statements(text, check=True)
    assert isinstance(err, FormatError) and err.field == tag and err.offset == 0
    assert f":{tag}:" in err.message and "missing" in err.message
    check_statement(parse_statements(":20:S1\n" + OK)[0])


def test_mt942_mandatory_fields() -> None:
    text = ":20:X\n:25:1\n:28C:1/1\n:34F:PLN0,\n"
    ((_, err),) = iter_statements(text, check=True)
    assert isinstance(err, FormatError) and err.field == "13D" and "MT942" in err.message


def test_balances_in_two_currencies_are_refused_rule_c27() -> None:
    text = ":20:S1\n:25:1\n:28C:1/1\n:60F:C191014EUR800,00\n:62F:C191014USD800,00\n"
    ((_, err),) = iter_statements(text, check=True)
    assert isinstance(err, FormatError) and err.field == "62F" and err.offset == text.index("C191014USD")
    assert "USD" in err.message and "EUR" in err.message and "C27" in (err.hint or "")


def test_balance_arithmetic_is_opt_in() -> None:
    text = (":20:S1\n:25:1\n:28C:1/1\n:60F:C191014EUR800,00\n:61:1910141014D1000,00NTRFNONREF\n"
            ":61:1910141014RD10,00NTRFNONREF\n:62F:D191014EUR190,00\n")
    ((_, fields),) = iter_statements(text, check=True)           # reversal of a debit (RD) is a credit
    assert isinstance(fields, list)
    check_balances(fields)
    bad = text.replace("D191014EUR190,00", "C191014EUR800,00")
    assert isinstance(next(iter_statements(bad, check=True))[1], list)   # upstream's files do not all add up
    ((_, err),) = iter_statements(bad, check=True, balances=True)
    assert isinstance(err, FormatError) and err.field == "62F" and err.offset == bad.index(":62F:") + 5
    assert err.message == ("closing balance :62F: is 800.00 EUR, but the opening balance :60F: 800.00 plus the 2 "
                           "entries (-990.00) makes -190.00 (difference +990.00)")


def test_a_statement_opens_where_the_one_before_it_of_the_same_account_closed() -> None:
    """Balance continuity across the statements of a file: 2/1 opens with 1/1's closing balance (and 2/2, an
    intermediate page, with 2/1's 62M); another account's statements in between do not count. A statement that
    opens elsewhere is told at its opening balance, naming both statements."""
    def stmt(num: str, acct: str, opening: str, closing: str, entry: str = "") -> str:
        return (f":20:R{num}\n:25:{acct}\n:28C:{num}\n:60{opening}\n" + (f":61:{entry}\n" if entry else "")
                + f":62{closing}\n-\n")
    good = (stmt("1/1", "DE1", "F:C191014EUR100,00", "F:C191014EUR150,00", "1910141014C50,00NTRFNONREF")
            + stmt("7/1", "NL2", "F:D191014EUR5,00", "F:D191014EUR5,00")
            + stmt("2/1", "DE1", "F:C191014EUR150,00", "M:C191015EUR140,00", "1910151015D10,00NTRFNONREF")
            + stmt("2/2", "DE1", "M:C191015EUR140,00", "F:C191015EUR140,00"))
    assert all(isinstance(item, list) for _, item in iter_statements(good, check=True, balances=True))
    assert all(isinstance(item, list) for _, item in iter_statements(good.replace("M:C191015EUR140,00\n:62F",
                                                                                  "M:C191015EUR141,00\n:62F"),
                                                                     check=True))     # off without balances
    bad = good.replace(":60M:C191015EUR140,00", ":60M:C191015EUR141,00").replace(":62F:C191015EUR140,00",
                                                                                 ":62F:C191015EUR141,00")
    items = [item for _, item in iter_statements(bad, check=True, balances=True)]
    assert [isinstance(i, list) for i in items] == [True, True, True, False]
    err = items[3]
    assert err.field == "60M" and err.offset == bad.index("C191015EUR141,00\n:62F")
    assert err.message == ("statement 2/2 opens with :60M: C 141.00 EUR of 2019-10-15, but the statement before it "
                           "of this account (2/1, statement 3 of the file) closed with :62M: C 140.00 EUR of "
                           "2019-10-15")


def test_61_entry_date_across_the_year_end_funds_code_and_reversals() -> None:
    """:61: subfield 2, the entry date, is MMDD: its year is the value date's, except across the year end (a
    31 December booking of a 2 January value date is of the year before; a 2 January booking of a 31 December
    value date of the year after). Subfield 3: RC (reversal of a credit) is a debit, RD a credit; the letter
    after the mark is the funds code (the third letter of the currency), not part of the mark."""
    text = (":20:YE\n:25:DE1\n:28C:1/1\n:60F:C261231EUR100,00\n"
            ":61:2701021231CR10,00NTRFA1\n"          # value 2027-01-02, booked 2026-12-31, C, funds code R
            ":61:2612310102RCR1,00NTRFA2\n"          # value 2026-12-31, booked 2027-01-02, reversal of a credit
            ":61:270102RD2,00NTRFA3\n"               # no entry date; reversal of a debit
            ":61:2701020102DR5,00NTRFA4\n"           # D, funds code R
            ":62F:C270102EUR106,00\n")
    ((_, fields),) = iter_statements(text, check=True, balances=True)     # 100 + 10 - 1 + 2 - 5 = 106
    txns = statement_view(fields)["transactions"]
    assert [(t["status"], t["funds_code"], t["amount"]["amount"]) for t in txns] == [
        ("C", "R", Decimal("10.00")), ("RC", "R", Decimal("-1.00")), ("RD", None, Decimal("2.00")),
        ("D", "R", Decimal("-5.00"))]
    assert [(t["date"], t["entry_date"]) for t in txns] == [
        (dt.date(2027, 1, 2), dt.date(2026, 12, 31)), (dt.date(2026, 12, 31), dt.date(2027, 1, 2)),
        (dt.date(2027, 1, 2), None), (dt.date(2027, 1, 2), dt.date(2027, 1, 2))]


def test_check_balances_checks_an_mt942s_totals_against_its_lines() -> None:
    """An MT942 has no balances; ``balances=True`` (bsp decode --statements --check-balances) checks its :61:
    lines against its :90D: / :90C:, naming the total that is wrong at its offset."""
    from pathlib import Path

    from formats.swift.statement import iter_statements
    path = (Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "swift" / "mt942_mbank" / "input"
            / "mt942.sta")
    if not path.is_file():
        pytest.skip("conformance corpus not found")
    text = path.read_text(encoding="utf-8")
    [(_, fields)] = list(iter_statements(text, balances=True))
    assert isinstance(fields, list)
    bad = text.replace(":90C:3PLN0,03", ":90C:4PLN0,05")
    [(_, err)] = list(iter_statements(bad, balances=True))
    assert isinstance(err, FormatError) and err.field == "90C" and err.offset == bad.index(":90C:") + 5   # its value
    assert "interim report (MT942): :90C: says 4 credit(s) of 0.05 PLN, but the :61: lines hold 3 of 0.03" in str(err)
