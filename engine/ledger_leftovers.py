"""What an engine that did not drain (killed, crashed) left beside its ledger: acknowledged deals only in the
journal (``<ledger>.journal/``) and deals in flight in the transaction log (``<ledger>.txn``).  Read only
(``bsp version --ledger``, before an upgrade): the next start of an engine loads and resolves them."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def journal_position(con: Any) -> tuple[int, int, int] | None:
    """The ledger's journal position read on a read-only connection, also of a ledger older than schema 5
    (no ``done`` column: 0)."""
    from engine.journal import JOURNAL_NAME

    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "journal_state" not in tables:
        return None
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'journal_state'").fetchall()}
    done = "coalesce(done, 0)" if "done" in cols else "0"
    rows = con.execute(f'SELECT segment, "offset", {done} FROM journal_state WHERE journal = ?',
                       [JOURNAL_NAME]).fetchall()
    return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None


def leftovers(path: Path, position: tuple[int, int, int] | None) -> list[str]:
    """One line per kind of leftover (none after a clean stop)."""
    from engine.journal import JournalError, journal_dir, unloaded
    from engine.ledger_archive import _txn_scan
    from engine.txn.log import TxnLogError, log_path

    out = []
    jdir = journal_dir(path)
    try:
        ids, _ = unloaded(jdir, position)
    except JournalError as exc:
        out.append(f"{jdir}: cannot be read: {exc}")
        ids = []
    if ids:
        out.append(f"{jdir}: {len(ids):,} acknowledged deal(s) only in the journal, not loaded into the ledger")
    txn = log_path(path)
    if txn.is_file():
        try:
            pending, _, reversals = _txn_scan(txn)
        except (OSError, TxnLogError, ValueError) as exc:
            out.append(f"{txn}: cannot be read: {exc}")
        else:
            flight = [i for i, (t, _) in pending.items() if t == "begin"]
            if flight or reversals:
                out.append(f"{txn}: {len(flight):,} deal(s) in flight (resolved by their route's on restart "
                           f"policy at the next start), {len(reversals):,} with an ISO 8583 reversal queued")
    return out
