"""The shipped routes' deal keys, end to end on loopback: every route that moves money or books
something at a counterpart declares a deal key (docs/transactions.md#idempotency), so a request the
mainframe (or partner) sends again gets the original answer and the counterpart is called once.

A route test can send its request again (`given ... sends ... twice`, docs/testing.md) on the isolated
engine; these tests drive the real engine over real sockets, for every keyed route: the service's
routes, its counterpart simulators, a DuckDB ledger and its transaction log, as
tests/services/test_services_e2e.py does.  For each keyed route:
the same request twice, one after the other on one connection -> the same reply bytes, code 00,
exactly one call to the counterpart, and in the ledger one committed deal plus one ``duplicate``
deal naming it (same response code, reason "original answer repeated"); the key logged with the
original's ``accepted`` event is the one the route's comment and docs/services/<service>.md give.

Every test runs on the engine's clock started at AT (dsl.clock.engine_clock, what ``bsp run --at`` does),
as tests/services/test_services_e2e.py does: the simulators date fund orders and remittances by it and the
routes reckon them on calendars that list given years only, so on the wall clock the fund and remittance
cases failed (96) from the first day of a year cn_exchange.csv or cny_holidays.csv does not list.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import duckdb
import httpx
import orjson
import pytest
import trio

from dsl.clock import engine_clock, parse_instant
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.biller import BillerSim
from engine.sim.mainframe import MainframeSim
from engine.sim.services import (account_consolidation, bond_cashing, broker_system, card_payments, claims_payout,
                                 customer_service, customs_duty, fund_brokerage, fund_consolidation, fund_management, fund_subscription,
                                 insurance_brokerage, issuance, middle_office, premium_collection, receivables_payables,
                                 remittance, sales, standing_orders, trade_receiving)
from engine.sim.services.catalog import ROUTES_DIR, route_files
from engine.sim.services.harness import running_services
from engine.sim.services.model import Service, run_tag
from engine.sim.services.registry import services_registry
from formats.framing import make_framer

AC_MT940, AC_CAMT = account_consolidation.SERVICES
AT = parse_instant("2026-11-25T02:00:00Z")[0]     # a Wednesday: 10:00 in Shanghai, 03:00 in Berlin


@pytest.fixture(autouse=True)
def _engine_clock_at():
    """The engine's clock (and the simulators' dates) at AT, whatever the wall clock's date."""
    with engine_clock(AT):
        yield


def _t(v: Any) -> str:
    return str(v).strip()


def _cover(values: Any) -> bool:
    """An FC01 request route pool_cover takes: downward, from a pool whose header account is held here."""
    return values["direction"] == "D" and values["pool_id"] in ("POOL0001", "POOL0002", "POOL0003")


def _account(account: str, column: str = "bank") -> str:
    """A column of the account's row in the route's accounts table (the keys of both statement routes
    hold the account's member number, never the account number, which is classified personal)."""
    import csv
    with open(ROUTES_DIR / "account_consolidation" / "accounts.csv", newline="", encoding="utf-8") as fh:
        return next(r[column] for r in csv.DictReader(fh) if r["account"] == account)




# route -> (service, which generated requests it takes, the key the route must log for them)
KEYED: dict[str, tuple[Service, Callable[[Any], bool], Callable[[Any], str]]] = {
    "fund_subscription": (fund_management.SERVICE, lambda v: v["txn_code"] == "FS01",
                          lambda v: f"{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_redemption": (fund_management.SERVICE, lambda v: v["txn_code"] == "FR01",
                        lambda v: f"{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_switch": (fund_management.SERVICE, lambda v: v["txn_code"] == "FW01",
                    lambda v: f"{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_cancel": (fund_management.SERVICE, lambda v: v["txn_code"] == "FX01",
                    lambda v: f"{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_dividend_cash": (fund_management.SERVICE, lambda v: v["txn_code"] == "FD01",
                           lambda v: f"{v['fund_code']}/{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_dividend_reinvest": (fund_management.SERVICE, lambda v: v["txn_code"] == "FD02",
                               lambda v: f"{v['fund_code']}/{_t(v['trace_no'])}/{v['trade_date']}"),
    "fund_brokerage_order": (fund_brokerage.SERVICE, lambda v: True,
                             lambda v: f"{v['fund_co']}/{_t(v['trace_no'])}/{v['order_date']}"),
    "settled_subscription": (fund_subscription.SERVICE, lambda v: True,
                             lambda v: f"{_t(v['trace_no'])}/{v['trade_date']}"),
    "claim_payout": (claims_payout.SERVICE, lambda v: True, lambda v: _t(v["claim_id"])),
    "premium_collection": (insurance_brokerage.SERVICE, lambda v: v["txn_code"] == "IP01",
                           lambda v: f"{v['insurer']}/{_t(v['policy_no'])}/{_t(v['trace_no'])}/{v['due_date']}"),
    # a cooling-off cancellation: one per policy, whatever trace number carries it
    "cooling_off_cancel": (insurance_brokerage.SERVICE, lambda v: v["txn_code"] == "IP02",
                           lambda v: f"{v['insurer']}/{_t(v['policy_no'])}"),
    "premium_notice": (premium_collection.SERVICE, lambda v: True, lambda v: f"{v['policy_no']}/{v['due_date']}"),
    "customs_duty_payment": (customs_duty.SERVICE, lambda v: True,
                             lambda v: f"{v['declaration_no']}/{v['tax_type']}"),
    "remittance_domestic": (remittance.SERVICE, lambda v: v["txn_code"] == "RD01",
                            lambda v: f"{_t(v['trace_no'])}/{v['value_date']}"),
    "remittance_mt103": (remittance.SERVICE, lambda v: v["txn_code"] == "RX01",
                         lambda v: f"{_t(v['trace_no'])}/{v['value_date']}"),
    "remittance_pacs008": (remittance.SERVICE, lambda v: v["txn_code"] == "RX02",
                           lambda v: f"{_t(v['trace_no'])}/{v['value_date']}"),
    "import_settlement": (trade_receiving.SERVICE, lambda v: v["txn_code"] == "TI01",
                          lambda v: f"{v['doc_ref']}/{_t(v['trace_no'])}/{v['value_date']}"),
    "export_receipt": (trade_receiving.SERVICE, lambda v: v["txn_code"] == "TE01",
                       lambda v: f"{v['doc_ref']}/{_t(v['trace_no'])}/{v['value_date']}"),
    "bond_subscription": (issuance.SERVICE, lambda v: True,
                          lambda v: f"{v['isin']}/{_t(v['trace_no'])}/{v['sub_date']}"),
    "product_sale": (sales.SERVICE, lambda v: True, lambda v: f"{v['product']}/{_t(v['trace_no'])}"),
    "bond_redemption": (bond_cashing.SERVICE, lambda v: v["txn_code"] == "BC01",
                        lambda v: f"{v['isin']}/{_t(v['trace_no'])}/{v['pay_date']}"),
    "coupon_payment": (bond_cashing.SERVICE, lambda v: v["txn_code"] == "BC02",
                       lambda v: f"{v['isin']}/{_t(v['trace_no'])}/{v['pay_date']}"),
    "early_encashment": (bond_cashing.SERVICE, lambda v: v["txn_code"] == "BC03",
                         lambda v: f"{v['isin']}/{_t(v['trace_no'])}/{v['pay_date']}"),
    # an MT101: an upward sweep, or a downward one from a header account held at another bank (POOL0004)
    "pool_sweep": (fund_consolidation.SERVICE, lambda v: v["txn_code"] == "FC01" and not _cover(v),
                   lambda v: f"{v['pool_id']}/{_t(v['trace_no'])}/{v['value_date']}"),
    # a downward sweep from a header account held here: the header's debit at the mainframe, then an MT103
    "pool_cover": (fund_consolidation.SERVICE, lambda v: v["txn_code"] == "FC01" and _cover(v),
                   lambda v: f"{v['pool_id']}/{_t(v['trace_no'])}/{v['value_date']}"),
    # a zero-balancing leg with something to sweep (above the member's target balance)
    "zba_sweep": (fund_consolidation.SERVICE,
                  lambda v: v["txn_code"] == "FC02" and v["balance"] > fund_consolidation.ZBA_MEMBERS[v["member_id"]][1],
                  lambda v: f"{v['pool_id']}/{_t(v['trace_no'])}/{v['value_date']}"),
    "statement_mt940": (AC_MT940, lambda v: True,
                        lambda v: f"{_account(v['block4'][1]['value'].strip(), 'member')}/{v['block4'][0]['value']}/"
                                  f"{v['block4'][-1]['value']['date']:%Y%m%d}"),
    "statement_camt053": (AC_CAMT, lambda v: True,
                          lambda v: (lambda s: f"{_account(s['Acct']['Id']['IBAN'], 'member')}/{s['Id']}/{s['Bal'][1]['Dt']['Dt']:%Y%m%d}")(
                              v["BkToCstmrStmt"]["Stmt"][0])),
    "broker_transfer": (broker_system.SERVICE, lambda v: True,
                        lambda v: f"{v['XferReq']['BrokerId']}/{v['XferReq']['SerialNo']}"),
    "exception_case": (middle_office.SERVICE, lambda v: v["type"] == "EXCEPTION",
                       lambda v: f"{v['request_id']}/{v['deal_ref']}"),
    "card_purchase": (card_payments.SERVICE, lambda v: True,
                      lambda v: f"{v['41']}/{v['37']}/{v['11']}/{v['7'][:4]}"),
}

# routes that call more than one counterpart for a request (one call each)
LEGS = {"settled_subscription": 2,          # the debit at the core account system, the fund order
        "claim_payout": 2,                  # the debit at the mainframe, the credit at the clearing
        "pool_cover": 2}                    # the header's debit at the mainframe, the MT103

# enquiries move nothing: no key, and a repeat is asked again
UNKEYED = {
    "limit_enquiry": (middle_office.SERVICE, lambda v: v["type"] == "LIMIT"),
    "balance_enquiry": (customer_service.SERVICE, lambda v: v["type"] == "BALANCE"),
    "deal_enquiry": (customer_service.SERVICE, lambda v: v["type"] == "DEAL"),
}


def _request_for(service: Service, takes: Callable[[Any], bool], kind: str = "good") -> Any:
    rng, run = random.Random(f"keys:{service.name}:{service.inbound}"), run_tag()
    for n in range(1, 500):
        req = service.make(kind, n, rng, run)
        if takes(req.values):
            return req
    raise AssertionError(f"{service.name}: the generator made no request for this route in 500 tries")


def _program(service_name: str) -> Any:
    registry = services_registry()
    res = compile_paths(route_files(service_name), registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    return res.program, registry


async def _exchange(port: int, framing: str, payloads: list[bytes], *, together: bool = False) -> list[bytes]:
    """Send ``payloads`` on one connection: one after the other's reply, or all in one write."""
    tx, rx = make_framer(framing), make_framer(framing)
    replies: list[bytes] = []
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.fail_after(60):
            if together:
                await stream.send_all(b"".join(tx.frame(p) for p in payloads))
            for i, p in enumerate(payloads):
                if not together:
                    await stream.send_all(tx.frame(p))
                while len(replies) < i + 1:
                    data = await stream.receive_some(65536)
                    assert data, "the engine closed the connection"
                    replies += rx.feed(data)
    return replies


async def _send(rig: Any, service: Service, payloads: list[bytes]) -> list[bytes]:
    """``payloads`` to the service's inbound channel one after the other's reply, on one connection: framed
    over TCP, or POSTed over HTTP (keep-alive) to an http listen channel."""
    port = rig.port(service.inbound)
    if service.transport != "http":
        return await _exchange(port, service.framing, payloads)
    replies = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for p in payloads:
            answer = await client.post(f"http://127.0.0.1:{port}{service.http_path}", content=p,
                                       headers={"content-type": "application/json"})
            replies.append(answer.content)
    return replies


def _rows(ledger_path: Path, ref: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        cur = con.execute("SELECT deal_id, route, status, response_code, reason FROM deals "
                          "WHERE trim(reference) = ? ORDER BY received_at, status", [ref])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        for r in rows:
            r["events"] = [(e[0], None if e[1] is None else orjson.loads(e[1])) for e in con.execute(
                "SELECT to_state, CAST(detail AS VARCHAR) FROM deal_events WHERE deal_id = ? ORDER BY seq",
                [r["deal_id"]]).fetchall()]
    finally:
        con.close()
    return rows


def _check_duplicate_rows(rows: list[dict[str, Any]], route: str, key: str, status: str, code: str) -> None:
    assert len(rows) == 2, rows
    original = next(r for r in rows if r["status"] != "duplicate")
    dup = next(r for r in rows if r["status"] == "duplicate")
    assert original["route"] == dup["route"] == route
    assert original["status"] == status and original["response_code"] == code, original
    assert ("accepted", {"key": f"{route}|{key}"}) in original["events"], original["events"]
    assert dup["response_code"] == code
    assert f"duplicate of deal {original['deal_id']}" in dup["reason"] and "original answer repeated" in dup["reason"]
    assert ("duplicate", {"original": original["deal_id"], "key": f"{route}|{key}"}) in dup["events"], dup["events"]


def _calls(rig: Any) -> int:
    return sum(sim.requests for sim in rig.sims.values())


def _postings(rig: Any) -> int:
    """The calls that post (receivables/payables: not an AR record's invoice enquiry, counted as TRACE/RP03)."""
    return sum(n for sim in rig.sims.values() for k, n in sim.calls.items() if not k.endswith("/RP03"))


@pytest.mark.parametrize("route", sorted(KEYED))
async def test_a_repeated_request_gets_the_original_answer_and_one_call(route, tmp_path):
    service, takes, key_of = KEYED[route]
    program, registry = _program(service.name)
    req = _request_for(service, takes)
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service]) as rig:
            ctx = rig.switchboard.ctx
            codec, reply_codec = ctx.codec(service.request_format), ctx.codec(service.reply_format)
            payload = service.encode(codec, req.values) if service.encode else codec.encode(req.values)
            first, again = await _send(rig, service, [payload, payload])
            calls = _calls(rig)
    assert again == first, "the repeat must get the original reply, byte for byte"
    assert service.code_of(reply_codec.decode(first)) == "00"
    legs = LEGS.get(route, 1)
    assert calls == legs, f"{route}: its {legs} counterpart(s) were called {calls} times for one request sent twice"
    # the ledger records the code answered (the reply's response-code field, docs/ledger.md), and the repeat
    # the original's: until 2026-11 a committed deal and its duplicate recorded none
    _check_duplicate_rows(_rows(ledger_path, req.ref), route, key_of(req.values), "committed", "00")


@pytest.mark.parametrize("route", ["remittance_domestic", "card_purchase"])
async def test_a_repeated_refused_request_gets_the_original_refusal(route, tmp_path):
    """The counterpart refused: the repeat gets the same refusal and is not sent again."""
    service, takes, key_of = KEYED[route]
    program, registry = _program(service.name)
    req = _request_for(service, takes, "failing")
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service]) as rig:
            ctx = rig.switchboard.ctx
            codec, reply_codec = ctx.codec(service.request_format), ctx.codec(service.reply_format)
            payload = codec.encode(req.values)
            first, again = await _exchange(rig.port(service.inbound), service.framing, [payload, payload])
            calls = _calls(rig)
    assert again == first and service.code_of(reply_codec.decode(first)) == "05"
    assert calls == 1
    _check_duplicate_rows(_rows(ledger_path, req.ref), route, key_of(req.values), "failed", "05")


async def test_a_repeated_subscription_whose_debit_was_cancelled_is_not_debited_again(tmp_path):
    """Two legs over real sockets (routes/fund_subscription): the core account system debits, the fund
    company refuses the order, the route cancels the debit (the compensation, accepted). The repeat gets
    the same refusal and calls nothing: one debit, one order, one cancel in all."""
    route = "settled_subscription"
    service, _, key_of = KEYED[route]
    program, registry = _program(service.name)
    req = _request_for(service, lambda v: not v["settle_acct"].endswith("F"), "failing")
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service]) as rig:
            ctx = rig.switchboard.ctx
            codec, reply_codec = ctx.codec(service.request_format), ctx.codec(service.reply_format)
            payload = codec.encode(req.values)
            first, again = await _exchange(rig.port(service.inbound), service.framing, [payload, payload])
            core, fundco = rig.sims["fsub_core"], rig.sims["fsub_fundco"]
    assert again == first and service.code_of(reply_codec.decode(first)) == "05"
    assert [r["op"] for r in core.seen] == ["DEBIT", "CANCEL"]
    assert core.seen[1]["posting_ref"] == core.seen[0]["posting_ref"] == req.ref
    assert core.seen[1]["original_posting_id"].startswith("P")       # the debit's posting id, as it answered
    assert core.calls == {req.ref: 1, f"{req.ref} cancel": 1} and fundco.requests == 1
    rows = _rows(ledger_path, req.ref)
    _check_duplicate_rows(rows, route, key_of(req.values), "failed", "05")
    original = next(r for r in rows if r["status"] == "failed")
    assert ("compensated debit", None) in original["events"], original["events"]


async def test_a_repeated_claim_is_paid_once_with_one_result_file(tmp_path):
    """routes/claims_payout over HTTP: the insurer posts a claim twice; one debit, one credit, one result
    file (claim-ID-000001.json, status INSTRUCTED, the debit's host reference) and the original answer."""
    service, _, key_of = KEYED["claim_payout"]
    program, registry = _program(service.name)
    req = _request_for(service, lambda v: True)
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service], work_dir=tmp_path / "files") as rig:
            payload = rig.switchboard.ctx.codec(service.request_format).encode(req.values)
            first, again = await _send(rig, service, [payload, payload])
            mainframe, clearing = rig.sims["clm_mainframe"], rig.sims["clm_clearing"]
    answer = orjson.loads(first)
    assert again == first and answer["code"] == "00" and answer["status"] == "PAID", answer
    assert mainframe.calls == {req.ref: 1} and clearing.calls == {req.ref: 1}
    results = tmp_path / "files" / "clm_results"
    assert sorted(p.name for p in results.iterdir()) == [f"claim-{req.ref}-000001.json"] == [answer["result"]]
    written = orjson.loads((results / answer["result"]).read_bytes())
    assert written["status"] == "INSTRUCTED" and written["debit_ref"] == answer["debit_ref"] != ""
    assert written["claim_id"] == written["end_to_end_id"] == req.ref
    assert not any((tmp_path / "files" / "clm_voids").iterdir())
    _check_duplicate_rows(_rows(ledger_path, req.ref), "claim_payout", key_of(req.values), "committed", "00")


async def test_a_claim_whose_credit_was_refused_is_undone_once_and_its_repeat_refused(tmp_path):
    """routes/claims_payout over HTTP: the mainframe debits, the result file is written, the clearing refuses
    the credit; the route voids the file (a line in the day's voided file) and reverses the debit (CP02 with
    the debit's host reference), both accepted. The refusal is the deal's answer: the insurer's second post
    gets it again and calls nothing, so one debit, one reversal, one credit, one file and one void in all."""
    route = "claim_payout"
    service, _, key_of = KEYED[route]
    program, registry = _program(service.name)
    req = _request_for(service, lambda v: not v["policy_no"].endswith("F"), "failing")
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service], work_dir=tmp_path / "files") as rig:
            payload = rig.switchboard.ctx.codec(service.request_format).encode(req.values)
            first, again = await _send(rig, service, [payload, payload])
            mainframe, clearing = rig.sims["clm_mainframe"], rig.sims["clm_clearing"]
    answer = orjson.loads(first)
    assert again == first and answer["code"] == "05" and answer["status"] == "FAILED", answer
    assert [m["txn_code"] for m in mainframe.seen] == ["CP01", "CP02"]
    assert mainframe.seen[1]["orig_host_ref"].startswith("HOST")        # the debit's host reference, as answered
    assert mainframe.calls == {req.ref: 1, f"{req.ref} reversal": 1} and clearing.calls == {req.ref: 1}
    files = tmp_path / "files"
    assert [p.name for p in (files / "clm_results").iterdir()] == [f"claim-{req.ref}-000001.json"]
    (voided,) = (files / "clm_voids").iterdir()
    lines = [orjson.loads(line) for line in voided.read_bytes().splitlines()]
    assert [(v["claim_id"], v["result_file"], v["status"]) for v in lines] == [
        (req.ref, f"claim-{req.ref}-000001.json", "VOID")]
    rows = _rows(ledger_path, req.ref)
    _check_duplicate_rows(rows, route, key_of(req.values), "failed", "05")
    original = next(r for r in rows if r["status"] == "failed")
    assert ("compensated result", None) in original["events"] and ("compensated debit", None) in original["events"]


@pytest.mark.parametrize("route", sorted(UNKEYED))
async def test_an_enquiry_has_no_key_and_is_asked_again(route, tmp_path):
    service, takes = UNKEYED[route]
    program, registry = _program(service.name)
    req = _request_for(service, takes)
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service]) as rig:
            payload = rig.switchboard.ctx.codec(service.request_format).encode(req.values)
            await _exchange(rig.port(service.inbound), service.framing, [payload, payload])
            calls = _calls(rig)
    assert calls == 2
    rows = _rows(ledger_path, req.ref)
    assert [r["status"] for r in rows] == ["committed", "committed"]
    assert not [e for r in rows for e in r["events"] if (e[1] or {}).get("key")]


# ---------------------------------------------------------------- bill payment (mainframe + biller)

BILL = ROUTES_DIR / "bill_payment" / "bill_payment.route"


async def _bill(tmp_path: Path, payloads: list[bytes], *, together: bool = False) -> tuple[list[bytes], BillerSim]:
    registry = services_registry()
    program = compile_paths([BILL], registry).program
    biller = BillerSim()
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [], extra_sims={"biller": biller}) as rig:
            replies = await _exchange(rig.port("mainframe"), "length2", payloads, together=together)
    return replies, biller


def _bill_payload(tmp_path: Path, **change: Any) -> tuple[bytes, dict[str, Any]]:
    registry = services_registry()
    program = compile_paths([BILL], registry).program
    from engine.runtime.binder import Binder
    codec = Binder(program, registry).codec("BillPayReq")
    sim = MainframeSim(codec)
    trace, kind, payload = sim.next_request()
    while kind != "good" or trace.endswith("7"):
        trace, kind, payload = sim.next_request()
    values = dict(codec.decode(payload))
    values.update(change)
    return codec.encode(values), values


async def test_bill_payment_repeat_is_answered_from_the_key_store(tmp_path):
    payload, values = _bill_payload(tmp_path)
    (first, again), biller = await _bill(tmp_path, [payload, payload])
    assert again == first and first[12:14] == b"00"
    assert biller.requests == 1
    key = f"{values['biller_id']}/{values['trace_no']}/{values['value_date']:%Y%m%d}"
    _check_duplicate_rows(_rows(tmp_path / "ledger.duckdb", values["trace_no"]), "bill_payment", key,
                          "committed", "00")


async def test_bill_payment_copies_in_one_write_pay_once(tmp_path):
    """Three copies arriving together (one batch): the first runs, the others wait for its answer."""
    payload, values = _bill_payload(tmp_path)
    replies, biller = await _bill(tmp_path, [payload] * 3, together=True)
    assert len(set(replies)) == 1 and replies[0][12:14] == b"00"
    assert biller.requests == 1
    rows = _rows(tmp_path / "ledger.duckdb", values["trace_no"])
    assert sorted(r["status"] for r in rows) == ["committed", "duplicate", "duplicate"]


async def test_bill_payment_same_trace_on_another_value_date_is_a_new_payment(tmp_path):
    """The key is biller + trace + value date: the mainframe's trace numbers start again each day."""
    import datetime as dt
    payload, values = _bill_payload(tmp_path)
    other, _ = _bill_payload(tmp_path, trace_no=values["trace_no"],
                             value_date=values["value_date"] + dt.timedelta(days=1))
    other_biller, _ = _bill_payload(tmp_path, trace_no=values["trace_no"], value_date=values["value_date"],
                                    biller_id="WA0001" if values["biller_id"] != "WA0001" else "EL0001")
    replies, biller = await _bill(tmp_path, [payload, other, other_biller])
    assert [r[12:14] for r in replies] == [b"00", b"00", b"00"]
    assert biller.requests == 3
    rows = _rows(tmp_path / "ledger.duckdb", values["trace_no"])
    assert [r["status"] for r in rows] == ["committed"] * 3



async def test_bill_payment_blank_trace_numbers_are_rejected_not_duplicates(tmp_path):
    """Two different payments to the same biller on the same value date, both with a trace number of
    spaces: their deal keys would be the same (biller//date), so without the route's first rule the
    second would be answered as a duplicate of the first and never paid.  Both are rejected with 30
    by `validate`, which runs before the key is looked up (at the first call, engine/txn/manager.py
    ``_admit``): no `accepted` event, no key, no call.  A good payment after them commits."""
    blank1, v1 = _bill_payload(tmp_path, trace_no="            ", biller_id="EL0001", account="ACC-BLANK-1")
    blank2, _ = _bill_payload(tmp_path, trace_no="            ", biller_id="EL0001", account="ACC-BLANK-2",
                              value_date=v1["value_date"], amount=v1["amount"] + 1)
    good, g = _bill_payload(tmp_path, biller_id="EL0001", value_date=v1["value_date"])
    assert blank1 != blank2
    replies, biller = await _bill(tmp_path, [blank1, blank2, good])
    assert [r[12:14] for r in replies] == [b"30", b"30", b"00"], replies
    assert [r[30:70].decode().strip() for r in replies[:2]] == ["reference (trace_no) missing"] * 2
    assert biller.requests == 1                    # only the good payment reached the biller
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT deal_id, route, status, response_code, reason, trim(coalesce(reference, '')) "
                           "FROM deals ORDER BY received_at").fetchall()
        events = {d: [e[0] for e in con.execute("SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                                [d]).fetchall()] for d, *_ in rows}
    finally:
        con.close()
    assert [(r[1], r[2], r[3]) for r in rows] == [("bill_payment", "rejected", "30"), ("bill_payment", "rejected", "30"),
                                                  ("bill_payment", "committed", "00")], rows
    assert all("reference (trace_no) missing" in r[4] for r in rows[:2])
    assert rows[2][5] == g["trace_no"]
    for deal_id, *_ in rows[:2]:       # rejected before the key: never accepted, never a duplicate
        assert "accepted" not in events[deal_id] and "duplicate" not in events[deal_id], events[deal_id]
    assert "accepted" in events[rows[2][0]]

# ---------------------------------------------------------------- receivables / payables (batch files)

async def test_a_batch_sent_again_with_a_record_added_posts_only_the_new_one(tmp_path):
    """The file watch channel already refuses a byte-identical file (run once). The ERP re-cuts the
    batch instead, the same records and one it had missed, under another name (different bytes, its
    own trailer): the repeated records are duplicates of the first file's, not posted again and
    acknowledged with the engine's duplicate code 94 (a file route has no reply to repeat); only the
    new record reaches the mainframe."""
    service = receivables_payables.SERVICE
    program, registry = _program(service.name)
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service], work_dir=tmp_path / "files") as rig:
            client = rig.batch_client(service)
            reqs = client.requests(5, ["good"] * 5)
            assert {r.values["kind"] for r in reqs[:4]} == {"AR", "AP"}     # both routes repeated
            client.write_file("B1.csv", reqs[:4])
            await _acks(client, 4)
            calls = _postings(rig)
            client.write_file("B1-again.csv", reqs)
            await _acks(client, 9)
            settled = await client.wait_settled()
            calls_after = _postings(rig)
            enquiries = sum(n for sim in rig.sims.values() for k, n in sim.calls.items() if k.endswith("/RP03"))
    assert calls == 4                              # the mainframe posted the first file's four records
    assert calls_after == 5, "a repeated record reached the mainframe again"
    # each AR record's invoice enquiry (RP03) was made once too: a repeat is answered from its key first
    assert enquiries == sum(r.values["kind"] == "AR" for r in reqs), enquiries
    lines = _ack_lines(client)
    for i, r in enumerate(reqs):
        mine = [a for a in lines if (a["batch_id"], a["record_no"]) == (r.values["batch_id"], r.values["record_no"])]
        if i < 4:
            assert [a["code"] for a in mine] == ["00", "94"], mine
            assert "repeats deal" in mine[1]["text"]
            rows = _rows(tmp_path / "ledger.duckdb", r.ref)
            assert sorted(x["status"] for x in rows) == ["committed", "duplicate"]
        else:
            assert [a["code"] for a in mine] == ["00"], mine
    assert settled == {"done": ["B1.csv"], "error": ["B1-again.csv"], "pending": []}


# ---------------------------------------------------------------- standing orders (batch files, one result file)

async def test_a_standing_order_file_sent_again_debits_only_the_new_line(tmp_path):
    """A utility re-sends its file with one line added (other bytes, so the channel's run-once check
    does not refuse it): the lines already debited are duplicates (key utility/mandate/due date), not
    sent to the mainframe again, and their result lines in the day's result file are DUPLICATE with
    94; only the new line is debited."""
    service = standing_orders.SERVICE
    program, registry = _program(service.name)
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [service], work_dir=tmp_path / "files") as rig:
            client = rig.batch_client(service)
            reqs = client.requests(4, ["good"] * 4)
            client.write_file("SO1.csv", reqs[:3])
            await _results(client, 3)
            calls = _calls(rig)
            client.write_file("SO1-again.csv", reqs)
            await _results(client, 7)
            settled = await client.wait_settled()
            calls_after = _calls(rig)
    assert calls == 3 and calls_after == 4, "a repeated line reached the mainframe again"
    results = [r for r in _ack_lines(client, header=True)]
    assert len(results) == 7                               # one result file, a line per instruction
    for i, r in enumerate(reqs):
        mine = [a for a in results if a["mandate_ref"] == r.values["mandate_ref"]]
        if i < 3:
            assert [(a["status"], a["code"]) for a in mine] == [("ACCEPTED", "00"), ("DUPLICATE", "94")], mine
            # each result line names its batch file and line (file.name, file.line; line 1 is the header)
            assert [(a["source_file"], a["source_line"]) for a in mine] == [("SO1.csv", i + 2),
                                                                            ("SO1-again.csv", i + 2)], mine
            v = r.values
            key = f"standing_order_debit|{v['utility_id']}/{v['mandate_ref']}/{v['due_date']:%Y%m%d}"
            rows = _rows(tmp_path / "ledger.duckdb", r.ref)
            assert [x["status"] for x in rows] == ["committed", "duplicate"], rows
            assert ("accepted", {"key": key}) in rows[0]["events"], rows[0]["events"]
            assert ("duplicate", {"original": rows[0]["deal_id"], "key": key}) in rows[1]["events"]
            # 94, the code its result line was written with (the repeat's own failure: there is no reply to repeat);
            # until 2026-11 the ledger recorded none, the committed original's empty code
            assert rows[1]["response_code"] == "94" and "without an answer to repeat" in rows[1]["reason"]
        else:
            assert [(a["status"], a["code"]) for a in mine] == [("ACCEPTED", "00")], mine
            assert [(a["source_file"], a["source_line"]) for a in mine] == [("SO1-again.csv", 5)], mine
    assert settled == {"done": ["SO1.csv"], "error": ["SO1-again.csv"], "pending": []}


async def _results(client: Any, n: int) -> None:
    with trio.fail_after(60):
        while len(_ack_lines(client, header=True)) < n:
            await trio.sleep(0.02)


async def _acks(client: Any, n: int) -> None:
    with trio.fail_after(60):
        while len(_ack_lines(client)) < n:
            await trio.sleep(0.02)


def _ack_lines(client: Any, header: bool = False) -> list[dict[str, Any]]:
    """Every acknowledgement line in the outbox; ``header``: each file starts with a header line."""
    out = []
    for p in sorted(client.outbox.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        if p.name.startswith(".") or not p.is_file():
            continue
        data = p.read_bytes()
        if header:                          # an append file: its complete lines, after the header line
            data = data[:data.rfind(b"\n") + 1].split(b"\n", 1)[-1]
        for line in data.splitlines():
            if line.strip():
                out.append(dict(client.reply_codec.decode(line)))
    return out


# ---------------------------------------------------------------- the inventory

def test_every_route_with_a_deal_and_a_call_is_keyed_or_listed_as_an_enquiry():
    """A route added to the library that records a deal and calls a counterpart must declare a key
    (and get a test above), or be added to UNKEYED with the reason: nothing is left out unseen."""
    from engine.sim.services.demo import compile_all
    program, _ = compile_all()
    routes = program.routes.values() if isinstance(program.routes, dict) else program.routes
    keyed, unkeyed = set(), set()
    for r in routes:
        if "_test.route" in str(r.pos.file) or "/tests/" in str(r.pos.file):
            continue
        deals = [s for s in r.steps if s.kind == "deal"]
        if not deals or not any(s.kind == "call" for s in r.steps):
            continue
        has_key = any(a.path == "key" for a in deals[0].options["fields"])
        (keyed if has_key else unkeyed).add(r.name)
    # the batch-file routes have tests of their own above; card_reversal (the simulator sends no reversals)
    # in tests/services/test_card_certification.py (a 0400 and its 0401 repeats: one 0420 to the card host);
    # payroll_credit in tests/services/test_payroll_files.py (a re-exported payroll file: one credit per salary)
    assert keyed == set(KEYED) | {"bill_payment", "ar_collection", "ap_payment", "standing_order_debit",
                                  "statement_camt053_file", "statement_mt940_file", "card_reversal",
                                  "payroll_credit"}
    assert unkeyed == set(UNKEYED)


def test_the_simulators_references_are_unique_per_run():
    """The key store outlives a run: two runs' generators (and mainframes) never send the same reference."""
    from engine.sim.mainframe import run_start
    from engine.sim.services.model import trace
    a, b = run_tag(), run_tag()
    assert a != b and len(a) == len(b) == 5
    assert trace("FM", 1, "good", run=a) != trace("FM", 1, "good", run=b)
    assert len(trace("CP", 9999, "failing", width=12, run=a)) == 12
    with pytest.raises(ValueError, match="does not fit"):
        trace("CP", 10_000, "good", width=12, run=a)
    assert run_tag(RUN_EPOCH_PLUS_70_DAYS) == run_tag(RUN_EPOCH_PLUS_70_DAYS)      # a given time: the same tag
    s1, s2 = run_start(), run_start()
    assert s2 > s1                                     # two mainframes of one process: other trace numbers
    registry = services_registry()
    from engine.runtime.binder import Binder
    codec = Binder(compile_paths([BILL], registry).program, registry).codec("BillPayReq")
    m1, m2 = MainframeSim(codec, start=s1), MainframeSim(codec, start=s2)
    t1, t2 = m1.next_request()[0], m2.next_request()[0]
    assert t1 != t2 and len(t1) == len(t2) == 12 and t1.endswith("0000001")
    assert m1.value_date == s1.date()


RUN_EPOCH_PLUS_70_DAYS = 1_767_225_600 + 70 * 86400


def test_every_account_has_its_own_member_number() -> None:
    # both statement routes key a statement on the account's member number (not the account, which is
    # classified personal): two accounts sharing one would share their statements' keys, and the second
    # account's statement with the same reference and date would be answered as the first's duplicate
    import csv
    with open(ROUTES_DIR / "account_consolidation" / "accounts.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    members = [r["member"].strip() for r in rows]
    assert all(members) and len(set(members)) == len(rows), members
    banks = [r["bank"] for r in rows]
    assert len(set(banks)) < len(banks)       # a bank with two accounts (the route tests' case) is in the table
