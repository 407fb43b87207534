"""The structured German :86: (formats.swift.details86): the breakdown beside the raw text, in a FIN
MT940's block 4 and on each statement line, derived from the text (the writer writes the text)."""
from __future__ import annotations

from formats.swift import SwiftCodec, parse_statements, statement_view
from formats.swift.details86 import KEYS, parse_86

INFO = ("166?00GUTSCHRIFT?100399?20EREF+E2E-1 PAYPAL?21MREF+M-7 CRED+DE98Z\n"
        "ZZ09999999999?2\n"
        "2SVWZ+Rechnung 4711 vom?2301.02. BIC+COBADEFF IBAN+DE0?2421203000\n"
        "00000202051 ABWA+Max?25Muster?30COBADEFFXXX\n"
        "?31DE02120300000000202051?32ERIKA MUSTER?33MANN?34914\n"
        "?38PL61109010140000071219812874")

FIN = ("{1:F01BANKDEFFAXXX0000000000}{2:I940BANKDEFFXXXXN}{4:\r\n:20:STMT-1\r\n:25:DE89370400440532013000\r\n"
       ":28C:1/1\r\n:60F:C191014EUR800,00\r\n:61:1910141014C100,00NTRFNONREF\r\n:86:"
       + INFO.replace("\n", "\r\n") + "\r\n:61:1910141014C50,00NTRFNONREF\r\n:86:FREE TEXT PAYMENT\r\n"
       ":62F:C191014EUR950,00\r\n-}")


def test_sub_fields_and_sepa_keywords() -> None:
    d = parse_86(INFO)
    assert set(d) == set(KEYS)
    assert (d["transaction_code"], d["posting_text"], d["prima_nota"]) == ("166", "GUTSCHRIFT", "0399")
    # a marker split by a line break (?2 / 2SVWZ) still starts a sub-field; keywords glued to the text end
    assert d["end_to_end_reference"] == "E2E-1 PAYPAL" and d["additional_position_reference"] == "M-7 "
    assert d["applicant_creditor_id"] == "DE98ZZZ09999999999"
    assert d["purpose"] == "Rechnung 4711 vom01.02. "
    assert d["gvc_applicant_bin"] == "COBADEFF " and d["gvc_applicant_iban"] == "DE02120300000000202051 "
    assert d["deviate_applicant"] == "MaxMuster"
    assert (d["applicant_bin"], d["applicant_iban"]) == ("COBADEFFXXX", "DE02120300000000202051")
    assert d["applicant_name"] == "ERIKA MUSTERMANN" and d["return_debit_notes"] == "914"
    assert d["other"] == {"38": "PL61109010140000071219812874"} and d["leading_text"] is None
    assert d["customer_reference"] is None and d["additional_purpose"] is None


def test_purpose_without_keywords_text_before_them_and_free_texts() -> None:
    d = parse_86("079?00SAMMLER?109800?200904059001?60MORE?61 TEXT")
    assert d["purpose"] == "0904059001" and d["additional_purpose"] == "MORE TEXT" and d["end_to_end_reference"] is None
    d = parse_86("835?20Cie. SEPA-LASTSCHRIFT?21EREF+X?20KREF+K1")     # a sub-field given twice is joined
    assert d["leading_text"] == "Cie. SEPA-LASTSCHRIFT" and d["end_to_end_reference"] == "X"
    assert d["customer_reference"] == "K1" and d["purpose"] is None
    for text in ("PAYMENT 1/0", "999PN5477SCHECK-NR. 0000016703074", "GIRO 428428 ?20X", "", None):
        assert parse_86(text) is None


def test_fin_mt940_decodes_details_and_writes_the_text_back() -> None:
    codec = SwiftCodec("mt940")
    values = codec.decode(FIN.encode())
    infos = [f for f in values["block4"] if f["tag"] == "86"]
    assert infos[0]["value"] == INFO and infos[0]["details"] == parse_86(INFO)
    assert "details" not in infos[1]                                    # free text: no breakdown
    assert codec.encode(values) == FIN.encode()
    assert codec.decode(codec.encode(values)) == values
    # the breakdown is derived: the text is what is written
    infos[0]["details"]["applicant_name"] = "SOMEONE ELSE"
    assert codec.encode(values) == FIN.encode()


def test_statement_view_puts_details_beside_the_text() -> None:
    text = FIN.split("{4:\r\n", 1)[1].removesuffix("-}").replace("\r\n", "\n")
    (view,) = [statement_view(s) for s in parse_statements(text)]
    t1, t2 = view["transactions"]
    assert t1["transaction_details"] == INFO and t1["details"]["applicant_name"] == "ERIKA MUSTERMANN"
    assert t2["transaction_details"] == "FREE TEXT PAYMENT" and t2["details"] is None
