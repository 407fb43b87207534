"""Statement continuity across messages and engine restarts: MT940 statements sent one by one over TCP to
the account consolidation service (real codecs, real engine), in two runs of the engine on one DuckDB ledger
file; ``bsp report statement-continuity`` finds the gap and the balance break from the ledger alone."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import orjson
import trio
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.ledger import open_ledger
from engine.reports import build_report, period
from engine.sim.services.account_consolidation import SERVICES
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from formats.framing import make_framer

ACCOUNT = "DE89370400440532013000"      # M0002 in accounts.csv, EUR


def mt940(ref: str, number: str, opening: str, entries: list[str], closing: str, day: dt.date,
          account: str = ACCOUNT) -> dict:
    def bal(amount: str) -> dict:
        a = Decimal(amount)
        return {"mark": "D" if a < 0 else "C", "date": day, "currency": "EUR", "amount": abs(a)}
    lines = []
    for i, e in enumerate(entries):
        a = Decimal(e)
        lines += [{"tag": "61", "value": {"value_date": day, "entry_date": day.strftime("%m%d"),
                                          "mark": "D" if a < 0 else "C", "funds_code": None, "amount": abs(a),
                                          "type": "NTRF", "customer_reference": f"{ref}-{i}", "bank_reference": None,
                                          "supplementary": None}},
                  {"tag": "86", "value": f"PAYMENT {i}"}]
    return {"block1": {"app": "F", "service": "01", "lt": "BSPBCNSHAXXX", "session": "0000", "sequence": "000000"},
            "block2": {"io": "I", "type": "940", "receiver": "BSPBCNSHXXXX", "priority": "N", "rest": ""},
            "block4": [{"tag": "20", "value": ref}, {"tag": "25", "value": account}, {"tag": "28C", "value": number},
                       {"tag": "60F", "value": bal(opening)}, *lines, {"tag": "62F", "value": bal(closing)}]}


async def _run(ledger_path: Path, statements: list[dict], audit_key: bytes | None = None) -> list[dict]:
    """One engine run on ``ledger_path``: each statement sent on its own connection; the acks."""
    registry = services_registry()
    program = compile_paths(route_files("account_consolidation"), registry).program
    acks = []
    async with open_ledger(ledger_path, audit_key=audit_key) as ledger:
        async with running_services(program, registry, ledger, SERVICES) as rig:
            codec = rig.switchboard.ctx.codec("Mt940")
            for values in statements:
                framer = make_framer("length4")
                stream = await trio.open_tcp_stream("127.0.0.1", rig.port("ac_swift"))
                async with stream:
                    await stream.send_all(framer.frame(codec.encode(values)))
                    replies: list[bytes] = []
                    with trio.fail_after(30):
                        while not replies:
                            replies = framer.feed(await stream.receive_some(65536))
                acks.append(orjson.loads(replies[0]))
    return acks


D = dt.date(2026, 11, 23)


async def test_gap_and_balance_break_across_messages_and_a_restart(tmp_path):
    ledger = tmp_path / "bsp.duckdb"
    acks = await _run(ledger, [
        mt940("STA0101", "00101/001", "1000.00", ["250.50", "-0.50"], "1250.00", D),
        mt940("STA0102", "00102/001", "1250.00", ["-50.00"], "1200.00", D + dt.timedelta(days=1)),
    ])
    assert [a["code"] for a in acks] == ["00", "00"]
    # the engine stopped; a new one on the same ledger file gets 104 (103 never came) opening 1.00 off
    acks = await _run(ledger, [
        mt940("STA0104", "00104/001", "1201.00", ["9.00"], "1210.00", D + dt.timedelta(days=3)),
        mt940("STA0105", "00105/001", "1210.00", [], "1210.00", D + dt.timedelta(days=4)),
    ])
    assert [a["code"] for a in acks] == ["00", "00"]         # each adds up: the route posts it

    rep = build_report("statement-continuity", ledger, period("2026-01-01", "2099-12-31"))
    rows = rep.tables[0].dicts()
    assert [(r["account"], r["statement"], r["status"]) for r in rows] == [
        ("M0002", "101/1", "first"), ("M0002", "102/1", "ok"), ("M0002", "104/1", "gap"), ("M0002", "105/1", "ok")]
    note = rows[2]["note"]
    assert note.startswith("statement(s) 103 missing between statement 102/1 (STA0102) and statement 104/1 (STA0104); ")
    assert ("statement 104/1 opens with :60F: 1201.00 EUR of 2026-11-26, but statement 102/1 before it (STA0102 at "
            "deal ") in note and note.endswith("closed with :62F: 1200.00 EUR of 2026-11-24 (difference +1.00)")
    assert rows[0]["entries_total"] == Decimal("250.00") and rows[0]["closing"] == Decimal("1250.00")
    (last,) = rep.tables[1].dicts()
    assert (last["account"], last["statements"], last["breaks"], last["last_statement"], last["next"]) == (
        "M0002", 4, 1, "105/1", "statement 106, opening 1210.00 EUR")
    # the personal account number is nowhere in the report: the member number names it
    assert ACCOUNT not in repr(rep.tables)

    # as the clerk runs it
    result = CliRunner().invoke(app, ["report", "statement-continuity", "--ledger", str(ledger),
                                      "--from", "2026-01-01", "--to", "2099-12-31", "--format", "csv"])
    assert result.exit_code == 1, result.output       # breaks found: the verdict, as bsp reconcile
    assert ",104/1,STA0104,2026-11-26,1201.00,1,9.00,1210.00,EUR,gap," in result.stdout


async def test_a_statement_the_route_rejects_is_no_link_of_the_chain(tmp_path):
    """102 does not add up: the route refuses it (30) and the ledger holds it as rejected; 103, opening where
    102 claimed to close, then shows 102 missing and the balance break against 101."""
    ledger = tmp_path / "bsp.duckdb"
    acks = await _run(ledger, [
        mt940("STA0101", "00101/001", "1000.00", [], "1000.00", D),
        mt940("STA0102", "00102/001", "1000.00", ["5.00"], "1006.00", D + dt.timedelta(days=1)),
        mt940("STA0103", "00103/001", "1006.00", [], "1006.00", D + dt.timedelta(days=2)),
    ])
    assert [a["code"] for a in acks] == ["00", "30", "00"]
    rows = build_report("statement-continuity", ledger, period("2026-01-01", "2099-12-31")).tables[0].dicts()
    assert [(r["statement"], r["status"]) for r in rows] == [("101/1", "first"), ("103/1", "gap")]
    assert "statement(s) 102 missing" in rows[1]["note"] and "(difference +6.00)" in rows[1]["note"]


async def test_the_chain_goes_on_across_an_archive(tmp_path):
    """101 and 102 are moved to an archive by `bsp ledger archive`; 104 then comes: the report reads the
    archive beside the ledger and still sees 103 missing. Without the archive there, the header says so."""
    from engine.ledger_archive import prepare

    key = bytes(range(32))
    ledger = tmp_path / "bsp.duckdb"
    await _run(ledger, [mt940("STA0101", "00101/001", "1000.00", [], "1000.00", D),
                        mt940("STA0102", "00102/001", "1000.00", ["-1.00"], "999.00", D + dt.timedelta(days=1))],
               audit_key=key)
    job = prepare(ledger, tmp_path / "arc-1.duckdb", dt.datetime.now(dt.timezone.utc), key)
    try:
        assert not job.refusals, job.refusals
        job.run()
    finally:
        job.close()
    await _run(ledger, [mt940("STA0104", "00104/001", "999.00", [], "999.00", D + dt.timedelta(days=3))],
               audit_key=key)
    rep = build_report("statement-continuity", ledger, period("2026-01-01", "2099-12-31"))
    assert [(r["statement"], r["status"]) for r in rep.tables[0].dicts()] == [
        ("101/1", "first"), ("102/1", "ok"), ("104/1", "gap")]
    assert rep.params["archives"] == "arc-1.duckdb read"
    (tmp_path / "arc-1.duckdb").rename(tmp_path / "elsewhere.duckdb")
    rep = build_report("statement-continuity", ledger, period("2026-01-01", "2099-12-31"))
    assert [(r["statement"], r["status"]) for r in rep.tables[0].dicts()] == [("104/1", "first")]
    assert rep.params["archives"] == "not beside the ledger, so the chains start after them: arc-1.duckdb"


def camt053(ident: str, seq: int, opening: str, entries: list[str], closing: str, day: dt.date) -> dict:
    created = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.timezone.utc)

    def bal(code: str, amount: str) -> dict:
        a = Decimal(amount)
        return {"Tp": {"CdOrPrtry": {"Cd": code}}, "Amt": {"value": abs(a), "Ccy": "EUR"},
                "CdtDbtInd": "DBIT" if a < 0 else "CRDT", "Dt": {"Dt": day}}
    ntry = [{"Amt": {"value": abs(Decimal(e)), "Ccy": "EUR"}, "CdtDbtInd": "DBIT" if Decimal(e) < 0 else "CRDT",
             "Sts": "BOOK", "BookgDt": {"Dt": day}, "ValDt": {"Dt": day}, "BkTxCd": {"Prtry": {"Cd": "NTRF"}}}
            for e in entries]
    return {"message": "camt.053.001.02", "BkToCstmrStmt": {
        "GrpHdr": {"MsgId": "M" + ident, "CreDtTm": created},
        "Stmt": [{"Id": ident, "ElctrncSeqNb": seq, "CreDtTm": created, "Acct": {"Id": {"IBAN": ACCOUNT}, "Ccy": "EUR"},
                  "Bal": [bal("OPBD", opening), bal("CLBD", closing)], "Ntry": ntry}]}}


async def test_camt053_statements_over_tcp_are_a_chain_too(tmp_path):
    """camt.053 statements as the ledger keeps them (amounts and dates as JSON text): ElctrncSeqNb 8 missing,
    and 9 opens where 7 closed, debit balances included."""
    registry = services_registry()
    program = compile_paths(route_files("account_consolidation"), registry).program
    ledger_path = tmp_path / "bsp.duckdb"
    codes = []
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, SERVICES) as rig:
            codec = rig.switchboard.ctx.codec("Camt053")
            for values in (camt053("C7", 7, "-10.00", ["-5.25"], "-15.25", D),
                           camt053("C9", 9, "-15.25", ["20.00"], "4.75", D + dt.timedelta(days=2))):
                framer = make_framer("length4")
                stream = await trio.open_tcp_stream("127.0.0.1", rig.port("ac_camt"))
                async with stream:
                    await stream.send_all(framer.frame(codec.encode(values)))
                    replies: list[bytes] = []
                    with trio.fail_after(30):
                        while not replies:
                            replies = framer.feed(await stream.receive_some(65536))
                codes.append(orjson.loads(replies[0])["code"])
    assert codes == ["00", "00"]
    rows = build_report("statement-continuity", ledger_path, period("2026-01-01", "2099-12-31")).tables[0].dicts()
    assert [(r["account"], r["statement"], r["status"], r["opening"], r["closing"]) for r in rows] == [
        ("M0002", "7", "first", Decimal("-10.00"), Decimal("-15.25")),
        ("M0002", "9", "gap", Decimal("-15.25"), Decimal("4.75"))]
    assert rows[1]["note"] == "statement(s) 8 missing between statement 7 (C7) and statement 9 (C9)"
