"""``--at INSTANT`` of ``bsp run``, ``bsp demo`` and ``bsp sim traffic``: the engine's clock (``dsl.clock``)
starts at INSTANT and runs on from there: what ``now()`` and ``today()`` read, what value dates and
cut-offs are reckoned from, what the simulators date their requests by.  For rehearsing another day (a
calendar's last days, a year end, a cut-off) and for tests that must pass whatever the date; the
ledger's own times (received, committed) stay the wall clock's."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer

AT_HELP = ("Start the engine's clock at this instant, ISO 8601 with its offset (e.g. 2026-12-30T08:00:00Z), and "
           "let it run on from there: now(), today(), value dates and cut-offs read it (the ledger's own times "
           "stay the wall clock's). For rehearsing another day and for tests; never in production.")


def at_option() -> Optional[str]:
    return typer.Option(None, "--at", help=AT_HELP)


def parse_at(text: Optional[str]) -> Optional[datetime]:
    """The instant ``--at`` gives (None without it); a usage error (exit 2) saying what to write."""
    if text is None:
        return None
    from dsl.clock import parse_instant
    at, problem = parse_instant(text)
    if at is None:
        typer.echo(f"error: --at {problem}", err=True)
        raise typer.Exit(2)
    return at


def at_line(at: datetime) -> str:
    """The line ``bsp run`` / ``bsp demo`` print when their clock is moved."""
    from dsl.clock import instant_text
    return (f"clock: --at {instant_text(at)}: now() and today() read a clock that started there and runs on "
            f"(not the wall clock); the ledger's times are the wall clock's")
