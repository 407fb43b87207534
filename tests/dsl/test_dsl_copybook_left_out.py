"""W015: a call body in a copybook format that leaves out a PIC X or DISPLAY-number field.  The encoder
writes a left-out PIC X as LOW-VALUES (X'00', low_values_null on: the default) and a left-out PIC 9
DISPLAY as spaces; a host program reading either where it expects digits abends (S0C7) or misreads.
Until 2026-11-27 nothing told: the shipped claims payout debit sent ORIG-HOST-REF as X'00' unsaid."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths, compile_source
from engine.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
CPY = """\
       01  REQ.
           05  TXN-CODE          PIC X(4).
           05  REF               PIC X(8).
           05  COUNT-DATE        PIC 9(8).
           05  AMOUNT            PIC S9(9)V99 COMP-3.
           05  FILLER            PIC X(4).
           05  STATUS-FLAG       PIC X.
               88  IS-NEW        VALUE 'N'.
               88  IS-OLD        VALUE 'O'.
           05  HDR.
               10  BRANCH        PIC X(4).
               10  TELLER        PIC X(4).
           05  ALT-A             PIC X(6).
           05  ALT-B REDEFINES ALT-A.
               10  ALT-B1        PIC X(3).
               10  ALT-B2        PIC X(3).
           05  N-LINES           PIC 9(2).
           05  LINES OCCURS 0 TO 3 DEPENDING ON N-LINES.
               10  LINE-ID       PIC X(4).
               10  LINE-AMT      PIC 9(5).
           05  CODES             PIC X(2) OCCURS 3.
"""
FULL = ('TXN_CODE = "T001"  REF = "R1"  COUNT_DATE = 20261127  AMOUNT = 1  IS_NEW = true  '
        'HDR = msg.hdr  ALT_A = "X"  CODES = msg.codes')


def _src(body: str, step: str = "call") -> str:
    head = ('channel front = memory\nchannel host = tcp connect { address = "127.0.0.1:1" }\n'
            'format Req = json\nformat Cb = copybook "req.cpy"\n'
            'route r {\n    receive from front as Req\n')          # 6 lines
    if step == "call":
        return head + f'    call h = host as Cb {{ {body} }}\n    reply Req {{ code = "00" }}\n}}\n'
    return head + f'    reply Cb {{ {body} }}\n}}\n'


def _w015(tmp_path, registry, body: str, step: str = "call"):
    (tmp_path / "req.cpy").write_text(CPY)
    r = compile_source(_src(body, step), registry, tmp_path / "main.route")
    assert not [d for d in r.diagnostics if d.severity == "error"], r.diagnostics
    return [d for d in r.diagnostics if d.code == "W015"]


def test_a_left_out_text_field_is_w015_at_the_calls_format_with_the_way_to_send_it_empty(tmp_path, registry):
    [d] = _w015(tmp_path, registry, FULL.replace('REF = "R1"  ', ""))
    assert d.severity == "warning"
    assert d.message == ("the call body in copybook format `Cb` leaves out `REF` (PIC X(8)): the host gets "
                         "LOW-VALUES there")
    assert d.help == ('set each field the host reads; to send one empty on purpose, say so: `REF = null` sends '
                      'the bytes sent now (LOW-VALUES), `= ""` writes spaces into a PIC X field')
    assert (d.pos.line, d.pos.col) == (7, 22)


def test_a_left_out_display_number_says_the_host_abends(tmp_path, registry):
    [d] = _w015(tmp_path, registry, FULL.replace("COUNT_DATE = 20261127  ", ""))
    assert d.message.endswith("`COUNT_DATE` (PIC 9(8)): the host gets spaces there; spaces in a DISPLAY number "
                              "(PIC 9) make the host program abend (S0C7) or misread it")
    assert d.help.endswith("(spaces), `= 0` writes zeros into a PIC 9 field")


def test_a_body_that_sets_every_field_or_says_null_or_empty_is_not_told(tmp_path, registry):
    assert _w015(tmp_path, registry, FULL) == []
    assert _w015(tmp_path, registry, FULL.replace('REF = "R1"', "REF = null")) == []
    assert _w015(tmp_path, registry, FULL.replace('REF = "R1"', 'REF = ""')) == []


def test_what_is_not_told(tmp_path, registry):
    # a COMP-3 number (missing_numbers' business), a FILLER, the ODO counter and its table with no
    # element, an untouched REDEFINES set: no warning
    assert _w015(tmp_path, registry, FULL.replace("AMOUNT = 1  ", "").replace('ALT_A = "X"  ', "")) == []
    # a field whose level-88 name the body sets; a group set whole; an elementary fixed table set whole
    assert _w015(tmp_path, registry, FULL.replace("IS_NEW = true", "IS_OLD = msg.old")) == []
    # a reply body: not a call to a host
    assert _w015(tmp_path, registry, FULL.replace('REF = "R1"  ', ""), step="reply") == []


def test_groups_tables_and_redefines_members_are_walked(tmp_path, registry):
    body = FULL.replace("HDR = msg.hdr", 'HDR.BRANCH = "B1"').replace('ALT_A = "X"', 'ALT_B.ALT_B1 = "A"') \
        .replace("CODES = msg.codes", 'CODES[1] = "C"') + '  LINES[1].LINE_ID = "L2"'
    [d] = _w015(tmp_path, registry, body)
    assert "`HDR.TELLER` (PIC X(4))" in d.message
    assert "`ALT_B.ALT_B2` (PIC X(3))" in d.message
    assert "`CODES[0]` (OCCURS 3, PIC X(2))" in d.message and "`CODES[2]` (OCCURS 3, PIC X(2))" in d.message
    # ODO: elements up to the last one given are written (LINES[0] whole, LINES[1].LINE_AMT); none past it
    assert "`LINES[0]` (OCCURS 3)" in d.message and "`LINES[1].LINE_AMT` (PIC 9(5))" in d.message
    assert "LINES[2]" not in d.message and "N_LINES" not in d.message
    # six are shown; a level-88 field none of whose names is set is told too
    [d] = _w015(tmp_path, registry, body.replace("IS_NEW = true  ", ""))
    assert "`STATUS_FLAG` (PIC X)" in d.message and d.message.count("`") == 2 + 12 and " and 1 more:" in d.message


def test_the_shipped_routes_set_every_field_they_send():
    """`bsp check routes/` stays at 0 warnings: claims payout / fund consolidation orig_host_ref, customer
    service deal_ref and currency, receivables/payables invoice_ref are now set to null on purpose."""
    routes = [p for p in sorted((REPO / "routes").glob("*/*.route")) if not p.name.endswith("_test.route")]
    r = compile_paths(routes, default_registry(plugins=False))
    assert not [d for d in r.diagnostics if d.severity == "error"]
    assert [d for d in r.diagnostics if d.code == "W015"] == []
