"""The index of each list a ``screen`` step names, built off the engine's loop before a reload binds.

Building the index of a large list takes seconds (2.0-2.7 s for 20,000 entries: engine/steps/screen.py); a
reload binds its new configuration on the engine's loop, so the index built there would stop every exchange
meanwhile.  ``prepare`` reads those tables and builds their indexes in a worker thread
(``trio.to_thread.run_sync``) while the old configuration goes on serving; the bind then finds each index by
its rows' digest (``index_of_table``'s cache) and builds nothing.  A list it cannot read or index is left to
the bind, which refuses the reload naming the place, as without this step.
"""
from __future__ import annotations

from typing import Any, Callable

import trio


def screened_tables(program: Any) -> list[Any]:
    """The table declarations (``dsl.ir.TableDecl``) that the program's ``screen`` steps name as their list."""
    tables = getattr(program, "tables", None) or {}
    names: list[str] = []
    for route in getattr(program, "routes", ()):
        for step in tuple(route.steps) + tuple(getattr(route, "on_error", ())):
            if getattr(step, "kind", None) != "screen":
                continue
            for a in step.options.get("fields", ()):
                name = getattr(a.value, "name", None) if a.path == "list" else None
                if name in tables and name not in names:
                    names.append(name)
    return [tables[n] for n in names]


def build_indexes(decls: list[Any], load_table: Callable[[Any], Any] | None = None) -> int:
    """Read each table and build its index (kept in ``index_of_table``'s cache); returns how many were indexed.
    Runs in a worker thread: touches nothing of the running configuration."""
    from engine.steps.screen import index_of_table

    if load_table is None:
        from dsl.tables import load_table
    done = 0
    for decl in decls:
        try:
            index_of_table(load_table(decl))
        except Exception:       # noqa: BLE001 - the bind reads it again and refuses the reload naming the place
            continue
        done += 1
    return done


async def prepare(program: Any, load_table: Callable[[Any], Any] | None = None) -> int:
    """Build the indexes of the program's screened lists in a worker thread; the loop serves meanwhile."""
    decls = screened_tables(program)
    if not decls:
        return 0
    if load_table is None:      # as the bind reads them: from the text the version holds (dsl.tables.load_versioned)
        from dsl.tables import load_versioned
        sources = getattr(program, "sources", None) or {}
        load_table = lambda decl: load_versioned(decl, sources)      # noqa: E731
    return await trio.to_thread.run_sync(build_indexes, decls, load_table)
