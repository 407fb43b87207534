"""An ISO 20022 amount is written at its currency's scale (ISO 4217 minor units): a JPY amount that came from a
``PIC S9(13)V99`` field (``Decimal("150000.00")``) is ``150000``, not ``150000.00``, which CBPR+ and the
clearings refuse (more fraction digits than the currency has).  Trailing zeros only: a digit is never dropped,
and an amount with more decimals than its currency has (100.5 JPY, 12.345 EUR) is refused, naming the element
path and the currency, though the XSD (fractionDigits 5) allows it."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from formats.errors import FormatError
from formats.iso20022 import Iso20022Codec

PACS002_XSD = Path(__file__).resolve().parents[2] / "routes" / "remittance" / "xsd" / "pacs.002.001.11.xsd"


def _pacs008(value: Decimal, ccy: str) -> bytes:
    codec = Iso20022Codec(message="pacs.008.001.08", validate=False)
    return codec.encode({"message": "pacs.008.001.08", "FIToFICstmrCdtTrf": {
        "GrpHdr": {"MsgId": "M1", "NbOfTxs": "1"},
        "CdtTrfTxInf": {"PmtId": {"EndToEndId": "E1"}, "IntrBkSttlmAmt": {"value": value, "Ccy": ccy}}}})


@pytest.mark.parametrize("value, ccy, text", [
    (Decimal("150000.00"), "JPY", "150000"),
    (Decimal("150000"), "JPY", "150000"),
    (Decimal("1000.00"), "USD", "1000.00"),
    (Decimal("1000.5"), "EUR", "1000.5"),
    (Decimal("12.5000"), "KWD", "12.500"),
    (Decimal("12.50"), "BHD", "12.50"),
    (Decimal("7.10"), "XXX", "7.10"),            # not in the table: as given
])
def test_amount_written_at_the_currency_scale(value: Decimal, ccy: str, text: str) -> None:
    assert f'<IntrBkSttlmAmt Ccy="{ccy}">{text}</IntrBkSttlmAmt>'.encode() in _pacs008(value, ccy)


@pytest.mark.parametrize("value, ccy, message", [
    (Decimal("150000.50"), "JPY", "amount 150000.50 JPY has 1 decimal, but JPY has no decimals"),
    (Decimal("100.5"), "JPY", "amount 100.5 JPY has 1 decimal, but JPY has no decimals"),
    (Decimal("12.345"), "EUR", "amount 12.345 EUR has 3 decimals, but EUR has 2 decimals"),
    (Decimal("1.23450"), "BHD", "amount 1.23450 BHD has 4 decimals, but BHD has 3 decimals"),
    ("100.5", "JPY", "amount 100.5 JPY has 1 decimal"),           # an amount given as text is checked too
])
def test_a_fraction_the_currency_has_not_is_refused(value, ccy: str, message: str) -> None:
    # never rounded, never dropped: the route rounds (round(x, minor_units(ccy))) or rejects it (fits_currency)
    with pytest.raises(FormatError) as err:
        _pacs008(value, ccy)
    assert message in str(err.value) and "ISO 4217 minor units" in str(err.value)
    assert err.value.field == "FIToFICstmrCdtTrf.CdtTrfTxInf.IntrBkSttlmAmt"


def test_pain001_instructed_amount_in_a_list_names_its_index() -> None:
    codec = Iso20022Codec(message="pain.001.001.09", validate=False)
    with pytest.raises(FormatError) as err:
        codec.encode({"message": "pain.001.001.09", "CstmrCdtTrfInitn": {
            "GrpHdr": {"MsgId": "M1", "NbOfTxs": "2"},
            "PmtInf": {"PmtInfId": "P1", "CdtTrfTxInf": [
                {"Amt": {"InstdAmt": {"value": Decimal("10.00"), "Ccy": "EUR"}}},
                {"Amt": {"InstdAmt": {"value": Decimal("10.001"), "Ccy": "EUR"}}}]}}})
    assert err.value.field == "CstmrCdtTrfInitn.PmtInf.CdtTrfTxInf[1].Amt.InstdAmt"
    assert "10.001 EUR has 3 decimals, but EUR has 2 decimals" in str(err.value)


def test_typed_by_an_xsd_too() -> None:
    codec = Iso20022Codec(message="pacs.002.001.11", xsd=str(PACS002_XSD))
    out = codec.encode({"message": "pacs.002.001.11", "FIToFIPmtStsRpt": {
        "GrpHdr": {"MsgId": "P1", "CreDtTm": "2026-11-25T10:00:00"},
        "TxInfAndSts": [{"OrgnlEndToEndId": "E1", "TxSts": "ACSP",
                         "OrgnlTxRef": {"IntrBkSttlmAmt": {"value": Decimal("2000000.00"), "Ccy": "JPY"}}}]}})
    assert b'Ccy="JPY">2000000</' in out
    assert codec.decode(out)["FIToFIPmtStsRpt"]["TxInfAndSts"][0]["OrgnlTxRef"]["IntrBkSttlmAmt"]["value"] == 2000000
    with pytest.raises(FormatError) as err:      # the XSD's fractionDigits 5 allows it; the currency does not
        codec.encode({"message": "pacs.002.001.11", "FIToFIPmtStsRpt": {
            "GrpHdr": {"MsgId": "P1", "CreDtTm": "2026-11-25T10:00:00"},
            "TxInfAndSts": [{"OrgnlEndToEndId": "E1", "TxSts": "ACSP",
                             "OrgnlTxRef": {"IntrBkSttlmAmt": {"value": Decimal("2000000.5"), "Ccy": "JPY"}}}]}})
    assert err.value.field == "FIToFIPmtStsRpt.TxInfAndSts[0].OrgnlTxRef.IntrBkSttlmAmt"
