"""iso20022 codec: writer ordering and errors, component checks, fuzzed input."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from dsl.ir import FormatDecl
from formats.errors import FormatError, SpecError
from formats.iso20022 import COMPONENT, Iso20022Codec, message_id

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso20022"
XSD = CORPUS / "sepa_king_pain_001_001_03" / "xsd" / "pain.001.001.03.xsd"
_SAMPLE_PATH = CORPUS / "sepa_king_pain_001_001_03" / "input" / "pain.001.001.03.xml"
pytestmark = pytest.mark.skipif(not _SAMPLE_PATH.is_file(), reason=f"conformance corpus not found at {CORPUS.resolve()} (these tests read its pain.001 sample and XSD; CI has <repo>/../shared/corpus)")
SAMPLE = _SAMPLE_PATH.read_bytes() if _SAMPLE_PATH.is_file() else b""


def test_message_ids():
    assert message_id("urn:iso:std:iso:20022:tech:xsd:camt.053.001.02") == "camt.053.001.02"
    assert message_id("http://www.six-interbank-clearing.com/de/pain.001.001.03.ch.02.xsd") == "pain.001.001.03.ch.02"
    assert message_id("urn:example:other") is None


def test_writer_orders_by_schema_and_types_values():
    c = COMPONENT.build(FormatDecl("P", "iso20022", {"message": "pain.001", "xsd": str(XSD)}))
    v = c.decode(SAMPLE)
    grp = v["CstmrCdtTrfInitn"]["GrpHdr"]
    grp_reordered = dict(reversed(list(grp.items())))  # order of keys does not matter
    v["CstmrCdtTrfInitn"]["GrpHdr"] = grp_reordered
    out = c.encode(v)
    assert out.index(b"<MsgId>") < out.index(b"<CreDtTm>") < out.index(b"<NbOfTxs>")
    assert b'<InstdAmt Ccy="EUR">6543.14</InstdAmt>' in out
    assert c.decode(out) == c.decode(SAMPLE)
    assert grp["CreDtTm"] == dt.datetime(2010, 11, 11, 9, 30, 47, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("mutate, field, words", [
    (lambda v: v["CstmrCdtTrfInitn"]["GrpHdr"].update(Foo="x"), "CstmrCdtTrfInitn.GrpHdr.Foo", "no element 'Foo'"),
    (lambda v: v["CstmrCdtTrfInitn"]["PmtInf"][0]["CdtTrfTxInf"][0]["Amt"]["InstdAmt"].update(value=1.5),
     "CstmrCdtTrfInitn.PmtInf[0].CdtTrfTxInf[0].Amt.InstdAmt", "never float"),
    (lambda v: v["CstmrCdtTrfInitn"]["PmtInf"][0]["CdtTrfTxInf"][1]["Amt"]["InstdAmt"].update(value=Decimal("-1")),
     "CstmrCdtTrfInitn.PmtInf[0].CdtTrfTxInf[1].Amt.InstdAmt", "minInclusive"),
    (lambda v: v["CstmrCdtTrfInitn"]["GrpHdr"].pop("MsgId"), "CstmrCdtTrfInitn.GrpHdr.CreDtTm", "MsgId"),
    (lambda v: v["CstmrCdtTrfInitn"].update(GrpHdr=[{}, {}]), "CstmrCdtTrfInitn.GrpHdr", "occurs once"),
])
def test_writer_errors_name_the_path(mutate, field, words):
    c = Iso20022Codec(xsd=str(XSD))
    v = c.decode(SAMPLE)
    mutate(v)
    with pytest.raises(FormatError) as e:
        c.encode(v)
    assert e.value.field == field and words in str(e.value)


def test_decode_errors():
    c = Iso20022Codec(xsd=str(XSD))
    bad = SAMPLE.replace(b"<InstdAmt Ccy=\"EUR\">6543.14", b"<InstdAmt Ccy=\"EUR\">65x3.14")
    with pytest.raises(FormatError) as e:
        c.decode(bad)
    assert e.value.field == "CstmrCdtTrfInitn.PmtInf[0].CdtTrfTxInf[0].Amt.InstdAmt"
    assert SAMPLE[e.value.offset:].startswith(b"<InstdAmt") or e.value.offset > 0
    with pytest.raises(FormatError, match="expected a <Document>"):
        c.decode(b"<Other/>")
    with pytest.raises(FormatError, match="no XSD for camt.053.001.02"):
        c.decode((CORPUS / "genkgo_camt053_v2_minimal" / "input" / "camt053.v2.minimal.xml").read_bytes())


def test_component_check(tmp_path):
    assert COMPONENT.positional == "message"
    errs = COMPONENT.check(FormatDecl("P", "iso20022", {"message": "pacs.008", "xsd": str(XSD)}))
    assert len(errs) == 1 and "the XSD is for pain.001.001.03" in str(errs[0])
    bad = tmp_path / "bad.xsd"
    bad.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element name='x' type='nope'/></xs:schema>")
    (err,) = COMPONENT.check(FormatDecl("P", "iso20022", {"xsd": str(bad)}))
    assert isinstance(err, SpecError) and str(bad) in str(err)
    (err,) = COMPONENT.check(FormatDecl("P", "iso20022", {"message": "pacs8"}))
    assert "pacs.008" in str(err)
    with pytest.raises(SpecError):
        COMPONENT.build(FormatDecl("P", "iso20022", {"xsd_dir": str(tmp_path / "none")}))
    (err,) = COMPONENT.check(FormatDecl("P", "iso20022", {"header": "head.002"}))
    assert "header must be a head.001 version such as head.001.001.02, got 'head.002'" in str(err)
    (err,) = COMPONENT.check(FormatDecl("P", "iso20022", {"envelope": "<message>"}))
    assert "envelope must be an XML element name" in str(err)
    codec = COMPONENT.build(FormatDecl("P", "iso20022", {"header": "head.001.001.01", "envelope": "BizMsg"}))
    assert (codec.header, codec.envelope) == ("head.001.001.01", "BizMsg")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255))
def test_mutated_document_only_format_error(pos, byte):
    data = bytearray(SAMPLE)
    data[pos] = byte
    c = Iso20022Codec(xsd=str(XSD))
    try:
        v = c.decode(bytes(data))
    except FormatError as e:
        assert e.offset is not None or e.field is not None
    else:
        assert c.decode(c.encode(v)) == v


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_only_format_error(data):
    try:
        Iso20022Codec(xsd=str(XSD), validate=False).decode(data)
    except FormatError:
        pass
