"""A transaction manager lives as long as its ledger object: a closed, dropped ledger is freed, and
its transaction log's descriptor with it (a weak-keyed map held them for the life of the process)."""
from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

from engine.ledger import open_ledger
from engine.txn import manager_for
from engine.txn.manager import LIVE, existing_manager


def _open_logs(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)) and ".txn" in target:
            found.append(target)
    return found


async def test_a_closed_ledger_and_its_manager_are_freed_with_the_log_descriptor(tmp_path: Path) -> None:
    refs = []
    for i in range(3):
        async with open_ledger(tmp_path / f"l{i}.duckdb") as ledger:
            mgr = manager_for(ledger)
            assert manager_for(ledger) is mgr and existing_manager(ledger) is mgr
            await mgr.write([{"t": "begin", "id": "D1", "channel": "c", "route": "r"}])
            assert _open_logs(tmp_path)                  # the log is open while the ledger is
            refs.append((weakref.ref(ledger), weakref.ref(mgr)))
        del ledger, mgr
    gc.collect()
    assert [(led() is None, m() is None) for led, m in refs] == [(True, True)] * 3
    assert not any(m.ledger.path.parent == tmp_path for m in LIVE)
    assert _open_logs(tmp_path) == []


def test_an_object_without_a_manager_has_none() -> None:
    assert existing_manager(object()) is None
    assert manager_for(None) is None
