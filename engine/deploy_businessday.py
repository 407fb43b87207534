"""``business_day: {tz, cutoff}`` of the deployment file: the bank's business day, the default of
``bsp report`` / ``bsp reconcile`` ``--tz`` / ``--cutoff`` when given ``--deployment`` (the flag wins,
key by key, as everywhere: docs/deployment.md#the-command-line-the-file-and-the-environment).

    day = dep.business_day               # BusinessDaySettings | None (not set)
    day.tz, day.cutoff                   # "Asia/Shanghai", "17:00"; None where not set
    day.places["tz"]                     # "platform.yaml:12:7", for messages

The schema checks the form (``cutoff`` HH:MM); the zone is looked up here, at load, so a misspelt zone
stops ``bsp check platform.yaml`` at its line rather than a clerk's report at night.  An environment's
``business_day`` replaces the keys it gives.  ``bsp run`` reads it for one thing: the day a ``limit`` total
with ``per = "day"`` starts again (engine/totals.py).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from engine.deploy_messages import dotted

KEY = "business_day"


@dataclass(frozen=True)
class BusinessDaySettings:
    tz: str | None = None          # an IANA zone name
    cutoff: str | None = None      # HH:MM, the local time the business day ends
    places: dict[str, str] = field(default_factory=dict)     # "tz" / "cutoff" -> file:line:col

    def pick(self, tz: str | None, cutoff: str | None) -> tuple[str | None, str | None]:
        """``--tz`` / ``--cutoff`` as given, each one not given taken from here."""
        return (tz if tz is not None else self.tz), (cutoff if cutoff is not None else self.cutoff)


def business_day_settings(data: dict[str, Any], env_data: dict[str, Any], env: str | None,
                          place: Callable[..., str]) -> tuple[BusinessDaySettings | None, list[tuple[tuple, str]]]:
    """The merged ``business_day`` (the environment's keys over the base's; None when neither sets it) and
    the problems of every zone in the file, each ``(key path, message)``: an environment not chosen too,
    as ``bsp check platform.yaml`` checks every environment's ``admin.listen``."""
    problems: list[tuple[tuple, str]] = []
    for base, section in (((KEY,), data.get(KEY)),
                          *((("environments", name, KEY), (e or {}).get(KEY))
                            for name, e in (data.get("environments") or {}).items())):
        tz = (section or {}).get("tz")
        if tz is not None and (problem := _zone_problem(tz)):
            problems.append((base + ("tz",), f"{dotted(base + ('tz',))}: {problem}"))
    top, mine = data.get(KEY) or {}, env_data.get(KEY) or {}
    if not top and not mine:
        return None, problems
    values: dict[str, str] = {}
    paths: dict[str, tuple] = {}
    for base, section in (((KEY,), top), (("environments", str(env), KEY), mine)):
        for k, v in section.items():
            values[k], paths[k] = v, base + (k,)
    return BusinessDaySettings(tz=values.get("tz"), cutoff=values.get("cutoff"),
                               places={k: place(kp) for k, kp in paths.items()}), problems


def _zone_problem(tz: str) -> str | None:
    """What is wrong with the zone name ``tz`` (as ``--tz`` takes it), None when it is known."""
    if tz.strip().upper() in ("UTC", "Z", "ETC/UTC"):
        return None
    try:
        ZoneInfo(tz.strip())
        return None
    except (ZoneInfoNotFoundError, ValueError):
        hint = difflib.get_close_matches(tz.strip(), sorted(available_timezones()), n=1)
        return (f"{tz!r} is not a known time zone; " + (f"did you mean {hint[0]!r}? " if hint else "")
                + "give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC")


__all__ = ["BusinessDaySettings", "business_day_settings"]
