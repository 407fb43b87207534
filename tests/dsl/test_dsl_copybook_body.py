"""`bsp check` knows a copybook's field tree: a misspelt nested field (E061, did you mean) and a literal
its picture cannot hold (E112) are told at check time.  Until 2026-11-27 both passed the check (it knew
the top-level names only) and failed the exchange when it was encoded, code 96.  The copybooks are the
conformance corpus's (cobrix) and the shipped routes' own; each E112 literal is also refused by the
copybook encoder itself, so the check refuses what the run would refuse, no more."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dsl.load import compile_source
from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError

CORPUS = Path("/work/shared/corpus/copybook")
REPO = Path(__file__).resolve().parents[2]
T1 = CORPUS / "cobrix_test1_fixed_comp_comp3_redefines_odo" / "copybook.cob"
T7 = CORPUS / "cobrix_test7_fillers" / "copybook.cob"
T21 = CORPUS / "cobrix_test21_nested_occurs_depending_on" / "copybook.cob"
MF_RSP = REPO / "routes" / "common" / "copybooks" / "MF-RSP.cpy"
FUNDTXN = REPO / "routes" / "fund_management" / "copybooks" / "FUNDTXN-REQ.cpy"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="the conformance corpus is not here")


def _route(cpy: Path, body: str, names: str = "keep") -> str:
    return ('channel front = memory\nformat Req = json\n'
            f'format Cb = copybook "{cpy}" encoding cp037 names {names}\n'
            'route r {\n    receive from front as Req\n'
            f'    reply Cb {{ {body} }}\n}}\n')            # the body is on line 6, from col 16


def _diags(tmp_path, registry, src):
    r = compile_source(src, registry, tmp_path / "main.route")
    return [d for d in r.diagnostics if d.severity == "error"]


def test_a_misspelt_nested_field_is_e061_at_the_target_with_did_you_mean(tmp_path, registry):
    src = _route(T1, 'COMPANY.SHORT_NAM = "ACME"')
    [d] = _diags(tmp_path, registry, src)
    assert d.code == "E061"
    assert d.message == "format `Cb`: group `COMPANY` has no field `SHORT_NAM`"
    assert d.help == "did you mean `COMPANY.SHORT_NAME`?"
    assert (d.pos.line, d.pos.col, d.pos.end_col) == (6, 16, 33)
    # deeper, and the lower-case names of the shipped answer record
    [d] = _diags(tmp_path, registry, _route(T1, 'METADATA.ACCOUNT.ACCOUNT_DETAIL[0].ACOUNT_NUMBER = msg.a'))
    assert d.code == "E061" and "ACCOUNT_NUMBER" in d.help
    # a table written without its index, an elementary item given a field
    [d] = _diags(tmp_path, registry, _route(T1, 'METADATA.ACCOUNT.ACCOUNT_DETAIL.ACCOUNT_NUMBER = msg.a'))
    assert d.code == "E061" and d.help == "index it: `METADATA.ACCOUNT.ACCOUNT_DETAIL[0].ACCOUNT_NUMBER`"
    [d] = _diags(tmp_path, registry, _route(MF_RSP, 'resp_code.x = "00"', names="lower"))
    assert d.code == "E061" and "elementary item (PIC X(2))" in d.message


# (copybook, names, body line, message, help, the value the encoder refuses at run time)
MISFITS = [
    (MF_RSP, "lower", 'resp_code = "000"',
     'field `resp_code` (PIC X(2)) cannot hold "000": 3 characters, the field holds 2',
     'write at most 2 characters (`resp_code = "00"`), or widen the PIC in the copybook', {"resp_code": "000"}),
    (T7, "keep", 'COMPANY_NAME = "ACME TRADING COMPANY LTD"',
     'field `COMPANY_NAME` (PIC X(9)) cannot hold "ACME TRADING COMPANY LTD": 24 characters, the field holds 9',
     None, {"COMPANY_NAME": "ACME TRADING COMPANY LTD"}),
    (MF_RSP, "lower", "amount = 1.555",
     "field `amount` (PIC S9(13)V99 COMP-3) cannot hold 1.555: the picture has 2 decimal places (V), the value has 3",
     "round it to 2 places: `amount = 1.56` (or round(...) in an expression)", {"amount": Decimal("1.555")}),
    (T1, "keep", 'COMPANY.COMPANY_ID_NUM = "abc"',
     'field `COMPANY.COMPANY_ID_NUM` (PIC 9(5) COMP-3) cannot hold "abc": a COMP-3 numeric field holds a number, '
     "not text", None, {"COMPANY": {"COMPANY_ID_NUM": "abc"}}),
    (T21, "keep", "GROUP[0].INNER_COUNT = 7",
     "field `GROUP[0].INNER_COUNT` counts table `INNER_GROUP` (OCCURS 0 TO 3 DEPENDING ON INNER-COUNT): "
     "7 elements do not fit", None, {"COUNT": 1, "GROUP": [{"INNER_COUNT": 7}]}),
    (T1, "keep", "METADATA.ACCOUNT.ACCOUNT_DETAIL[0].ACCOUNT_TYPE_N = -1",
     "field `METADATA.ACCOUNT.ACCOUNT_DETAIL[0].ACCOUNT_TYPE_N` (PIC 9(5) COMP-3) cannot hold -1: the picture "
     "has no S, so it holds no sign", None,
     {"METADATA": {"ACCOUNT": {"ACCOUNT_DETAIL": [{"ACCOUNT_TYPE_N": -1, "ACCOUNT_NUMBER": "1"}]}}}),
]


@pytest.mark.parametrize("cpy,names,line,message,help_,values", MISFITS,
                         ids=["x2", "x9", "scale", "comp3-text", "odo-count", "unsigned"])
def test_a_literal_the_picture_cannot_hold_is_e112_at_the_literal(tmp_path, registry, cpy, names, line,
                                                                  message, help_, values):
    src = _route(cpy, line, names)
    [d] = _diags(tmp_path, registry, src)
    assert d.code == "E112"
    assert d.message == f"format `Cb`: {message}"
    assert (d.pos.line, d.pos.col) == (6, 16 + line.index("= ") + 2)
    if help_ is not None:
        assert d.help == help_
    assert d.help
    # the run would refuse it too (code 96): the check tells no more than the encoder
    codec = CopybookCodec.from_file(cpy, CopybookOptions(names=names, missing_numbers="zero"))
    with pytest.raises(FormatError):
        codec.encode(values)


def test_what_fits_and_what_is_known_at_run_time_only_passes(tmp_path, registry):
    ok = [
        (MF_RSP, "lower", 'resp_code = "00"  amount = -1.55  message_text = msg.text  trace_no = 12'),
        (T1, "keep", 'COMPANY.SHORT_NAME = "ACME"  METADATA.NUMBER_OF_ACCTS = 1 '
                     'METADATA.ACCOUNT.ACCOUNT_DETAIL[0].ACCOUNT_NUMBER = msg.acct  COMPANY.COMPANY_ID_NUM = msg.id'),
        (T21, "keep", 'COUNT = 2  GROUP[1].INNER_COUNT = 3  GROUP[1].INNER_GROUP[2].FIELD = "A"'),
        (FUNDTXN, "keep", 'SUBSCRIPTION = true  TRACE_NO = msg.ref  AMOUNT = 10.50'),   # a level-88 name
    ]
    for cpy, names, body in ok:
        assert _diags(tmp_path, registry, _route(cpy, body, names)) == [], body


def test_a_level_88_name_inside_a_group_is_a_field(tmp_path, registry):
    cpy = tmp_path / "ACK.cpy"
    cpy.write_text("       01  ACK.\n           05  HDR.\n               10  RESP-CODE  PIC X(2).\n"
                   "                   88  RESP-OK  VALUE '00'.\n               10  REF  PIC X(8).\n")
    assert _diags(tmp_path, registry, _route(cpy, "HDR.RESP_OK = true  HDR.REF = msg.ref")) == []
    [d] = _diags(tmp_path, registry, _route(cpy, "HDR.RESP_KO = true"))
    assert d.code == "E061" and d.help == "did you mean `HDR.RESP_OK`?"


def test_an_index_past_a_table_end_is_e112(tmp_path, registry):
    [d] = _diags(tmp_path, registry, _route(T21, 'GROUP[2].INNER_COUNT = msg.n'))
    assert d.code == "E112"
    assert d.message == ("format `Cb`: `GROUP[2]` is past the end of table `GROUP` (OCCURS 0 TO 2): "
                         "it holds 2 elements")
    assert (d.pos.line, d.pos.col) == (6, 16)


def _leaves(v, parts=()):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, parts + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _leaves(x, parts + (i,))
    else:
        yield parts, v


@pytest.mark.parametrize("case", ["cobrix_test1_fixed_comp_comp3_redefines_odo", "cobrix_test6_type_variety",
                                  "cobrix_test19_display_numerics"])
def test_every_value_the_corpus_records_decode_to_passes_the_check(case):
    """No false alarm: each value a real record decodes to, written back as a literal at its path, fits
    (19,464 values over the three cases; COMP-1/2 floats are no route literal and are left out)."""
    from formats.copybook.bodycheck import BodyCheck
    d = CORPUS / case
    codec = CopybookCodec.from_file(d / "copybook.cob", CopybookOptions(invalid="null"))
    check = BodyCheck(codec)
    data = next((d / "input").iterdir()).read_bytes()
    seen, refused = 0, []
    for _no, _off, rec in codec.iter_records(data):
        assert isinstance(rec, dict), rec
        for parts, v in _leaves(rec):
            if v is None or isinstance(v, float):
                continue
            seen += 1
            got = check(parts, v)
            if got is not None:
                refused.append((parts, v, got.message))
    assert seen > 40 and refused == [], refused[:5]
