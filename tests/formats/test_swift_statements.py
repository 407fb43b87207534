"""MT940/942 bank exports (formats.swift.statement): statement boundaries, per-statement errors,
mandatory fields."""
from __future__ import annotations

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
