"""``bsp reconcile --type totals``: the mainframe's end-of-day control totals against a real DuckDB ledger,
read as CSV and as EBCDIC copybook records (encoded with the project's own codec), each broken total named."""
from __future__ import annotations

import json
import shlex
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.codec_cli import CodecArgs, make_setup
from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile.totals import reconcile_totals
from engine.reports import ReportError
from engine.reports.businessday import business_day

REPO = Path(__file__).resolve().parents[2]
ROUTE = REPO / "routes" / "common" / "eod_totals.route"
CODES = REPO / "routes" / "common" / "eod_codes.csv"
DAY = date(2026, 3, 2)

# (deal type, currency, amount, status, UTC time on DAY)
DEALS = [("BILL_PAYMENT", "CNY", "100.00", "committed", time(1)),
         ("BILL_PAYMENT", "CNY", "200.00", "committed", time(2)),
         ("BILL_PAYMENT", "CNY", "1234.50", "committed", time(3)),
         ("BILL_PAYMENT", "CNY", "77.00", "rejected", time(4)),           # never counts
         ("BALANCE_ENQUIRY", "CNY", "0", "committed", time(5)),           # moved no money
         ("REMITTANCE_DOMESTIC", "CNY", "12000.00", "committed", time(6)),
         ("REMITTANCE_DOMESTIC", "CNY", "8000.00", "committed", time(7)),
         ("REMITTANCE_CROSS_BORDER", "USD", "950.00", "committed", time(8)),    # RX01
         ("REMITTANCE_CROSS_BORDER", "USD", "50.00", "committed", time(8, 30)),  # RX02
         ("PRODUCT_SALE", "CNY", "300.00", "committed", time(9, 30))]     # after 17:00 in Shanghai

# the mainframe's totals that tie to DEALS exactly
GOOD = [("2026-03-02", "BP01", "CNY", "D", 3, "1534.50"),
        ("2026-03-02", "RD01", "CNY", "D", 2, "20000.00"),
        ("2026-03-02", "RX01", "USD", "D", 1, "950.00"),
        ("2026-03-02", "RX02", "USD", "D", 1, "50.00"),
        ("2026-03-02", "SL01", "CNY", "C", 1, "300.00")]


async def _fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i, (typ, ccy, amount, status, at) in enumerate(DEALS):
            t = datetime.combine(DAY, at, tzinfo=timezone.utc)
            await ledger.commit(DealRecord(
                deal_type=typ, route=typ.lower(), config_version="v1", channel="mainframe", status=status,
                received_at=t, finished_at=t + timedelta(milliseconds=3), reference=f"T{i:03d}",
                amount=Decimal(amount), currency=ccy, party="BANK"))
        t = datetime.combine(DAY + timedelta(days=1), time(9), tzinfo=timezone.utc)    # another day: never counted
        await ledger.commit(DealRecord(
            deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
            status="committed", received_at=t, finished_at=t, reference="NEXT", amount=Decimal("5.00"),
            currency="CNY", party="BANK"))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.duckdb"
    trio.run(_fill, path)
    return path


def _csv(path: Path, rows: list[tuple]) -> Path:
    path.write_text("date,type,currency,dc,count,amount\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _ebcdic(path: Path, rows: list[tuple]) -> Path:
    codec = make_setup(CodecArgs(route=ROUTE, name="EodTotals")).codec
    path.write_bytes(b"".join(codec.encode({"bus_date": int(d.replace("-", "")), "txn_code": code, "currency": ccy,
                                             "dr_cr": dc, "txn_count": n, "txn_amount": Decimal(a)})
                              for d, code, ccy, dc, n, a in rows))
    return path


def _by_type(rows) -> dict[tuple[str, str], object]:
    return {(r.deal_type, r.currency): r for r in rows}


def test_csv_totals_that_tie_are_fully_matched(ledger: Path, tmp_path: Path) -> None:
    report, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", GOOD), codes=CODES)
    assert [(r.status, r.deal_type, r.currency, r.ledger.count, r.ledger.amount) for r in rows] == [
        ("matched", "BILL_PAYMENT", "CNY", 3, Decimal("1534.5000")),
        ("matched", "PRODUCT_SALE", "CNY", 1, Decimal("300.0000")),
        ("matched", "REMITTANCE_CROSS_BORDER", "USD", 2, Decimal("1000.0000")),   # RX01 + RX02: one deal type
        ("matched", "REMITTANCE_DOMESTIC", "CNY", 2, Decimal("20000.0000"))]
    assert _by_type(rows)[("REMITTANCE_CROSS_BORDER", "USD")].mainframe.codes == ["RX01 D", "RX02 D"]
    assert report.title == "End-of-day totals: fully matched"


def test_broken_csv_totals_are_named_precisely(ledger: Path, tmp_path: Path) -> None:
    bad = [("2026-03-02", "BP01", "CNY", "D", 4, "1534.50"),       # one deal more on the mainframe
           ("2026-03-02", "RD01", "CNY", "D", 2, "20000.01"),      # a cent more
           ("2026-03-02", "RX01", "USD", "D", 1, "950.00"),
           ("2026-03-02", "RX02", "USD", "D", 1, "50.00"),
           ("2026-03-02", "FS01", "CNY", "C", 1, "10.00"),         # no such deal in the ledger
           ("2026-03-02", "ZZ99", "CNY", "C", 1, "1.00")]          # a code the mapping does not know
    # (SL01 left out: PRODUCT_SALE only in the ledger)
    _, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", bad), codes=CODES)
    got = [(r.status, r.deal_type, r.currency, r.count_difference, r.amount_difference) for r in rows]
    assert got == [("count_differs", "BILL_PAYMENT", "CNY", 1, Decimal("0.0000")),
                   ("amount_differs", "REMITTANCE_DOMESTIC", "CNY", 0, Decimal("0.0100")),
                   ("only_in_ledger", "PRODUCT_SALE", "CNY", None, None),
                   ("only_on_mainframe", "FUND_SUBSCRIPTION", "CNY", None, None),
                   ("only_on_mainframe", "", "CNY", None, None),
                   ("matched", "REMITTANCE_CROSS_BORDER", "USD", 0, Decimal("0.0000"))]
    by = _by_type(rows)
    assert by[("REMITTANCE_DOMESTIC", "CNY")].note == "mainframe +0.01"
    assert by[("REMITTANCE_DOMESTIC", "CNY")].mainframe.where == [f"{tmp_path / 'eod.csv'}:3"]
    assert by[("BILL_PAYMENT", "CNY")].note == "mainframe +1 deal(s)"
    assert "code ZZ99 C is in no row of eod_codes.csv" in rows[4].note
    assert by[("FUND_SUBSCRIPTION", "CNY")].deals == ""           # nothing in the ledger to list


def test_deals_command_lists_exactly_the_deals_behind_a_break(ledger: Path, tmp_path: Path) -> None:
    bad = [r if r[1] != "RD01" else (*r[:5], "19999.99") for r in GOOD]
    _, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", bad), codes=CODES)
    row = _by_type(rows)[("REMITTANCE_DOMESTIC", "CNY")]
    assert row.status == "amount_differs" and row.amount_difference == Decimal("-0.0100")
    argv = shlex.split(row.deals)
    assert argv[:2] == ["bsp", "deals"]
    res = CliRunner().invoke(app, argv[1:] + ["--json"])
    assert res.exit_code == 0, res.output
    listed = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert sorted(Decimal(str(d["amount"])) for d in listed) == [Decimal("8000"), Decimal("12000")]


def test_ebcdic_copybook_totals_through_the_cli(ledger: Path, tmp_path: Path) -> None:
    bad = [r if r[1] != "RX02" else (*r[:5], "50.10") for r in GOOD]
    eod = _ebcdic(tmp_path / "EOD.DAT", bad)
    assert eod.read_bytes()[:4] == "2026".encode("cp037")            # really EBCDIC
    out = tmp_path / "eod.json"
    res = CliRunner().invoke(app, ["reconcile", "--ledger", str(ledger), "--against", str(eod), "--type", "totals",
                                   "--route", str(ROUTE), "--name", "EodTotals", "--codes", str(CODES),
                                   "--format", "json", "--out", str(out), "-q"])
    assert res.exit_code == 1, res.output
    assert "4 rows, 1 break(s)" in res.output
    doc = json.loads(out.read_text())
    form = doc["tables"][0]
    first = form["rows"][0]
    assert first["status"] == "amount_differs"
    assert first["deal_type"] == "REMITTANCE_CROSS_BORDER" and first["currency"] == "USD"
    assert Decimal(str(first["amount_difference"])) == Decimal("0.10")
    assert first["mainframe_rows"] == f"{eod}: record 3 (byte 62); {eod}: record 4 (byte 93)"
    assert first["deals"].startswith(f"bsp deals --ledger {ledger} --type REMITTANCE_CROSS_BORDER --status committed")

    good = _ebcdic(tmp_path / "EOD.OK", GOOD)
    res = CliRunner().invoke(app, ["reconcile", "--ledger", str(ledger), "--against", str(good), "--type", "totals",
                                   "--route", str(ROUTE), "--name", "EodTotals", "--codes", str(CODES), "-q"])
    assert res.exit_code == 0, res.output
    assert "4 rows, fully matched" in res.output


def test_business_day_with_zone_and_cutoff(ledger: Path, tmp_path: Path) -> None:
    # Shanghai, day ends 17:00 (09:00Z): PRODUCT_SALE at 09:30Z belongs to 3 March
    clock = business_day("Asia/Shanghai", "17:00")
    _, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", GOOD), codes=CODES, clock=clock,
                               on=DAY)
    by = _by_type(rows)
    sale = by[("PRODUCT_SALE", "CNY")]
    assert sale.status == "only_on_mainframe"
    assert sale.note == ("no committed PRODUCT_SALE deal in CNY on 2026-03-02; the ledger has 1 on 2026-03-03 (300.00): "
                         "a deal late or early for the business day? (--tz, --cutoff)")
    assert "--since 2026-03-02T09:00:00Z --until 2026-03-03T09:00:00Z" in sale.deals
    assert [r.status for r in rows] == ["only_on_mainframe", "matched", "matched", "matched"]
    # the same file on UTC days: all matched
    _, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", GOOD), codes=CODES, on=DAY)
    assert {r.status for r in rows} == {"matched"}


def test_not_mapped_deal_types_are_said(ledger: Path, tmp_path: Path) -> None:
    codes = tmp_path / "codes.csv"
    codes.write_text("code,deal_type\nBP01,BILL_PAYMENT\n")
    report, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", GOOD[:1]), codes=codes)
    assert [r.status for r in rows] == ["matched"]
    assert report.params["not compared"].startswith("PRODUCT_SALE (1 deal(s)), REMITTANCE_CROSS_BORDER (2 deal(s))")


def test_errors_name_the_place(ledger: Path, tmp_path: Path) -> None:
    eod = tmp_path / "eod.csv"
    eod.write_text("date,type,currency,count,amount\n2026-03-02,BP01,CNY,3,1534.5O\n")
    with pytest.raises(ReportError, match=r"eod.csv:2: column amount: '1534.5O' is not a decimal number"):
        reconcile_totals(ledger, eod)
    eod.write_text("date,code,ccy,items,amount\n2026-03-02,BP01,CNY,3,1534.50\n")
    with pytest.raises(ReportError, match=r"eod.csv:1: no count field .*--columns count=FIELD"):
        reconcile_totals(ledger, eod)
    _, rows = reconcile_totals(ledger, eod, columns={"count": "items"}, codes=CODES, on=DAY)
    assert _by_type(rows)[("BILL_PAYMENT", "CNY")].status == "matched"
    with pytest.raises(ReportError, match=r"--date 2026-03-05: .* has no total of that day; it holds 2026-03-02"):
        reconcile_totals(ledger, eod, columns={"count": "items"}, on=date(2026, 3, 5))
    # an EBCDIC file read as CSV: told to give its copybook
    with pytest.raises(ReportError, match=r"not UTF-8 text; an EBCDIC file is read through its copybook"):
        reconcile_totals(ledger, _ebcdic(tmp_path / "EOD.DAT", GOOD))
    res = CliRunner().invoke(app, ["reconcile", "--ledger", str(ledger), "--against", str(eod), "--type", "csv",
                                   "--codes", str(CODES)])
    assert res.exit_code == 2 and "--codes reads a mainframe totals file" in res.output


def test_fixed_width_text_through_a_route_format(ledger: Path, tmp_path: Path) -> None:
    route = tmp_path / "eod.route"
    route.write_text('format EodFixed = fixed {\n    bus_date date(8, "%Y%m%d")\n    txn_code string(4)\n'
                     '    currency string(3)\n    txn_count integer(7)\n    txn_amount decimal(15, 2)\n}\n')
    eod = tmp_path / "eod.txt"      # implied 2 decimals: 000000000153450 is 1534.50; RD01 one deal short
    eod.write_text("20260302BP01CNY0000003000000000153450\n20260302RD01CNY0000001000000002000000\n")
    codes = tmp_path / "codes.csv"
    codes.write_text("code,deal_type\nBP01,BILL_PAYMENT\nRD01,REMITTANCE_DOMESTIC\n")
    _, rows = reconcile_totals(ledger, eod, route=route, name="EodFixed", codes=codes)
    assert [(r.status, r.deal_type, r.count_difference, r.amount_difference, r.mainframe.where) for r in rows] == [
        ("count_differs", "REMITTANCE_DOMESTIC", -1, Decimal("0.0000"), [f"{eod}: record 2 (byte 38)"]),
        ("matched", "BILL_PAYMENT", 0, Decimal("0.0000"), [f"{eod}: record 1 (byte 0)"])]
    assert rows[0].note == "mainframe -1 deal(s)"


def test_a_corrupt_ebcdic_record_is_named_by_record_byte_and_field(ledger: Path, tmp_path: Path) -> None:
    eod = _ebcdic(tmp_path / "EOD.DAT", GOOD)
    data = bytearray(eod.read_bytes())
    data[31 + 25] = 0xFA                 # record 2's packed amount: a nibble that is no digit
    eod.write_bytes(bytes(data))
    with pytest.raises(ReportError, match=r"EOD.DAT: not a EodTotals record: record 2, byte 56, field txn_amount: "
                                          r"invalid packed digits"):
        reconcile_totals(ledger, eod, route=ROUTE, name="EodTotals", codes=CODES)


def test_codes_by_direction(ledger: Path, tmp_path: Path) -> None:
    codes = tmp_path / "codes.csv"
    codes.write_text("code,dc,deal_type\nBP01,D,BILL_PAYMENT\nBP01,C,BILL_REFUND\n")
    rows_in = [("2026-03-02", "BP01", "CNY", "D", 3, "1534.50"), ("2026-03-02", "BP01", "CNY", "C", 1, "-20.00")]
    _, rows = reconcile_totals(ledger, _csv(tmp_path / "eod.csv", rows_in), codes=codes)
    assert [(r.status, r.deal_type, r.mainframe.codes, r.mainframe.amount) for r in rows] == [
        ("only_on_mainframe", "BILL_REFUND", ["BP01 C"], Decimal("20.0000")),    # a debit written negative: 20
        ("matched", "BILL_PAYMENT", ["BP01 D"], Decimal("1534.5000"))]
