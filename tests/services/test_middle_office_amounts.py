"""routes/middle_office: an exception case moves no money (docs/services/middle_office.md, "The amounts").

Over real sockets (the service's routes, its counterpart simulators, a DuckDB ledger): a case opened
for 1,000,000.00 USD in dispute sends that amount to the case system and keeps it in the deal's
request, but the deal's amount is 0, so the daily summary's committed USD is 0 and `bsp reconcile`
(which reads committed deals of amount other than 0) has nothing to seek.  Until 2026-11-27 the case's
amount was the deal's and was summed as committed USD.

The deal key's fingerprint (docs/transactions.md#a-repeat-that-is-another-deal-key_conflict) is the
deal's amount, currency and party: with amount 0, a repeat naming another amount in dispute is answered
with the first answer (one case); a repeat in another currency is still a key conflict (12).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import orjson

from engine.ledger import open_ledger
from engine.reconcile.ledger_side import committed_deals
from engine.reports import daily_summary
from engine.reports.source import period
from engine.sim.services import middle_office
from engine.sim.services.harness import running_services
from tests.services.test_deal_keys import _exchange, _program

SERVICE = middle_office.SERVICE


def _case(request_id: str, **over: object) -> dict:
    values = {"type": "EXCEPTION", "request_id": request_id, "reason": "SETTLEMENT_FAIL",
              "deal_ref": "FX2026112700001", "amount": Decimal("1000000.00"), "currency": "USD",
              "counterparty": "BANK OF NOWHERE", "user": "ops1", "note": "SSI missing"}
    values.update(over)
    return values


async def _send(tmp_path, cases: list[dict]) -> tuple[list[dict], list[dict]]:
    program, registry = _program(SERVICE.name)
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [SERVICE]) as rig:
            codec = rig.switchboard.ctx.codec(SERVICE.request_format)
            replies = await _exchange(rig.port(SERVICE.inbound), SERVICE.framing, [codec.encode(c) for c in cases])
            opened = list(rig.sims["mo_cases"].seen)
    return [orjson.loads(r) for r in replies], opened


def _deals(tmp_path) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True)
    try:
        return con.execute("SELECT deal_type, status, response_code, amount, currency, CAST(request AS VARCHAR) "
                           "FROM deals ORDER BY received_at, deal_id").fetchall()
    finally:
        con.close()


async def test_an_exception_case_keeps_its_amount_in_the_case_not_in_the_committed_totals(tmp_path):
    replies, opened = await _send(tmp_path, [_case("MO0000000000A1G")])
    assert replies[0]["code"] == "00", replies
    assert [Decimal(str(c["amount"])) for c in opened] == [Decimal("1000000.00")]     # the case system has it
    (typ, status, code, amount, ccy, request), = _deals(tmp_path)
    assert (typ, status, code, ccy) == ("EXCEPTION_CASE", "committed", "00", "USD")
    assert amount == 0, f"a case moves no money, yet its deal's amount is {amount}"
    assert Decimal(str(orjson.loads(request)["amount"])) == Decimal("1000000.00")    # visible in the deal
    today = dt.datetime.now(dt.timezone.utc).date()
    when = period(today - dt.timedelta(days=1), today + dt.timedelta(days=1))
    report = daily_summary.build(tmp_path / "ledger.duckdb", when)
    totals = {r[0]: r for r in next(t for t in report.tables if t.name == "totals").rows}
    assert totals["USD"][2] == 1 and totals["USD"][6] == 0, totals       # one committed deal, 0.00 committed USD
    assert committed_deals(tmp_path / "ledger.duckdb", when.first, when.last) == []    # nothing to reconcile


async def test_a_repeated_case_with_another_amount_gets_the_first_answer_another_currency_is_refused(tmp_path):
    first = _case("MO0000000000A2G")
    replies, opened = await _send(tmp_path, [first, _case("MO0000000000A2G", amount=Decimal("999.00")),
                                             _case("MO0000000000A2G", currency="EUR")])
    assert replies[1] == replies[0] and replies[0]["code"] == "00", replies
    assert replies[2]["code"] == "12", replies                         # key conflict: currency differs
    assert len(opened) == 1                                            # one case, with the first amount
    assert [(d[1], d[2]) for d in _deals(tmp_path)] == [("committed", "00"), ("duplicate", "00"), ("rejected", "12")]
