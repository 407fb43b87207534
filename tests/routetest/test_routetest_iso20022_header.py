"""A route that sends an ISO 20022 message with its Business Application Header (head.001), tested
as an analyst would (``bsp test``): the header built from route values, the Document's version
taken from the header's MsgDefIdr (no XSD here)."""
from __future__ import annotations

from pathlib import Path

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''
format Req = json
format Mx  = iso20022 pacs.002 validate false header "head.001.001.01" envelope "BizMsg"
channel api = memory
channel out = memory
route r {
    receive from api as Req
    call c = out as Mx reply Req {
        AppHdr.Fr.FIId.FinInstnId.BICFI = "BANKCNBJXXX"
        AppHdr.To.FIId.FinInstnId.BICFI = "BANKUS33XXX"
        AppHdr.BizMsgIdr                = msg.id
        AppHdr.MsgDefIdr                = "pacs.002.001.11"
        AppHdr.CreDt                    = now()
        FIToFIPmtStsRpt.GrpHdr.MsgId    = msg.id
        FIToFIPmtStsRpt.GrpHdr.CreDtTm  = now()
    }
    reply Req { ok = true }
}

test "a status report leaves with its business header" {
    given api sends Req { id = "M-1" }
    given out answers Req { }
    expect call out { AppHdr.BizMsgIdr = "M-1"  AppHdr.MsgDefIdr = "pacs.002.001.11"  FIToFIPmtStsRpt.GrpHdr.MsgId = "M-1" }
    expect reply { ok = true }
}
'''


def test_status_report_leaves_with_its_business_header(tmp_path: Path) -> None:
    (tmp_path / "mx.route").write_text(ROUTE)
    result = run_paths([tmp_path], default_registry())
    assert [o.name for o in result.outcomes] == ["a status report leaves with its business header"]
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]


def test_a_header_for_another_message_fails_the_deal_with_the_reason(tmp_path: Path) -> None:
    bad = ROUTE.replace('AppHdr.MsgDefIdr                = "pacs.002.001.11"',
                        'AppHdr.MsgDefIdr                = "pacs.008.001.08"')
    assert bad != ROUTE
    (tmp_path / "mx.route").write_text(bad)
    (outcome,) = run_paths([tmp_path], default_registry()).outcomes
    assert not outcome.passed
    assert "field AppHdr.MsgDefIdr: MsgDefIdr is 'pacs.008.001.08' but the format writes a pacs.002" \
        in outcome.failures[0], outcome.failures
