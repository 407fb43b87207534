"""SWIFT MT classification (formats/swift/classes.py): one table for every message type.

Accounts, names, addresses and the free texts that carry them are personal; BICs (institution
identifiers), references, codes, amounts, currencies and dates are not.  Checked on the corpus's
own messages (MT101, MT103 from the RJE batches, MT940) and on an MT202, through the codec and
through the shipped routes' formats, and how `bsp check` (W006) sees a body that fills block 4.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.runtime.binder import Binder
from engine.sim.services.catalog import route_files
from formats.classify import mask, safe_error_text, tags_of
from formats.errors import FormatError
from formats.swift import SwiftCodec, parse_fin, parse_statements, split_rje

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "swift"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS.resolve()}")

PERSONAL_WHOLE = {"25", "25A", "50F", "50H", "50K", "50L", "59", "59F", "70", "77B", "77T", "86", "NS"}
ACCOUNT_ONLY = {"25P", "50A", "50G", "59A"}

MT202 = {
    "block1": {"app": "F", "service": "01", "lt": "BANKBEBBAXXX", "session": "0000", "sequence": "000000"},
    "block2": {"io": "I", "type": "202", "receiver": "BANKDEFFXXXX", "priority": "N", "rest": ""},
    "block4": [
        {"tag": "20", "value": "REF-202"}, {"tag": "21", "value": "REL-1"},
        {"tag": "32A", "value": {"date": dt.date(2026, 3, 2), "currency": "EUR", "amount": Decimal("1000.00")}},
        {"tag": "57A", "value": {"account": "NOSTRO-123", "bic": "CHASUS33XXX"}},
        {"tag": "58A", "value": {"account": "VOSTRO-9", "bic": "COBADEFFXXX"}},
    ],
}

MT101_G = ("{1:F01BANKBEBBAXXX0000000000}{2:I101BANKDEFFXXXXN}{4:\n:20:REF-101\n:28D:1/1\n:50G:/DE89370400440532013000\nCOBADEFF\n:30:260302\n"
           ":21:T-1\n:32B:EUR100,00\n:57A:CHASUS33\n:59A:/GB29NWBK60161331926819\nNWBKGB2L\n:71A:SHA\n-}")


def _masked(values: dict, codec: SwiftCodec) -> dict:
    return mask(values, tags_of(codec))


def _check_fields(original: list, masked: list) -> tuple[set, set]:
    """(tags whose value was masked, tags left as they are); asserts the line between them per field."""
    changed, kept = set(), set()
    for before, after in zip(original, masked):
        tag, v, m = before["tag"], before["value"], after["value"]
        assert after["tag"] == tag
        if tag in PERSONAL_WHOLE:
            assert m == v[0] + "***", (tag, m)
            changed.add(tag)
        elif tag in ACCOUNT_ONLY:
            assert m["bic"] == v["bic"] and m["account"] == v["account"][0] + "***", (tag, m)
            changed.add(tag)
        else:
            assert m == v, (tag, m)                # BICs (with their accounts), amounts, dates, references
            kept.add(tag)
    return changed, kept


@needs_corpus
def test_corpus_mt103_accounts_and_names_are_personal_bics_and_amounts_are_not() -> None:
    codec = SwiftCodec("mt103")
    items = split_rje((CORPUS / "prowide_mt103_rje_batches" / "input" / "MT103-out-ack.rje").read_text())
    seen_changed, seen_kept = set(), set()
    for item in items:
        values, _ = parse_fin(item, strict=False)
        masked = _masked(values, codec)
        assert masked["block1"] == values["block1"] and masked["block2"] == values["block2"]   # LT, MIR: BICs
        changed, kept = _check_fields(values["block4"], masked["block4"])
        seen_changed |= changed
        seen_kept |= kept
    assert {"50K", "59"} <= seen_changed
    assert {"20", "23B", "32A", "71A"} <= seen_kept and any(t[2:] == "A" for t in seen_kept)   # a BIC field


@needs_corpus
def test_corpus_mt101_and_a_50g_59a_mt101() -> None:
    codec = SwiftCodec("mt101")
    text = (CORPUS / "prowide_mt101_fin" / "input" / "MT101.fin").read_text()
    values, _ = parse_fin(text, strict=False)
    changed, kept = _check_fields(values["block4"], _masked(values, codec)["block4"])
    assert changed and {"20", "28D", "30", "32B"} <= kept
    g = codec.decode(MT101_G.encode())
    assert [f["value"] for f in g["block4"] if f["tag"] in ("50G", "59A")] == [
        {"account": "DE89370400440532013000", "bic": "COBADEFF"}, {"account": "GB29NWBK60161331926819", "bic": "NWBKGB2L"}]
    assert codec.encode(g) == MT101_G.encode()
    changed, kept = _check_fields(g["block4"], _masked(g, codec)["block4"])
    assert changed == {"50G", "59A"} and "57A" in kept


@needs_corpus
def test_corpus_mt940_account_and_owner_information_are_personal() -> None:
    codec = SwiftCodec("mt940")
    for name in ("mt940_jejik_abnamro", "mt940_sberbank_ns_tags"):
        text = next((CORPUS / name / "input").glob("*.sta")).read_text(encoding="utf-8", errors="replace")
        changed, kept = set(), set()
        for fields in parse_statements(text):
            c, k = _check_fields(fields, _masked({"block4": fields}, codec)["block4"])
            changed, kept = changed | c, kept | k
        assert "25" in changed and {"20", "60F", "61", "62F"} <= kept, name
        assert ("86" if "abnamro" in name else "NS") in changed, name


def test_mt202_institutions_are_not_personal() -> None:
    for codec in (SwiftCodec("mt202"), SwiftCodec()):
        assert _masked(MT202, codec) == MT202


def test_25p_types_account_and_bic() -> None:
    fields = parse_statements(":20:S1\n:25P:NL26VAYB8060476890\nVAYBNL2A\n:28C:1/1\n"
                              ":60F:C191014EUR800,00\n:62F:C191014EUR800,00\n")[0]
    assert fields[1]["value"] == {"account": "NL26VAYB8060476890", "bic": "VAYBNL2A"}
    masked = mask({"block4": fields}, tags_of(SwiftCodec("mt940")))["block4"][1]["value"]
    assert masked == {"account": "N***", "bic": "VAYBNL2A"}
    with pytest.raises(FormatError, match="not a BIC") as info:
        SwiftCodec("mt101").decode(MT101_G.replace("COBADEFF", "COBADE").encode())
    assert info.value.field == "50G"


def test_shipped_swift_formats_take_the_table_and_no_more() -> None:
    """The routes no longer classify every block-4 value: a route format's tags are the table's."""
    registry = default_registry()
    table = tags_of(SwiftCodec())
    for service, fmt in (("remittance", "Mt103"), ("fund_consolidation", "Mt101"), ("fund_consolidation", "CoverMt103"),
                         ("account_consolidation", "Mt940")):
        program = compile_paths(route_files(service), registry).program
        assert tags_of(Binder(program, registry).codec(fmt)) == table, (service, fmt)
    assert "block4.value" not in table


def test_a_decode_error_quoting_a_personal_field_is_masked() -> None:
    """An MT103 whose :59: line is too long: the error quotes the line (a name); the engine's safe text
    masks it because field 59 is personal, and leaves a reference's error as it is."""
    codec = SwiftCodec("mt103")
    good = codec.encode({**_mt103(), "block4": [*_mt103()["block4"]]})
    bad = good.replace(b"MERCADOS Y GESTION", b"MERCADOS Y GESTION MERCADOS Y GESTION")
    with pytest.raises(FormatError) as info:
        codec.decode(bad)
    assert info.value.field == "59" and "MERCADOS" in str(info.value)
    safe = safe_error_text(info.value, tags_of(codec), raw=bad)
    assert "MERCADOS" not in safe and "line 'M***' is 37 characters" in safe
    ref = good.replace(b":20:REF-0001", b":20:/REF-0001")
    with pytest.raises(FormatError) as info:
        codec.decode(ref)
    assert "/REF-0001" in safe_error_text(info.value, tags_of(codec), raw=ref)


def _mt103() -> dict:
    return {
        "block1": {"app": "F", "service": "01", "lt": "BANKBEBBAXXX", "session": "0000", "sequence": "000000"},
        "block2": {"io": "I", "type": "103", "receiver": "BANKDEFFXXXX", "priority": "N", "rest": ""},
        "block4": [
            {"tag": "20", "value": "REF-0001"}, {"tag": "23B", "value": "CRED"},
            {"tag": "32A", "value": {"date": dt.date(2019, 10, 14), "currency": "USD", "amount": Decimal("1814.28")}},
            {"tag": "50K", "value": "/12345678\nFOO CAPITAL MARKETS LP"},
            {"tag": "59", "value": "/00123456789012345678\nMERCADOS Y GESTION"}, {"tag": "71A", "value": "SHA"}],
    }


HEAD = '''channel mf = memory
channel gw = tcp connect { address = "127.0.0.1:1" }
format Req = json classify ["name:personal", "acct:personal"]
format Mt103 = swift mt103
'''


def _w006(tmp_path: Path, tag: str) -> list[str]:
    body = ('    call fin = gw as Mt103 {\n'
            '        block4[0].tag = "20"\n        block4[0].value = msg.ref\n'
            f'        block4[1].tag = "{tag}"\n        block4[1].value = "/" + msg.acct + "\\n" + msg.name\n'
            '    }\n')
    src = tmp_path / "main.route"
    src.write_text(HEAD + "route r {\n    receive from mf as Req\n" + body + "}\n")
    result = compile_paths([src], default_registry())
    assert not [d for d in result.diagnostics if d.is_error], [d.message for d in result.diagnostics]
    return [d.message for d in result.diagnostics if d.code == "W006"]


def test_bsp_check_reads_which_block4_field_a_body_fills(tmp_path: Path) -> None:
    assert _w006(tmp_path, "59") == []          # personal by the table
    got = _w006(tmp_path, "72")                 # bank-to-bank information: not classified
    assert len(got) == 2 and all("field `block4.value` of format `Mt103`, which does not classify it" in m
                                 for m in got), got


@needs_corpus
def test_corpus_structured_86_names_and_accounts_are_personal() -> None:
    """The breakdown of a German :86: (``details``): names, IBANs, purpose texts, party identifiers and a
    bank's other sub-fields are personal; the GVC, posting text, BIC and references stay readable."""
    from formats.swift.details86 import KEYS, PERSONAL
    codec = SwiftCodec("mt940")
    seen: set[str] = set()
    for name in ("mt940_betterplace_sepa_snippet", "mt940_gv_codes_structured_86", "mt940_cmxl_multi_txn"):
        text = next((CORPUS / name / "input").glob("*.sta")).read_text(encoding="utf-8", errors="replace")
        for fields in parse_statements(text):
            masked = _masked({"block4": fields}, codec)["block4"]
            for before, after in zip(fields, masked):
                if "details" not in before:
                    continue
                assert after["value"] == before["value"][0] + "***"
                for key in KEYS:
                    v, m = before["details"][key], after["details"][key]
                    if v is None:
                        assert m is None
                    elif key == "other":
                        assert m == {k: x[0] + "***" for k, x in v.items()}
                    elif key in PERSONAL:
                        assert m == v[0] + "***", (name, key, m)
                    else:
                        assert m == v, (name, key, m)
                    if v is not None:
                        seen.add(key)
    assert {"applicant_name", "applicant_iban", "purpose", "other", "applicant_creditor_id"} <= seen
    assert {"transaction_code", "posting_text", "applicant_bin", "end_to_end_reference"} <= seen
