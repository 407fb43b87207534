"""The statement reader (formats.swift.statement: ``iter_statements``) classifies what it is given: MT940, MT942
and MT950 (bank exports or FIN messages) are read; an MT103, an MT101, an MT300, a pain.001, a CSV or any text is
refused as ``NotAStatement`` saying what it is, where (offset) and what is read, never read as an MT940.
The refused files are the conformance corpus's (../shared/corpus)."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from formats.errors import FormatError
from formats.swift import iter_statements, parse_statements, statement_view
from formats.swift.statement_kind import NotAStatement, describe_text, guess_mt, swift_statement

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
SWIFT = CORPUS / "swift"
ACCEPTED = "expected an MT940 (customer statement), MT942 (interim transaction report) or MT950 (statement message)"

# an MT950 as a correspondent sends it: a FIN output message, block 4 fields of an MT940 without :86:
MT950 = ("{1:F01BANKDEFFAXXX0000000000}{2:O9501200261127CHASUS33AXXX00000000002611271200N}{4:\r\n"
         ":20:NOSTRO261127\r\n:25:400123456\r\n:28C:00321/00001\r\n:60F:C261126EUR1000000,00\r\n"
         ":61:2611271127C250000,00NTRFREF20261127A//CHAS1127001\r\n"
         ":61:2611271127D100000,50NTRFREF20261127B//CHAS1127002\r\n"
         ":62F:C261127EUR1149999,50\r\n:64:C261127EUR1149999,50\r\n-}{5:{CHK:123456789ABC}}\r\n")


def _corpus(rel: str) -> str:
    path = CORPUS / rel
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    return path.read_bytes().decode("latin-1")


def _only_errors(text: str) -> list[tuple[int, FormatError]]:
    items = list(iter_statements(text, check=True))
    assert all(isinstance(x, FormatError) for _, x in items), items
    return items


@pytest.mark.parametrize("rel, mt, title, count", [
    ("prowide_mt103_rje_batches/input/MT103-bulk-with-ack.rje", "103", "Single Customer Credit Transfer", 3),
    ("prowide_mt103_rje_batches/input/MT103-out-ack.rje", "103", "Single Customer Credit Transfer", 13),
    ("prowide_mt101_fin/input/MT101.fin", "101", "Request for Transfer", 1),
    ("prowide_mt320_mt300_block_xml/input/SWIFTMT300_0000039099_0002.txt", "300", None, 1),
])
def test_corpus_fin_messages_of_another_type_are_refused_one_by_one_at_their_block_2(rel, mt, title, count):
    text = _corpus("swift/" + rel)
    items = _only_errors(text)
    assert len(items) == count                  # the ACKs of the RJE batches are service messages: no record
    for start, err in items:
        assert isinstance(err, NotAStatement)
        assert text[err.offset:err.offset + 6] == "{2:" + ("O" if text[err.offset + 3] == "O" else "I") + mt[:2]
        assert err.message.startswith(f"an MT{mt}{f' ({title})' if title else ''} is no bank statement "
                                      f"(its block 2 says {mt}, fields :")
        assert ACCEPTED in err.message and err.field == "block2"
    with pytest.raises(NotAStatement):
        parse_statements(text)


def test_an_mt103_block_4_without_its_envelope_is_refused_at_its_first_foreign_field():
    """A .sta file holding an MT103's block 4 (copied out of the corpus's RJE batch): refused at :23B:, the
    first field no statement has, naming the message its fields make, not read as a statement without
    balances (it was: 'mandatory field :25: is missing from this MT940 statement')."""
    text = _corpus("swift/prowide_mt103_rje_batches/input/MT103-out-ack.rje")
    body = text[text.index("{4:") + 3:text.index("-}")].lstrip("\r\n")
    ((start, err),) = _only_errors(body)
    assert isinstance(err, NotAStatement) and err.field == "23B"
    assert body[err.offset:err.offset + 6] == ":23B:C"
    assert err.message.startswith("field :23B: is no field of a bank statement: these are the fields of an MT103 "
                                  "(Single Customer Credit Transfer); " + ACCEPTED)


@pytest.mark.parametrize("rel, found", [
    ("iso20022/sepa_king_pain_001_001_03/input/pain.001.001.03.xml", "an XML document (ISO 20022 pain.001.001.03)"),
    ("iso20022/sepa_king_pain_008_003_02/input/pain.008.003.02.xml", "an XML document (ISO 20022 pain.008.003.02)"),
])
def test_corpus_xml_is_refused_naming_its_message_at_its_root_element(rel, found):
    text = _corpus(rel)
    with pytest.raises(NotAStatement) as e:
        list(iter_statements(text))
    assert e.value.message.startswith(f"no bank statement here: found {found}; {ACCEPTED}: block 4 fields :20:")
    assert text[e.value.offset:].startswith("<Document")
    assert "camt.053" in (e.value.hint or "")


@pytest.mark.parametrize("text, found, offset", [
    ("date,amount,reference\n2026-11-27,12.50,A1\n", "CSV text (first line 'date,amount,reference')", 0),
    ("\n\nDear customer, your statement follows.\n", "text (first line 'Dear customer, your statement follows.')", 2),
    ("hello\nworld\n", "text (first line 'hello')", 0),
    ("", "an empty file", 0),
    ('{"block4": []}', "JSON text", 0),
])
def test_text_without_a_field_says_what_it_is(text, found, offset):
    with pytest.raises(NotAStatement) as e:
        list(iter_statements(text))
    assert e.value.message.startswith(f"no bank statement here: found {found}; {ACCEPTED}")
    assert e.value.offset == offset


def test_an_mt950_fin_message_is_read_checked_and_adds_up():
    """MT950 (no :86:): read through its FIN envelope ({1:}{2:O950}{4: ... -}{5:}), mandatory fields, balances
    (1000000.00 + 250000.00 - 100000.50 = 1149999.50); before, its block 5 was read into the :64: amount."""
    ((start, fields),) = list(iter_statements(MT950, check=True, balances=True))
    assert not isinstance(fields, Exception), fields
    assert MT950[start:].startswith(":20:NOSTRO261127")
    view = statement_view(fields)
    assert view["statement"]["final_closing_balance"]["amount"]["amount"] == Decimal("1149999.50")
    assert [t["amount"]["amount"] for t in view["transactions"]] == [Decimal("250000.00"), Decimal("-100000.50")]
    bad = MT950.replace(":62F:C261127EUR1149999,50", ":62F:C261127EUR1149999,00")
    ((_, err),) = list(iter_statements(bad, check=True, balances=True))
    assert isinstance(err, FormatError) and not isinstance(err, NotAStatement)
    assert err.field == "62F" and "difference -0.50" in err.message


def test_statements_and_other_messages_in_one_batch_each_in_its_place():
    """An RJE-like batch: an MT950, the corpus's MT101, the MT950 again: two statements, the MT101 refused
    between them (its offset), in file order."""
    mt101 = _corpus("swift/prowide_mt101_fin/input/MT101.fin").strip()
    text = MT950 + mt101 + "\r\n" + MT950
    items = list(iter_statements(text, check=True))
    assert [type(x).__name__ for _, x in items] == ["list", "NotAStatement", "list"]
    assert items[1][0] == len(MT950) and "MT101 (Request for Transfer)" in items[1][1].message


def test_decoded_messages_say_which_statement_they_are_or_what_they_are():
    from formats.swift import SwiftCodec
    msg = SwiftCodec().decode(MT950.encode())
    assert swift_statement(msg)[0] == "MT950"
    assert swift_statement(msg["block4"])[0] == "MT940"         # block 4 alone cannot tell an MT950
    assert swift_statement({"Stmt": {}}) is None and swift_statement("text") is None
    mt103 = SwiftCodec().decode(_corpus("swift/prowide_mt103_rje_batches/input/MT103-out-ack.rje")
                                .split("$")[0].strip().encode())
    with pytest.raises(ValueError, match=r"^an MT103 \(Single Customer Credit Transfer\) is no bank statement"):
        swift_statement(mt103)
    with pytest.raises(ValueError, match=r"^field 2 \(:23B:\) is no field of a bank statement: these are the "
                                         r"fields of an MT103"):
        swift_statement(mt103["block4"])
    assert guess_mt(["20", "61"]) is None
    assert describe_text("  <?xml version='1.0'?><Root/>") == ("an XML document (root element Root)", 23)


@pytest.mark.parametrize("case", ["mt940_cmxl_multi_txn", "mt940_jejik_abnamro", "mt940_jejik_ing",
                                  "mt940_sberbank_ns_tags", "mt942_mbank", "mt940_betterplace_amount_formats",
                                  "mt940_gv_codes_structured_86", "mt940_jejik_postfinance",
                                  "mt940_betterplace_sepa_snippet"])
def test_every_corpus_statement_file_is_still_a_statement(case):
    path = next((SWIFT / case / "input").glob("*.sta"), None)
    if path is None:
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    items = list(iter_statements(path.read_bytes().decode("latin-1")))
    assert items and not any(isinstance(x, NotAStatement) for _, x in items)


def _corpus_mt950() -> str:
    """The corpus's multi-entry MT940 (mt940_cmxl_multi_txn, its first statement) as a correspondent's MT950:
    its :86: lines left out (an MT950 has none), in a FIN output message whose block 2 says 950."""
    lines = _corpus("swift/mt940_cmxl_multi_txn/input/mt940.sta").splitlines()
    first = lines[:lines.index("-")]
    body = [ln for ln in first if ln.strip() and not ln.startswith(":86:")]
    return ("{1:F01BANKDEFFAXXX0000000000}{2:O9501200131017CHASUS33AXXX00000000001310171200N}{4:\r\n"
            + "\r\n".join(body) + "\r\n-}{5:{CHK:123456789ABC}}\r\n")


def test_an_mt950_missing_a_mandatory_field_is_named_an_mt950():
    """A FIN MT950 without its opening balance: the refusal names the message its block 2 says (it called it
    "this MT940 statement"); the same fields as a bank export (no envelope) are an MT940's."""
    mt950 = _corpus_mt950()
    ((_, fields),) = list(iter_statements(mt950, check=True))
    assert not isinstance(fields, FormatError), fields
    bad = "\r\n".join(ln for ln in mt950.split("\r\n") if not ln.startswith(":60F:"))
    ((start, err),) = list(iter_statements(bad, check=True))
    assert isinstance(err, FormatError)
    assert "mandatory field :60F: / :60M: (opening balance) is missing from this MT950 statement" in err.message
    assert "an MT950 statement needs :20:" in (err.hint or "")
    assert bad[start:].startswith(":20:131110") and err.field == "60F"
    export = bad[bad.index(":20:"):bad.index("-}")] + "-\r\n"
    ((_, err),) = list(iter_statements(export, check=True))
    assert "missing from this MT940 statement" in err.message
