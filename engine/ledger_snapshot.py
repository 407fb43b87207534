"""A transactionally consistent copy of the ledger a running engine holds open (``POST /ledger/snapshot``).

    snap = take_snapshot(ledger_path)          # a worker thread, in the engine's own process
    snap.path, snap.size, snap.taken_at, snap.chain_seq, snap.deals
    ...send snap.path...
    snap.remove()

DuckDB allows one process per file, so only the engine can read its ledger while it runs; and a copy of
the ``.duckdb`` and ``.wal`` files made while it writes can be torn.  Here a second connection joins the
engine's own DuckDB instance (as the admin API's deal queries do: engine/ops/ledger_reads.py) and, in one
read transaction, copies the whole database into a new file: ``ATTACH <tmp> AS <alias>; COPY FROM
DATABASE <ledger> TO <alias>; DETACH <alias>``.  The copy sees the ledger as of one instant (DuckDB's
snapshot isolation: whole transactions, the audit head with its rows); every table, its types
(DECIMAL(24,4) amounts), indexes and the audit chain come across as they are, encrypted fields still
encrypted.  The writer is not stopped: it commits beside the copy (docs/benchmarks.md §3).

The temporary file is made in the ledger's own folder (same disk, owner-only like the ledger), named
``.<ledger>.snapshot-<hex>.duckdb``; ``take_snapshot`` refuses (``SnapshotNoRoom``, naming the folder) when
that disk has less free space than the ledger's size plus ``RESERVE``, so that a snapshot never takes the
room the engine needs to go on writing.  Files a crash left there are removed by the next snapshot
(``remove_leftovers``).
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from engine.ledger_store import LedgerError, storage_failure

RESERVE = 256 * 1024 * 1024      # free bytes the engine keeps for its own writes after a snapshot
PREFIX_FMT = ".{name}.snapshot-"


class SnapshotError(LedgerError):
    """The snapshot could not be made; the message says why and what to do."""


class SnapshotNoRoom(SnapshotError):
    """The ledger's folder has not room enough for the copy (``folder`` names it)."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder


@dataclass
class Snapshot:
    path: Path               # the temporary file: send it, then ``remove()``
    size: int
    taken_at: datetime       # when the copy's read transaction began (UTC)
    chain_seq: int | None    # the audit chain's head in the copy
    deals: int               # deals rows in the copy

    def remove(self) -> None:
        for p in (self.path, Path(str(self.path) + ".wal")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def ledger_size(ledger: Path) -> int:
    """The ledger's bytes on disk: the file and its write-ahead log."""
    total = 0
    for p in (ledger, Path(str(ledger) + ".wal")):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def check_room(folder: Path, needed: int, *, reserve: int | None = None) -> None:
    """``SnapshotNoRoom`` naming ``folder`` unless its disk has ``needed`` + ``reserve`` (default ``RESERVE``)
    bytes free."""
    reserve = RESERVE if reserve is None else reserve
    free = shutil.disk_usage(folder).free
    if free < needed + reserve:
        raise SnapshotNoRoom(
            f"{folder}: not enough free space for a ledger snapshot: it needs about {_mib(needed)} for the copy "
            f"and keeps {_mib(reserve)} for the engine's own writes, and the disk has {_mib(free)} free. Free "
            f"space in {folder} (the ledger's folder, where the copy is made before it is sent), then ask again",
            folder)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f} MiB"


def take_snapshot(ledger: Path, *, reserve: int | None = None) -> Snapshot:
    """Blocking (a worker thread, in the process that holds ``ledger`` open): copy the ledger as of now
    into a temporary file beside it.  ``SnapshotNoRoom`` when its disk lacks room, ``SnapshotError``
    when DuckDB cannot make the copy; no temporary file is left behind on failure."""
    ledger = Path(ledger)
    folder = ledger.parent
    remove_leftovers(ledger)        # a crash's: one snapshot runs at a time (the admin API sees to it)
    check_room(folder, ledger_size(ledger), reserve=reserve)
    target = folder / f"{PREFIX_FMT.format(name=ledger.name)}{secrets.token_hex(8)}.duckdb"
    alias = f"bsp_snapshot_{secrets.token_hex(6)}"
    snap = Snapshot(target, 0, datetime.now(timezone.utc), None, 0)
    try:
        con = duckdb.connect(str(ledger))       # joins the engine's instance: same process, same file
    except duckdb.Error as exc:
        raise SnapshotError(f"{ledger}: cannot open the ledger to copy it: {exc}") from exc
    try:
        main = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH '{_quoted(target)}' AS {alias}").fetchall()
        try:
            con.execute("BEGIN TRANSACTION").fetchall()
            snap.taken_at = datetime.now(timezone.utc)
            con.execute(f'COPY FROM DATABASE "{main}" TO {alias}').fetchall()
            head = con.execute(f"SELECT max(chain_seq) FROM {alias}.audit_head").fetchall()
            snap.chain_seq = head[0][0] if head else None
            snap.deals = int(con.execute(f"SELECT count(*) FROM {alias}.deals").fetchall()[0][0])
            con.execute("COMMIT").fetchall()
        except BaseException:
            try:
                con.execute("ROLLBACK").fetchall()
            except duckdb.Error:
                pass
            raise
        finally:
            con.execute(f"DETACH {alias}").fetchall()
        os.chmod(target, 0o600)
        snap.size = target.stat().st_size
        return snap
    except BaseException as exc:
        snap.remove()
        if isinstance(exc, duckdb.Error):
            if storage_failure(exc):
                raise SnapshotNoRoom(f"{folder}: the ledger snapshot could not be written there: {exc}; free "
                                     f"space in {folder} (the ledger's folder, where the copy is made before "
                                     f"it is sent), then ask again", folder) from None
            raise SnapshotError(f"{ledger}: the snapshot failed: {exc}") from exc
        raise
    finally:
        con.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def remove_leftovers(ledger: Path) -> list[Path]:
    """Remove snapshot files a crash left beside ``ledger`` (none is in use before the engine serves)."""
    ledger = Path(ledger)
    gone = []
    for p in ledger.parent.glob(f"{PREFIX_FMT.format(name=ledger.name)}*"):
        try:
            p.unlink()
            gone.append(p)
        except OSError:
            pass
    return gone


__all__ = ["RESERVE", "Snapshot", "SnapshotError", "SnapshotNoRoom", "check_room", "ledger_size",
           "remove_leftovers", "take_snapshot"]
