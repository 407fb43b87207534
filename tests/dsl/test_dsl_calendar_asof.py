"""An effective-dated calendar (``table hols = csv "hols.csv" key date effective from valid_from``): each day
is read by its own row in force on that day, not by its newest row; ``bsp check`` refuses one keyed by
another column (E157) and warns of a row that applies only after its own day (W033)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from dsl import ir
from dsl.calendars import f_add_business_days, f_is_business_day, f_next_business_day, f_value_date
from dsl.functions import FunctionError
from dsl.load import compile_paths
from dsl.tables import load_table

# 2026-12-24 (Thursday): a holiday from 1 December on, an ordinary day before that was published.
# 2026-12-31 (Thursday): a holiday, then opened again from 2026-12-30 (a working day on its own day).
# 2026-12-26 (Saturday): opened (working) from 2026-12-01, then closed again from 2026-12-20.
# 2027-01-04 (Monday): a holiday that applies only from 2027-02-01, after its day: never counts.
HOLS = ("date,valid_from,kind,name\n"
        "2026-12-25,2026-01-01,holiday,Christmas Day\n"
        "2026-12-24,2026-12-01,holiday,Christmas Eve\n"
        "2026-12-31,2026-01-01,holiday,New Year's Eve\n"
        "2026-12-31,2026-12-30,working,New Year's Eve (opened)\n"
        "2026-12-26,2026-12-01,working,Boxing Day opened\n"
        "2026-12-26,2026-12-20,holiday,Boxing Day\n"
        "2027-01-01,2026-01-01,holiday,New Year's Day\n"
        "2027-01-04,2027-02-01,holiday,late\n")


@pytest.fixture
def hols(tmp_path):
    p = tmp_path / "hols.csv"
    p.write_text(HOLS)
    return load_table(ir.TableDecl("hols", "csv", str(p), "date", effective="valid_from"))


def test_each_day_is_read_by_its_row_in_force_on_that_day(hols):
    # the newest rows would say: 24th holiday, 31st working, 26th holiday, 4 Jan holiday
    assert f_is_business_day(date(2026, 12, 24), hols) is False      # published 1 Dec, on or before the day
    assert f_is_business_day(date(2026, 12, 25), hols) is False
    assert f_is_business_day(date(2026, 12, 26), hols) is False      # Saturday, closed again from the 20th
    assert f_is_business_day(date(2026, 12, 31), hols) is True       # opened from the 30th
    assert f_is_business_day(date(2027, 1, 4), hols) is True         # its row applies only from February
    assert f_next_business_day(date(2026, 12, 23), hols) == date(2026, 12, 28)
    assert f_add_business_days(date(2026, 12, 30), 1, hols) == date(2026, 12, 31)
    assert f_add_business_days(date(2026, 12, 31), 1, hols) == date(2027, 1, 4)
    at = datetime(2026, 12, 23, 18, 0, tzinfo=timezone.utc)        # after the cut-off: the next business day
    assert f_value_date(at, "15:00", hols, "UTC") == date(2026, 12, 28)


def test_the_newest_row_of_a_day_is_not_what_counts(tmp_path):
    """Without effective dates, a calendar listing a day twice is refused by its key; with them, the day's
    row in force on it counts: the same file read as its newest rows only would open the 31st and close 4 Jan."""
    p = tmp_path / "hols.csv"
    p.write_text(HOLS)
    t = load_table(ir.TableDecl("hols", "csv", str(p), "date", effective="valid_from"))
    assert t.rows["2027-01-04"]["kind"] == "holiday"             # the newest row
    assert f_is_business_day(date(2027, 1, 4), t) is True


def test_a_calendar_keyed_otherwise_fails_the_deal_naming_it(tmp_path):
    p = tmp_path / "hols.csv"
    p.write_text("id,date,valid_from\nX1,2026-12-25,2026-01-01\n")
    t = load_table(ir.TableDecl("hols", "csv", str(p), "id", effective="valid_from"))
    with pytest.raises(FunctionError, match=r"is_business_day: calendar hols \(hols.csv\) is effective-dated "
                                            r"\(valid_from\) but keyed by id.*key date effective from valid_from"):
        f_is_business_day(date(2026, 12, 25), t)


def _check(tmp_path, registry, decl: str, text: str):
    (tmp_path / "hols.csv").write_text(text)
    (tmp_path / "main.route").write_text(
        "channel mf = memory\nformat Req = fixed {\n    code string(4)\n}\n" + decl + "\n"
        "route r {\n    receive from mf as Req\n    let ok = is_business_day(today(), hols)\n"
        '    reply Req { code = "00" }\n}\n')
    return compile_paths([tmp_path / "main.route"], registry)


def test_check_refuses_an_effective_calendar_not_keyed_by_date(tmp_path, registry):
    r = _check(tmp_path, registry, 'table hols = csv "hols.csv" key id effective from valid_from',
               "id,date,valid_from\nX1,2026-12-25,2026-01-01\nX2,2027-12-25,2026-01-01\nX3,2028-12-25,2026-01-01\n")
    [d] = [d for d in r.diagnostics if d.code == "E157"]
    assert (d.pos.line, d.pos.col) == (8, 39) and r.program is None
    assert "calendar `hols` is effective-dated (effective from valid_from) but keyed by `id`" in d.message
    assert d.help == 'declare it `table hols = csv "hols.csv" key date effective from valid_from`'


def test_check_warns_of_a_row_that_applies_after_its_day_and_accepts_the_rest(tmp_path, registry):
    r = _check(tmp_path, registry, 'table hols = csv "hols.csv" key date effective from valid_from',
               HOLS + "2028-01-03,2026-01-01,holiday,x\n")
    assert not [d for d in r.diagnostics if d.is_error], [d.message for d in r.diagnostics]
    [w] = [d for d in r.diagnostics if d.code == "W033"]
    assert (w.pos.file.endswith("hols.csv"), w.pos.line) == (True, 9)
    assert w.message.startswith("calendar `hols`: the row for 2027-01-04 applies from 2027-02-01 (valid_from), "
                                "after the day itself: it never counts")
    ok = _check(tmp_path, registry, 'table hols = csv "hols.csv" key date effective from valid_from',
                "\n".join(HOLS.splitlines()[:-1]) + "\n2028-01-03,2026-01-01,holiday,x\n")
    assert not [d for d in ok.diagnostics if d.code in ("W033", "E157")] and ok.program is not None
