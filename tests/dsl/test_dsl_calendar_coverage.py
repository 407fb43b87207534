"""W020: `bsp check` warns of a business-day calendar that runs out within 60 days (--calendar-warn-days N)
or has, at the calendar's file in the table's declaration.  A calendar covers the years its CSV lists;
a date in any other year fails the deal asking about it (96, naming the calendar, its file and the year:
tests/dsl/test_dsl_calendars.py, the fund management route tests); the engine logs the same from bind
(tests/ops/test_ops_calendar_expiry.py).  Before, `bsp check` said nothing unless asked (--calendars),
so an analyst's check of the shipped routes on 2026-11-27 was clean 35 days before every fund order
and domestic remittance dated 2027 would fail.

"Today" is the engine's clock (dsl.clock.engine_clock, what `bsp run --at` sets): these pass on any day."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from dsl.clock import engine_clock
from dsl.load import compile_paths
from engine.cli import app
from engine.registry import default_registry

REPO = Path(__file__).resolve().parents[2]

ROUTE = '''channel front = memory
format Req = json
table hols = csv "hols.csv" key date
table rates = csv "rates.csv" key ccy
route pay {
    receive from front as Req
    reply Req { ok = is_business_day(today(), hols)  rate = rates[msg.ccy].rate }
}
'''


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def files(tmp_path: Path, *years: int) -> Path:
    (tmp_path / "hols.csv").write_text("date,kind\n" + "".join(f"{y}-12-25,holiday\n" for y in years))
    (tmp_path / "rates.csv").write_text("ccy,rate\nEUR,7.80\n")
    (tmp_path / "r.route").write_text(ROUTE)
    return tmp_path / "r.route"


def w020(route: Path, **kw):
    r = compile_paths([route], default_registry(plugins=False), **kw)
    assert r.program is not None, [str(d) for d in r.diagnostics]
    return [d for d in r.diagnostics if d.code == "W020"]


def test_a_calendar_running_out_within_60_days_is_warned_at_its_file(tmp_path: Path) -> None:
    route = files(tmp_path, 2026)
    with engine_clock(at("2026-11-27T09:00:00")):
        [w] = w020(route)
    assert w.severity == "warning"
    assert (Path(w.pos.file).name, w.pos.line, w.pos.col) == ("r.route", 3, 18)     # "hols.csv"
    assert w.message == ("calendar `hols` (hols.csv) lists dates for 2026 and runs out on 2027-01-01, in 35 days "
                         "(today is 2026-11-27): from then every deal that asks about a 2027 date fails (96, naming "
                         "the calendar, its file and the year), and one reckoning a value date ahead into 2027 a "
                         "few days before")
    assert "add 2027's closing days to hols.csv" in w.help and "--calendar-warn-days" in w.help


def test_not_warned_further_off_nor_for_a_table_that_is_no_calendar(tmp_path: Path) -> None:
    route = files(tmp_path, 2026)
    with engine_clock(at("2026-11-01T09:00:00")):             # 61 days left
        assert w020(route) == []
    with engine_clock(at("2026-11-27T09:00:00")):
        assert w020(files(tmp_path, 2026, 2027)) == []        # next year listed: rates is never one either


def test_the_window_is_configurable(tmp_path: Path) -> None:
    route = files(tmp_path, 2026)
    with engine_clock(at("2026-11-27T09:00:00")):
        assert w020(route, calendar_warn_days=30) == []
        assert len(w020(route, calendar_warn_days=35)) == 1
        assert w020(route, calendar_warn_days=None) == []


def test_a_calendar_that_has_run_out_is_warned_too(tmp_path: Path) -> None:
    with engine_clock(at("2027-01-04T09:00:00")):
        [w] = w020(files(tmp_path, 2026), calendar_warn_days=0)
    assert w.message == ("calendar `hols` (hols.csv) lists dates for 2026 and none for 2027 (today is 2027-01-04): "
                         "every deal that asks about a 2027 date fails now (96, naming the calendar, its file and "
                         "the year)")


def test_the_shipped_cn_calendars_are_warned_on_2026_11_27_and_target2_is_not() -> None:
    routes = [p for p in sorted((REPO / "routes").glob("*/*.route")) if not p.name.endswith("_test.route")]
    with engine_clock(at("2026-11-27T09:00:00")):
        r = compile_paths(routes, default_registry(plugins=False))
    warned = {(Path(d.pos.file).relative_to(REPO).as_posix(), d.message.split("`")[1]) for d in r.diagnostics
              if d.code == "W020"}
    assert warned == {("routes/common/dealing_days.route", "cn_exchange"),
                      ("routes/remittance/remittance.route", "cny_calendar")}


def test_bsp_check_warns_and_still_exits_0(tmp_path: Path) -> None:
    route = files(tmp_path, 2026)
    with engine_clock(at("2026-11-27T09:00:00")):
        plain = CliRunner().invoke(app, ["check", str(route)])
        later = CliRunner().invoke(app, ["check", str(route), "--calendar-warn-days", "20"])
    assert plain.exit_code == 0, plain.output
    assert "warning[W020]: calendar `hols` (hols.csv) lists dates for 2026 and runs out on 2027-01-01" in plain.output
    assert plain.output.strip().splitlines()[-1].startswith("0 errors, 1 warning;")
    assert later.exit_code == 0 and "W020" not in later.output


def test_bsp_run_at_warns_from_that_day(tmp_path: Path) -> None:
    """`bsp run --at` moves the engine's clock: W020, printed with the compile's diagnostics at start, reckons
    from that day as the engine's calendar log does (here the route does not compile: nothing starts)."""
    (tmp_path / "hols.csv").write_text("date,kind\n2030-12-25,holiday\n")
    (tmp_path / "rates.csv").write_text("ccy,rate\nEUR,7.80\n")
    (tmp_path / "r.route").write_text(ROUTE.replace("receive from front", "receive from frnt"))
    got = CliRunner().invoke(app, ["run", str(tmp_path / "r.route"), "--ledger", str(tmp_path / "l.duckdb"),
                                   "--at", "2030-12-30T08:00:00Z"])
    assert got.exit_code == 1, got.output
    assert "warning[W020]: calendar `hols` (hols.csv) lists dates for 2030 and runs out on 2031-01-01, in 2 days " \
           "(today is 2030-12-30)" in got.output, got.output
