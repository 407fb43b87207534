"""DuckDB's memory limit for the ledger an engine writes (``LedgerStore.open``).

DuckDB's buffer manager keeps the blocks it has read (the ledger's pages, the ``deal_keys`` index) until its
``memory_limit``, 80 % of the machine's RAM by default: in an engine that runs for weeks the ledger file grows
past any RAM and DuckDB's cache grows with it, beside the engine's own memory (the key store, ~715 bytes a deal
key for the key retention: bench/bench_key_memory.py).  So the writer's database instance gets a bounded limit:
a quarter of the RAM, at least 1 GiB (never more than DuckDB's own 80 %); ``BSP_LEDGER_MEMORY_LIMIT`` (DuckDB's
form: ``2GB``, ``512MiB``) sets another.  It covers the in-process readers (the admin API's queries join the
writer's instance, ``engine.ops.ledger_reads``); past it DuckDB evicts cached blocks, and a large sort spills to
``<ledger>.tmp`` rather than growing the process (docs/ledger.md#memory).  Read-only tools (``bsp deals``,
``bsp report``) run in their own processes with DuckDB's default."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV = "BSP_LEDGER_MEMORY_LIMIT"
FLOOR = 1 << 30


CGROUP = Path("/sys/fs/cgroup")
# the limit files of cgroup v2 and v1 (a container's memory: SC_PHYS_PAGES tells the host's, and a quarter of
# the host's RAM can be more than the container may use, which the kernel then ends by killing the engine)
CGROUP_FILES = ("memory.max", "memory/memory.limit_in_bytes")


def ram(cgroup: Path = CGROUP) -> int | None:
    """The memory this process may use, in bytes: the machine's physical memory, or its container's (cgroup)
    limit when that is lower; None when neither can be told."""
    try:
        total: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = None
    for name in CGROUP_FILES:
        try:
            text = (cgroup / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:          # "max" (v2) or a huge number (v1): no limit
            total = int(text) if total is None else min(total, int(text))
        break
    return total


def default_limit(total: int | None) -> str | None:
    """A quarter of ``total`` bytes of RAM, at least 1 GiB and at most DuckDB's own 80 %, in MiB; None (DuckDB's
    default) when the RAM is not known."""
    if not total:
        return None
    limit = min(max(total // 4, FLOOR), total * 4 // 5)
    return f"{limit >> 20}MiB"


def apply(con: Any, path: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """Set the limit on ``con``'s database instance; returns what was set.  A ``BSP_LEDGER_MEMORY_LIMIT``
    DuckDB does not take raises ``LedgerError`` naming it."""
    import duckdb

    from engine.ledger_store import LedgerError

    env = os.environ if environ is None else environ
    given = env.get(ENV, "").strip()
    limit = given or default_limit(ram())
    if limit is None:
        return None
    try:
        con.execute(f"SET memory_limit = '{limit.replace(chr(39), '')}'").fetchall()
    except duckdb.Error as exc:
        raise LedgerError(f"{path}: {ENV}={given!r}: not a memory size DuckDB takes ({exc}); give a number with "
                          f"a unit, e.g. {ENV}=2GB or 512MiB, or unset it for the default (a quarter of the "
                          f"RAM, at least 1 GiB)") from None
    return limit
