"""The fund simulators date their orders as the fund routes expect (routes/common/dealing_days.route): the
first day the Shanghai and Shenzhen exchanges are open whose 15:00 cut-off (Shanghai time) is still ahead,
reckoned five minutes ahead of the clock so that an order made just before the cut-off is dated the next
dealing day (which the routes take) rather than a day they find past (late trading)."""
from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from engine.sim.services.common import CNY_HOLIDAYS, dealing_day


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(("utc", "day"), [
    ("2026-11-25T02:00:00", 20261125),     # Wednesday 10:00 in Shanghai: that day
    ("2026-11-25T06:54:59", 20261125),     # 14:59:59 with the five minutes: still that day
    ("2026-11-25T06:55:00", 20261126),     # 15:00 with them: the next dealing day
    ("2026-11-27T07:30:00", 20261130),     # Friday after the cut-off: Monday
    ("2026-11-28T02:00:00", 20261130),     # Saturday: Monday
    ("2026-09-30T08:00:00", 20261008),     # after the cut-off before National Day (1-7 October): 8 October
    ("2026-10-09T08:00:00", 20261012),     # Friday 9 October after the cut-off: not the worked Saturday 10 October
])
def test_a_simulated_fund_order_is_dated_the_dealing_day_the_routes_expect(utc: str, day: int) -> None:
    assert dealing_day(at=_at(utc)) == day


def test_a_year_the_calendar_does_not_list_is_rolled_over_weekends_only() -> None:
    # the routes then fail the order naming cn_exchange.csv and the year, what the demo should show
    assert dealing_day(at=_at("2027-01-01T08:00:00")) == 20270104    # Friday after the cut-off: Monday


@pytest.mark.parametrize(("utc", "day"), [
    ("2026-11-25T08:54:59", 20261125),     # 16:59:59 in Beijing with the five minutes: that day
    ("2026-11-25T08:55:00", 20261126),     # 17:00 with them: the next CNAPS business day
    ("2026-11-27T09:30:00", 20261130),     # Friday after the cut-off: Monday
    ("2026-10-09T09:30:00", 20261010),     # Friday 9 October after the cut-off: Saturday 10 October, worked
])
def test_a_simulated_domestic_remittance_is_dated_the_cnaps_value_date_the_route_expects(utc: str, day: int) -> None:
    # routes/remittance: value_date(now(), "17:00", cny_calendar, "Asia/Shanghai") refuses an earlier date
    assert dealing_day(time(17, 0), at=_at(utc), calendar=CNY_HOLIDAYS) == day


def test_without_at_the_order_is_dated_by_the_engines_clock() -> None:
    """``bsp run --at`` / ``bsp demo --at`` / ``bsp sim traffic --at`` move the engine's clock (dsl.clock): the
    simulators date their orders by it, as the routes' now() reads it, not by the wall clock."""
    from dsl.clock import engine_clock
    from engine.sim.services.standing_orders import _berlin_today
    with engine_clock(_at("2026-12-01T02:00:00")):           # Tuesday 10:00 in Shanghai
        assert dealing_day() == 20261201
        assert dealing_day(time(17, 0), calendar=CNY_HOLIDAYS) == 20261201
        assert _berlin_today().isoformat() == "2026-12-01"


def test_a_simulated_cooling_off_cancellation_is_dated_by_the_engines_clock() -> None:
    """routes/insurance_brokerage refuses (30) a cancellation requested after its today("Asia/Shanghai"), the
    engine's clock: the simulator dated it by the wall clock, so under a moved clock (bsp demo near a year a
    calendar does not list, the deal-key tests pinned to 2026-11-25) its good requests were refused."""
    import random

    from dsl.clock import engine_clock
    from engine.sim.services.insurance_brokerage import make_cancel
    with engine_clock(_at("2026-06-30T17:00:00")):           # 1 July 01:00 in Shanghai
        good = make_cancel("good", 1, random.Random(1))
        late = make_cancel("rejected", 2, random.Random(2))
    assert good.values["request_date"] == late.values["request_date"] == 20260701
    assert 20260621 <= good.values["delivery_date"] <= 20260701 and late.values["delivery_date"] == 20260601
