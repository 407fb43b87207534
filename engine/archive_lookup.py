"""Where a deal or dead letter that the live ledger lacks went: ``bsp ledger archive`` (engine/ledger_archive.py)
moved it to an archive file.  ``bsp deals show``, ``bsp dead show``, ``bsp dead retry`` and the admin API's ``GET /deals/{id}`` /
``GET /dead-letters/{id}`` / ``POST /dead-letters/{id}/retry`` add the answer to their "no deal ID".

    info = archived_where(Path("var/bsp.duckdb"), "0192f3a4b5c6d7e8")   # None: no archive to point at
    hint(info, "deal", "0192f3a4b5c6d7e8", Path("var"))
    # "deal 0192f3a4...  was archived to var/bsp-2025.duckdb (archive of 2026-01-05, records 1..812): `bsp deals
    #  show ... --ledger var/bsp-2025.duckdb`"

A keyed deal is *known* to be archived: its key, id and anchor stay in the live ledger (``archived_deals``).
Other deals and dead letters leave nothing behind, but their ids begin with their creation time (engine.deal.
new_deal_id): one made before an archive was may be in it (``certain`` False), and the hint says "may".
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.audit import Anchor, anchors

__all__ = ["archived_where", "hint", "resolve_hint", "retry_hint"]

HEX = set("0123456789abcdefABCDEF")


def archived_where(path: Path, ident: str, *, kind: str = "deal", con: Any | None = None) -> dict[str, Any] | None:
    """The archive that holds (``certain``) or may hold the deal / dead letter ``ident`` (a deal: its id or first
    8+ hex digits), as a JSON-able dict ``{archive, archived_at, first_seq, last_seq, id, certain, created}``;
    None when nothing was archived out of the ledger, or none of its archives can hold it."""
    from engine.ledger_store import connect, require_bsp_ledger

    if len(ident) < 8 or not set(ident) <= HEX:
        return None
    c = con if con is not None else connect(Path(path), read_only=True)
    try:
        if con is None:
            require_bsp_ledger(c, Path(path))
        found = anchors(c)
        if not found:
            return None
        if kind == "deal":
            sql = "deal_id = ?" if len(ident) >= 32 else "starts_with(deal_id, ?)"
            rows = c.execute(f"SELECT DISTINCT deal_id, anchor_seq FROM archived_deals WHERE {sql} LIMIT 2",
                             [ident.lower()]).fetchall()
            if len(rows) == 1:
                a = next((a for a in found if a.chain_seq == rows[0][1]), None)
                if a is not None:
                    return _info(a, rows[0][0], True, None)
    finally:
        if con is None:
            c.close()
    created = _created(ident)
    if created is None:
        return None
    later = [a for a in found if _utc(a.archived_at) > created]
    return _info(later[0], ident.lower(), False, created) if later else None


def _info(a: Anchor, ident: str, certain: bool, created: datetime | None) -> dict[str, Any]:
    return {"archive": a.archive, "archived_at": _utc(a.archived_at).isoformat().replace("+00:00", "Z"),
            "first_seq": a.first_seq, "last_seq": a.chain_seq, "id": ident, "certain": certain,
            "created": created.isoformat(timespec="seconds").replace("+00:00", "Z") if created else None}


def _created(ident: str) -> datetime | None:
    """The creation time an id begins with (48 bits of milliseconds; a prefix gives the earliest it can be)."""
    try:
        ms = int(ident[:12].ljust(12, "0"), 16)
        return datetime.fromtimestamp(ms / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _utc(t: Any) -> datetime:
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _place(info: dict[str, Any], folder: Path | None) -> tuple[str, str, str]:
    """The archive file (with ``folder`` when it is there), ``archive of DAY, records A..B`` and, when the file is
    not in ``folder``, where to look for it."""
    name = str(info["archive"])
    file = str(folder / name) if folder is not None and (folder / name).is_file() else name
    where = f"archive of {str(info['archived_at'])[:10]}, records {info['first_seq']}..{info['last_seq']}"
    elsewhere = "" if file != name else f" (give the path of {name} where your archives are kept)"
    return file, where, elsewhere


def _lead(info: dict[str, Any], kind: str, ident: str, file: str, where: str) -> tuple[str, str]:
    """The id to name and the sentence's start: ``KIND ID was archived to FILE (WHERE)`` (``certain``) or
    ``KIND ID may have been archived: its id dates from ..., before FILE was made (WHERE)``."""
    if info.get("certain"):
        full = info["id"]
        return full, f"{kind} {full} was archived to {file} ({where})"
    return ident, (f"{kind} {ident} may have been archived: its id dates from {info['created']}, before {file} was "
                   f"made ({where})")


def hint(info: dict[str, Any], kind: str, ident: str, folder: Path | None = None) -> str:
    """The sentence for ``archived_where``'s answer.  ``folder``: where to look for the archive file (the
    ledger's folder): the anchor keeps the file's name, not its folder; found there, the command names it."""
    file, where, elsewhere = _place(info, folder)
    cmd = "deals" if kind == "deal" else "dead"
    ident, lead = _lead(info, kind, ident, file, where)
    return f"{lead}: `bsp {cmd} show {ident} --ledger {file}`{elsewhere}"


def resolve_hint(info: dict[str, Any], ident: str, folder: Path | None = None) -> str:
    """``hint`` for ``bsp deals resolve`` / ``POST /deals/{id}/resolve``: an archived deal cannot be resolved
    there (an archive is read-only) and need not be: ``bsp ledger archive`` refuses to move a deal whose flag
    is open (engine.ledger_archive), so an archived deal has nothing left to resolve."""
    file, where, elsewhere = _place(info, folder)
    why = ("an archive is read-only, and `bsp ledger archive` moves no deal flagged for an operator and not "
           "resolved, so")
    ident, lead = _lead(info, "deal", ident, file, where)
    if info.get("certain"):
        return (f"{lead} and cannot be resolved there: {why} it has nothing to resolve; see how it ended with "
                f"`bsp deals show {ident} --ledger {file}`{elsewhere}")
    return (f"{lead}; a deal there cannot be resolved: {why} it has nothing to resolve; see it with "
            f"`bsp deals show {ident} --ledger {file}`{elsewhere}")


def retry_hint(info: dict[str, Any], ident: str, folder: Path | None = None) -> str:
    """``hint`` for ``bsp dead retry`` / ``POST /dead-letters/{id}/retry``: a dead letter in an archive cannot be
    retried from there (an archive is read-only); its message is read there, and re-sent from its source."""
    file, where, elsewhere = _place(info, folder)
    ident, lead = _lead(info, "dead letter", ident, file, where)
    join = " and cannot be retried from there: " if info.get("certain") else "; a dead letter there cannot be retried: "
    return (f"{lead}{join}an archive is read-only; read its message with `bsp dead show {ident} --ledger {file}`"
            f"{elsewhere} and, if it still matters, have its source send it again")
