"""What ``bsp check`` says when a kind's own check hook (``check``, ``check_receive``) raises instead of
returning its problems: a bug in that kind (a plugin's, typically), not in the route.

The diagnostic names the kind, the plugin that registered it (whom to ask), the exception and the line of
the hook that raised it, so that neither the analyst nor the plugin's author has to guess from a bare
``KeyError: 'x'``.  The registry is the one ``bsp check`` was given (``origin(category, kind)`` when it
is bsp's, from ``engine.registry``): this module imports nothing from ``engine``.
"""
from __future__ import annotations

import traceback
from typing import Any


def hook_failure(registry: Any, category: str, kind: str, exc: BaseException) -> str:
    """``the line connect checker raised KeyError: 'address' (at .../line_connect.py:12, channel kind line
    connect, from plugin bsp-x 0.1.0 (entry point ...)): a bug in the kind, not in the route; ...``."""
    origin = registry.origin(category, kind) if hasattr(registry, "origin") else None
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"at {frames[-1].filename}:{frames[-1].lineno}, " if frames else ""
    shown = kind.replace(".", " ")
    whose = f"from {origin}" if origin else "built into bsp"
    fix = (f"ask the authors of {origin.split(' (entry point')[0]} to fix it (a check hook returns a list of "
           f"SpecError), or run `bsp run` to see whether the kind builds" if origin
           else "report it as a bsp bug")
    return (f"the {shown} checker raised {type(exc).__name__}: {exc} ({where}{category} kind {shown}, {whose}): "
            f"a bug in the kind, not in the route; {fix}")
