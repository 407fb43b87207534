"""An amount given as text is read only when it is written as a bank writes one: ASCII digits, an optional
sign and a decimal point (``120.50``, ``-3``, `` 7.5 ``).  Python's ``Decimal(text)`` takes more: an
underscore (``1_000`` is 1000), the digits of any script (``١٢٠.50`` is 120.50) and an exponent (``1e3``):
each is an amount nobody wrote, read silently.  Every reader of amount text refuses them, naming the field."""
from __future__ import annotations

from decimal import Decimal

import pytest

from dsl.ir import FieldDecl as F
from formats import csv_codec
from formats.batchfile import _decimal as batch_decimal
from formats.copybook.numbers import to_stored
from formats.copybook.picture import field_type
from formats.errors import FormatError
from formats.exact import plain_decimal
from formats.fixed import FixedCodec, to_decimal

NOT_AMOUNTS = ["1_000", "1_000.00", "\u0661\u0662\u0660.50", "\uff11\uff12", "1e3", "1E+3", "1,000.00", "NaN",
               "Infinity", "-inf", "", " ", "+", ".", "0x10", "12.5.1", "\u00b2"]


@pytest.mark.parametrize("text, want", [("120.50", "120.50"), (" 7.5 ", "7.5"), ("-3", "-3"), ("+0.10", "0.10"),
                                        (".5", "0.5"), ("5.", "5"), ("000120", "120")])
def test_plain_amount_text_reads_exactly(text: str, want: str) -> None:
    got = plain_decimal(text)
    assert got == Decimal(want) and isinstance(got, Decimal)


@pytest.mark.parametrize("text", NOT_AMOUNTS)
def test_other_text_is_no_amount(text: str) -> None:
    assert plain_decimal(text) is None


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662\u0660.50", "1e3"])
def test_fixed_and_csv_writers_refuse_it_naming_the_field(text: str) -> None:
    with pytest.raises(FormatError, match="amt") as exc:
        to_decimal(text, scale=2, field="amt")
    assert "decimal number" in exc.value.message
    fixed = FixedCodec((F("amt", "decimal", width=10, scale=2),))
    with pytest.raises(FormatError, match="amt"):
        fixed.encode({"amt": text})
    with pytest.raises(FormatError, match="amt"):
        csv_codec.CsvCodec((F("amt", "decimal", scale=2),), header=False).encode({"amt": text})


def test_fixed_writer_still_takes_plain_text() -> None:
    assert FixedCodec((F("amt", "decimal", width=10, scale=2),)).encode({"amt": " 120.5 "}) == b"0000012050"


@pytest.mark.parametrize("text", ["\u0661\u0662\u0660.50", "\u0661\u0662"])
def test_csv_reader_refuses_digits_of_other_scripts(text: str) -> None:
    c = csv_codec.CsvCodec((F("ref", "string"), F("amt", "decimal", scale=2), F("n", "integer")))
    with pytest.raises(FormatError, match="field amt"):
        c.decode(f"ref,amt,n\nA,{text},1\n".encode())
    with pytest.raises(FormatError, match="field n"):
        c.decode(f"ref,amt,n\nA,1.00,{text}\n".encode())


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662\u0660.50", "1e3"])
def test_copybook_writer_refuses_it(text: str) -> None:
    with pytest.raises(ValueError, match="not a finite number written in ASCII digits"):
        to_stored(field_type("S9(7)V99", "COMP-3"), text, "AMT")


def test_copybook_writer_still_takes_plain_text() -> None:
    assert to_stored(field_type("S9(7)V99", "COMP-3"), " 120.50 ", "AMT") == 12050


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662\u0660.50", "1e3"])
def test_batch_control_total_text_is_no_amount(text: str) -> None:
    assert batch_decimal(text) is None
    assert batch_decimal(" 120.50 ") == Decimal("120.50")
