"""Helpers the service simulators share."""
from __future__ import annotations

import csv
import functools
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from engine.sim.services.model import refuses

CN_EXCHANGE = Path(__file__).resolve().parents[3] / "routes" / "common" / "calendars" / "cn_exchange.csv"
# the CNAPS business days (China's holidays and the weekend days worked in their place): the remittance
# routes' cny_calendar
TARGET2 = Path(__file__).resolve().parents[3] / "routes" / "common" / "calendars" / "target2.csv"
CNY_HOLIDAYS = Path(__file__).resolve().parents[3] / "routes" / "remittance" / "cny_holidays.csv"


def money(rng: random.Random, low: int, high: int) -> Decimal:
    """An amount between low and high (whole units), with cents."""
    return Decimal(rng.randrange(low * 100, high * 100)) / 100


def dig(values: Any, *path: Any) -> Any:
    """values[path[0]][path[1]]... or None when any step is missing."""
    for p in path:
        try:
            values = values[p]
        except (KeyError, IndexError, TypeError):
            return None
    return values


def mainframe_answer(ref_field: str, *, amount: Callable[[Any], Any] | None = None, message: str = "posted",
                     refuse_field: str | None = None) -> Callable[[Any], dict[str, Any]]:
    """The core mainframe as a counterpart: answers an MF-RSP record; refuses a request whose
    ``refuse_field`` (default: the reference) ends in F."""
    counter = {"n": 0}

    def answer(req: Any) -> dict[str, Any]:
        req = req or {}
        ref = str(req.get(ref_field) or "")
        counter["n"] += 1
        if refuses(req.get(refuse_field) if refuse_field else ref):
            return {"trace_no": ref[-16:], "resp_code": "51", "host_ref": "", "amount": Decimal(0),
                    "currency": req.get("currency") or "", "message_text": "account blocked at the host"}
        amt = amount(req) if amount else (req.get("amount") or Decimal(0))
        return {"trace_no": ref[-16:], "resp_code": "00", "host_ref": f"HOST{counter['n']:012d}", "amount": amt,
                "currency": req.get("currency") or "CNY", "message_text": message}
    return answer


def mf_code(reply: Any) -> str:
    return str(reply["resp_code"])


def ref_at(*path: Any) -> Callable[[Any], Any]:
    """A counterpart's ``ref``: the value at ``path`` of its decoded request."""
    return lambda req: dig(req, *path)


def mt_ref(req: Any) -> Any:
    """A SWIFT MT's reference: field 20 of block 4."""
    return next((f.get("value") for f in dig(req, "block4") or [] if isinstance(f, dict) and f.get("tag") == "20"),
                None)


def every(_values: Any) -> bool:
    """A service's ``keyed``: every good request goes to a keyed route."""
    return True


@functools.lru_cache(maxsize=4)
def _calendar(path: Path) -> Any:
    from dsl.calendars import build
    with open(path, newline="", encoding="utf-8") as fh:
        return build(path.stem, path.name, list(csv.DictReader(fh)))


def business_day(day: date, calendar: Path = TARGET2) -> date:
    """``day`` when it is a business day of ``calendar`` (by default TARGET2's), else the next one, as the
    routes' ``add_business_days(day, 0, calendar)``; a year the calendar does not list is rolled over weekends
    only (the routes then fail the deal naming the calendar and the year, which the demo should show)."""
    from dsl.functions import FunctionError
    cal = _calendar(calendar)
    while True:
        try:
            if cal.open(day, "business_day"):
                return day
        except FunctionError:
            if day.weekday() < 5:
                return day
        day += timedelta(days=1)


def _cn_exchange() -> Any:
    return _calendar(CN_EXCHANGE)


def dealing_day(cutoff: time = time(15, 0), ahead: timedelta = timedelta(minutes=5),
                at: datetime | None = None, calendar: Path = CN_EXCHANGE) -> int:
    """The trade date (YYYYMMDD) of a fund order sent now (``at``; by default the engine's clock,
    ``dsl.clock.now()``: the wall clock, or where ``--at`` set it, as the routes' ``now()``): the
    first day the Shanghai and Shenzhen exchanges are open (routes/common/calendars/cn_exchange.csv)
    whose ``cutoff`` (Shanghai time) is still ahead, as the fund routes' ``value_date(now(), cutoff,
    cn_exchange, "Asia/Shanghai")``, which refuse an order dated earlier (late trading).  Reckoned
    ``ahead`` of the clock, so that an order made just before the cut-off and received after it is
    dated the next dealing day (a later date passes), never one the route finds past.  A year the
    calendar does not list is rolled over weekends only: the routes then fail the order naming the
    calendar and the year, which is what the demo should show.  ``calendar``: another calendar file
    (CNY_HOLIDAYS, the CNAPS business days, for a remittance's value date and its 17:00 cut-off)."""
    from dsl.clock import now
    from dsl.functions import FunctionError
    local = ((at or now()) + ahead).astimezone(ZoneInfo("Asia/Shanghai"))
    day: date = local.date() if local.time() < cutoff else local.date() + timedelta(days=1)
    cal = _calendar(calendar)
    while True:
        try:
            if cal.open(day, "dealing_day"):
                break
        except FunctionError:
            if day.weekday() < 5:
                break
        day += timedelta(days=1)
    return int(day.strftime("%Y%m%d"))
