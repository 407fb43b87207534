"""A deal's dead letters, for its story (``bsp deals show``, ``GET /deals/{id}``).

A rejected or failed deal keeps its message as the dead letter of its own id (``engine.txn.manager.dead_letter_of``,
stored in the deal's transaction).  A retry refused again leaves the message in the letter of the retry's deal
(``engine.deadletter.waits_again``): the deal's letters are its own, then those its retries left, oldest first.
Each letter says its status (``new``, ``retrying``, ``retried``, ``purged``; a purged letter stays as a tombstone
without its message), its reason and kind, and its retries: the chained status events of the letter (ledger
schema 10, ``engine.ledger_store.LETTER_STATE``), each with the outcome the row held after that change.  A letter
never retried has no such event: its row alone says it waits.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from engine.exact_json import stored_json

__all__ = ["letters_of", "purge_text", "story_lines", "MOST"]

MOST = 100        # letters followed along one message's chain (a retry refused again, and again ...)

_COLUMNS = ("id", "at", "route", "channel", "reason", "error_kind", "error_code", "status", "retried_at",
            "retry_outcome", "chain_seq")


def _utc(t: Any) -> Any:
    return t.astimezone(timezone.utc) if t is not None and hasattr(t, "astimezone") else t


def _letter(con: Any, letter_id: str) -> dict[str, Any] | None:
    cur = con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in _COLUMNS)}, raw IS NULL "
                      f"FROM dead_letters WHERE id = ?", [letter_id])
    row = cur.fetchone()
    if row is None:
        return None
    d = dict(zip(_COLUMNS, row[:-1]))
    d["message_kept"] = not row[-1]         # false once purged (a tombstone: the row stays, the message is gone)
    d["at"], d["retried_at"] = _utc(d["at"]), _utc(d["retried_at"])
    return d


def _retries(con: Any, letter_id: str) -> list[dict[str, Any]]:
    """The letter's chained status events, oldest first: ``{at, status, retried_at, outcome, ...}`` (who, for a
    purge)."""
    from engine.ledger_store import LETTER_STATE

    out = []
    for at, detail in con.execute('SELECT "at", detail FROM deal_events WHERE deal_id = ? AND to_state = ? '
                                  "ORDER BY seq", [letter_id, LETTER_STATE]).fetchall():
        d = stored_json(detail) if detail is not None else {}
        out.append({"at": _utc(at), **(d if isinstance(d, dict) else {"detail": d})})
    return out


def letters_of(con: Any, deal_id: str) -> list[dict[str, Any]]:
    """The deal's dead letters, oldest first: its own (id = the deal's id), then those its retries refused again
    left the message in; [] when it has none (a committed or duplicate deal, or a letter moved by ``bsp ledger
    archive``).  A letter named by an outcome but not in this ledger ends the list as ``{"id", "status": None}``.
    Each: the ``dead_letters`` columns (no raw), ``message_kept`` and ``retries`` (``_retries``)."""
    from engine.deadletter import successor

    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'dead_letters' "
                       "AND table_catalog = current_database()").fetchall()[0][0]:
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    nxt: str | None = deal_id
    while nxt is not None and nxt not in seen and len(out) < MOST:
        seen.add(nxt)
        letter = _letter(con, nxt)
        if letter is None:
            if out:              # named by the previous letter's outcome, not here (archived)
                out.append({"id": nxt, "status": None})
            break
        letter["retries"] = _retries(con, nxt)
        out.append(letter)
        nxt = successor(letter["retry_outcome"]) if letter["status"] == "retried" else None
    return out


def _when(t: Any) -> str:
    if isinstance(t, str):       # as the admin API answers it (ISO 8601, "Z")
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return t
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def joined_ack(events: Any) -> dict[str, Any] | None:
    """The acknowledgement of the reversal the deal's advice joined (engine/txn/saf.py ``_joined_story``: its event
    ``reversed CALL`` naming the deal it joined in ``joined``), the last one: ``{at, mti, response_code, approved,
    joined, joined_call}``; None when the deal joined none, or it is not acknowledged yet."""
    found = None
    for ev in events or ():
        d = ev.get("detail")
        if str(ev.get("to_state") or "").startswith("reversed ") and isinstance(d, dict) and d.get("joined"):
            found = {**d, "at": ev.get("at")}
    return found


def _acked(lid: str, ack: dict[str, Any]) -> str:
    """Where a joined deal's message waits once the reversal it joined was acknowledged: a retry is not the way."""
    other, code = ack.get("joined"), ack.get("response_code")
    head = (f"its message waits as dead letter {lid} (new), but its reversal was acknowledged (joined deal {other}'s "
            f"reversal, call {ack.get('joined_call')}; {ack.get('mti')} code {'?' if code is None else code} at "
            f"{_when(ack.get('at'))}): no retry is needed, it would send the reversal again")
    if ack.get("approved"):
        return (f"{head}; the host reversed the original, nothing is left to settle: keep the letter as your "
                f"retention asks, then `bsp dead purge {lid}`")
    return (f"{head}; the code is not an approval: the host has the reversal but did not apply it: ask the host "
            f"about the original (`bsp deals show {other}`), then settle it there (`bsp deals resolve`)")


def _where_now(letters: list[dict[str, Any]], events: Any = ()) -> str:
    """One sentence: where the deal's message is now (``events``: the deal's, for a reversal it joined)."""
    last = letters[-1]
    lid, status = last["id"], last["status"]
    ack = joined_ack(events) if status == "new" else None
    if ack is not None:
        return _acked(lid, ack)
    if status is None:
        return (f"its message went on to dead letter {lid}, which is not in this ledger (moved by `bsp ledger "
                f"archive`: `bsp dead show {lid}` names the archive)")
    if status == "new":
        return f"its message waits as dead letter {lid} (new): `bsp dead show {lid}`, `bsp dead retry {lid}`"
    if status == "retrying":
        return (f"its message is being retried: dead letter {lid} (retrying since {_when(last['retried_at'])}; "
                f"a retry cut short is settled at the next start)")
    if status == "purged":
        return (f"its message was purged: dead letter {lid} (purged; the row stays as a tombstone, the message "
                f"is gone)")
    if status == "retried":
        return f"its message was retried from dead letter {lid} (retried): {last['retry_outcome']}"
    return f"its message is in dead letter {lid} ({status})"


def purge_text(purge: dict[str, Any] | None) -> str:
    """What ``bsp dead show`` says of a purged letter's message: when and by whom (``ledger_query.letter_purge``),
    or that bsp did not record who (a purge before 2026-11-28)."""
    if purge is None or not purge.get("by"):
        when = f" at {_when(purge['at'])}" if purge is not None else ""
        return (f"(purged{when}; who purged it was not recorded: a purge before 2026-11-28, when bsp did not keep "
                f"the name; the row stays as a tombstone, the message is gone)")
    beside = "".join(f", {k.replace('_', ' ')} {purge[k]}" for k in ("stated_by", "os_user", "host") if purge.get(k))
    return (f"(purged at {_when(purge['at'])} by {purge['by']} (via {purge.get('via') or '?'}{beside}); the row "
            f"stays as a tombstone, the message is gone)")


def story_lines(letters: list[dict[str, Any]], events: Any = ()) -> list[str]:
    """The text of ``bsp deals show``'s dead-letter section (``letters_of``); ``events``: the deal's (a reversal
    advice that joined another deal's queued reversal, acknowledged since: its letter needs no retry)."""
    if not letters:
        return []
    out = ["dead letters:" if len(letters) > 1 else "dead letter:"]
    for n, letter in enumerate(letters):
        if letter["status"] is None:
            continue
        whose = "the deal's own" if n == 0 else "the letter of a retry's deal, refused again"
        out.append(f"  {letter['id']}  {letter['status']}  kind {letter['error_kind'] or '-'}"
                   + (f"  code {letter['error_code']}" if letter.get("error_code") else "")
                   + f"  at {_when(letter['at'])}  ({whose}; audit chain seq {letter['chain_seq']})")
        out.append(f"    reason: {letter['reason']}")
        if not letter["retries"]:
            out.append("    retries: none (no status change recorded)")
        for r in letter["retries"]:
            who = f" by {r['by']}" if r.get("by") else ""
            out.append(f"    {_when(r['at'])}  -> {r.get('status')}{who}"
                       + (f": {r['outcome']}" if r.get("outcome") else ""))
    out.append(f"  {_where_now(letters, events)}")
    return out
