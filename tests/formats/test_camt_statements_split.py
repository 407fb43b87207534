"""record = "camt053": a bank-to-customer file split into one document per statement (formats/iso20022/statements_split.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from formats.batchfile import split_records
from formats.errors import FormatError
from formats.iso20022.codec import Iso20022Codec

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso20022"
MULTI = CORPUS / "genkgo_camt053_v2_multi_statement"

DOC = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
       b'<GrpHdr><MsgId>M1</MsgId></GrpHdr>'
       b'<Stmt><Id>S1</Id></Stmt>\n<Stmt><Id>S2</Id></Stmt><Stmt><Id>S3</Id></Stmt>'
       b'</BkToCstmrStmt></Document>\n')


def test_each_statement_is_a_document_of_its_own_with_the_group_header() -> None:
    parts = split_records(DOC, "camt053")
    assert [p.count(b"<Stmt>") for _, p in parts] == [1, 1, 1]
    for (offset, part), sid in zip(parts, (b"S1", b"S2", b"S3")):
        assert b"<GrpHdr><MsgId>M1</MsgId></GrpHdr>" in part and part.endswith(b"</BkToCstmrStmt></Document>\n")
        at = part.index(b"<Id>" + sid)
        assert DOC[offset + at:offset + at + 6] == b"<Id>" + sid     # an offset in the part + the part's = the file's
    assert parts[0][0] == 0


def test_one_statement_is_the_file_itself_and_an_empty_file_has_no_record() -> None:
    one = DOC.replace(b"\n<Stmt><Id>S2</Id></Stmt><Stmt><Id>S3</Id></Stmt>", b"")
    assert split_records(one, "camt053") == [(0, one)]
    assert split_records(b"  \n", "camt053") == []


def test_a_statement_tag_in_a_comment_falls_back_to_rebuilt_documents() -> None:
    doc = DOC.replace(b"<GrpHdr>", b"<!-- <Stmt> --><GrpHdr>")
    parts = split_records(doc, "camt053")
    assert [offset for offset, _ in parts] == [0, 0, 0]
    assert [p.count(b"<Stmt>") for _, p in parts] == [1, 1, 1] and b"<Id>S2</Id>" in parts[1][1]


@pytest.mark.parametrize("data, words", [
    (b"<a/>", "no BkToCstmrStmt"),
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr/></BkToCstmrStmt>'
     b'</Document>', "holds no Stmt"),
    (b"<Document><BkToCstmrStmt>", "not well-formed"),
])
def test_what_cannot_be_split_is_told(data: bytes, words: str) -> None:
    with pytest.raises(FormatError, match=words):
        split_records(data, "camt053")


@pytest.mark.skipif(not MULTI.is_dir(), reason="conformance corpus not found")
def test_corpus_multi_statement_file_splits_into_two_xsd_valid_statements() -> None:
    """genkgo's camt053.v2.multi.statement.xml: 253 and 254, each part valid against the XSD, with the
    group header (MsgId CAMT053RIB000000000001) and the values genkgo's expected JSON gives."""
    data = (MULTI / "input" / "camt053.v2.multi.statement.xml").read_bytes()
    codec = Iso20022Codec(xsd=str(MULTI / "xsd" / "camt.053.001.02.xsd"))
    parts = split_records(data, "camt053")
    values = [codec.decode(p)["BkToCstmrStmt"] for _, p in parts]
    assert [v["GrpHdr"]["MsgId"] for v in values] == ["CAMT053RIB000000000001"] * 2
    assert [[s["Id"] for s in v["Stmt"]] for v in values] == [["253EURNL26VAYB8060476890"], ["254EURNL26VAYB8060476890"]]
    assert [str(v["Stmt"][0]["Ntry"][0]["Amt"]["value"]) for v in values] == ["8.85", "7.00"]
