"""An ISO 20022 amount is written at its currency's scale (ISO 4217 minor units): a JPY amount that came from a
``PIC S9(13)V99`` field (``Decimal("150000.00")``) is ``150000``, not ``150000.00``, which CBPR+ and the
clearings refuse (more fraction digits than the currency has).  Trailing zeros only: a digit is never dropped."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

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


def test_a_fraction_of_a_yen_is_not_dropped() -> None:
    # the route rejects it (docs/services/remittance.md); the writer never rounds money away: only the zero goes
    assert b'<IntrBkSttlmAmt Ccy="JPY">150000.5</IntrBkSttlmAmt>' in _pacs008(Decimal("150000.50"), "JPY")


def test_typed_by_an_xsd_too() -> None:
    codec = Iso20022Codec(message="pacs.002.001.11", xsd=str(PACS002_XSD))
    out = codec.encode({"message": "pacs.002.001.11", "FIToFIPmtStsRpt": {
        "GrpHdr": {"MsgId": "P1", "CreDtTm": "2026-11-25T10:00:00"},
        "TxInfAndSts": [{"OrgnlEndToEndId": "E1", "TxSts": "ACSP",
                         "OrgnlTxRef": {"IntrBkSttlmAmt": {"value": Decimal("2000000.00"), "Ccy": "JPY"}}}]}})
    assert b'Ccy="JPY">2000000</' in out
    assert codec.decode(out)["FIToFIPmtStsRpt"]["TxInfAndSts"][0]["OrgnlTxRef"]["IntrBkSttlmAmt"]["value"] == 2000000
