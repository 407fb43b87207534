"""The field keyring against the ledger it seals values in: one check value per key id (``field_key_checks``).

A ledger's sealed values (classified fields of deals, dead letters' raw messages) name the key id they were
sealed with, not the key.  An engine started with another key under an id the ledger already used (another
environment's ring, a typo, a regenerated key) would seal new values under the same id with another key: from
then on one of the two populations could never be read again (``bsp deals show --reveal`` fails for it).  The
transaction log's sealed values catch that when it holds some (engine/txn/keycheck.py); this catches it always,
without reading a deal:

* the first time a writer seals a value with its keyring (a deal's classified field, a dead letter's message),
  the transaction that writes it records, for the current key id (the one that seals) if the ledger has no check
  value for it yet, the keyring's seal of a fixed text whose associated data names the purpose and the key id
  (``record``; ``LedgerStore.sealing``: not at open, so that a start refused after the open, by the transaction
  log's keycheck, leaves no wrong key recorded);
* every writer open (``LedgerStore.open`` from ``open_ledger``: ``bsp run``, ``bsp dead retry``) and every
  reveal (``bsp deals show --reveal``, ``bsp dead show``) opens the check value of each key id of the ring that
  has one (``check``): one that does not open is refused (``KeyMismatch``) with one line naming the ledger, the
  key id and where the keyring came from, never a key; a key id with a check value that the ring lacks is a
  warning (the values sealed with it cannot be revealed), not a refusal.

One row per key id, one AES-GCM open per key of the ring: the cost does not grow with the ledger.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.fieldcrypt import PREFIX, KeyringError

TABLE = "field_key_checks"
PLAINTEXT = b"bsp field key check v1"
HOW = ("Start with the keyring the engine ran with (look for a typo in the key, another environment's keyring, a key "
       "regenerated under the same id); a new key takes a new key id, the old one kept in the ring "
       "(docs/security.md#keys-and-rotation)")


def aad(key_id: str) -> bytes:
    """The associated data of a check value: its purpose and its key id (a check value of another id, or a
    sealed field's value put in its place, does not open as one)."""
    return f"field key check|{key_id}".encode()


def _has_table(con: Any) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [TABLE]).fetchall()[0][0])


def check(con: Any, path: Path, keyring: Any, *, after: str = "Nothing was written") -> list[str]:
    """Raise ``KeyMismatch`` when a key of ``keyring`` does not open its key id's check value in the ledger at
    ``path`` (open on ``con``); return the warnings for the key ids with a check value the ring lacks.  A ledger
    without the table (schema < 8, read-only) or no keyring: nothing to check.  ``after`` ends a refusal."""
    from engine.ledger_store import KeyMismatch

    if keyring is None or not _has_table(con):
        return []
    missing: list[str] = []
    for kid, token, created in con.execute(f"SELECT key_id, token, created_at FROM {TABLE} "
                                           f"ORDER BY created_at, key_id").fetchall():
        if kid not in keyring.keys:
            missing.append(str(kid))
            continue
        try:
            ok = str(token).startswith(f"{PREFIX}{kid}:") and keyring.decrypt(str(token), aad(kid)) == PLAINTEXT
        except KeyringError:
            ok = False
        if not ok:
            when = f" on {created:%Y-%m-%d}" if isinstance(created, datetime) else ""
            raise KeyMismatch(
                f"{path}: field key {kid!r} of the keyring{_from(keyring)} is not the key this ledger's values "
                f"under that id were sealed with (its check value, recorded{when} when the id first sealed here, "
                f"does not open with it): values sealed with it now could never be read with the ones before. "
                f"{HOW}. {after}")
    warnings = _check_unrecorded(con, path, keyring, after) + _check_old_archive(con, path, keyring, after)
    if not missing:
        return warnings
    return warnings + [f"{path}: the ledger holds values sealed with field key{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(k) for k in missing)}, which the field keyring{_from(keyring)} does not hold (it has "
            f"{', '.join(sorted(keyring.keys))}): they cannot be revealed with it; keep the old keys in the ring "
            f"when adding a new one (docs/security.md#keys-and-rotation)"]


TRIES = 3          # values sealed before the checks tried for a key id with none (one that opens proves it)


def _check_unrecorded(con: Any, path: Path, keyring: Any, after: str) -> list[str]:
    """The ring's current key id (the one that seals, and whose check value its first seal records) without a
    check value, in a ledger upgraded from before schema 8: its values sealed then are tried (``TRIES`` of each
    kind; one that opens proves the key).  Without this, another key under that id (another environment's
    keyring) was taken for the ledger's and recorded with its first seal, and from then on the right key was
    refused.  Dead letters' messages (their ``raw_key`` set by the engine) that do not open refuse the keyring
    (``KeyMismatch``); a deal's value that looks sealed may be a client's text in a field kept as received, so
    those that do not open are a warning (returned).  Only until the id has its check value, and only over
    what was written before the upgrade: a ledger made at schema 8 costs nothing."""
    from engine.ledger_store import KeyMismatch

    kid = keyring.current
    if kid not in keyring.keys or con.execute(f"SELECT count(*) FROM {TABLE} WHERE key_id = ?",
                                              [kid]).fetchall()[0][0]:
        return []
    rows = con.execute("SELECT min(applied_at) FILTER (WHERE version >= 8), count(*) FILTER (WHERE version < 8) "
                       "FROM schema_version").fetchall()
    cutoff, older = rows[0] if rows else (None, 0)
    if not older:
        return []
    failed = {"dead": 0, "deal": 0}
    for kind, token, context in _sealed_before(con, kid, cutoff):
        try:
            keyring.decrypt(token, context.encode())
            return []
        except KeyringError:
            failed[kind] += 1
    said = (f"field key {kid!r} of the keyring{_from(keyring)} is not the key this ledger's values under that id "
            f"were sealed with")
    if failed["dead"]:
        raise KeyMismatch(
            f"{path}: {said} (none of the {failed['dead']} dead letter message(s) sealed under it before the ledger "
            f"kept key checks opens with it): values sealed with it now could never be read with the ones "
            f"before. {HOW}. {after}")
    if failed["deal"]:
        return [f"{path}: {said}, it seems: none of the {failed['deal']} deal value(s) that look sealed under it "
                f"(written before the ledger kept key checks) opens with it; if the engine sealed them (not a "
                f"client's text), values sealed now could never be read with them. {HOW}"]
    return []


def _check_old_archive(con: Any, path: Path, keyring: Any, after: str) -> list[str]:
    """An archive written by ``bsp ledger archive`` before it carried the check values into the archive (its
    ``field_key_checks`` empty): each key id of the ring is tried on the values sealed under it there (``TRIES``
    of each kind, as ``_check_unrecorded``): a dead letter's message that does not open refuses the keyring, a
    deal's value a warning.  An archive made since holds the live ledger's check values (checked above)."""
    from engine.ledger_store import KeyMismatch, archive_of

    if archive_of(con) is None or con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]:
        return []
    out: list[str] = []
    for kid in sorted(keyring.keys):
        failed = {"dead": 0, "deal": 0}
        opened = False
        for kind, token, context in _sealed_before(con, kid, None):
            try:
                keyring.decrypt(token, context.encode())
                opened = True
                break
            except KeyringError:
                failed[kind] += 1
        if opened:
            continue
        said = (f"field key {kid!r} of the keyring{_from(keyring)} is not the key this archive's values under that "
                f"id were sealed with (the archive carries no check values: made before bsp ledger archive copied "
                f"them)")
        if failed["dead"]:
            raise KeyMismatch(f"{path}: {said}: none of the {failed['dead']} dead letter message(s) sealed under it "
                              f"opens with it. {HOW}. {after}")
        if failed["deal"]:
            out.append(f"{path}: {said}, it seems: none of the {failed['deal']} deal value(s) that look sealed under "
                       f"it opens with it; if the engine sealed them (not a client's text), they cannot be revealed "
                       f"with this keyring. {HOW}")
    return out


def _sealed_before(con: Any, kid: str, cutoff: Any) -> Any:
    """``(kind, token, associated data)`` of values sealed under ``kid`` in dead letters and deals written
    before ``cutoff`` (None: any time), ``TRIES`` of each."""
    import orjson

    time = "" if cutoff is None else ' AND "at" < ?'
    for lid, raw in con.execute(f"SELECT id, raw FROM dead_letters WHERE raw_key = ? AND raw IS NOT NULL{time} "
                                f"LIMIT {TRIES}", [kid] + ([cutoff] if cutoff is not None else [])).fetchall():
        yield "dead", bytes(raw).decode("ascii", "replace"), f"dead|{lid}"
    mark = f"{PREFIX}{kid}:"
    time = "" if cutoff is None else " AND received_at < ?"
    params: list[Any] = [f"%{mark}%", f"%{mark}%"] + ([cutoff] if cutoff is not None else [])
    n = 0
    for deal_id, *sides in con.execute(f"SELECT deal_id, request, response FROM deals WHERE (request LIKE ? "
                                       f"OR response LIKE ?){time} LIMIT {TRIES}", params).fetchall():
        for root, text in zip(("request", "response"), sides):
            try:
                value = orjson.loads(text) if text else None
            except orjson.JSONDecodeError:
                continue
            for where, token in _tokens(value, root, mark):
                if n < TRIES:
                    n += 1
                    yield "deal", token, f"{deal_id}|{where}"


def _tokens(value: Any, path: str, mark: str) -> Any:
    """``(field path, token)`` of the sealed values under one key id in a stored request or response (the
    paths ``fieldcrypt.protect`` binds into their associated data)."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _tokens(v, f"{path}.{i}", mark)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tokens(v, f"{path}.{k}", mark)
    elif isinstance(value, str) and value.startswith(mark):
        yield path, value


def record(con: Any, keyring: Any) -> bool:
    """Record the check value of ``keyring``'s current key id (the one that seals) unless the ledger on ``con``
    has one; inside the caller's transaction.  True when it was recorded."""
    if keyring is None:
        return False
    kid = keyring.current
    if con.execute(f"SELECT count(*) FROM {TABLE} WHERE key_id = ?", [kid]).fetchall()[0][0]:
        return False
    con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?)",
                [kid, keyring.encrypt(PLAINTEXT, aad(kid)), datetime.now(timezone.utc)]).fetchall()
    return True


def check_file(path: Path, keyring: Any) -> list[str]:
    """``check`` for a reader that reveals (read-only; ``after`` says nothing was revealed).  A file that cannot
    be opened here is left to the reader's own open (it says why)."""
    from engine.ledger_store import LedgerError, connect

    if keyring is None:
        return []
    try:
        con = connect(Path(path), read_only=True)
    except LedgerError:
        return []
    try:
        return check(con, Path(path), keyring, after="Nothing was revealed")
    finally:
        con.close()


def verify_file(path: Path, keyring: Any) -> tuple[str | None, list[str]]:
    """``bsp audit verify``'s field key check of a ledger or an archive (read-only): ``(error, warnings)``, the
    error the refusal a writer or a reveal would meet with this keyring (None: each key opens its id's check
    value)."""
    from engine.ledger_store import LedgerError, connect

    con = connect(Path(path), read_only=True)
    try:
        return None, check(con, Path(path), keyring, after="Its values cannot be revealed with this keyring")
    except LedgerError as exc:
        return str(exc), []
    finally:
        con.close()


def checked_ids(path: Path) -> list[str]:
    """The key ids ``path`` holds a check value for (read-only)."""
    from engine.ledger_store import connect

    con = connect(Path(path), read_only=True)
    try:
        if not _has_table(con):
            return []
        return [r[0] for r in con.execute(f"SELECT key_id FROM {TABLE} ORDER BY key_id").fetchall()]
    finally:
        con.close()


def _from(keyring: Any) -> str:
    source = getattr(keyring, "source", "")
    return f" from {source}" if source else ""
