"""Where a step stands in its route: what ``continuity`` and ``limit`` both need to check (E118/E119, E128).

Both must stand in the route's steps (not in ``on error``), after its ``deal`` step and before its first
call; each gives its own code and text for a misplacement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsl import ast as A


@dataclass(frozen=True)
class Placement:
    in_on_error: bool = False          # not among the route's steps: inside `on error`
    deal: Any = None                   # the `deal` step before it (None: none)
    call: Any = None                   # the first call before it (None: none)


def placement(s: Any, r: A.RouteAst) -> Placement:
    """Where step ``s`` stands in route ``r``."""
    body = list(r.body)
    at = next((i for i, x in enumerate(body) if x is s), None)
    if at is None:
        return Placement(in_on_error=True)
    return Placement(deal=next((x for x in body[:at] if isinstance(x, A.Deal)), None),
                     call=next((x for x in body[:at] if isinstance(x, A.CallStep)), None))
