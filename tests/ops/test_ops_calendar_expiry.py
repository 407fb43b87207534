"""Business-day calendars that run out: a calendar CSV lists given years only, and a date in another year
fails the deal (96) -- the safe choice, kept.  Nothing told the admin before that day came: on the
first day of a year the shipped calendars do not list, every fund order and domestic remittance failed.

Now the engine reads, when the configuration is bound (start, reload), which tables its routes pass as the
calendar of is_business_day / next_business_day / add_business_days / value_date, and the years each
lists; within 60 days of a calendar's end it logs a warning (an error once it has ended, and bsp status
says degraded), again once a day while it runs; bsp status lists them (JSON and --table) and
``bsp_calendar_days_left{table}`` is the gauge to alert on.  The engine's clock is set with
``dsl.clock.engine_clock`` (what ``bsp run --at`` does), so these tests pass on any day.

Real engine (LiveEngine as `bsp run` runs it), real files in tmp_path."""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from pathlib import Path

import trio

from dsl.clock import engine_clock, now
from engine import calexpiry
from engine.calexpiry import CalendarSpan, notice, program_calendars, rehearsal_day
from engine.ops.backend import EngineBackend
from opskit import compile_file, live

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
table hols = csv "hols.csv" key date
table rates = csv "rates.csv" key ccy
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  value = "" + add_business_days(today(), 2, hols)  rate = "" + rates[msg.ccy].rate }
}
"""


def files(tmp_path: Path, years: tuple[int, ...] = (2026,)) -> Path:
    (tmp_path / "hols.csv").write_text("date,kind\n" + "".join(f"{y}-01-01,holiday\n" for y in years))
    (tmp_path / "rates.csv").write_text("ccy,rate\nEUR,7.80\n")
    route = tmp_path / "r.route"
    route.write_text(ROUTE)
    return route


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_a_calendar_is_a_table_a_route_passes_as_a_calendar(tmp_path: Path) -> None:
    program = compile_file(files(tmp_path, (2026, 2027)))
    spans = program_calendars(program)
    assert spans == [CalendarSpan("hols", str(tmp_path / "hols.csv"), frozenset({2026, 2027}), ("pay",))]
    # rates is a table, not a calendar: never warned about


def test_runs_out_on_the_first_day_of_a_year_it_does_not_list() -> None:
    span = CalendarSpan("hols", "/x/hols.csv", frozenset({2026, 2027, 2029}), ("pay",))
    assert span.runs_out(date(2026, 11, 27)) == date(2028, 1, 1)        # 2028 missing: the gap counts
    assert span.runs_out(date(2029, 3, 1)) == date(2030, 1, 1)
    assert span.days_left(date(2028, 5, 1)) == 0                        # a year it does not list: run out
    assert span.days_left(date(2025, 12, 31)) == 0                      # before its first year too
    short = CalendarSpan("hols", "/x/hols.csv", frozenset({2026}), ("pay", "refund"))
    assert notice(short, date(2026, 11, 1)) is None                     # 61 days left: quiet
    level, text = notice(short, date(2026, 11, 2))                      # 60: warned
    assert level == logging.WARNING
    assert text == ("calendar hols (/x/hols.csv, used by routes pay, refund) lists dates for 2026 and runs out on "
                    "2027-01-01 (in 60 days): from then every deal that needs a 2027 date fails (response 96), and a "
                    "deal whose value date is reckoned ahead into 2027 fails a few days before; add 2027's closing "
                    "days to /x/hols.csv (one a row, YYYY-MM-DD, as the exchange or central bank publishes them), "
                    "then run `bsp reload`")
    level, text = notice(short, date(2027, 1, 1))
    assert level == logging.ERROR
    assert "lists dates for 2026 and none for 2027: every deal that needs a 2027 date fails now" in text


async def test_warned_at_start_in_status_and_in_the_gauge(tmp_path: Path, caplog) -> None:
    route = files(tmp_path)
    caplog.set_level(logging.WARNING, logger="bsp.calendars")
    with engine_clock(at("2026-11-27T09:00:00")):
        async with live([route], tmp_path / "l.duckdb") as eng:
            said = [r for r in caplog.records if r.name == "bsp.calendars"]
            assert [r.levelno for r in said] == [logging.WARNING]
            assert said[0].getMessage().startswith(f"calendar hols ({tmp_path / 'hols.csv'}, used by route pay) "
                                                   f"lists dates for 2026 and runs out on 2027-01-01 (in 35 days)")
            assert eng.observer.metrics.value("bsp_calendar_days_left", {"table": "hols"}) == 35
            assert 'bsp_calendar_days_left{table="hols"} 35.0' in eng.observer.metrics.render().decode()
            doc = await EngineBackend(eng, eng.observer).status()
            row, = doc["calendars"]
            assert {k: row[k] for k in ("table", "path", "covers", "last_year", "runs_out", "days_left", "routes")} == {
                "table": "hols", "path": str(tmp_path / "hols.csv"), "covers": "2026", "last_year": 2026,
                "runs_out": "2027-01-01", "days_left": 35, "routes": ["pay"]}
            assert row["warning"] == said[0].getMessage()
            assert doc["state"] == "ready"                  # warned, not degraded: deals still work
            from rich.console import Console

            from engine.commands.top import render         # bsp status --table / bsp top
            console = Console(width=250, record=True)
            console.print(render(doc, None, 0, {}))
            text = console.export_text()
            assert "2027-01-01 (35d)" in text and "warning: calendar hols" in text


async def test_a_calendar_that_has_run_out_is_an_error_and_the_engine_degraded(tmp_path: Path, caplog) -> None:
    route = files(tmp_path)
    caplog.set_level(logging.WARNING, logger="bsp.calendars")
    with engine_clock(at("2027-01-04T09:00:00")):
        async with live([route], tmp_path / "l.duckdb") as eng:
            said = [r for r in caplog.records if r.name == "bsp.calendars"]
            assert [r.levelno for r in said] == [logging.ERROR]
            assert eng.observer.metrics.value("bsp_calendar_days_left", {"table": "hols"}) == 0
            doc = await EngineBackend(eng, eng.observer).status()
            assert doc["state"] == "degraded"
            assert said[0].getMessage() in doc["reasons"]
            from rich.console import Console

            from engine.commands.top import render
            console = Console(width=250, record=True)
            console.print(render(doc, None, 0, {}))
            text = console.export_text()
            assert "DEGRADED (1 calendar run out)" in text and "2027-01-04 (RUN OUT)" in text


async def test_the_gauge_counts_down_with_the_clock_and_a_reload_reads_the_new_year(tmp_path: Path) -> None:
    route = files(tmp_path)
    with engine_clock(at("2026-12-30T09:00:00")):
        async with live([route], tmp_path / "l.duckdb") as eng:
            assert eng.observer.metrics.value("bsp_calendar_days_left", {"table": "hols"}) == 2
            (tmp_path / "hols.csv").write_text("date,kind\n2026-01-01,holiday\n2027-01-01,holiday\n")
            result = await eng.reload()
            assert result.ok, result
            assert eng.observer.metrics.value("bsp_calendar_days_left", {"table": "hols"}) == 367
            assert (await EngineBackend(eng, eng.observer).status())["calendars"][0]["covers"] == "2026-2027"


async def test_reminded_once_a_day_while_running(autojump_clock, caplog) -> None:
    span = CalendarSpan("hols", "/x/hols.csv", frozenset({2026}), ("pay",))
    caplog.set_level(logging.WARNING, logger="bsp.calendars")
    with engine_clock(at("2026-12-01T09:00:00")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(calexpiry.remind, lambda: [span], lambda: 86400.0)
            await trio.sleep(86400 * 2 + 1)
            nursery.cancel_scope.cancel()
    assert len([r for r in caplog.records if r.name == "bsp.calendars"]) == 2



def test_engine_clock_moves_now_and_runs_on() -> None:
    start = at("2030-06-03T08:00:00")
    with engine_clock(start):
        first = now()
        assert start <= first < at("2030-06-03T08:01:00")
    assert now().year != 2030 or datetime.now(timezone.utc).year == 2030


def test_the_demo_moves_to_days_its_calendars_list() -> None:
    spans = [CalendarSpan("cn", "/x/cn.csv", frozenset({2026}), ("fund",)),
             CalendarSpan("t2", "/x/t2.csv", frozenset({2026, 2027, 2028}), ("claim",))]
    assert rehearsal_day(spans, date(2026, 11, 27)) is None             # 35 days left: the wall clock
    assert rehearsal_day(spans, date(2026, 12, 20)) == date(2026, 12, 11)
    assert rehearsal_day(spans, date(2027, 1, 5)) == date(2026, 12, 11)
    # however long after they ran out (it looked 1100 days back only: None, the wall clock, from 2029-12-15)
    assert rehearsal_day(spans, date(2029, 12, 20)) == date(2026, 12, 11)
    assert rehearsal_day(spans, date(2035, 6, 1)) == date(2026, 12, 11)
    assert rehearsal_day(spans[1:], date(2029, 1, 2)) == date(2028, 12, 11)
    gap = CalendarSpan("gap", "/x/gap.csv", frozenset({2025, 2027}), ("x",))
    assert rehearsal_day([gap], date(2026, 3, 1)) == date(2025, 12, 11)      # the latest day before, not after
    assert rehearsal_day([gap, spans[0]], date(2030, 1, 1)) is None          # no year both list


def test_bsp_check_warns_of_the_day_but_its_exit_code_does_not_depend_on_it(tmp_path: Path, capsys) -> None:
    """W020 (tests/dsl/test_dsl_calendar_coverage.py) within 60 days; the notes of every calendar only when
    asked (--calendars); exit 0 either way, as far off."""
    from engine.commands.check import run_check
    route = files(tmp_path)
    with engine_clock(at("2026-06-30T09:00:00")):             # 185 days left: nothing said
        assert run_check([route], explain=False, as_json=False) == 0
        far = capsys.readouterr().out
        assert "W020" not in far and "note: calendar" not in far
    with engine_clock(at("2026-12-30T09:00:00")):             # 2 days left: warned, exit 0 all the same
        assert run_check([route], explain=False, as_json=False) == 0
        plain = capsys.readouterr().out
        assert "warning[W020]: calendar `hols` (hols.csv) lists dates for 2026 and runs out on 2027-01-01, in 2 days" \
            in plain and "note: calendar" not in plain
        assert far.splitlines()[-1].startswith("0 errors, 1 warning;")     # W010: the route's own
        assert plain.splitlines()[-1].startswith("0 errors, 2 warnings;")
        assert run_check([route], explain=False, as_json=False, calendars=True) == 0
        out = capsys.readouterr().out
        assert "note: calendar hols (" in out and "lists 2026; runs out on 2027-01-01 (in 2 days); used by pay" in out
        assert out.splitlines()[-1] == plain.splitlines()[-1]          # the same summary: the notes add no warning


def test_at_that_is_not_an_instant_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli import app
    got = CliRunner().invoke(app, ["run", str(files(tmp_path)), "--at", "2026-12-30 08:00"])
    assert got.exit_code == 2
    assert "--at '2026-12-30 08:00' has no time zone" in got.output


async def test_a_date_the_calendar_does_not_list_fails_the_deal_and_keeps_its_dead_letter(tmp_path: Path) -> None:
    """Never a silent business day: the deal fails (96) with a reason naming the calendar, its file and the
    year, and the request is kept as a dead letter with that reason, as for any run-time failure."""
    from kit import Client

    from opskit import rows
    route = files(tmp_path)                                    # hols.csv lists 2026
    route.write_text(ROUTE.replace("    framing = length2\n}", "    framing = length2\n"
                                   "    on error reply Req { ref = error.code  value = error.text }\n}"))
    ledger = tmp_path / "l.duckdb"
    with engine_clock(at("2026-12-30T09:00:00")):              # two business days ahead is 2027
        async with live([route], ledger) as eng:
            c = await Client.open(eng.current.channels["front"].port)
            with trio.fail_after(10):
                await c.send(b'{"ref":"C1","ccy":"EUR"}')
                (reply,) = await c.recv_json()
            await c.aclose()
    assert reply["ref"] == "96", reply
    (status, code, reason), = rows(ledger, "SELECT status, response_code, reason FROM deals")
    assert (status, code) == ("failed", "96")
    assert "add_business_days: calendar hols (hols.csv) has no dates for 2027 (asked about 2027-01-01); it " \
           "covers 2026: add 2027's holidays to hols.csv" in reason
    (letter_reason, raw), = rows(ledger, "SELECT reason, raw FROM dead_letters")
    assert letter_reason == reason and b'"ref":"C1"' in bytes(raw)
