"""The MT940 statement route keeps the account number (field 25) out of the ledger in clear, and the
counterparty's name and IBAN of a structured German :86: (``details``, formats.swift.details86) too.

The account is classified personal in format Mt940 (``block4.tag=25.value``: field 25 only, so the
reference and balances stay readable), and the deal's party and key hold the account's bank and
member number from the accounts table, not the account.  The statements run end to end on loopback
(route, mainframe simulator) into a real ledger file, whose bytes are then searched.
"""
from __future__ import annotations

import json
import random

import duckdb

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services.account_consolidation import ACCOUNTS, PAYERS, SERVICES
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry

MT940 = next(s for s in SERVICES if s.request_format == "Mt940")


async def test_mt940_deals_keep_no_account_number_in_clear(tmp_path) -> None:
    registry = services_registry()
    program = compile_paths(route_files("account_consolidation"), registry).program
    path = tmp_path / "ledger.duckdb"
    kinds = ["good"] * 10
    async with open_ledger(path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [MT940]) as rig:
            result = await rig.load(MT940, total=len(kinds), kinds=kinds, deadline=15)
    assert [o.code for o in result.outcomes] == ["00"] * len(kinds)
    sent = {MT940.make("good", n, random.Random(f"{MT940.name}:x")).values["block4"][1]["value"].strip()
            for n in range(1, 4)} | set(ACCOUNTS)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT request, party, reference FROM deals WHERE deal_type = 'STATEMENT_MT940'"
                           ).fetchall()
        keys = [k for (k,) in con.execute("SELECT key FROM deal_keys").fetchall()]
    finally:
        con.close()
    assert len(rows) == len(kinds) and len(keys) == len(kinds)
    for request, party, reference in rows:
        assert reference.startswith("AS")                       # field 20 stays readable
        assert party in {"VAYBNL2A", "COBADEFF", "NWBKGB2L", "HSBCHKHH", "CHASUS33"}
        assert not any(a in request for a in sent), request     # field 25 masked in the stored request
        fields = {f["tag"]: f["value"] for f in json.loads(request)["block4"]}
        assert fields["25"][1:] == "***" and fields["20"] == reference
    assert all(k.startswith("statement_mt940|M0") for k in keys), keys          # the member number
    data = path.read_bytes()
    assert not [a for a in sent if a.encode() in data]
    # the structured :86: breakdown: names and IBANs masked, the GVC, BIC and end-to-end reference readable
    payers = {x for name, iban, _ in PAYERS for x in (name, iban)}
    assert not [p for p in payers if p.encode() in data]
    details = [f["details"] for request, _, _ in rows for f in json.loads(request)["block4"] if "details" in f]
    assert len(details) == len(kinds)
    for d in details:
        assert d["applicant_name"][1:] == "***" and d["applicant_iban"][1:] == "***" and d["purpose"][1:] == "***"
        assert d["transaction_code"] == "166" and d["end_to_end_reference"].startswith("INV")
        assert d["applicant_bin"] in {bic for _, _, bic in PAYERS}
