"""Lowering bill_payment.route to the IR the engine runs."""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from dsl import ir
from dsl.load import compile_paths

from dslkit import BILL_PAYMENT


def test_program_of_bill_payment(registry):
    p = compile_paths([BILL_PAYMENT], registry).program
    src = BILL_PAYMENT.read_text()
    h = hashlib.sha256()
    h.update(str(BILL_PAYMENT.resolve()).encode() + b"\0" + src.encode() + b"\0")
    assert p.version == h.hexdigest()[:16]
    assert p.sources == {str(BILL_PAYMENT.resolve()): src}
    mf = p.channels["mainframe"]
    assert (mf.kind, mf.options["address"], mf.options["framing"], mf.options["max_frame"]) == \
        ("tcp.listen", "127.0.0.1:7001", "length2", 4096)
    assert p.channels["biller"].options["timeout"] == Decimal(3)
    er = mf.error_reply
    assert er.kind == "reply" and er.options["format"] == "BillPayRsp"
    assert [a.path for a in er.options["fields"]] == ["trace_no", "resp_code", "message"]
    assert p.tables["billers"].path == str(BILL_PAYMENT.with_name("billers.csv").resolve())
    assert p.tables["billers"].key == "biller_id"
    req = p.formats["BillPayReq"]
    amount = next(f for f in req.fields if f.name == "amount")
    assert (amount.type, amount.width, amount.scale) == ("decimal", 12, 2)
    vd = next(f for f in req.fields if f.name == "value_date")
    assert (vd.type, vd.width, vd.pattern) == ("date", 8, "%Y%m%d")

    pay, enquiry = p.routes
    assert [r.name for r in p.routes_for("mainframe")] == ["bill_payment", "bill_enquiry"]
    assert (pay.channel, pay.format) == ("mainframe", "BillPayReq")
    assert isinstance(pay.when, ir.Binary)
    assert [s.kind for s in pay.steps] == ["validate", "deal", "call", "reply"]
    rules = pay.steps[0].options["rules"]
    assert [(r.code, r.text) for r in rules][:4] == [("30", "reference (trace_no) missing"),
                                                    ("30", "value date (value_date) missing"),
                                                    ("13", "invalid amount"),
                                                    ("61", "amount over the single-payment limit")]
    deal = pay.steps[1]
    assert deal.options["type"] == "BILL_PAYMENT"
    call = pay.steps[2]
    assert call.name == "post"
    assert {k: v for k, v in call.options.items() if k not in ("fields", "expect")} == \
        {"channel": "biller", "format": "BillerPost", "reply_format": "BillerAck", "timeout": None}
    assert [s.kind for s in pay.on_error] == ["reply"]
    assert enquiry.steps[0].kind == "let" and enquiry.steps[0].name == "fee"
    # the whole program is JSON-dumpable
    text = json.dumps(p.to_json())
    assert '"node": "Binary"' in text and "sources" not in p.to_json()
