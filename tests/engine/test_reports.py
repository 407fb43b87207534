"""Reports over a real ledger file written by the real ledger (engine.ledger.open_ledger)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reports import ReportError, build_report, period, write
from engine.reports.tabular import csv_text

D1 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
D2 = datetime(2026, 3, 3, 23, 30, tzinfo=timezone.utc)

# (when, type, status, code, reason, amount, currency, party, duration ms)
DEALS = [
    (D1, "BILL_PAYMENT", "committed", "00", None, "120.50", "CNY", "EL01", 10),
    (D1, "BILL_PAYMENT", "committed", "00", None, "12345678901234.56", "CNY", "EL01", 20),
    (D1, "BILL_PAYMENT", "rejected", "13", "invalid amount", "0.01", "CNY", "EL01", 30),
    (D1, "BILL_PAYMENT", "failed", "91", "biller timeout", "99.99", "CNY", "WA02", 40),
    (D1, "TRANSFER", "committed", "00", None, "1500", "JPY", "BK07", 5),
    (D1, "TRANSFER", "committed", "00", None, "7.125", "KWD", "BK07", 7),
    (D2, "BILL_PAYMENT", "committed", "00", None, "0.10", "CNY", "EL01", 50),
    (D2, "BILL_PAYMENT", "rejected", "13", "invalid amount", "5.00", "CNY", "EL01", 60),
    (D2 + timedelta(hours=1), "BILL_PAYMENT", "committed", "00", None, "1.00", "CNY", "EL01", 1),  # next UTC day
    (D1 - timedelta(days=1), "BILL_PAYMENT", "committed", "00", None, "1000.00", "CNY", "EL01", 1),  # before
]


async def fill(path: Path, deals=DEALS) -> None:
    async with open_ledger(path) as ledger:
        for i, (at, typ, status, code, reason, amount, cur, party, ms) in enumerate(deals):
            at = at + timedelta(seconds=i)
            await ledger.commit(DealRecord(
                deal_type=typ, route=typ.lower(), config_version="v1", channel="mainframe", status=status,
                received_at=at, finished_at=at + timedelta(milliseconds=ms), reference=f"R{i:03d}",
                amount=Decimal(amount), currency=cur, party=party, response_code=code, reason=reason))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(fill, path)
    return path


MARCH_2_3 = period("2026-03-02", "2026-03-03")


def test_daily_summary_rows_exact(ledger: Path) -> None:
    rep = build_report("daily-summary", ledger, MARCH_2_3)
    rows = rep.main.dicts()
    key = {(r["day"], r["deal_type"], r["currency"]): r for r in rows}
    assert sorted(key) == [(date(2026, 3, 2), "BILL_PAYMENT", "CNY"), (date(2026, 3, 2), "TRANSFER", "JPY"),
                           (date(2026, 3, 2), "TRANSFER", "KWD"), (date(2026, 3, 3), "BILL_PAYMENT", "CNY")]
    bp = key[(date(2026, 3, 2), "BILL_PAYMENT", "CNY")]
    assert (bp["deals"], bp["committed"], bp["rejected"], bp["failed"]) == (4, 2, 1, 1)
    assert bp["amount_committed"] == Decimal("12345678901355.06")
    assert isinstance(bp["amount_committed"], Decimal)
    assert bp["amount_all"] == Decimal("12345678901455.06")
    assert bp["success_rate"] == Decimal("0.5")
    assert bp["p50_ms"] == pytest.approx(25.0) and bp["p99_ms"] == pytest.approx(39.7)
    d3 = key[(date(2026, 3, 3), "BILL_PAYMENT", "CNY")]
    assert (d3["deals"], d3["amount_committed"]) == (2, Decimal("0.10"))
    totals = {r["currency"]: r for r in rep.tables[1].dicts()}
    assert totals["CNY"]["amount_committed"] == Decimal("12345678901355.16")
    assert totals["CNY"]["success_rate"] == Decimal("0.5")
    assert totals["KWD"]["amount_committed"] == Decimal("7.125")
    figures = dict(rep.figures)
    assert figures["deals"] == "8" and figures["success rate"] == "62.50 %"
    assert figures["committed CNY"] == "12,345,678,901,355.16" and figures["committed JPY"] == "1,500"


def test_rejections(ledger: Path) -> None:
    rep = build_report("rejections", ledger, MARCH_2_3)
    rows = rep.main.dicts()
    assert [(r["status"], r["response_code"], r["reason"], r["deals"], r["amount"]) for r in rows] == [
        ("rejected", "13", "invalid amount", 2, Decimal("5.01")),
        ("failed", "91", "biller timeout", 1, Decimal("99.99")),
    ]
    by_code = rep.tables[1].dicts()
    assert by_code[0] == {"status": "rejected", "response_code": "13", "deals": 2, "share": Decimal("0.25")}
    assert dict(rep.figures)["rejected or failed"] == "37.50 %"


def test_rejections_before_the_amount_is_read_and_reasons_from_two_installations(tmp_path: Path) -> None:
    """A request rejected before its route read an amount has none: empty, not 0.00; a reason's route place
    groups by the file's name, wherever the routes were installed."""
    at = D1
    deals = [(at, "bill_payment", "rejected", "12", f"rejected: unknown biller (at {root}/bill.route:53:9)",
              None, None, None, 1) for root in ("/srv/a/routes", "/opt/bsp/routes")]
    path = tmp_path / "b.duckdb"

    async def fill_none() -> None:
        async with open_ledger(path) as ledger:
            for i, (when, typ, status, code, reason, _, _, _, ms) in enumerate(deals):
                await ledger.commit(DealRecord(
                    deal_type=typ, route=typ, config_version="v1", channel="mainframe", status=status,
                    received_at=when, finished_at=when + timedelta(milliseconds=ms), reference=None,
                    response_code=code, reason=reason))
    trio.run(fill_none)
    rep = build_report("rejections", path, MARCH_2_3)
    (row,) = rep.main.dicts()
    assert (row["reason"], row["deals"], row["amount"]) == ("rejected: unknown biller (at bill.route:53:9)", 2, None)
    by_reason = rep.tables[2].dicts()
    assert by_reason == [{"status": "rejected", "reason": "rejected: unknown biller (at bill.route:53:9)",
                          "deals": 2, "share": Decimal("1")}]
    assert "0.00" not in csv_text(rep.main)


def test_counterparty_statement_running_totals(ledger: Path) -> None:
    rep = build_report("counterparty-statement", ledger, MARCH_2_3, party="EL01")
    rows = rep.main.dicts()
    assert [(r["reference"], r["status"], r["running_total"]) for r in rows] == [
        ("R000", "committed", Decimal("1120.50")),           # opening 1000.00 brought forward
        ("R001", "committed", Decimal("12345678902355.06")),
        ("R002", "rejected", Decimal("12345678902355.06")),   # not committed: total unchanged
        ("R006", "committed", Decimal("12345678902355.16")),
        ("R007", "rejected", Decimal("12345678902355.16")),
    ]
    (tot,) = rep.tables[1].dicts()
    assert tot == {"currency": "CNY", "opening": Decimal("1000.00"), "committed_deals": 3, "other_deals": 2,
                   "duplicates": 0, "movement": Decimal("12345678901355.16"), "closing": Decimal("12345678902355.16")}


def test_counterparty_unknown_party_names_the_known_ones(ledger: Path) -> None:
    with pytest.raises(ReportError, match=r"--party 'XX'.*parties in this ledger: BK07, EL01, WA02"):
        build_report("counterparty-statement", ledger, MARCH_2_3, party="XX")


def test_errors_say_what_to_do(tmp_path: Path, ledger: Path) -> None:
    with pytest.raises(ReportError, match="no ledger file here; give the engine's ledger with --ledger"):
        build_report("daily-summary", tmp_path / "nope.duckdb", MARCH_2_3)
    with pytest.raises(ReportError, match=r"--from '2026-3-x': expected a date as YYYY-MM-DD"):
        period("2026-3-x", "2026-03-03")
    with pytest.raises(ReportError, match="--to 2026-03-01 is before --from 2026-03-02"):
        period("2026-03-02", "2026-03-01")
    with pytest.raises(ReportError, match="no report named 'daily'; the reports are: daily-summary"):
        build_report("daily", ledger, MARCH_2_3)
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(ReportError, match="without a `deals` table"):
        build_report("daily-summary", other, MARCH_2_3)
    with pytest.raises(ReportError, match="the folder .* does not exist"):
        write(build_report("rejections", ledger, MARCH_2_3), "csv", tmp_path / "no" / "x.csv")


def test_daily_summary_counts_a_duplicate_apart_not_as_a_deal_nor_as_money(tmp_path: Path) -> None:
    # a repeat of a deal key is answered with its original's reply and its row carries the original's
    # amount: before, it counted in `deals` (lowering the success rate) and its amount in `amount_all`
    path = tmp_path / "bsp.duckdb"
    trio.run(fill, path, [
        (D1, "BILL_PAYMENT", "committed", "00", None, "120.50", "CNY", "EL01", 10),
        (D1, "BILL_PAYMENT", "duplicate", "00", None, "120.50", "CNY", "EL01", 1),
        (D1, "BILL_PAYMENT", "duplicate", "00", None, "120.50", "CNY", "EL01", 1),
        (D1, "BILL_PAYMENT", "rejected", "13", "invalid amount", "0.01", "CNY", "EL01", 30),
    ])
    rep = build_report("daily-summary", path, MARCH_2_3)
    (row,) = rep.main.dicts()
    assert (row["deals"], row["committed"], row["rejected"], row["failed"], row["duplicates"]) == (2, 1, 1, 0, 2)
    assert row["amount_committed"] == Decimal("120.50") and row["amount_all"] == Decimal("120.51")
    assert row["success_rate"] == Decimal("0.5")
    (total,) = rep.tables[1].dicts()
    assert (total["deals"], total["duplicates"], total["success_rate"]) == (2, 2, Decimal("0.5"))
    figures = dict(rep.figures)
    assert figures["deals"] == "2" and figures["duplicates"] == "2" and figures["success rate"] == "50.00 %"
    assert [b.value for b in rep.charts[0].bars] == [2]


def test_csv_exact_money_and_side_files(ledger: Path, tmp_path: Path) -> None:
    rep = build_report("daily-summary", ledger, MARCH_2_3)
    paths = write(rep, "csv", tmp_path / "daily.csv")
    assert [p.name for p in paths] == ["daily.csv", "daily.totals.csv"]
    rows = list(csv.DictReader(io.StringIO(paths[0].read_text())))
    assert rows[0]["amount_committed"] == "12345678901355.0600"
    assert rows[0]["success_rate"] == "0.500000" and rows[0]["day"] == "2026-03-02"
    assert csv_text(rep.main) == paths[0].read_text()


def test_parquet_keeps_decimals(ledger: Path, tmp_path: Path) -> None:
    rep = build_report("daily-summary", ledger, MARCH_2_3)
    paths = write(rep, "parquet", tmp_path / "daily.parquet")
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM '{paths[0]}'").fetchall()}
    assert types["amount_committed"] == "DECIMAL(38,4)" and types["day"] == "DATE"
    total = con.execute(f"SELECT sum(amount_committed) FROM '{paths[1]}' WHERE currency = 'CNY'").fetchone()[0]
    assert total == Decimal("12345678901355.16")


# ------------------------------------------------------------------ the command

def cli(*args: str):
    import typer
    from typer.testing import CliRunner

    from engine.commands.report import register

    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["report", *args])


def test_cli_table_and_csv_stdout(ledger: Path) -> None:
    r = cli("daily-summary", "--ledger", str(ledger), "--from", "2026-03-02", "--to", "2026-03-03")
    assert r.exit_code == 0, r.output
    assert "12,345,678,901,355.06" in r.output and "50.00 %" in r.output
    r = cli("rejections", "--ledger", str(ledger), "--from", "2026-03-02", "--to", "2026-03-03", "--format", "csv")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1] == "rejected,bill_payment,BILL_PAYMENT,13,invalid amount,CNY,2,5.0100," \
                                      "2026-03-02T09:00:02+00:00,2026-03-03T23:30:07+00:00,"


def test_cli_writes_files(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "st.html"
    r = cli("counterparty-statement", "--party", "EL01", "--ledger", str(ledger), "--from", "2026-03-02",
            "--to", "2026-03-03", "--format", "html", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "Statement for EL01" in out.read_text()


def test_today_and_yesterday_are_utc_days(tmp_path: Path) -> None:
    # an operator's nightly `--from yesterday` and a look at `--from today`, without typing the date
    d = date(2026, 3, 1)
    assert period("yesterday", "Today", today=d) == period("2026-02-28", "2026-03-01")
    assert period(" TODAY ", today=d) == period("2026-03-01")
    with pytest.raises(ReportError, match="--to 2026-02-28 is before --from 2026-03-01"):
        period("today", "yesterday", today=d)
    now = datetime.now(timezone.utc)
    path = tmp_path / "bsp.duckdb"
    trio.run(fill, path, [(now, "BILL_PAYMENT", "committed", "00", None, "1.00", "CNY",
                           "EL01", 1)])
    for first, last, n in (("today", "today", 1), ("yesterday", "today", 1), ("yesterday", "yesterday", 0)):
        r = cli("daily-summary", "--ledger", str(path), "--from", first, "--to", last, "--format", "csv")
        assert r.exit_code == 0, r.output
        if now.date() == datetime.now(timezone.utc).date():     # not run across midnight UTC
            assert len(r.stdout.splitlines()) == 1 + n, r.stdout


@pytest.mark.parametrize("args, message", [
    (["daily", "--from", "2026-03-02"], "no report named 'daily'"),
    (["daily-summary", "--from", "03/02/2026"], "--from '03/02/2026': expected a date as YYYY-MM-DD "
                                                "(e.g. 2026-03-01), today or yesterday"),
    (["daily-summary", "--from", "2026-03-02", "--format", "pdf"], "--format 'pdf': expected one of table, csv"),
    (["rejections", "--from", "2026-03-02", "--party", "X"], "--party is for counterparty-statement"),
    (["counterparty-statement", "--from", "2026-03-02"], "needs the party: --party NAME"),
])
def test_cli_usage_errors_exit_2(ledger: Path, args: list[str], message: str) -> None:
    r = cli(*args, "--ledger", str(ledger))
    assert r.exit_code == 2
    assert message in r.output
