"""Helpers the service simulators share."""
from __future__ import annotations

import functools
import random
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

from engine.sim.services.model import refuses

ROUTES = Path(__file__).resolve().parents[3] / "routes"


@dataclass(frozen=True)
class CalendarRef:
    """A business-day calendar as the routes name it: the table ``table`` the route file ``route`` declares
    (``table target2 = csv "calendars/target2.csv" key date``, with its ``effective from`` column when it has
    one).  The simulators read it as the engine does (``read_calendar``), never the CSV file on their own."""
    route: Path
    table: str


# the TARGET2 closing days (EUR settles, a direct debit is collected, on a TARGET2 business day)
TARGET2 = CalendarRef(ROUTES / "common" / "target2.route", "target2")
# the days the Shanghai and Shenzhen exchanges are open (the fund routes' dealing days)
CN_EXCHANGE = CalendarRef(ROUTES / "common" / "dealing_days.route", "cn_exchange")
# the CNAPS business days (China's holidays and the weekend days worked in their place): the remittance
# routes' cny_calendar
CNY_HOLIDAYS = CalendarRef(ROUTES / "remittance" / "remittance.route", "cny_calendar")
# the calendars the simulators date requests by
SHIPPED = (TARGET2, CN_EXCHANGE, CNY_HOLIDAYS)

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


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _declaration(route: Path, table: str, _stamp: tuple[int, int]) -> Any:
    """The ``dsl.ir.TableDecl`` of ``table`` as route file ``route`` (compiled with what it uses) declares it."""
    from dsl.diagnostics import render
    from dsl.load import compile_paths
    from engine.sim.services.registry import services_registry
    res = compile_paths([route], services_registry())
    if res.program is None:
        raise ValueError(f"{route}: does not compile, so calendar {table} cannot be read as the engine reads it:\n"
                         + "\n".join(render(d, {}) for d in res.errors))
    decl = res.program.tables.get(table)
    if decl is None:
        raise ValueError(f"{route}: declares no table {table} (it declares {', '.join(res.program.tables) or 'none'})")
    return decl


# (CSV file, table, key, effective column) -> (the CSV's stamp, table)
_TABLES: dict[tuple[str, str, str, str | None], tuple[tuple[int, int], Any]] = {}


def _table(decl: Any) -> Any:
    from dsl.tables import load_table
    stamp = _stamp(Path(decl.path))
    key = (str(decl.path), decl.name, decl.key, decl.effective)
    hit = _TABLES.get(key)
    if hit is None or hit[0] != stamp:
        hit = _TABLES[key] = (stamp, load_table(decl))
    return hit[1]


@dataclass
class SimCalendars:
    """The calendars of the configuration the simulators serve (``bsp sim --config``, the demo's routes): its
    table declarations by name (``program.tables``).  A simulator asking for a calendar (``CalendarRef``) reads
    the configuration's table of that name, so a deployment's own calendar file, or its effective-dated change,
    dates the requests as the engine it talks to reckons; a configuration that declares no such table leaves
    the shipped one (the ``CalendarRef``'s route file), said once in ``notes`` (and to ``say``, when given)."""
    tables: dict[str, Any]
    label: str = "the configuration"
    say: Callable[[str], None] | None = None
    notes: list[str] = field(default_factory=list)
    _fell_back: set[str] = field(default_factory=set)

    def declaration(self, ref: CalendarRef) -> Any | None:
        decl = self.tables.get(ref.table)
        if decl is not None:
            return decl
        if ref.table not in self._fell_back:
            self._fell_back.add(ref.table)
            note = (f"note: {self.label} declares no table {ref.table}: the simulators date their requests by the "
                    f"shipped calendar ({_shown(ref.route)}, table {ref.table}); declare the table in the "
                    f"configuration for its own")
            self.notes.append(note)
            if self.say is not None:
                self.say(note)
        return None

    def warm(self) -> None:
        """Read now (start-up work, not in the middle of traffic) the configuration's tables of the calendars
        the simulators use (``SHIPPED``)."""
        for ref in SHIPPED:
            decl = self.tables.get(ref.table)
            if decl is not None:
                _table(decl)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROUTES.parent))
    except ValueError:
        return str(path)


_IN_USE: ContextVar[SimCalendars | None] = ContextVar("sim_calendars", default=None)


@contextmanager
def using_calendars(calendars: SimCalendars | None) -> Iterator[None]:
    """Inside (and in the tasks started inside), ``read_calendar`` reads ``calendars``' tables first; the
    configuration's tables the simulators use are read on entry (``SimCalendars.warm``).  None: the shipped ones."""
    if calendars is None:
        yield
        return
    calendars.warm()
    token = _IN_USE.set(calendars)
    try:
        yield
    finally:
        _IN_USE.reset(token)


def read_calendar(ref: CalendarRef) -> Any:
    """The calendar ``ref`` names, read the way the engine reads it: the route file's declaration of the table
    (``dsl.load``), its CSV loaded as a table (``dsl.tables.load_table``: an effective-dated table keeps each
    day's versions) and read as a calendar (``dsl.calendars.calendar_of``: a day by its row in force on that
    day); read again when the route or the CSV file changes.  Inside ``using_calendars``, the configuration's
    table of that name instead, when it declares one."""
    from dsl.calendars import calendar_of
    calendars = _IN_USE.get()
    decl = calendars.declaration(ref) if calendars is not None else None
    if decl is None:
        decl = _declaration(ref.route, ref.table, _stamp(ref.route))
    return calendar_of(_table(decl), "business_day")


def business_day(day: date, calendar: CalendarRef = TARGET2) -> date:
    """``day`` when it is a business day of ``calendar`` (by default TARGET2's), else the next one, as the
    routes' ``add_business_days(day, 0, calendar)`` (the same reading: ``read_calendar``, effective dates too);
    a year the calendar does not list is rolled over weekends only (the routes then fail the deal naming the
    calendar and the year, which the demo should show)."""
    from dsl.functions import FunctionError
    cal = read_calendar(calendar)
    while True:
        try:
            if cal.open(day, "business_day"):
                return day
        except FunctionError:
            if day.weekday() < 5:
                return day
        day += timedelta(days=1)


def _cn_exchange() -> Any:
    return read_calendar(CN_EXCHANGE)


def dealing_day(cutoff: time = time(15, 0), ahead: timedelta = timedelta(minutes=5),
                at: datetime | None = None, calendar: CalendarRef = CN_EXCHANGE) -> int:
    """The trade date (YYYYMMDD) of a fund order sent now (``at``; by default the engine's clock,
    ``dsl.clock.now()``: the wall clock, or where ``--at`` set it, as the routes' ``now()``): the
    first day the Shanghai and Shenzhen exchanges are open (routes/common/calendars/cn_exchange.csv)
    whose ``cutoff`` (Shanghai time) is still ahead, as the fund routes' ``value_date(now(), cutoff,
    cn_exchange, "Asia/Shanghai")``, which refuse an order dated earlier (late trading).  Reckoned
    ``ahead`` of the clock, so that an order made just before the cut-off and received after it is
    dated the next dealing day (a later date passes), never one the route finds past.  A year the
    calendar does not list is rolled over weekends only: the routes then fail the order naming the
    calendar and the year, which is what the demo should show.  ``calendar``: another calendar (CNY_HOLIDAYS,
    the CNAPS business days, for a remittance's value date and its 17:00 cut-off), read as the engine reads it
    (``read_calendar``)."""
    from dsl.clock import now
    from dsl.functions import FunctionError
    local = ((at or now()) + ahead).astimezone(ZoneInfo("Asia/Shanghai"))
    day: date = local.date() if local.time() < cutoff else local.date() + timedelta(days=1)
    cal = read_calendar(calendar)
    while True:
        try:
            if cal.open(day, "dealing_day"):
                break
        except FunctionError:
            if day.weekday() < 5:
                break
        day += timedelta(days=1)
    return int(day.strftime("%Y%m%d"))
