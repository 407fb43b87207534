"""Insurance brokerage's commission kept with the deal, and an insurer's bordereau reconciled against it.

The real premium_collection route (copybook PREMIUM-REQ over TCP, the simulated insurer's JSON API) records
each premium's policy, premium and commission in a `record bordereau` step (a ledger event `recorded`, in the
same transaction as the deal); `bsp reconcile --type bordereau` pairs the insurer's CSV (policy, premium,
commission, date) with those deals: matched, a commission that differs, a line the ledger has no deal for, a
deal the bordereau leaves out; exit 1 on breaks, 0 when fully matched.  Decimal all through."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import orjson
import trio
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.ledger import open_ledger
from engine.sim.services import insurance_brokerage
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from formats.framing import make_framer

PREMIUMS = [   # (trace, policy, insurer, premium): PICC's commission rate 0.0300, PAIC's 0.0250
    ("IB0000000001", "P000000000001", "PICC", Decimal("1000.00")),      # commission 30.00
    ("IB0000000002", "P000000000002", "PICC", Decimal("333.33")),       # 10.00 (9.9999, half up)
    ("IB0000000003", "P000000000003", "PICC", Decimal("12345.67")),     # 370.37
    ("IB0000000004", "P000000000004", "PAIC", Decimal("800.00")),       # another insurer: 20.00
]


async def _collect(ledger_path: Path, cancels: tuple = ()) -> list[str]:
    """The premiums paid (IP01), then ``cancels`` (policy, premium): PICC cooling-off cancellations (IP02)
    requested and delivered today in Shanghai."""
    registry = services_registry()
    program = compile_paths(route_files("insurance_brokerage"), registry).program
    codes = []
    async with open_ledger(ledger_path) as ledger:
        async with running_services(program, registry, ledger, [insurance_brokerage.SERVICE]) as rig:
            codec = rig.switchboard.ctx.codec("PremiumReq")
            cancel = rig.switchboard.ctx.codec("CancelReq")
            reply = rig.switchboard.ctx.codec("MfRsp")
            today = int(dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d"))
            sends = [(codec, {"txn_code": "IP01", "trace_no": trace, "policy_no": policy, "insurer": insurer,
                              "payer_acct": "6222000000000001", "payer_name": "ZHANG WEI", "premium": premium,
                              "currency": "CNY", "due_date": 20261130, "instalment": 1})
                     for trace, policy, insurer, premium in PREMIUMS]
            sends += [(cancel, {"txn_code": "IP02", "trace_no": f"IC00000000{i:02d}", "policy_no": policy,
                                "insurer": "PICC", "payer_acct": "6222000000000001", "payer_name": "ZHANG WEI",
                                "premium": premium, "currency": "CNY", "delivery_date": today,
                                "request_date": today}) for i, (policy, premium) in enumerate(cancels, 1)]
            for codec, values in sends:
                framer = make_framer("length2")
                stream = await trio.open_tcp_stream("127.0.0.1", rig.port("ib_mainframe"))
                async with stream:
                    await stream.send_all(framer.frame(codec.encode(values)))
                    frames: list[bytes] = []
                    with trio.fail_after(30):
                        while not frames:
                            frames = framer.feed(await stream.receive_some(65536))
                codes.append(str(reply.decode(frames[0])["resp_code"]).strip())
    return codes


def _reconcile(*args: str):
    return CliRunner().invoke(app, ["reconcile", *args])


def test_the_commission_is_kept_with_the_deal_and_the_bordereau_reconciles(tmp_path):
    ledger = tmp_path / "bsp.duckdb"
    assert trio.run(_collect, ledger) == ["00", "00", "00", "00"]
    today = dt.datetime.now(dt.timezone.utc).date()

    con = duckdb.connect(str(ledger), read_only=True)
    try:
        kept = con.execute("SELECT d.reference, e.detail FROM deals d JOIN deal_events e USING (deal_id) "
                           "WHERE e.to_state = 'recorded' ORDER BY d.reference").fetchall()
    finally:
        con.close()
    details = {ref.strip(): orjson.loads(detail) for ref, detail in kept}
    assert details["IB0000000001"] == {"record": "bordereau", "values": {
        "policy": "P000000000001", "premium": "1000.00", "commission": "30.00", "commission_vat": "1.70",
        "due_date": 20261130}}
    assert details["IB0000000002"]["values"]["commission"] == "10.00"
    assert "ZHANG WEI" not in repr(details) and "6222000000000001" not in repr(details)   # nothing personal

    # PICC's bordereau: policy 1 agrees, 2's commission is 0.01 off, 3 is missing, a policy 9 the bank never
    # collected; PAIC's deal (policy 4) is another insurer's: --party PICC leaves it out
    (tmp_path / "picc.csv").write_text(
        "Policy No,Premium,Commission,Date\n"
        f"P000000000001,1000.00,30.00,{today}\n"
        f"P000000000002,333.33,9.99,{today}\n"
        f"P000000000009,500.00,15.00,{today}\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(tmp_path / "picc.csv"), "--type", "bordereau",
                     "--party", "PICC", "--format", "json", "--out", "-")
    assert res.exit_code == 1, res.output
    doc = orjson.loads(res.stdout)
    form = {r["policy"]: r for r in doc["tables"][0]["rows"]}
    assert {p: r["status"] for p, r in form.items()} == {
        "P000000000001": "matched", "P000000000002": "amount_differs", "P000000000003": "only_in_ledger",
        "P000000000009": "only_in_bordereau"}
    two = form["P000000000002"]
    assert (two["bordereau_commission"], two["ledger_commission"], two["commission_difference"]) == (
        "9.99", "10.00", "-0.01")
    assert two["premium_difference"] == "0.0000"      # the ledger keeps 4 places
    assert two["note"] == "commission: bordereau 9.99 CNY, ledger 10.00 CNY (bordereau -0.01)"
    assert form["P000000000003"]["ledger_premium"] == "12345.6700"
    assert form["P000000000009"]["note"].startswith("no committed deal of policy P000000000009 kept a bordereau record")
    (totals,) = doc["tables"][1]["rows"]
    assert (totals["currency"], totals["lines"], totals["deals"], totals["matched"], totals["breaks"]) == (
        "CNY", 3, 3, 1, 3)
    assert (totals["bordereau_commission"], totals["ledger_commission"], totals["commission_difference"]) == (
        "54.9900", "410.3700", "-355.3800")      # totals: the ledger's 4 places
    assert "3 break(s)" in res.stderr

    # the insurer corrects it: every line agrees, exit 0; within --tolerance 0.01 the old line matches too
    (tmp_path / "picc2.csv").write_text(
        "policy,premium,commission,date\n"
        f"P000000000001,1000.00,30.00,{today}\nP000000000002,333.33,9.99,{today}\n"
        f"P000000000003,12345.67,370.37,{today}\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(tmp_path / "picc2.csv"), "--type", "bordereau",
                     "--party", "PICC", "--tolerance", "0.01", "-q")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "3 rows, fully matched"


def test_a_bordereau_that_cannot_be_read_is_a_usage_error(tmp_path):
    ledger = tmp_path / "bsp.duckdb"
    trio.run(_collect, ledger)
    bad = tmp_path / "bad.csv"
    bad.write_text("policy,premium\nP1,1.00\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(bad), "--type", "bordereau")
    assert res.exit_code == 2
    assert "the header names no commission column" in res.stderr
    bad.write_text('policy,premium,commission,date\nP1,"1,000.00",3.00,2026-11-27\n', encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(bad), "--type", "bordereau")
    assert res.exit_code == 2
    assert f"{bad}:2: column premium: '1,000.00' is not an amount; write it as a decimal with a point" in res.stderr
    bad.write_text("policy,premium,commission\nP1,1.00,0.03\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(bad), "--type", "bordereau")
    assert res.exit_code == 2 and "no line has a date" in res.stderr


def test_a_cooling_off_cancellation_pairs_with_the_insurers_negative_line(tmp_path):
    # policy 1's premium paid and cancelled in its cooling-off period (PICC: no fee, 3% clawed back); policy 2's
    # paid, never cancelled, yet the insurer lists a refund for it; policy 3's paid and the bordereau leaves out
    ledger = tmp_path / "bsp.duckdb"
    assert trio.run(_collect, ledger, (("P000000000001", Decimal("1000.00")),)) == ["00"] * 5
    # the cancellation's deal is of today (UTC) as the premiums' are; the bordereau dates the lines so
    today = dt.datetime.now(dt.timezone.utc).date()
    (tmp_path / "picc.csv").write_text(
        "policy,premium,commission,date\n"
        f"P000000000001,1000.00,30.00,{today}\n"
        f"P000000000001,-1000.00,-30.00,{today}\n"
        f"P000000000002,333.33,10.00,{today}\n"
        f"P000000000002,-333.33,-10.00,{today}\n"
        f"P000000000003,12345.67,370.37,{today}\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(tmp_path / "picc.csv"), "--type", "bordereau",
                     "--party", "PICC", "--format", "json", "--out", "-")
    assert res.exit_code == 1, res.output
    rows = orjson.loads(res.stdout)["tables"][0]["rows"]
    got = sorted((r["policy"], r["status"], r["bordereau_premium"], r["ledger_premium"], r["ledger_commission"])
                 for r in rows)
    assert got == [
        ("P000000000001", "matched", "-1000.00", "-1000.0000", "-30.00"),      # the cancellation's record
        ("P000000000001", "matched", "1000.00", "1000.0000", "30.00"),
        ("P000000000002", "matched", "333.33", "333.3300", "10.00"),
        ("P000000000002", "only_in_bordereau", "-333.33", None, None),      # a refund the bank never cancelled
        ("P000000000003", "matched", "12345.67", "12345.6700", "370.37")]
    (alone,) = [r for r in rows if r["status"] == "only_in_bordereau"]
    assert alone["note"].startswith("a cancellation (negative line): no committed cancellation of policy P000000000002")

    # the insurer's bordereau leaves the cancellation out: the ledger's is listed alone
    (tmp_path / "picc2.csv").write_text(
        "policy,premium,commission,date\n"
        f"P000000000001,1000.00,30.00,{today}\nP000000000002,333.33,10.00,{today}\n"
        f"P000000000003,12345.67,370.37,{today}\n", encoding="utf-8")
    res = _reconcile("--ledger", str(ledger), "--against", str(tmp_path / "picc2.csv"), "--type", "bordereau",
                     "--party", "PICC", "--format", "json", "--out", "-")
    assert res.exit_code == 1, res.output
    (alone,) = [r for r in orjson.loads(res.stdout)["tables"][0]["rows"] if r["status"] != "matched"]
    assert (alone["status"], alone["policy"], alone["ledger_premium"]) == ("only_in_ledger", "P000000000001",
                                                                           "-1000.0000")
    assert alone["note"] == "policy P000000000001: cancellation (premium -1000.0000, commission -30.00) not on the bordereau"
