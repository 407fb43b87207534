"""Standing orders judge "due date in the past" on the business's date, Berlin's (the route's
``today("Europe/Berlin")``), whatever the engine machine's zone: routes/platform.yaml runs this EUR service
in one engine with CNY services and claims_payout (Berlin too), so no one ``TZ`` fits them all.

The service's route tests run in a process whose local date is another than Berlin's (a zone on the other
side of the date line: Pago Pago is 12 hours behind Berlin, Kiritimati 13 ahead, so one of them is always on
another date): they pass.  With ``today()`` (the machine's date) in the route, a debit due today in Berlin was
refused 57 "due date in the past" from an engine ahead of Berlin, and one due yesterday in Berlin was sent to
the mainframe from an engine behind it."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]

RUN = """
from engine.routetest.runner import run_paths
from engine.sim.services.catalog import ROUTES_DIR
from engine.sim.services.registry import services_registry
res = run_paths([ROUTES_DIR / "standing_orders"], services_registry())
for o in res.failed:
    print("FAIL", o.name, "; ".join(o.failures))
print("passed", len(res.outcomes) - len(res.failed), "failed", len(res.failed))
"""


def _other_day_zone() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    berlin = now.astimezone(ZoneInfo("Europe/Berlin")).date()
    for zone in ("Pacific/Pago_Pago", "Pacific/Kiritimati"):
        if now.astimezone(ZoneInfo(zone)).date() != berlin:
            return zone
    raise AssertionError("no zone on another date than Berlin")     # pragma: no cover - cannot happen


def test_route_tests_pass_on_a_machine_whose_date_is_not_berlins() -> None:
    zone = _other_day_zone()
    env = {**os.environ, "TZ": zone}
    out = subprocess.run([sys.executable, "-c", RUN], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].endswith("failed 0"), f"TZ={zone}:\n{out.stdout[-3000:]}"
