"""ISO 20022 conformance against every case in <repo>/../shared/corpus/iso20022 (see each SOURCE.txt).

genkgo camt05x cases: genkgo's expected JSON is a getter dump of its PHP DTOs
(amounts in MINOR units with the debit sign applied, dates as UTC ISO strings).
``genkgokit`` (beside this file) builds that dump from our decoded values, and
``test_genkgo_values_match`` compares every leaf of it (533 over the 7 files):
group header (id, time, recipient with address and identification, pagination,
original business query), the record (id, times, sequence numbers, account,
pagination, balances with their types), every entry of it (amount, sign, status,
booking and value date, references, bank transaction codes domain/family/
subfamily and proprietary, batch id, free text) and its transaction details
(references, amounts, related parties with names, addresses, identifications and
accounts, related agents, remittance information unstructured and structured).
genkgokit's docstring lists what is left out and why (pointers the dump writes
as "__RECURSIVITY__"). genkgo dumps the entries of one record only (the last
one in the multi-statement case); we compare the record with the same Id.
``test_genkgo_camt053_through_reconciliation`` checks the same facts as bsp
reconcile reads them (engine/reconcile/statement_camt053.py).
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

import genkgokit
from formats.errors import FormatError
from formats.iso20022 import Iso20022Codec

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso20022"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS.resolve()} "
                                "(CI has <repo>/../shared/corpus; clone it beside the repo to run these)")
ALL_CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.is_dir() else []


def codec(**kw):
    return Iso20022Codec(xsd_dir=str(CORPUS), **kw)


def inputs(case):
    return sorted((CORPUS / case / "input").glob("*.xml"))


# ------------------------------------------------------------ genkgo: every fact of the expected dump

GENKGO = [c for c in ALL_CASES if c.startswith("genkgo_") and (CORPUS / c / "expected").is_dir()]


@pytest.mark.parametrize("case", GENKGO)
def test_genkgo_values_match(case):
    """Every leaf of genkgo's expected dump (group header, the record, its entries with their bank
    transaction codes, value dates, transaction details: references, related parties and agents,
    remittance information, amounts) equals bsp's decoded value mapped by genkgokit."""
    (xml,) = inputs(case)
    (exp,) = (CORPUS / case / "expected").glob("*.json")
    expected = json.loads(exp.read_text())
    c = codec()
    values = c.decode(xml.read_bytes())
    ours = genkgokit.facts(genkgokit.genkgo_dump(values, genkgokit.record_id(expected)))
    theirs = genkgokit.facts(expected)
    assert len(theirs) > 10
    assert ours == theirs
    back = c.decode(c.encode(values))  # the writer's output is XSD-valid and complete
    assert back == values
    assert c.encode(back) == c.encode(values)


def test_genkgo_wrong_negative_is_rejected():
    (xml,) = inputs("genkgo_camt053_v2_wrong_negative")
    with pytest.raises(FormatError) as e:
        codec().decode(xml.read_bytes())
    assert e.value.field == "BkToCstmrStmt"
    assert "not valid camt.053.001.02" in str(e.value) and "Stmt" in str(e.value) and e.value.offset > 0


SEPA = [c for c in ALL_CASES if c.startswith("sepa_king_")]


@pytest.mark.parametrize("case", SEPA)
def test_sepa_king_pain_is_xsd_valid_and_round_trips(case):
    (xml,) = inputs(case)
    c = codec()
    values = c.decode(xml.read_bytes())  # validates against the case's XSD
    assert values["message"] == xml.stem
    root = next(k for k in values if k != "message")
    amounts = [t["Amt"]["InstdAmt"] if "Amt" in t else t["InstdAmt"]
               for p in values[root]["PmtInf"] for t in p.get("CdtTrfTxInf", p.get("DrctDbtTxInf", []))]
    assert amounts and all(isinstance(a["value"], Decimal) and len(a["Ccy"]) == 3 for a in amounts)
    ctrl = values[root]["GrpHdr"].get("CtrlSum")
    if ctrl is not None:
        assert sum(a["value"] for a in amounts) == ctrl
    assert c.decode(c.encode(values)) == values
    checked = codec(control_totals=True)          # every SEPA file's own control totals hold
    assert checked.decode(checked.encode(checked.decode(xml.read_bytes()))) == values


def test_control_totals_that_disagree_are_refused_at_their_element():
    (xml,) = inputs("sepa_king_pain_001_001_03")
    good = xml.read_bytes()
    checked = codec(control_totals=True)
    bad_sum = good.replace(b"<CtrlSum>6655.86</CtrlSum>", b"<CtrlSum>9999.99</CtrlSum>")
    with pytest.raises(FormatError) as e:
        checked.decode(bad_sum)
    assert e.value.field == "CstmrCdtTrfInitn.PmtInf.CtrlSum"
    assert e.value.offset == bad_sum.rindex(b"\n", 0, bad_sum.index(b"<CtrlSum>9999.99")) + 1   # its line
    assert "CtrlSum says 9999.99, the 2 transaction(s) here total 6655.86" in str(e.value)
    bad_count = good.replace(b"<NbOfTxs>2</NbOfTxs>", b"<NbOfTxs>5</NbOfTxs>", 1)      # the group header's
    with pytest.raises(FormatError, match=r"field CstmrCdtTrfInitn\.GrpHdr\.NbOfTxs: the control totals do not "
                                          r"match: NbOfTxs says 5, the message holds 2 transaction\(s\)"):
        checked.decode(bad_count)
    assert codec().decode(bad_sum)["message"] == "pain.001.001.03"     # off unless the format asks for it
    values = checked.decode(good)                  # a route that builds wrong totals is refused too
    values["CstmrCdtTrfInitn"]["PmtInf"][0]["CtrlSum"] = Decimal("1.00")
    with pytest.raises(FormatError, match="CtrlSum says 1.00, the 2 transaction"):
        checked.encode(values)


def test_moov_pain002_valid_and_invalid():
    case = CORPUS / "moov_io_pain002_valid_invalid"
    c = codec()
    v = c.decode((case / "input" / "valid_pain_v11.xml").read_bytes())
    exp = json.loads((case / "expected" / "valid_pain_v11.json").read_text())
    assert v["message"] == exp["XMLName"]["Space"].rsplit(":", 1)[1]
    assert v["CstmrPmtStsRpt"]["GrpHdr"]["MsgId"] == exp["Message"]["GrpHdr"]["MsgId"]
    assert v["CstmrPmtStsRpt"]["GrpHdr"]["CreDtTm"] == dt.datetime.fromisoformat(exp["Message"]["GrpHdr"]["CreDtTm"])
    with pytest.raises(FormatError) as e:
        c.decode((case / "input" / "invalid_pain_v11.xml").read_bytes())
    assert "no namespace" in str(e.value) and "xmlns=" in e.value.hint


def test_moov_pacs002_valid():
    case = CORPUS / "moov_io_pacs002_valid"
    (xml,) = inputs(case.name)
    exp = json.loads((case / "expected" / "valid_pacs_v11.json").read_text())
    v = codec(message="pacs.002").decode(xml.read_bytes())
    assert v["message"] == "pacs.002.001.11"
    assert v["FIToFIPmtStsRpt"]["GrpHdr"]["MsgId"] == exp["Message"]["GrpHdr"]["MsgId"]
    assert v["FIToFIPmtStsRpt"]["GrpHdr"]["CreDtTm"].isoformat().startswith(exp["Message"]["GrpHdr"]["CreDtTm"])
    with pytest.raises(FormatError, match="expected a pacs.008 message, got pacs.002.001.11"):
        codec(message="pacs.008").decode(xml.read_bytes())


@pytest.mark.parametrize("xml", inputs("prowide_pacs008_pacs009_camt053_with_apphdr"), ids=lambda p: p.name)
def test_prowide_apphdr_envelope_parses(xml):
    with pytest.raises(FormatError, match="no XSD for"):
        codec().decode(xml.read_bytes())  # no XSD for the .001.07 versions in the corpus
    v = codec(validate=False).decode(xml.read_bytes())
    assert v["message"] == xml.stem
    assert v["AppHdr"]["MsgDefIdr"] == xml.stem
    assert v["AppHdr"]["Fr"]["FIId"]["FinInstnId"]["BICFI"]
    if xml.stem.startswith("pacs.008"):
        grp = v["FIToFICstmrCdtTrf"]["GrpHdr"]
        assert grp["TtlIntrBkSttlmAmt"] == {"value": Decimal("10000"), "Ccy": "USD"}


@pytest.mark.parametrize("xml", inputs("prowide_pacs008_pacs009_camt053_with_apphdr"), ids=lambda p: p.name)
def test_prowide_apphdr_envelope_is_written_back(xml):
    from lxml import etree

    reader = codec(validate=False)
    v = reader.decode(xml.read_bytes())
    writer = Iso20022Codec(validate=False, header="head.001.001.01")
    out = writer.encode(v)
    assert reader.decode(out) == v                                       # header and body round trip
    env = etree.fromstring(out)
    original = etree.fromstring(xml.read_bytes())
    assert env.tag == original.tag == "message"
    assert [c.tag for c in env] == [c.tag for c in original if isinstance(c.tag, str)]      # AppHdr, Document
    assert [c.tag for c in env[0].iter()] == [c.tag for c in original[0].iter() if isinstance(c.tag, str)]
    assert [c.text.strip() for c in env[0].iter() if c.text and c.text.strip()] == \
        [c.text.strip() for c in original[0].iter() if isinstance(c.tag, str) and c.text and c.text.strip()]


def test_apphdr_written_from_route_values_is_checked():
    from datetime import datetime, timezone

    doc = {"message": "pacs.002.001.11", "FIToFIPmtStsRpt": {"GrpHdr": {"MsgId": "M1", "CreDtTm": "2026-11-26T09:00:00"}}}
    hdr = {"Fr": {"FIId": {"FinInstnId": {"BICFI": "BANKCNBJXXX"}}}, "To": {"FIId": {"FinInstnId": {"BICFI": "BANKUS33XXX"}}},
           "BizMsgIdr": "B1", "MsgDefIdr": "pacs.002.001.11",
           "CreDt": datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc), "PssblDplct": False}
    w = Iso20022Codec(validate=False)
    out = w.encode({**doc, "AppHdr": hdr})
    assert b"<AppHdr xmlns=\"urn:iso:std:iso:20022:tech:xsd:head.001.001.02\">" in out
    assert b"<CreDt>2026-11-26T09:00:00+00:00</CreDt><PssblDplct>false</PssblDplct>" in out
    back = w.decode(out)
    assert back["AppHdr"]["BizMsgIdr"] == "B1" and back["FIToFIPmtStsRpt"]["GrpHdr"]["MsgId"] == "M1"
    with pytest.raises(FormatError, match="the header lacks BizMsgIdr, CreDt") as ei:
        w.encode({**doc, "AppHdr": {k: v for k, v in hdr.items() if k not in ("BizMsgIdr", "CreDt")}})
    assert ei.value.field == "AppHdr.BizMsgIdr"
    with pytest.raises(FormatError, match="MsgDefIdr is 'pacs.008.001.08' but the Document is a pacs.002.001.11") as ei:
        w.encode({**doc, "AppHdr": {**hdr, "MsgDefIdr": "pacs.008.001.08"}})
    assert ei.value.field == "AppHdr.MsgDefIdr" and 'set MsgDefIdr = "pacs.002.001.11"' in str(ei.value)
    with pytest.raises(FormatError, match="float 1.5: money is Decimal"):
        w.encode({**doc, "AppHdr": {**hdr, "Prty": 1.5}})
    # no XSD and no version anywhere: the Document's namespace would be wrong, so it is refused
    short = {k: v for k, v in doc.items() if k != "message"}
    with pytest.raises(FormatError, match="pacs.002 names no version") as ei:
        Iso20022Codec(message="pacs.002", validate=False).encode(short)
    assert ei.value.field == "message"
    out = Iso20022Codec(message="pacs.002", validate=False).encode({**short, "AppHdr": hdr})     # the header says
    assert b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.11">' in out


def test_every_corpus_case_is_covered():
    covered = set(GENKGO) | set(SEPA) | {"genkgo_camt053_v2_wrong_negative", "moov_io_pain002_valid_invalid",
                                         "moov_io_pacs002_valid", "prowide_pacs008_pacs009_camt053_with_apphdr"}
    assert covered == set(ALL_CASES)


def _moov_plain(value):
    """moov-io's Go-struct JSON of our values: datetimes as ISO text with milliseconds, no XMLName."""
    if isinstance(value, dict):
        return {k: _moov_plain(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds")
    return value


@pytest.mark.parametrize("case,name", [("moov_io_pain002_valid_invalid", "valid_pain_v11"),
                                       ("moov_io_pacs002_valid", "valid_pacs_v11")])
def test_moov_whole_message_matches_and_round_trips(case, name):
    """Every element of moov-io's expected Message (not only the group header) equals what we read."""
    raw = (CORPUS / case / "input" / f"{name}.xml").read_bytes()
    exp = json.loads((CORPUS / case / "expected" / f"{name}.json").read_text())
    c = codec()
    values = c.decode(raw)
    message = {k: v for k, v in exp["Message"].items() if k != "XMLName"}
    root = exp["Message"]["XMLName"]["Local"]
    assert values["message"] == exp["XMLName"]["Space"].rsplit(":", 1)[1]
    assert set(values) == {"message", root}
    assert _moov_plain(values[root]) == message
    assert c.decode(c.encode(values)) == values
    assert c.encode(c.decode(c.encode(values))) == c.encode(values)


def _genkgo_line(entry, tx, split):
    """What bsp's reconciliation must read from one genkgo entry (and one of its transaction details;
    the detail's own amount only when the entry is split into several that each carry one)."""
    amt = tx["getAmount"] if split else entry["getAmount"]
    digits = genkgokit.MINOR_DIGITS.get(amt["getCurrency"]["getCode"], 2)
    day = lambda d: d and dt.date.fromisoformat(d["0"][:10])          # noqa: E731  (genkgo's UTC day)
    ref = (tx or {}).get("getReference") or {}
    rmt = (tx or {}).get("getRemittanceInformation") or {}
    blocks = [rmt.get("getStructuredBlock")] + rmt.get("getStructuredBlocks", [])[1:] if rmt else []
    creditor_refs = [b["getCreditorReferenceInformation"] for b in blocks if b and b.get("getCreditorReferenceInformation")]
    creditor_refs = [rmt["getCreditorReferenceInformation"] if c == genkgokit.REC else c for c in creditor_refs]
    ustrd = [rmt.get("getUnstructuredBlock")] + rmt.get("getUnstructuredBlocks", [])[1:] if rmt else []
    addtl_tx = (tx or {}).get("getAdditionalTransactionInformation")
    refs = [ref.get(k) for k in ("getEndToEndId", "getTransactionId", "getInstructionId", "getAccountServicerReference")]
    refs += [entry["getAccountServicerReference"], entry["getReference"]] + [c["getRef"] for c in creditor_refs]
    text = [u["getMessage"] for u in ustrd if u] + ([addtl_tx["getAdditionalTransactionInformation"]] if addtl_tx else [])
    text += [entry["getAdditionalInfo"]] if entry["getAdditionalInfo"] else []
    return {"amount": Decimal(int(amt["getAmount"])).scaleb(-digits), "currency": amt["getCurrency"]["getCode"],
            "booking_date": day(entry["getBookingDate"]), "value_date": day(entry["getValueDate"]),
            "refs": tuple(r for r in refs if r), "text": " ".join(text)}


@pytest.mark.parametrize("case", [c for c in GENKGO if c.startswith(("genkgo_camt053", "genkgo_camt052"))])
def test_genkgo_camt053_through_reconciliation(case):
    """bsp reconcile's statement lines (engine/reconcile/statement_camt053.py) hold genkgo's facts: signed
    amount and currency, booking and value date, the candidate references in their order, the free text.
    The camt.052 intraday report (--type camt052) too: its Rpt's entries are read as a Stmt's."""
    from engine.reconcile.statement_camt053 import MESSAGES, load_camt

    kind = "camt052" if case.startswith("genkgo_camt052") else "camt053"
    _, group, part, _ = MESSAGES[kind]
    (xml,) = inputs(case)
    (exp,) = (CORPUS / case / "expected").glob("*.json")
    expected = json.loads(exp.read_text())
    values = codec().decode(xml.read_bytes())
    stmt_no = 1 + [s["Id"] for s in values[group][part]].index(genkgokit.record_id(expected))
    for xsd_dir in (CORPUS / case / "xsd", None):                         # validated, and read without the XSD
        lines = [ln for ln in load_camt(xml, xsd_dir, kind) if f": {part} {stmt_no} / " in ln.where]
        assert lines
        want = []
        for e in expected["getEntries"]:
            txs = [e["getTransactionDetail"]] + e["getTransactionDetails"][1:] if e["getTransactionDetail"] else []
            split = len(txs) > 1 and all(t.get("getAmount") for t in txs)
            want += [_genkgo_line(e, t, split) for t in (txs if split else txs[:1] or [None])]
        got = [{"amount": ln.amount, "currency": ln.currency, "booking_date": ln.booking_date,
                "value_date": ln.value_date, "refs": ln.refs, "text": ln.text} for ln in lines]
        assert got == want, xsd_dir
