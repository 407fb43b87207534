"""`bsp report` and `bsp reconcile` on the bank's business day: `--tz ZONE` and `--cutoff HH:MM`, on real DuckDB
ledgers with deals placed around local midnight and the cut-off.  The demo bank is a CNY bank (Asia/Shanghai:
its day ends at 16:00 UTC); a cut-off of 17:00 local moves the day's end to 09:00 UTC.  Europe/Berlin around
2026-03-29 (a 23-hour day) and 2026-10-25 (a 25-hour day) checks the clock changes.  Expected totals are summed
by hand with Decimal, from UTC bounds written out here (not from the code under test)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.deal import DealEvent, DealRecord
from engine.deal_resolve import resolve_in_file
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file
from engine.reports import ReportError, build_report, period
from engine.reports.businessday import business_day
from engine.reports.tabular import csv_text

Z = timezone.utc


def _at(*a: int) -> datetime:
    return datetime(*a, tzinfo=Z)


# (reference, UTC instant, status, amount CNY); the comment says the Shanghai wall clock
CNY = (
    ("A", _at(2026, 3, 1, 15, 59, 59), "committed", "100.00"),   # 03-01 23:59:59
    ("B", _at(2026, 3, 1, 16, 0, 0), "committed", "200.00"),     # 03-02 00:00:00
    ("C", _at(2026, 3, 2, 8, 59, 59), "committed", "300.00"),    # 03-02 16:59:59 (before a 17:00 cut-off)
    ("D", _at(2026, 3, 2, 9, 0, 0), "committed", "400.00"),      # 03-02 17:00:00 (the cut-off: the next day)
    ("E", _at(2026, 3, 2, 15, 59, 59), "rejected", "50.00"),     # 03-02 23:59:59
    ("F", _at(2026, 3, 2, 16, 0, 0), "committed", "600.00"),     # 03-03 00:00:00
)


async def _fill(path: Path, deals, currency: str = "CNY", flagged: dict[str, bool] | None = None) -> dict[str, str]:
    ids = {}
    async with open_ledger(path) as ledger:
        for ref, at, status, amount in deals:
            events = ([DealEvent(at, "calling post", "flagged", {"why": "call post left in doubt"})]
                      if (flagged or {}).get(ref) else [])
            deal = DealRecord(
                deal_type="TRANSFER", route="transfer", config_version="v1", channel="mainframe", status=status,
                received_at=at, finished_at=at + timedelta(milliseconds=4), reference=ref, amount=Decimal(amount),
                currency=currency, party="ACME", response_code="00" if status == "committed" else "91",
                reason=None if status == "committed" else "host down", events=events)
            await ledger.commit(deal)
            ids[ref] = deal.deal_id
    return ids


@pytest.fixture
def cny(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(_fill, path, CNY)
    return path


def _in(lo: datetime, hi: datetime, deals=CNY) -> list[tuple]:
    return [d for d in deals if lo <= d[1] < hi]


def _committed(deals) -> Decimal:
    return sum((Decimal(a) for _, _, s, a in deals if s == "committed"), Decimal("0"))


def _summary(rep) -> list[tuple]:
    return [(r["day"], r["deals"], r["rejected"], r["amount_committed"]) for r in rep.main.dicts()]


def test_daily_summary_on_the_shanghai_day(cny: Path) -> None:
    # Shanghai day D: [D-1 16:00 UTC, D 16:00 UTC)
    days = {date(2026, 3, d): _in(_at(2026, 3, d - 1, 16), _at(2026, 3, d, 16)) for d in (2, 3)}
    days[date(2026, 3, 1)] = _in(_at(2026, 2, 28, 16), _at(2026, 3, 1, 16))
    assert [r for r, *_ in days[date(2026, 3, 2)]] == ["B", "C", "D", "E"]
    rep = build_report("daily-summary", cny, period("2026-03-01", "2026-03-03", clock=business_day("Asia/Shanghai")))
    assert _summary(rep) == [(d, len(ds), sum(s == "rejected" for *_, s, _ in ds), _committed(ds))
                             for d, ds in sorted(days.items())]
    assert _summary(rep)[1] == (date(2026, 3, 2), 4, 1, Decimal("900.00"))
    assert rep.params["business day"] == "Asia/Shanghai, midnight to midnight"
    one = build_report("daily-summary", cny, period("2026-03-02", clock=business_day("Asia/Shanghai")))
    assert [(r["currency"], r["deals"], r["amount_committed"]) for r in one.tables[1].dicts()] == [
        ("CNY", 4, Decimal("900.00"))]


def test_daily_summary_with_a_cut_off(cny: Path) -> None:
    # 17:00 Shanghai = 09:00 UTC: day D is [D-1 09:00 UTC, D 09:00 UTC)
    clock = business_day("Asia/Shanghai", "17:00")
    rep = build_report("daily-summary", cny, period("2026-03-01", "2026-03-04", clock=clock))
    want = []
    for d in (2, 3):
        ds = _in(_at(2026, 3, d - 1, 9), _at(2026, 3, d, 9))
        want.append((date(2026, 3, d), len(ds), sum(s == "rejected" for *_, s, _ in ds), _committed(ds)))
    assert _summary(rep) == want == [(date(2026, 3, 2), 3, 0, Decimal("600.00")),
                                     (date(2026, 3, 3), 3, 1, Decimal("1000.00"))]
    assert rep.params["business day"] == "Asia/Shanghai, day ends 17:00"


def test_the_cli_options_and_the_header(cny: Path) -> None:
    r = CliRunner().invoke(app, ["report", "daily-summary", "--ledger", str(cny), "--from", "2026-03-02",
                                 "--tz", "Asia/Shanghai", "--cutoff", "17:00", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1].startswith("2026-03-02,TRANSFER,CNY,3,3,0,0,0,600.0000,600.0000,")
    r = CliRunner().invoke(app, ["report", "daily-summary", "--ledger", str(cny), "--from", "2026-03-02",
                                 "--tz", "Asia/Shanghai"])
    assert r.exit_code == 0, r.output
    assert "business day: Asia/Shanghai, midnight to midnight" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["report", "daily-summary", "--ledger", str(cny), "--from", "2026-03-02",
                                 "--tz", "Mars/Olympus"])
    assert r.exit_code == 2 and "--tz 'Mars/Olympus': not a known time zone" in r.output
    r = CliRunner().invoke(app, ["report", "daily-summary", "--ledger", str(cny), "--from", "2026-03-02",
                                 "--cutoff", "5pm"])
    assert r.exit_code == 2 and "--cutoff '5pm': expected a time of day as HH:MM" in r.output


# a deal every 30 minutes, amount i.01 for deal i, from 2026-03-27 12:00 UTC and from 2026-10-23 12:00 UTC
def _halfhourly(start: datetime, n: int) -> list[tuple]:
    return [(f"R{i:04d}", start + i * timedelta(minutes=30), "committed", f"{i}.01") for i in range(n)]


BERLIN = _halfhourly(_at(2026, 3, 27, 12), 4 * 48) + _halfhourly(_at(2026, 10, 23, 12), 4 * 48)


@pytest.mark.parametrize("cutoff, day, lo, hi, hours", [
    (None, date(2026, 3, 28), _at(2026, 3, 27, 23), _at(2026, 3, 28, 23), 24),
    (None, date(2026, 3, 29), _at(2026, 3, 28, 23), _at(2026, 3, 29, 22), 23),    # spring forward
    (None, date(2026, 3, 30), _at(2026, 3, 29, 22), _at(2026, 3, 30, 22), 24),
    (None, date(2026, 10, 25), _at(2026, 10, 24, 22), _at(2026, 10, 25, 23), 25),  # fall back
    (None, date(2026, 10, 26), _at(2026, 10, 25, 23), _at(2026, 10, 26, 23), 24),
    ("17:00", date(2026, 3, 29), _at(2026, 3, 28, 16), _at(2026, 3, 29, 15), 23),
    ("17:00", date(2026, 10, 25), _at(2026, 10, 24, 15), _at(2026, 10, 25, 16), 25),
    ("02:30", date(2026, 3, 29), _at(2026, 3, 28, 1, 30), _at(2026, 3, 29, 1), 23.5),  # 02:30 jumped over: ends at 03:00 CEST
])
def test_berlin_days_across_the_clock_changes(tmp_path: Path, cutoff, day, lo, hi, hours) -> None:
    path = tmp_path / "bsp.duckdb"
    trio.run(_fill, path, BERLIN, "EUR")
    assert (hi - lo) == timedelta(hours=hours)
    ds = _in(lo, hi, BERLIN)
    rep = build_report("daily-summary", path, period(day, clock=business_day("Europe/Berlin", cutoff)))
    assert _summary(rep) == [(day, len(ds), 0, _committed(ds))]
    assert len(ds) == int(hours * 2)


def test_berlin_grouping_over_the_changes(tmp_path: Path) -> None:
    path = tmp_path / "bsp.duckdb"
    trio.run(_fill, path, BERLIN, "EUR")
    rep = build_report("daily-summary", path, period("2026-03-28", "2026-03-30", clock=business_day("Europe/Berlin")))
    assert [(d, n) for d, n, _, _ in _summary(rep)] == [(date(2026, 3, 28), 48), (date(2026, 3, 29), 46),
                                                       (date(2026, 3, 30), 48)]
    rep = build_report("daily-summary", path, period("2026-10-24", "2026-10-26", clock=business_day("Europe/Berlin")))
    assert [(d, n) for d, n, _, _ in _summary(rep)] == [(date(2026, 10, 24), 48), (date(2026, 10, 25), 50),
                                                       (date(2026, 10, 26), 48)]
    # open-ended: every deal once, whatever the days
    rep = build_report("daily-summary", path, period("2026-01-01", "9999-12-31", clock=business_day("Europe/Berlin",
                                                                                                   "17:00")))
    assert sum(n for _, n, _, _ in _summary(rep)) == len(BERLIN)
    assert sum(a for *_, a in _summary(rep)) == _committed(BERLIN)


def test_the_statement_shows_the_business_day_and_the_offset(cny: Path) -> None:
    rep = build_report("counterparty-statement", cny,
                       period("2026-03-02", clock=business_day("Asia/Shanghai", "17:00")), party="ACME")
    assert [(r["reference"], r["date"], r["received_at"].isoformat()) for r in rep.main.dicts()] == [
        ("A", date(2026, 3, 2), "2026-03-01T23:59:59+08:00"),
        ("B", date(2026, 3, 2), "2026-03-02T00:00:00+08:00"),
        ("C", date(2026, 3, 2), "2026-03-02T16:59:59+08:00")]
    # no deal of ACME before 2026-03-01 09:00 UTC: the closing is the day's movement, A + B + C
    assert [t["closing"] for t in rep.tables[1].dicts()] == [_committed(_in(_at(2026, 3, 1, 9), _at(2026, 3, 2, 9)))]
    assert rep.tables[1].dicts()[0]["closing"] == Decimal("600.00")
    lines = csv_text(rep.main).splitlines()
    assert lines[1].startswith("2026-03-02,2026-03-01T23:59:59+08:00,A,")
    assert [c.label for c in rep.main.columns][:2] == ["business day", "received (Asia/Shanghai)"]


def test_the_rejections_report_shows_flags_and_local_times(tmp_path: Path) -> None:
    path = tmp_path / "bsp.duckdb"
    deals = (("F1", _at(2026, 3, 2, 1), "failed", "10.00"), ("F2", _at(2026, 3, 2, 2), "failed", "20.00"),
             ("F3", _at(2026, 3, 2, 3), "failed", "30.00"), ("R1", _at(2026, 3, 2, 4), "rejected", "5.00"))
    ids = trio.run(_fill, path, deals, "CNY", {"F1": True, "F2": True})
    resolve_in_file(path, ids["F2"], "applied", "booked by hand, OPS-1", "ops-alice", None)
    rep = build_report("rejections", path, period("2026-03-02", clock=business_day("Asia/Shanghai")))
    main = {r["status"]: r for r in rep.main.dicts()}
    assert main["failed"]["deals"] == 3 and main["failed"]["amount"] == Decimal("60.00")
    assert main["failed"]["flag"] == "1 open, 1 resolved" and main["rejected"]["flag"] is None
    assert main["failed"]["first_at"].isoformat() == "2026-03-02T09:00:00+08:00"
    assert [t.name for t in rep.tables] == ["rejections", "by_code", "by_reason", "flagged"]
    flagged = rep.tables[3]
    assert [(r["reference"], r["flag"]) for r in flagged.dicts()] == [
        ("F1", "flagged, open: settle it with the counterpart, then bsp deals resolve"),
        ("F2", "flagged, resolved: applied")]
    assert ("flagged, open", "1 (bsp deals --flagged)") in rep.figures
    # UTC too: the flags do not depend on the zone
    assert build_report("rejections", path, period("2026-03-02")).main.dicts()[0]["flag"] == "1 open, 1 resolved"


def test_the_clock_itself() -> None:
    berlin = business_day("Europe/Berlin", "02:30")
    assert berlin.day_of(_at(2026, 3, 29, 0, 59, 59)) == date(2026, 3, 29)     # 01:59:59 CET
    assert berlin.day_of(_at(2026, 3, 29, 1, 0)) == date(2026, 3, 30)          # 03:00 CEST: past 02:30
    assert berlin.day_of(_at(2026, 10, 25, 0, 30)) == date(2026, 10, 26)       # 02:30 CEST, the first passing
    assert berlin.day_of(_at(2026, 10, 25, 1, 15)) == date(2026, 10, 26)       # 02:15 CET, the second hour
    sh = business_day("Asia/Shanghai")
    for at in (d[1] for d in CNY):
        local = at.astimezone(sh.tz)
        assert sh.day_of(at) == local.date()
        lo, hi = sh.bounds(local.date(), local.date())
        assert lo <= at < hi and hi - lo == timedelta(hours=24)
    assert business_day("UTC", "00:00") is business_day()
    with pytest.raises(ReportError, match="--cutoff '24:00'"):
        business_day("UTC", "24:00")
    assert business_day("Asia/Shanghai", "17:00").cutoff == time(17)


def _statement(tmp_path: Path, rows: list[str]) -> Path:
    stmt = tmp_path / "bank.csv"
    stmt.write_text("reference,amount,currency,date\n" + "".join(r + "\n" for r in rows))
    return stmt


def test_reconcile_on_the_shanghai_day(cny: Path, tmp_path: Path) -> None:
    # the bank books B (00:00 Shanghai, 03-02) on 03-02 and F (00:00 Shanghai, 03-03) on 03-03;
    # C and D on 03-02
    stmt = _statement(tmp_path, ["B,200.00,CNY,2026-03-02", "C,300.00,CNY,2026-03-02", "D,400.00,CNY,2026-03-02",
                                 "F,600.00,CNY,2026-03-03"])
    clock = business_day("Asia/Shanghai")
    rep, rows = reconcile_file(cny, stmt, "csv", on=date(2026, 3, 2), days=0, clock=clock)
    assert sorted((r.status, r.deal.reference) for r in rows) == [
        ("matched", "B"), ("matched", "C"), ("matched", "D")]
    assert rep.params["business day"] == "Asia/Shanghai, midnight to midnight"
    # on UTC days B is a deal of 03-01 (a date mismatch with --days 0) and F one of 03-02, booked the next day
    _, utc = reconcile_file(cny, stmt, "csv", on=date(2026, 3, 2), days=0)
    assert {r.deal.reference: r.status for r in utc if r.deal} == {
        "B": "date_mismatch", "C": "matched", "D": "matched", "F": "only_in_ledger"}


def test_reconcile_timing_note_on_the_cut_off_day(cny: Path, tmp_path: Path) -> None:
    # 17:00 cut-off: D (17:00 local on 03-02) belongs to business day 03-03; the bank books it on 03-03
    stmt = _statement(tmp_path, ["A,100.00,CNY,2026-03-02", "B,200.00,CNY,2026-03-02", "D,400.00,CNY,2026-03-04",
                                 "C,300.00,CNY,2026-03-03", "F,600.00,CNY,2026-03-03"])
    clock = business_day("Asia/Shanghai", "17:00")
    _, rows = reconcile_file(cny, stmt, "csv", on=date(2026, 3, 2), days=1, clock=clock)
    got = {r.deal.reference: (r.status, r.note) for r in rows if r.deal}
    assert got["A"][0] == got["B"][0] == "matched" and "D" not in got and "F" not in got
    assert got["C"] == ("only_in_ledger", f"not on the statement's lines of 2026-03-02; booked 2026-03-03 "
                                          f"({stmt}:5), outside --date 2026-03-02: a timing difference, "
                                          f"reconciled with --date 2026-03-03")
    # on 03-03: D and F are the day's deals; C (of 03-02, booked 03-03) pairs within --days 1; D is booked
    # on 03-04, a timing difference again
    _, nxt = reconcile_file(cny, stmt, "csv", on=date(2026, 3, 3), days=1, clock=clock)
    got = {r.deal.reference: (r.status, r.note) for r in nxt if r.deal}
    assert got["C"][0] == got["F"][0] == "matched"
    assert got["D"] == ("only_in_ledger", f"not on the statement's lines of 2026-03-03; booked 2026-03-04 "
                                          f"({stmt}:4), outside --date 2026-03-03: a timing difference, "
                                          f"reconciled with --date 2026-03-04")


def test_reconcile_cli_takes_the_options(cny: Path, tmp_path: Path) -> None:
    stmt = _statement(tmp_path, ["B,200.00,CNY,2026-03-02", "C,300.00,CNY,2026-03-02", "D,400.00,CNY,2026-03-02"])
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(cny), "--against", str(stmt), "--type", "csv",
                                 "--date", "2026-03-02", "--days", "0", "--tz", "Asia/Shanghai", "-q"])
    assert r.exit_code == 0, r.output
    assert "3 lines, fully matched" in r.output


def test_the_deployment_files_business_day_is_the_default_and_a_flag_wins(cny: Path, tmp_path: Path) -> None:
    """`business_day: {tz, cutoff}` in platform.yaml: `bsp report --deployment` and `bsp reconcile --deployment`
    count in it without --tz / --cutoff; each flag given replaces its own key only."""
    (tmp_path / "r.route").write_text("")
    dep = tmp_path / "platform.yaml"
    dep.write_text(f'routes: [r.route]\nledger: {cny.name}\nbusiness_day: {{tz: Asia/Shanghai, cutoff: "17:00"}}\n')

    def summary(*flags: str) -> str:
        r = CliRunner().invoke(app, ["report", "daily-summary", "--deployment", str(dep), "--from", "2026-03-02",
                                     "--format", "csv", *flags])
        assert r.exit_code == 0, r.output
        return r.stdout.splitlines()[1]

    assert summary().startswith("2026-03-02,TRANSFER,CNY,3,3,0,0,0,600.0000,")           # the file's day
    assert summary("--cutoff", "00:00").startswith("2026-03-02,TRANSFER,CNY,4,3,1,0,0,900.0000,")  # Shanghai
    assert summary("--tz", "UTC", "--cutoff", "00:00").startswith("2026-03-02,TRANSFER,CNY,4,3,1,0,0,1300.0000,")  # UTC
    r = CliRunner().invoke(app, ["report", "daily-summary", "--deployment", str(dep), "--from", "2026-03-02"])
    assert "business day: Asia/Shanghai, day ends 17:00" in " ".join(r.output.split()), r.output
    # reconcile: B, C, D are the Shanghai 03-02 day without a cut-off; with the file's 17:00 D is 03-03's
    stmt = _statement(tmp_path, ["B,200.00,CNY,2026-03-02", "C,300.00,CNY,2026-03-02", "D,400.00,CNY,2026-03-02"])
    base = ["reconcile", "--deployment", str(dep), "--against", str(stmt), "--type", "csv", "--date", "2026-03-02",
            "--days", "0", "-q"]
    r = CliRunner().invoke(app, [*base, "--cutoff", "00:00"])
    assert r.exit_code == 0 and "3 lines, fully matched" in r.output, r.output
    r = CliRunner().invoke(app, base)
    assert r.exit_code == 1 and "break(s)" in r.output, r.output
