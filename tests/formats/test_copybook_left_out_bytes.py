"""What the encoder writes for a field a body leaves out, and which expression keeps those bytes: W015's
help (`FIELD = null`) and the shipped routes' new `= null` lines rest on it.  A left-out PIC X is
LOW-VALUES (X'00') with low_values_null (the default), else spaces; null writes the very same bytes; ""
writes spaces.  A left-out DISPLAY number is spaces whatever low_values_null says (never X'00')."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dsl import ir
from dsl.compiler import compile_expr
from formats.copybook import CopybookCodec, CopybookOptions

REPO = Path(__file__).resolve().parents[2]
CP037 = CopybookOptions(encoding="cp037", names="lower")

# (shipped copybook, the field a shipped route's call now sets to null, the values the route does set)
SHIPPED = [
    ("claims_payout/copybooks/CLMPAY-REQ.cpy", "orig_host_ref", {"txn_code": "CP01", "trace_no": "CLM1"}),
    ("customer_service/copybooks/CUST-ENQ.cpy", "deal_ref", {"txn_code": "CS01", "currency": "CNY"}),
    ("customer_service/copybooks/CUST-ENQ.cpy", "currency", {"txn_code": "CS02", "deal_ref": "D1"}),
    ("receivables_payables/copybooks/POSTING-REQ.cpy", "invoice_ref", {"txn_code": "RP02", "trace_no": "T1"}),
]


def _codec(rel: str, opts: CopybookOptions = CP037) -> CopybookCodec:
    return CopybookCodec.from_file(REPO / "routes" / rel, opts)


@pytest.mark.parametrize("rel, field, values", SHIPPED, ids=[f"{r.split('/')[0]}.{f}" for r, f, _ in SHIPPED])
def test_null_sends_the_bytes_a_left_out_field_sent(rel, field, values):
    codec = _codec(rel)
    before = codec.encode(values)
    after = codec.encode({**values, field: None})
    assert after == before
    node = codec.layout.find(field)
    assert before[node.offset:node.offset + node.size] == bytes(node.size)      # LOW-VALUES
    # "" would change them: spaces (cp037 X'40')
    spaced = codec.encode({**values, field: ""})
    assert spaced[node.offset:node.offset + node.size] == b"\x40" * node.size
    assert spaced[:node.offset] + spaced[node.offset + node.size:] == before[:node.offset] + before[node.offset + node.size:]


def test_the_route_languages_null_is_none_in_the_body():
    assert compile_expr(ir.Lit(None, "null"))({}) is None


def test_fund_consolidation_pool_post_null_is_the_same_bytes():
    import re
    src = (REPO / "routes" / "fund_consolidation" / "fund_consolidation.route").read_text()
    cpy = re.search(r'format PoolPost\s*=\s*copybook "([^"]+)"', src).group(1)
    codec = _codec(f"fund_consolidation/{cpy}")
    values = {"txn_code": "FP01", "amount": Decimal("1.00")}
    assert codec.encode({**values, "orig_host_ref": None}) == codec.encode(values)


CPY = """\
       01  R.
           05  TEXT      PIC X(4).
           05  NUM       PIC 9(4).
           05  SNUM      PIC S9(3)V99.
"""


@pytest.mark.parametrize("low", [True, False])
def test_a_left_out_display_number_is_spaces_never_low_values(low):
    codec = CopybookCodec.from_text(CPY, CopybookOptions(low_values_null=low))
    raw = codec.encode({})
    assert raw[4:13] == b"\x40" * 9                                # spaces in NUM and SNUM
    assert raw[:4] == (bytes(4) if low else b"\x40" * 4)          # TEXT: LOW-VALUES, or spaces
    assert codec.encode({"NUM": None, "SNUM": None, "TEXT": None}) == raw
    assert codec.encode({"NUM": 0, "SNUM": 0})[4:13] == b"\xf0" * 8 + b"\xc0"
    assert codec.decode(raw)["NUM"] is None                        # round trip: no number invented
