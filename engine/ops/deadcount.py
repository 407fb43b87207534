"""The dead letters waiting for an operator now (status ``new``, never retried into a deal):
``bsp_dead_letters_new``, ``bsp status`` ``dead_letters_new``.

    box = NewDeadLetters()
    nursery.start_soon(watch_new_dead_letters, box, engine)    # engine/ops/serve.py
    box.value                                                 # None until first read (or while reads fail)
    box.by_kind                                               # {"unreachable": 636, "rejected": 120, ...}

Every rejected or failed deal leaves a dead letter (docs/ledger.md); a counterpart down for a minute leaves
thousands, and they wait until an operator retries or purges them (``bsp dead retry``, ``bsp dead purge``).
The route counters say how many deals failed since the start, not how many letters wait now, whatever run
wrote them and whatever was retried since (through the admin API or offline).  So the ledger is asked, one
``COUNT`` every ``REFRESH`` seconds, in a worker thread beside the writer (``read_in_process``), not per
deal: the figure is at most ``REFRESH`` seconds (plus the journal's ~0.2 s) behind.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger("bsp.run")

REFRESH = 5.0        # seconds between two counts


class NewDeadLetters:
    def __init__(self) -> None:
        self.value: int | None = None
        self.by_kind: dict[str, int] = {}      # by error kind: a counterpart's outage (unreachable, timeout)
        self._failing = False                  # stands out of the business rejections that wait for a purge

    async def refresh(self, ledger: Any) -> None:
        from engine.ledger_query import count_new_dead_letters
        from engine.ledger_store import LedgerError
        from engine.ops.ledger_reads import read_in_process

        try:
            self.by_kind = await read_in_process(count_new_dead_letters, Path(ledger.path))
            self.value = sum(self.by_kind.values())
        except (LedgerError, OSError) as exc:
            self.value, self.by_kind = None, {}
            if not self._failing:
                log.error("%s; bsp status dead_letters_new and bsp_dead_letters_new are unknown until it can be "
                          "read again (tried every %gs); `bsp dead list --live --status new` lists them", exc,
                          REFRESH)
            self._failing = True
            return
        if self._failing:
            log.warning("%s: the dead letters waiting can be counted again", ledger.path)
        self._failing = False


async def watch_new_dead_letters(box: NewDeadLetters, engine: Any) -> None:
    """Count them once the journal's deals are in DuckDB, then every ``REFRESH`` seconds until the drain."""
    wait = getattr(engine.ledger, "wait_loaded", None)
    if wait is not None:
        await wait()
    while not engine.draining:
        await box.refresh(engine.ledger)
        await trio.sleep(REFRESH)
