"""The audit chain's head kept outside the ledger file, and the cut a writer open finds against it.

``audit_head`` lives in the ledger file: whoever can write that file while the engine is stopped can delete
the newest records and then either delete the head row (a writer took the chain for one without a key and
sealed on from what was left) or put back a head row copied earlier (a backup, a look at the file): the head
then verifies, and the next writer continued from the cut, so that ``bsp audit verify`` afterwards found
nothing.  Two checks close that:

* in the file: a keyed chain whose head row is gone, or has no mac, was cut (a writer that seals writes a
  sealed head in the same transaction as every record; a ledger gets its head when it is made);
* outside it: every writer writes ``<ledger>.audit-head`` (``head_path``) when it opens the ledger and when it
  closes it: the last record's seq and mac, sealed with the audit key (``HEAD_LABEL``), written aside and
  renamed over (``write_head``).  A head copied back into the file cannot be older than this one.

``problem`` says what a writer open (``LedgerStore.open``) or ``bsp audit verify`` finds, or None.  The open
does not refuse: it appends one chained ``deal_events`` record ``audit break`` (``BREAK_STATE``, on an id of
its own) naming what is missing, logs it as an error and writes on; verify reports each such record as a break
for as long as the file is kept (``engine.audit._check_audit_breaks``), so the cut stays named after any number
of restarts.  The file beside the ledger is as writable as the ledger: deleting it along with the cut is not
seen by the next open (it says it starts one); keep a copy off the host, or the log line each close writes,
for that (docs/security.md#a-cut-while-the-engine-was-stopped).

The head left where no ledger is (the ledger deleted, or moved without it) is refused outright (``orphaned``):
no writer makes a new ledger beside it until it is moved away (docs/security.md#a-ledger-deleted-or-moved).
"""
from __future__ import annotations

import hmac
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from engine.audit import CHAINED, ZERO_MAC, fingerprint, key_label, ring_of
from engine.durable import fsync_dir

BREAK_STATE = "audit break"
HEAD_LABEL = b"bsp external chain head\x00"
SUFFIX = ".audit-head"

_log = logging.getLogger("bsp.ledger")


def head_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + SUFFIX)


def head_seal(key: bytes, seq: int, mac: bytes) -> bytes:
    return hmac.digest(key, HEAD_LABEL + str(seq).encode() + b"\x00" + mac, "sha256")


def write_head(ledger: Path, key: bytes | None, seq: int, mac: bytes) -> None:
    """Write ``<ledger>.audit-head`` for the chain ending at ``seq`` / ``mac`` (written aside, fsynced, renamed
    over); nothing without a key (an unkeyed chain proves nothing).  A failure is a warning: the ledger itself
    is intact, only the next open's check is weaker."""
    if key is None:
        return
    path = head_path(ledger)
    tmp = path.with_name(path.name + ".tmp")
    doc = {"ledger": ledger.name, "seq": seq, "mac": mac.hex(), "key_fp": fingerprint(key),
           "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seal": head_seal(key, seq, mac).hex()}
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        _log.warning("%s: cannot write the chain head kept outside the ledger (%s): %s; the next start cannot "
                     "tell records deleted from the ledger's end meanwhile", ledger, path, exc.strerror or exc)


def read_head(ledger: Path) -> dict[str, Any] | str | None:
    """The head kept beside ``ledger``: its document, None when there is none, or why it cannot be read."""
    path = head_path(ledger)
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        return f"{path}: cannot be read: {exc}"
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or not isinstance(doc.get("mac"), str) \
            or not isinstance(doc.get("seal"), str):
        return f"{path}: not a chain head written by bsp (seq, mac, seal)"
    return doc


def orphaned(ledger: Path) -> str | None:
    """Why a new ledger must not be made at ``ledger``: the head of a ledger that was there (``head_path``) is
    beside it, so that ledger was deleted or moved without its head; None when there is none.  A new chain
    started there would hide that it is gone (a ledger deleted and started over), so ``LedgerStore.open``
    refuses; the message names both files and each way on."""
    head = head_path(ledger)
    if not head.exists():
        return None
    doc = read_head(ledger)
    said = (f"its chain reached seq {doc['seq']} at {doc.get('at', '?')}" if isinstance(doc, dict) else
            f"unreadable: {doc.split(': ', 1)[-1]}" if isinstance(doc, str) else "gone while being read")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (f"{ledger}: no ledger here, but {head} is: the audit chain head of a ledger that was here ({said}). "
            f"That ledger was deleted, or moved without its head; a new ledger here would hide that, so none is "
            f"made. Moved or renamed: give its new path (--ledger, or the deployment file's `ledger:`) and move "
            f"the head beside it, `mv {head} NEWPATH{SUFFIX}`. Deleted by mistake: restore it from a backup "
            f"together with its {SUFFIX} file. A new ledger here on purpose (the old one retired): move the old "
            f"head away and keep it with that ledger's copies, `mv {head} {head}.retired-{stamp}`, then start "
            f"again (docs/security.md#a-ledger-deleted-or-moved). Nothing was written")


def sealed_end(head: Any, key: bytes | None) -> tuple[int, bytes] | None:
    """The ``(seq, mac)`` a head kept outside (``read_head``'s document) names, when its seal verifies with a key of
    the audit keyring ``key``; None otherwise."""
    if key is None or not isinstance(head, dict):
        return None
    try:
        seq, mac, seal = int(head["seq"]), bytes.fromhex(head["mac"]), bytes.fromhex(head["seal"])
    except (KeyError, TypeError, ValueError):
        return None
    if not any(hmac.compare_digest(head_seal(k, seq, mac), seal) for k in ring_of(key)):
        return None
    return seq, mac


def _mac_at(con: Any, seq: int) -> tuple[bool, bytes | None]:
    """(found, mac) of the chained record at ``seq``."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    union = " UNION ALL ".join(f"SELECT mac FROM {t} WHERE chain_seq = ?" for t in CHAINED if t in have)
    rows = con.execute(union, [seq] * union.count("?")).fetchall() if union else []
    if not rows:
        return False, None
    return True, bytes(rows[0][0]) if rows[0][0] is not None else None


def problem(con: Any, ledger: Path, key: bytes | None, last_seq: int, last_mac: bytes,
            *, head_row: bool = True) -> tuple[str, int] | None:
    """``(what, seq)`` when the chain open on ``con`` (ending at ``last_seq`` / ``last_mac``) was cut: its head row
    gone or unsealed while its last record is sealed (``head_row``), or the head kept outside (``read_head``)
    naming a record the chain no longer holds, or another one; None when nothing says so.  ``seq``: the first
    seq the cut concerns.  Cheap: one row of each table looked up by seq."""
    if key is None:
        return None
    outside = _outside(con, ledger, key, last_seq, last_mac)
    if outside is not None or not head_row or not last_seq or last_mac == ZERO_MAC:
        return outside
    rows = con.execute("SELECT chain_seq, mac FROM audit_head").fetchall()
    if not rows or rows[0][1] is None:
        state = "gone" if not rows else "without a mac"
        return (f"the chain head row is {state} while the chain's last record (seq {last_seq}) is sealed: a "
                f"writer that seals writes a sealed head with every record, so the head was "
                f"{'deleted' if not rows else 'replaced'} outside the ledger writer, and the records after seq "
                f"{last_seq} (if any) deleted with it", last_seq + 1)
    return None


def _outside(con: Any, ledger: Path, key: bytes, last_seq: int, last_mac: bytes) -> tuple[str, int] | None:
    """``problem`` against the head kept beside the ledger (``read_head``)."""
    from engine.ledger_store import last_anchor

    doc = read_head(ledger)
    if doc is None:
        return None
    where = head_path(ledger)
    if isinstance(doc, str):
        return f"the chain head kept outside the ledger: {doc}", last_seq + 1
    seq, at = int(doc["seq"]), doc.get("at", "?")
    try:
        mac, sealed = bytes.fromhex(doc["mac"]), bytes.fromhex(doc["seal"])
    except ValueError:
        return f"the chain head kept outside the ledger ({where}) is not hex: it was changed", last_seq + 1
    if not any(hmac.compare_digest(head_seal(k, seq, mac), sealed) for k in ring_of(key)):
        return (f"the chain head kept outside the ledger ({where}, seq {seq}, written {at}) does not verify with "
                f"the audit key{'ring' if len(ring_of(key)) > 1 else ''} ({key_label(key)}): it was changed or "
                f"replaced, so whether records were deleted from the ledger's end cannot be told", last_seq + 1)
    said = f"the chain head kept outside the ledger ({where}) says the chain reached seq {seq} at {at}"
    if seq > last_seq:
        gone = f"seq {last_seq + 1}" if seq == last_seq + 1 else f"seq {last_seq + 1}..{seq}"
        return (f"{said}, and the ledger's chain ends at seq {last_seq}: the records {gone} were deleted while no "
                f"writer had the ledger open (or an older copy of the ledger was put in its place)", last_seq + 1)
    if seq == 0:
        return None
    anchor = last_anchor(con)
    if anchor is not None and seq <= anchor[0]:
        if seq == anchor[0] and (anchor[1] or ZERO_MAC) != mac:
            return f"{said}, and the archive anchor at that seq has another mac: the anchor was changed", seq
        return None                      # archived since (bsp ledger archive): the anchor pins it
    found, have = _mac_at(con, seq)
    if not found:
        return f"{said}, and the ledger has no record at seq {seq}: it was deleted", seq
    if (have or ZERO_MAC) != mac:
        return (f"{said}, and the record now at seq {seq} is not the one it was (another mac): the chain was cut "
                f"before it and written on, or the record replaced", seq)
    return None


def record_break(con: Any, key: bytes, what: str, seq: int, last_seq: int, last_mac: bytes,
                 head: Any = None) -> tuple[int, bytes]:
    """Append the chained ``audit break`` event (inside the caller's transaction) and return the new chain state;
    the caller writes the head.  ``head``: the head kept outside (``read_head``); when it is sealed with the audit
    key and names more than the chain holds, its seq and mac are recorded too (``head_seq``, ``head_mac``): the
    chain end the records cut reached, which a later ``bsp ledger merge`` of the copy ending there brings back
    (engine/ledger_merge.py, ``resolves``)."""
    from engine.deal import new_deal_id
    from engine.ledger_store import append_events

    detail: dict[str, Any] = {"what": what, "from_seq": seq, "found_last_seq": last_seq, "by": "writer open"}
    end = sealed_end(head, key)
    if end is not None and end[0] > last_seq:
        detail["head_seq"], detail["head_mac"] = end[0], end[1].hex()
    row = {"deal_id": new_deal_id(), "seq": 1, "at": datetime.now(timezone.utc), "from_state": None,
           "to_state": BREAK_STATE, "detail": orjson.dumps(detail).decode()}
    return append_events(con, [row], key, last_seq, last_mac)
