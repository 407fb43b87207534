"""The services' mainframe copybook records classify their account numbers and names (``classify`` on a
copybook format), and each classified name is a real field of the record: masking a decoded record changes
exactly those fields."""
from __future__ import annotations

import pytest

from dsl.load import compile_paths
from engine.runtime.binder import Binder
from engine.sim.services.catalog import route_files
from engine.sim.services.registry import services_registry
from formats.classify import mask, tags_of

# service -> (copybook format, the fields that hold an account number or a name)
EXPECTED = {
    "account_consolidation": ("StmtBal", {"account"}),
    "bond_cashing": ("BondCashReq", {"holder_acct"}),
    "broker_system": ("BrkXferReq", {"bank_acct", "sec_acct"}),
    "claims_payout": ("ClaimDebit", {"settle_acct"}),
    "customer_service": ("CustEnq", {"account"}),
    "fund_brokerage": ("FundBrkReq", {"cust_acct"}),
    "fund_consolidation": ("SweepReq", {"member_acct"}),
    "fund_management": ("FundTxnReq", {"cust_acct"}),
    "fund_subscription": ("FundSubReq", {"settle_acct"}),
    "insurance_brokerage": ("PremiumReq", {"payer_acct", "payer_name"}),
    "issuance": ("IssueReq", {"investor_acct"}),
    "receivables_payables": ("PostingReq", {"corp_acct", "other_acct", "other_name"}),
    "remittance": ("RemitReq", {"debtor_acct", "debtor_name", "creditor_acct", "creditor_name"}),
    "sales": ("SalesReq", {"cust_acct"}),
    "trade_receiving": ("TradeReq", {"cust_acct"}),
}


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_copybook_records_classify_real_fields(service: str) -> None:
    fmt, fields = EXPECTED[service]
    registry = services_registry()
    res = compile_paths(route_files(service), registry)
    assert res.program is not None, [d.message for d in res.diagnostics]
    codec = Binder(res.program, registry).codec(fmt)
    assert {p for p, t in tags_of(codec).items() if t == "personal"} == fields
    # a record of the layout with every text field filled: masking changes exactly the classified ones
    values = {k: ("ABCDEFGH" if v is None or isinstance(v, str) else v)
              for k, v in codec.decode(codec.encode({})).items()}
    masked = mask(values, tags_of(codec))
    assert {k for k in values if masked[k] != values[k]} == fields
