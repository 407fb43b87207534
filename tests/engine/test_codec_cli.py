"""``bsp decode`` / ``bsp encode`` run through the real CLI on real corpus files.

The corpus is ``<repo>/../shared/corpus``; expected outputs are upstream's
(cobrix, moov-io, WoLpH/mt940), never ours.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from engine.commands.codec import register

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
CB = CORPUS / "copybook"
ISO = CORPUS / "iso8583"
SW = CORPUS / "swift"
MX = CORPUS / "iso20022"
MOOV_SPEC = ISO / "moov_io_reversal_0400" / "spec" / "specification_ver_1987.json"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # a group, so commands are invoked by name as in bsp
        pass

    register(app)
    return app


APP = make_app()


def bsp(*args: Any, input: bytes | None = None):
    return CliRunner().invoke(APP, [str(a) for a in args], input=input)


def lines(out: str | bytes) -> list[Any]:
    text = out.decode() if isinstance(out, bytes) else out
    # split on \n only: JSON strings may hold U+2028 / U+0085, which str.splitlines() would cut at
    return [json.loads(x, parse_float=Decimal) for x in text.split("\n") if x.strip()]


def drop_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def scales(v: Any) -> list[int]:
    """The exponent of every Decimal inside ``v``, in order."""
    if isinstance(v, dict):
        return [e for x in v.values() for e in scales(x)]
    if isinstance(v, list):
        return [e for x in v for e in scales(x)]
    return [v.as_tuple().exponent] if isinstance(v, Decimal) else []


def cobrix_expected(path: Path) -> list[dict]:
    generated = {"File_Id", "Record_Id", "Record_Byte_Length", "Seg_Id0", "Seg_Id1"}
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line, parse_float=Decimal)
            out.append({k: v for k, v in rec.items() if k not in generated})
    return out


# ------------------------------------------------------------------ copybook

def test_copybook_fixed_comp3_redefines_matches_cobrix() -> None:
    case = CB / "cobrix_test1_fixed_comp_comp3_redefines_odo"
    r = bsp("decode", "--copybook", case / "copybook.cob", "--encoding", "common", "--trim", "both",
            "--keep-group-fillers", case / "input" / "example.bin")
    assert r.exit_code == 0, r.stderr
    got = [drop_nulls(x) for x in lines(r.stdout)]
    want = cobrix_expected(case / "expected" / "test1.txt")
    assert got == want
    # exact decimals: the scale survives the JSON line (30.50 stays 30.50, not 30.5)
    assert scales(got) == scales(want)
    assert "bsp decode: 10 records decoded, 0 bad" in r.stderr


@pytest.mark.parametrize("order,data,record", [
    ("le", "rdw_little_endian/COMP.DETAILS.SEP30.DATA.dat", "rdw_le"),
    ("be", "rdw_big_endian/COMP.DETAILS.FEB02.DATA.RDW.BE.dat", "rdw"),
])
def test_copybook_rdw_multisegment_matches_cobrix(order: str, data: str, record: str) -> None:
    case = CB / "cobrix_test5_multisegment_rdw_ebcdic"
    r = bsp("decode", "--copybook", case / "copybook.cob", "--encoding", "common", "--trim", "both",
            "--record", record, "--rdw-excludes-header", "--no-low-values-null", case / "input" / data)
    assert r.exit_code == 0, r.stderr
    got = [drop_nulls(x) for x in lines(r.stdout)]
    want = cobrix_expected(case / "expected" / ("test5.txt" if order == "le" else "test5b.txt"))
    assert got[:len(want)] == want


def test_copybook_segment_map_decodes_only_the_named_group() -> None:
    case = CB / "cobrix_test5_multisegment_rdw_ebcdic"
    r = bsp("decode", "--copybook", case / "copybook.cob", "--encoding", "common", "--trim", "both",
            "--record", "rdw_le", "--rdw-excludes-header", "--segment-field", "SEGMENT-ID",
            "--segment", "C=STATIC-DETAILS", "--segment", "D=STATIC-DETAILS", "--segment", "P=CONTACTS",
            case / "input" / "rdw_little_endian" / "COMP.DETAILS.SEP30.DATA.dat")
    assert r.exit_code == 0, r.stderr
    got = [drop_nulls(x) for x in lines(r.stdout)]
    want = cobrix_expected(case / "expected" / "test5c.txt")
    assert got[:len(want)] == want


def test_copybook_segment_filter_and_trimming() -> None:
    case = CB / "cobrix_test3_segment_filter_trimming"
    r = bsp("decode", "--copybook", case / "copybook.cob", "--encoding", "common", "--trim", "left",
            "--keep-group-fillers", "--segment-field", "SIGNATURE", "--segment-filter", "S9276511",
            case / "input" / "TRAN2.AUG31.DATA.dat")
    assert r.exit_code == 0, r.stderr
    got = [drop_nulls(x) for x in lines(r.stdout)]
    want = cobrix_expected(case / "expected" / "test3_trim_left.txt")   # upstream shows the first 60
    assert {x["SIGNATURE"] for x in got} == {"S9276511"} and got[:len(want)] == want
    # S9(09)V99 BINARY: two places on every amount, as upstream prints them (5.00, not 5)
    assert scales(got[:len(want)]) == scales(want) and set(scales(want)) == {-2}


LOSSLESS = ["--trim", "none", "--no-low-values-null", "--keep-value-fillers", "--keep-group-fillers"]


@pytest.mark.parametrize("case,data,extra", [
    ("cobrix_test1_fixed_comp_comp3_redefines_odo", "example.bin", []),
    ("cobrix_test3_segment_filter_trimming", "TRAN2.AUG31.DATA.dat", []),
    ("cobrix_test9_ebcdic_code_pages", "TRAN.APR14.NPT.DATA.dat", ["--encoding", "cp500"]),
])
def test_copybook_round_trip_gives_the_original_bytes(tmp_path: Path, case: str, data: str, extra: list) -> None:
    d = CB / case
    opts = ["--copybook", d / "copybook.cob", *LOSSLESS, *extra]
    dec = bsp("decode", *opts, d / "input" / data, "-o", tmp_path / "out.jsonl")
    assert dec.exit_code == 0, dec.stderr
    enc = bsp("encode", *opts, tmp_path / "out.jsonl", "-o", tmp_path / "back.bin")
    assert enc.exit_code == 0, enc.stderr
    assert (tmp_path / "back.bin").read_bytes() == (d / "input" / data).read_bytes()


def test_copybook_rdw_round_trip_adds_the_rdw_back(tmp_path: Path) -> None:
    """RDW files are not byte-lossless: a record shorter than the copybook reads padded and writes full size.
    The values survive, and every written record carries its RDW."""
    d = CB / "cobrix_test5_multisegment_rdw_ebcdic"
    src = d / "input" / "rdw_big_endian" / "COMP.DETAILS.FEB02.DATA.RDW.BE.dat"
    opts = ["--copybook", d / "copybook.cob", "--record", "rdw", "--rdw-excludes-header", *LOSSLESS]
    dec = bsp("decode", *opts, src, "-o", tmp_path / "out.jsonl")
    assert dec.exit_code == 0, dec.stderr
    enc = bsp("encode", *opts, tmp_path / "out.jsonl", "-o", tmp_path / "back.bin")
    assert enc.exit_code == 0, enc.stderr
    back = (tmp_path / "back.bin").read_bytes()
    n = len(lines((tmp_path / "out.jsonl").read_text()))
    assert len(back) == n * (4 + 64) and back[:4] == b"\x00\x40\x00\x00"   # big-endian RDW, 64 data bytes
    again = bsp("decode", *opts, tmp_path / "back.bin")
    assert lines(again.stdout) == lines((tmp_path / "out.jsonl").read_text())


def test_a_bad_record_is_reported_with_number_offset_field_and_decoding_goes_on() -> None:
    d = CB / "cobrix_test19_display_numerics"
    r = bsp("decode", "--copybook", d / "copybook.cob", d / "input" / "data.dat")
    assert r.exit_code == 1
    assert "record 7, byte 480, field WS_DATE_NUM: invalid DISPLAY number" in r.stderr
    size = (d / "input" / "data.dat").stat().st_size
    total = size // 80 if size % 80 == 0 else None
    got = lines(r.stdout)
    assert len(got) >= 6
    if total is not None:
        assert len(got) == total - r.stderr.count("invalid")
    assert "bad" in r.stderr.splitlines()[-1]


def _corrupted_test3(tmp_path: Path, record_no: int) -> tuple[Path, Path, int]:
    """test3's data with WEALTH-QFY (PIC 9(1) at byte 36 of each record) of ``record_no`` made an 'A'."""
    d = CB / "cobrix_test3_segment_filter_trimming"
    good = (d / "input" / "TRAN2.AUG31.DATA.dat").read_bytes()
    size = len(good) // 1000
    data = bytearray(good)
    data[(record_no - 1) * size + 36] = 0xC1      # EBCDIC A
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes(data))
    return d / "copybook.cob", bad, size


def test_strict_stops_at_the_first_bad_record(tmp_path: Path) -> None:
    cpy, bad, size = _corrupted_test3(tmp_path, 5)
    loose = bsp("decode", "--copybook", cpy, bad)
    assert loose.exit_code == 1
    [report] = [x for x in loose.stderr.splitlines() if x.startswith(str(bad))]
    assert f"record 5, byte {4 * size + 36}, field WEALTH_QFY: " in report
    assert len(lines(loose.stdout)) == 999                 # went on after record 5
    strict = bsp("decode", "--copybook", cpy, "--strict", bad)
    assert strict.exit_code == 1
    assert len(lines(strict.stdout)) == 4                  # records 1-4 only
    assert "stopped at the first bad record (--strict)" in strict.stderr


# ------------------------------------------------------------------ ISO 8583

def test_iso8583_moov_reversal_matches_upstream_and_round_trips(tmp_path: Path) -> None:
    case = ISO / "moov_io_reversal_0400"
    src = case / "input" / "iso_reversal_message.dat"
    r = bsp("decode", "--format", "iso8583", "--spec", MOOV_SPEC, src)
    assert r.exit_code == 0, r.stderr
    [got] = lines(r.stdout)
    want = json.loads((case / "expected" / "iso_reversal_message.json").read_text())
    assert got["t"] == want["mti"] == "0400"
    elements = want["elements"]
    assert elements
    for key, value in elements.items():
        if key != "1":                                 # the secondary bitmap is not a value for us
            assert got[str(int(key))] == value, key
    (tmp_path / "m.jsonl").write_text(r.stdout)
    enc = bsp("encode", "--format", "iso8583", "--spec", MOOV_SPEC, tmp_path / "m.jsonl", "-o", tmp_path / "m.bin")
    assert enc.exit_code == 0, enc.stderr
    assert (tmp_path / "m.bin").read_bytes() == src.read_bytes()


def test_iso8583_length_prefixed_stream_from_stdin_round_trips() -> None:
    frames = [(ISO / "jmeter_iso8583_jpos_traces" / "input" / f"sample{i}_response_0110.bin").read_bytes()
              for i in (1, 2)]
    stream = b"".join(len(f).to_bytes(2, "big") + f for f in frames)
    # upstream's 0110s lack DE 3, which our spec's message rules require: read them leniently
    r = bsp("decode", "-f", "iso8583", "--spec", "iso8583_1987_ascii", "--no-validate", "--framing", "length2",
            "-", input=stream)
    assert r.exit_code == 0, r.stderr
    msgs = lines(r.stdout)
    assert [m["t"] for m in msgs] == ["0110", "0110"]
    assert msgs[0]["43"]["country"] == "NZ" and msgs[0]["55"]["9F02"] == "000000001000"
    enc = bsp("encode", "-f", "iso8583", "--spec", "iso8583_1987_ascii", "--no-validate", "--framing", "length2",
              "-", input=r.stdout.encode())
    assert enc.exit_code == 0, enc.stderr
    assert enc.stdout_bytes == stream


def test_iso8583_torn_frame_is_reported_with_its_offset() -> None:
    frame = (ISO / "jmeter_iso8583_jpos_traces" / "input" / "sample1_response_0110.bin").read_bytes()
    stream = len(frame).to_bytes(2, "big") + frame + (500).to_bytes(2, "big") + frame[:20]
    r = bsp("decode", "-f", "iso8583", "--spec", "iso8583_1987_ascii", "--no-validate", "--framing", "length2",
            input=stream)
    assert r.exit_code == 1
    assert len(lines(r.stdout)) == 1
    assert f"record 2, byte {2 + len(frame)}:" in r.stderr


def test_iso8583_mask_uses_classification() -> None:
    src = ISO / "moov_io_reversal_0400" / "input" / "iso_reversal_message.dat"
    r = bsp("decode", "-f", "iso8583", "--spec", MOOV_SPEC, "--classify", "2:pan", "--mask", src)
    assert r.exit_code == 0, r.stderr
    [m] = lines(r.stdout)
    assert m["2"] == "111111*********0000"
    plain = lines(bsp("decode", "-f", "iso8583", "--spec", MOOV_SPEC, src).stdout)[0]
    assert plain["2"] == "1111111110000000000"


def test_iso8583_encode_error_names_line_and_field() -> None:
    good = {"t": "0800", "7": "0209130746", "11": "000001"}
    bad = {"t": "0800", "7": "0209130746", "11": "0000001"}      # DE 11 is n 6
    text = "\n".join(json.dumps(x) for x in (good, bad, good)) + "\n"
    r = bsp("encode", "-f", "iso8583", "--spec", "iso8583_1987_ascii", "--no-validate", "--framing", "length2",
            input=text.encode())
    assert r.exit_code == 1
    first_line = len(json.dumps(good)) + 1
    col = json.dumps(bad).index('"11"')
    assert f"line 2, column {col + 1} (input byte {first_line + col}), field 11:" in r.stderr
    assert r.stdout_bytes.count(b"0800") == 2                 # the good lines were still written


def test_encode_reports_a_line_that_is_not_json() -> None:
    r = bsp("encode", "-f", "json", input=b'{"a": 1}\n{"a": \n')
    assert r.exit_code == 1
    assert "line 2, byte 14: invalid JSON" in r.stderr      # line 2 starts at byte 9; the value is missing at 14


# ------------------------------------------------------------------ SWIFT

def test_swift_fin_outside_x_set_is_refused_with_its_offset() -> None:
    src = SW / "prowide_mt101_fin" / "input" / "MT101.fin"
    r = bsp("decode", "-f", "swift", src)
    assert r.exit_code == 1
    offset = src.read_text().index("_")
    assert f"record 1, byte {offset}, field block4: character '_'" in r.stderr


def test_swift_rje_batch_goes_on_after_a_bad_message_and_strict_stops() -> None:
    src = SW / "prowide_mt103_rje_batches" / "input" / "MT103-out-ack.rje"
    r = bsp("decode", "-f", "swift", "--message", "mt103", src)
    assert r.exit_code == 1
    got = lines(r.stdout)
    assert len(got) == 12 and all(m["block2"]["type"] == "103" for m in got)   # 13 upstream, 1 stray '{'
    assert "record 11, byte " in r.stderr and "field blocks" in r.stderr
    strict = bsp("decode", "-f", "swift", "--strict", src)
    assert strict.exit_code == 1 and len(lines(strict.stdout)) == 10


def test_swift_rje_values_round_trip(tmp_path: Path) -> None:
    src = SW / "prowide_mt103_rje_batches" / "input" / "MT103-bulk-with-ack.rje"
    dec = bsp("decode", "-f", "swift", src)
    assert dec.exit_code == 0, dec.stderr
    msgs = lines(dec.stdout)
    assert [m["block1"]["service"] for m in msgs] == ["21", "01"] * 3       # ACK + MT103, three times
    assert [m.get("block2", {}).get("type") for m in msgs] == [None, "103"] * 3
    (tmp_path / "m.jsonl").write_text(dec.stdout)
    enc = bsp("encode", "-f", "swift", tmp_path / "m.jsonl", "-o", tmp_path / "batch.rje")
    assert enc.exit_code == 0, enc.stderr
    again = bsp("decode", "-f", "swift", tmp_path / "batch.rje")
    assert lines(again.stdout) == msgs
    amounts = [f["value"]["amount"] for m in msgs[1::2] for f in m["block4"] if f["tag"] == "32A"]
    assert len(amounts) == 3 and all(isinstance(a, (int, Decimal)) for a in amounts)


def test_swift_mt940_statements_match_upstream_transactions() -> None:
    case = SW / "mt940_jejik_abnamro"
    r = bsp("decode", "-f", "swift", "--statements", case / "input" / "abnamro.sta")
    assert r.exit_code == 0, r.stderr
    txns = [t for s in lines(r.stdout) for t in s["transactions"]]
    want = json.loads((case / "expected" / "abnamro.normalized.json").read_text())["transactions"]
    assert [(Decimal(str(t["amount"]["amount"])), t["date"], t["id"]) for t in txns] == \
           [(Decimal(w["amount"]["amount"]), w["date"], w["id"]) for w in want]


def test_swift_statements_mask_the_account_the_86_texts_and_their_names() -> None:
    """--mask on statement views: the account, the :86: text and the names / IBANs / purpose of its
    breakdown masked; references, the GVC, BICs and amounts readable (it used to mask nothing)."""
    case = SW / "mt940_betterplace_sepa_snippet"
    r = bsp("decode", "-f", "swift", "--statements", "--mask", case / "input" / "sepa_snippet.sta")
    assert r.exit_code == 0, r.stderr
    assert "KAUFMANN" not in r.stdout and "DE14508800500194785000" not in r.stdout and "Marta" not in r.stdout
    st = lines(r.stdout)[0]
    assert st["statement"]["account_identification"] == "5***"
    t = st["transactions"][0]
    assert t["transaction_details"] == "1***" and t["bank_reference"] == "0724710333343453"
    d = t["details"]
    assert (d["applicant_name"], d["applicant_iban"], d["purpose"]) == ("K***", "D***", "V***")
    assert (d["transaction_code"], d["applicant_bin"]) == ("166", "DRESDEFF508")
    assert d["end_to_end_reference"] == "EndToEndId TFNR 22 004 00001"
    r = bsp("decode", "-f", "swift", "--statements", case / "input" / "sepa_snippet.sta")
    assert lines(r.stdout)[0]["transactions"][0]["details"]["applicant_name"] == "KARL        KAUFMANN"


def test_swift_sta_without_statements_flag_says_how() -> None:
    r = bsp("decode", "-f", "swift", SW / "mt940_jejik_ing" / "input" / "ing.sta")
    assert r.exit_code == 1
    assert "record 1, byte 0, field block1" in r.stderr and "--statements" in r.stderr


def test_swift_statements_are_records_with_their_own_number_and_offset(tmp_path: Path) -> None:
    ok = ":25:1\n:28C:1/1\n:60F:C191014EUR800,00\n:62F:C191014EUR800,00\n"
    text = (":20:S1\n" + ok + "-\n:20:S2\n:25:1\n:28C:2/1\n:60F:C191014EUR800,00\n:61:HELLO\n"
            ":62F:C191014EUR800,00\n-\n:20:S3\n" + ok.replace(":62F:C191014EUR800,00\n", "") +
            "-\n:20:S4\n" + ok + ":20:S5\n" + ok)           # S5: no '-' line before it
    (tmp_path / "s.sta").write_text(text)
    r = bsp("decode", "-f", "swift", "--statements", tmp_path / "s.sta")
    assert r.exit_code == 1
    assert [s["statement"]["transaction_reference"] for s in lines(r.stdout)] == ["S1", "S4", "S5"]
    assert f"record 2, byte {text.index('HELLO')}, field 61: 'HELLO' is not a statement line" in r.stderr
    assert f"record 3, byte {text.index(':20:S3')}, field 62F: mandatory field :62F: / :62M:" in r.stderr
    assert "3 records decoded, 2 bad" in r.stderr


def test_swift_statements_read_utf8_like_upstream(tmp_path: Path) -> None:
    case = SW / "mt940_jejik_ing"
    r = bsp("decode", "-f", "swift", "--statements", case / "input" / "ing.sta")
    assert r.exit_code == 0, r.stderr
    got = [t["transaction_details"] for s in lines(r.stdout) for t in s["transactions"]]
    want = [w["transaction_details"] for w in
            json.loads((case / "expected" / "ing.normalized.json").read_text())["transactions"]]
    # the last one differs on purpose: upstream appends the statement's closing :86: to it (docs/formats-swift.md)
    assert len(got) == len(want) and got[:-1] == want[:-1]
    assert any("10\xad06\xad2010" in g for g in got)      # not the latin-1 reading '10\xc2\xad06\xc2\xad2010'
    # not UTF-8: read as ISO 8859-1; byte offsets count bytes, not characters
    (tmp_path / "l1.sta").write_bytes(":20:Caf\xe9\n:25:1\n:28C:1/1\n:60F:C191014EUR1,00\n:62F:C191014EUR1,00\n".encode("latin-1"))
    r = bsp("decode", "-f", "swift", "--statements", tmp_path / "l1.sta")
    assert r.exit_code == 0 and lines(r.stdout)[0]["statement"]["transaction_reference"] == "Caf\xe9"
    data = ":20:\u00e9\u00e9\n:25:1\n:61:X\n".encode()
    (tmp_path / "u8.sta").write_bytes(data)
    r = bsp("decode", "-f", "swift", "--statements", tmp_path / "u8.sta")
    assert f"record 1, byte {data.index(b'X')}, field 61" in r.stderr


def test_swift_statements_check_balances_is_opt_in() -> None:
    src = SW / "mt940_jejik_postfinance" / "input" / "postfinance.sta"      # upstream's 2nd statement does not add up
    assert bsp("decode", "-f", "swift", "--statements", src).exit_code == 0
    r = bsp("decode", "-f", "swift", "--statements", "--check-balances", src)
    assert r.exit_code == 1 and len(lines(r.stdout)) == 1
    at = src.read_bytes().rindex(b":62F:") + 5
    assert (f"record 2, byte {at}, field 62F: closing balance :62F: is 159.6 CHF, but the opening balance :60M: "
            "229.2 plus the 2 entries (-69.8) makes 159.4 (difference +0.2)") in r.stderr
    r = bsp("decode", "-f", "swift", "--check-balances", src)
    assert r.exit_code == 2 and "--check-balances checks bank statements (MT940, camt.053): it needs --statements" in r.stderr


# ------------------------------------------------------------------ ISO 20022

def test_iso20022_camt053_decodes_typed_and_round_trips(tmp_path: Path) -> None:
    case = MX / "genkgo_camt053_v2_multi_statement"
    xsd = next((case / "xsd").glob("*.xsd"))
    src = next((case / "input").glob("*.xml"))
    r = bsp("decode", "-f", "iso20022", "--xsd", xsd, src)
    assert r.exit_code == 0, r.stderr
    [doc] = lines(r.stdout)
    assert doc["message"] == "camt.053.001.02"
    amt = doc["BkToCstmrStmt"]["Stmt"][0]["Bal"][0]["Amt"]
    assert isinstance(amt["value"], Decimal) and len(amt["Ccy"]) == 3
    (tmp_path / "d.jsonl").write_text(r.stdout)
    enc = bsp("encode", "-f", "iso20022", "--xsd", xsd, tmp_path / "d.jsonl", "-o", tmp_path / "back.xml")
    assert enc.exit_code == 0, enc.stderr
    again = bsp("decode", "-f", "iso20022", "--xsd", xsd, tmp_path / "back.xml")
    assert lines(again.stdout) == [doc]


def test_iso20022_invalid_document_names_the_element() -> None:
    case = MX / "genkgo_camt053_v2_wrong_negative"
    r = bsp("decode", "-f", "iso20022", "--xsd", next((case / "xsd").glob("*.xsd")),
            next((case / "input").glob("*.xml")))
    assert r.exit_code == 1
    assert "record 1, byte " in r.stderr and "field BkToCstmrStmt" in r.stderr and "Stmt" in r.stderr


def test_iso20022_without_xsd_hints_the_flags() -> None:
    r = bsp("decode", "-f", "iso20022", next((MX / "sepa_king_pain_001_001_03" / "input").glob("*.xml")))
    assert r.exit_code == 1
    assert "--xsd FILE" in r.stderr and "--no-validate" in r.stderr
    ok = bsp("decode", "-f", "iso20022", "--no-validate",
             next((MX / "sepa_king_pain_001_001_03" / "input").glob("*.xml")))
    assert ok.exit_code == 0, ok.stderr


# ------------------------------------------------------------------ route formats, csv, json

def test_route_format_fixed_lines_mask_and_round_trip(tmp_path: Path) -> None:
    route = REPO / "routes" / "bill_payment" / "bill_payment.route"
    rec = ("BP01" + "000000000123" + "EL01  " + "ACC-778899".ljust(20) + "000000012050" + "CNY" + "20260301")
    data = (rec + "\n" + rec.replace("BP01", "BQ01") + "\n").encode()
    r = bsp("decode", "--route", route, "--name", "BillPayReq", "--framing", "lines", "--mask", input=data)
    assert r.exit_code == 0, r.stderr
    a, b = lines(r.stdout)
    assert a["amount"] == Decimal("120.50") and str(a["amount"]) == "120.50"
    assert a["value_date"] == "2026-03-01" and a["account"] == "A***"
    assert b["txn_code"] == "BQ01"
    clear = bsp("decode", "--route", route, "--name", "BillPayReq", "--framing", "lines", input=data)
    enc = bsp("encode", "--route", route, "--name", "BillPayReq", "--framing", "lines", input=clear.stdout.encode())
    assert enc.exit_code == 0, enc.stderr
    assert enc.stdout_bytes == data


def test_csv_file_bad_row_reported_and_others_written() -> None:
    data = b"a,b\n1,2\n3,4\n"
    r = bsp("decode", "-f", "csv", input=data)
    assert r.exit_code == 0
    assert lines(r.stdout) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    enc = bsp("encode", "-f", "csv", input=r.stdout.encode())
    assert enc.exit_code == 0, enc.stderr
    assert b"1,2" in enc.stdout_bytes and b"3,4" in enc.stdout_bytes


# ------------------------------------------------------------------ usage errors (exit 2)

@pytest.mark.parametrize("args,message", [
    (["decode", "-f", "json", "/no/such/file.json"], "/no/such/file.json: no such file"),
    (["decode", "-f", "edifact", "-"], "unknown format 'edifact'"),
    (["decode", "-"], "say which format"),
    (["decode", "-f", "iso8583", "--copybook", "x.cpy", "-"], "--copybook contradicts --format iso8583"),
    (["decode", "-f", "json", "--spec", "iso8583_1987_ascii", "-"], "--spec does not apply to --format json"),
    (["decode", "-f", "iso8583", "-"], "--format iso8583 needs --spec"),
    (["decode", "-f", "iso8583", "--spec", "no_such_spec", "-"], "no_such_spec"),
    (["decode", "-f", "fixed", "-"], "--route FILE --name FORMAT"),
    (["decode", "-f", "swift", "--statements", "--message", "mt940", "-"], "--statements"),
    (["decode", "-f", "json", "--framing", "length3", "-"], "--framing 'length3': expected one of"),
    (["encode", "-f", "swift", "--statements", "-"], "--statements is read-only"),
    (["decode", "--route", "nowhere.route", "--name", "X", "-"], "--route nowhere.route: no such file"),
])
def test_usage_errors_exit_2_with_a_clear_message(args: list, message: str) -> None:
    r = bsp(*args, input=b"")
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert r.stdout == ""


def test_copybook_options_contradicting_the_copybook(tmp_path: Path) -> None:
    d = CB / "cobrix_test1_fixed_comp_comp3_redefines_odo"
    r = bsp("decode", "--copybook", d / "copybook.cob", "--segment", "C=COMPANY", d / "input" / "example.bin")
    assert r.exit_code == 2 and "--segment needs --segment-field" in r.stderr
    r = bsp("decode", "--copybook", d / "copybook.cob", "--spec", "iso8583_1987_ascii", d / "input" / "example.bin")
    assert r.exit_code == 2 and "--spec does not apply to --format copybook" in r.stderr


def test_progress_lines_when_asked_on_a_pipe() -> None:
    d = CB / "cobrix_test3_segment_filter_trimming"
    r = bsp("decode", "--copybook", d / "copybook.cob", "--progress", "-q", d / "input" / "TRAN2.AUG31.DATA.dat")
    assert r.exit_code == 0
    assert "100% (" in r.stderr and "10% (" in r.stderr
    quiet = bsp("decode", "--copybook", d / "copybook.cob", "-q", d / "input" / "TRAN2.AUG31.DATA.dat")
    assert quiet.stderr == ""


def test_swift_single_fin_message_round_trips_byte_for_byte(tmp_path: Path) -> None:
    src = SW / "prowide_mt320_mt300_block_xml" / "input" / "SWIFTMT300_0000039099_0002.txt"
    dec = bsp("decode", "-f", "swift", src, "-o", tmp_path / "m.jsonl")
    assert dec.exit_code == 0, dec.stderr
    [msg] = lines((tmp_path / "m.jsonl").read_text())
    assert msg["block2"]["type"] == "300" and len(msg["block4"]) == 15
    enc = bsp("encode", "-f", "swift", tmp_path / "m.jsonl", "-o", tmp_path / "back.txt")
    assert enc.exit_code == 0, enc.stderr
    assert (tmp_path / "back.txt").read_bytes() == src.read_bytes()


PAY_CPY = """\
       01  PAY-REC.
           05  REC-TYPE        PIC X(2).
           05  ACCT-NO         PIC X(10).
           05  AMOUNT          PIC S9(9)V99 COMP-3.
           05  FEE             PIC S9(11)V99 COMP-3.
           05  COUNT-X         PIC 9(4) COMP.
           05  CCY             PIC X(3).
"""


def test_copybook_encode_refuses_a_misspelt_or_missing_amount(tmp_path: Path) -> None:
    cpy = tmp_path / "PAY.cpy"
    cpy.write_text(PAY_CPY)
    typo = b'{"REC_TYPE":"PY","ACCT_NO":"1234567890","AMOUNTT":999.99,"FEE":15.00,"COUNT_X":3,"CCY":"EUR"}\n'
    r = bsp("encode", "--copybook", cpy, "-q", "-", input=typo)
    assert r.exit_code == 1 and r.stdout_bytes == b""
    # the key's column in the JSON line, not "record byte 0": a key the copybook lacks has no place in the record
    col = typo.index(b'"AMOUNTT"')
    assert (f"line 1, column {col + 1} (input byte {col}), field AMOUNTT: no field 'AMOUNTT' in the copybook "
            f"record; did you mean 'AMOUNT'?") in r.stderr, r.stderr
    assert "record byte" not in r.stderr
    assert "fields are: REC_TYPE, ACCT_NO, AMOUNT, FEE, COUNT_X, CCY" in r.stderr
    r = bsp("encode", "--copybook", cpy, "-q", "-", input=b'{"REC_TYPE":"PY"}\n')
    assert r.exit_code == 1 and "field AMOUNT, record byte 12 (output byte 12): numeric field AMOUNT (PIC S9(9)V99 COMP-3) is missing" in r.stderr
    good = typo.replace(b"AMOUNTT", b"AMOUNT")
    r = bsp("encode", "--copybook", cpy, "-q", "-", input=good)
    assert r.exit_code == 0 and len(r.stdout_bytes) == 30


def test_plain_csv_encode_keeps_the_first_rows_columns_and_reports_ragged_rows() -> None:
    rows = b'{"id":"1","amount":"5"}\n{"amount":"6","id":"2"}\n{"id":"3"}\n'
    r = bsp("encode", "-f", "csv", "-q", "-", input=rows)
    assert r.exit_code == 1 and r.stdout_bytes == b"id,amount\n1,5\n2,6\n"
    assert "line 3 (input byte 48), field amount: row has no column 'amount'" in r.stderr


def test_positional_csv_decode_refuses_an_extra_column() -> None:
    route = REPO / "routes" / "receivables_payables" / "receivables_payables.route"
    r = bsp("decode", "--route", route, "--name", "ArApRecord", "-q", "-",
            input=b"B1,8,AR,C001,ACME,DE123,100.00,EUR,2024-01-31,INV 8, part 2\n")
    assert r.exit_code == 1 and r.stdout_bytes == b""
    assert "record 1, byte 0, field invoice: row has 11 columns, the format declares 10" in r.stderr


def test_a_length_prefixed_file_cut_short_says_the_file_ends_inside_a_frame(tmp_path: Path) -> None:
    f = tmp_path / "cut.bin"
    f.write_bytes(b'\x00\x07{"a":1}\x00\x20{"a"')
    r = bsp("decode", "-f", "json", "--framing", "length2", "-q", f)
    assert r.exit_code == 1 and lines(r.stdout) == [{"a": 1}]
    assert "record 2, byte 9: the file ends inside a frame: the length2 prefix at byte 9 claims 32 bytes, 4 remain" \
        in r.stderr
    assert "peer" not in r.stderr and "connection" not in r.stderr


def test_iso8583_field_tagged_pan_and_personal_is_masked_as_personal(tmp_path: Path) -> None:
    # bsp decode --mask takes a field with several tags as the ledger does: the one that shows least
    # (formats.classify.SHOWS_LEAST: personal shows 1 character, pan 10); it used to take pan
    from formats.iso8583 import codec_for
    builtin = REPO / "formats" / "specs" / "iso8583_1987_ascii.yaml"
    text = builtin.read_text()
    pan_line = '2: {name: "Primary account number (PAN)", type: n, length: LL, max: 19, classification: pan}'
    assert pan_line in text
    spec = tmp_path / "two_tags.yaml"
    spec.write_text(text.replace(pan_line, pan_line.replace("classification: pan", "classification: [pan, personal]"))
                    .replace("name: iso8583_1987_ascii", "name: two_tags"))
    raw = codec_for(str(spec)).encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000000100",
                                     "7": "1126100000", "11": "000001", "49": "978"})
    src = tmp_path / "m.dat"
    src.write_bytes(raw)
    r = bsp("decode", "-f", "iso8583", "--spec", spec, "--mask", src)
    assert r.exit_code == 0, r.stderr
    [m] = lines(r.stdout)
    assert m["2"] == "4***" and m["11"] == "000001"


def test_copybook_encode_names_the_field_and_its_record_and_output_bytes(tmp_path: Path) -> None:
    """The byte of a bsp encode error was the JSON line's: now the line (and its input byte), the field,
    and where the field goes in the record and in the output (RDW included)."""
    case = CB / "cobrix_test5_multisegment_rdw_ebcdic"
    good = bsp("decode", "--copybook", case / "copybook.cob", "--record", "rdw", "--rdw-excludes-header", "-q",
               case / "input" / "rdw_big_endian" / "COMP.DETAILS.FEB02.DATA.RDW.BE.dat")
    first = good.stdout.splitlines()[0]
    rec = json.loads(first)
    rec["STATIC_DETAILS"]["COMPANY_NAME"] = "Joan € Z"
    lines = (first + "\n" + json.dumps(rec, ensure_ascii=False) + "\n").encode()
    r = bsp("encode", "--copybook", case / "copybook.cob", "--record", "rdw", "-q", "-", input=lines)
    assert r.exit_code == 1
    # line 1 written: 4 + 64 bytes; line 2's record starts at 68, its RDW 4 bytes, COMPANY_NAME at 15, € at +5
    second = lines.split(b"\n")[1]
    col = second.decode().index('"COMPANY_NAME"')
    assert (f"line 2, column {col + 1} (input byte {len(first) + 1 + len(second.decode()[:col].encode())}), field "
            f"STATIC_DETAILS.COMPANY_NAME, record byte 20 (output byte {68 + 4 + 20}): character '€' (U+20AC) has "
            f"no code in cp037") in r.stderr, r.stderr
    assert "set encoding cp1140" in r.stderr


def test_an_unknown_key_in_a_group_is_named_at_its_line_and_column_in_the_file(tmp_path: Path) -> None:
    """`bsp encode` with a key the copybook lacks said "record byte 0" (the group's start), a place the key
    does not have: now the file, the line and the column of the key in it (the same text earlier on the
    line, as a value, is not taken for it), and no record byte."""
    case = CB / "cobrix_test5_multisegment_rdw_ebcdic"
    good = bsp("decode", "--copybook", case / "copybook.cob", "--record", "rdw", "--rdw-excludes-header", "-q",
               case / "input" / "rdw_big_endian" / "COMP.DETAILS.FEB02.DATA.RDW.BE.dat")
    rec = json.loads(good.stdout.splitlines()[0])
    rec["STATIC_DETAILS"] = {**rec["STATIC_DETAILS"], "COMPANY_NAME": "COLOUR", "COLOUR": "red"}   # a decoy first
    line = json.dumps(rec, ensure_ascii=False)
    src = tmp_path / "company.jsonl"
    src.write_text("\n" + line + "\n", encoding="utf-8")
    r = bsp("encode", "--copybook", case / "copybook.cob", "--record", "rdw", "-q", src)
    assert r.exit_code == 1
    col = line.index('"COLOUR": "red"')
    assert (f"{src}: line 2, column {col + 1} (input byte {1 + len(line[:col].encode())}), field "
            f"STATIC_DETAILS.COLOUR: no field 'COLOUR' in group STATIC_DETAILS") in r.stderr, r.stderr
    assert "record byte" not in r.stderr


@pytest.mark.parametrize("line, path, at", [
    (b'{"A": 1, "COLOUR": "red"}', "COLOUR", (10, 9)),
    ('{"S": {"x": [1, {"q": 2}], "N": "Jo\u20ac", "C": 3}}'.encode(), "S.C", (40, 41)),    # the euro sign: 1 column, 3 bytes
    (b'{"I": [{"a": 1}, {"a": 2, "AMOUNT": 3}]}', "I[1].AMOUNT", (27, 26)),
    (b'{"I": [{"a": 1}, {"a": 2}]}', "I[1]", (18, 17)),
    (b'{"k\\"x": 1, "COLOUR": 2}', "COLOUR", (13, 12)),
    (b'{"A": 1}', "B", None), (b'{"A": 1,', "B", None), (b"not json", "A", None), (b'{"A": 1}', None, None),
    (b'{"A": 1, "fx.rate": "x"}', "fx.rate", (10, 9)),                   # a key holding a dot
    (b'{"a": {"b.c": {"d": 1}}}', "a.b.c.d", (16, 15)),                   # ... inside a path
    (b'{"fx": {"rate": 2}, "fx.rate": 3}', "fx.rate", (9, 8)),            # the nested key first, as before
])
def test_where_a_field_is_in_a_json_line(line: bytes, path: str | None, at: tuple[int, int] | None) -> None:
    from engine.json_where import where
    assert where(line, path) == at


def test_camt053_statements_one_record_each_and_check_balances(tmp_path: Path) -> None:
    """iso20022 --statements: genkgo's multi-statement camt.053 is two records (253, 254), each a document with
    the group header; with --check-balances both add up and 254 opens where 253 closed (27.00). 254's OPBD put
    at 26.00 is told at its <Stmt>, naming both statements and balances."""
    case = MX / "genkgo_camt053_v2_multi_statement"
    xsd, src = case / "xsd" / "camt.053.001.02.xsd", case / "input" / "camt053.v2.multi.statement.xml"
    r = bsp("decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd", xsd, src)
    assert r.exit_code == 0, r.stderr
    assert [[s["Id"] for s in v["BkToCstmrStmt"]["Stmt"]] for v in lines(r.stdout)] == [
        ["253EURNL26VAYB8060476890"], ["254EURNL26VAYB8060476890"]]
    data = src.read_bytes()
    at = data.index(b'<Amt Ccy="EUR">27.00</Amt>', data.index(b"<Id>254"))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(data[:at] + b'<Amt Ccy="EUR">26.00</Amt>' + data[at + 26:])
    assert bsp("decode", "-f", "iso20022", "--statements", "--xsd", xsd, bad).exit_code == 0     # opt-in
    r = bsp("decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd", xsd, bad)
    assert r.exit_code == 1 and len(lines(r.stdout)) == 1
    stmt2 = data.index(b"<Stmt>", data.index(b"</Stmt>"))
    assert (f"record 2, byte {stmt2}: statement 254EURNL26VAYB8060476890 opens with OPBD 26.00 EUR of 2014-12-30, "
            "but the statement before it of this account (253EURNL26VAYB8060476890) closed with CLBD 27.00 EUR of "
            "2014-12-31") in r.stderr
    r = bsp("decode", "-f", "iso20022", "--check-balances", "--xsd", xsd, src)
    assert r.exit_code == 2 and "it needs --statements" in r.stderr
