"""An audit record of every reveal: ``bsp deals show --reveal`` and ``bsp dead show --reveal`` show card
numbers, track data, PIN blocks and names in clear, so each one is recorded in the ledger's audit chain
(PCI DSS 10.2.1.2: every access to cardholder data, who, when, what) before anything is shown.

The record is one more chained deal event, as an operator's resolution (``engine.deal_resolve``) and a dead
letter's status change (``engine.ledger_store.letter_events``) are: ``to_state`` ``revealed`` on the deal's
id, or the dead letter's (a letter of a deal has the deal's id), its detail::

    {"what": "deal" | "dead letter", "fields": ["request.card", "response.pan"] | ["message", ...],
     "by": "ops-alice", "via": "bsp deals show" | "bsp dead show", "host": "ops-box",
     "os_user": "bsp" (when --by names another), "live": "https://engine:7080" (with --live)}

``fields`` names what was shown in clear (the field paths that were sealed, ``message`` for a dead letter's
stored bytes), never a value.  ``by`` is ``--by`` when given, else the OS user running ``bsp``
(engine/operator.py), the same field the other operator actions fill.

The command writes the event through the ledger writer (``LedgerStore``: the audit key the engine writes
with, the chain continued, ``bsp audit verify`` clean after it); when it cannot (no engine may hold the
file, a keyed chain needs its key, an archive is read-only) nothing is revealed.  With ``--live`` the
running engine records it (``POST /deals/{id}/reveals``, ``POST /dead-letters/{id}/reveals``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

REVEALED = "revealed"
MAX_FIELDS = 200           # paths named in one record (a deal with more says "... and N more")


def sealed_paths(values: Any, root: str) -> list[str]:
    """The paths of the fields of ``values`` (a deal's request or response as stored) that are sealed
    (``enc:v1:``): what a reveal shows in clear."""
    from engine.fieldcrypt import is_encrypted

    out: list[str] = []
    if isinstance(values, (list, tuple)):
        for i, v in enumerate(values):
            out.extend(sealed_paths(v, f"{root}.{i}"))
    elif isinstance(values, Mapping):
        for k, v in values.items():
            out.extend(sealed_paths(v, f"{root}.{k}"))
    elif is_encrypted(values):
        out.append(root)
    return out


def detail(what: str, fields: Iterable[str], by: str, via: str, **where: Any) -> dict[str, Any]:
    """The ``revealed`` event's detail; ``where``: what the recorder can tell of the operator (host, os_user,
    peer, client_cert, token, live), None values dropped."""
    names = list(dict.fromkeys(fields))
    if len(names) > MAX_FIELDS:
        names = names[:MAX_FIELDS] + [f"... and {len(names) - MAX_FIELDS} more"]
    return {"what": what, "fields": names, "by": by, "via": via,
            **{k: v for k, v in where.items() if v is not None}}


class NotRecorded(RuntimeError):
    """The reveal could not be recorded, so nothing is shown; the message says why and what to do."""


def record_in_file(path: Path, ident: str, event: Mapping[str, Any], audit_key: bytes | None) -> datetime:
    """Append the ``revealed`` event ``event`` (``detail``) on ``ident`` (a deal's or a dead letter's whole id)
    to the ledger file's audit chain, through the ledger writer; its time.  ``NotRecorded`` when the file
    cannot be written: held by a running engine, a keyed chain without its key (or another), an archive."""
    from engine.ledger_store import LedgerError, LedgerStore

    why = ("--reveal shows card numbers and other classified data in clear, so each one is recorded in the "
           "ledger's audit trail (PCI DSS 10.2) before anything is shown; it could not be: ")
    try:
        store = LedgerStore.open(path, audit_key)
    except LedgerError as exc:
        text = str(exc)
        fix = ("; with an engine running, ask it: add --live" if "locked" in text or "lock" in text else
               "; read it without --reveal (classified fields masked)" if "archive" in text else "")
        raise NotRecorded(f"{why}{text}{fix}. Nothing was revealed") from None
    try:
        return append(store, ident, event)
    except LedgerError as exc:
        raise NotRecorded(f"{why}{exc}. Nothing was revealed") from None
    finally:
        store.close()


def append(store: Any, ident: str, event: Mapping[str, Any]) -> datetime:
    """Append the ``revealed`` event on ``ident`` in one transaction of the open ``store`` (``LedgerStore``: the
    command's own, or the engine's on its writer thread: ``engine.ledger.Ledger.record_reveal``); its time."""
    from engine.ledger_store import append_events

    at = datetime.now(timezone.utc)
    with store.transaction() as tail:
        con = store.connection
        ((n, state),) = con.execute("SELECT max(seq), arg_max(to_state, seq) FROM deal_events WHERE deal_id = ?",
                                    [ident]).fetchall()
        row = {"deal_id": ident, "seq": int(n or 0) + 1, "at": at, "from_state": state, "to_state": REVEALED,
               "detail": orjson.dumps(dict(event)).decode()}
        tail.seq, tail.prev = append_events(con, [row], store.audit_key, tail.seq, tail.prev)
    return at


__all__ = ["REVEALED", "NotRecorded", "append", "detail", "record_in_file", "sealed_paths"]
