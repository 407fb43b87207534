"""Reading the deal ledger: ``query_deals`` for ``bsp deals``, reports and tests.

Reads open the file read-only.  DuckDB lets one process hold a file for
writing, and a read-only open from another process is refused while that
writer runs (file lock); within one process, a read-only connection cannot
join a read-write one either.  So query a ledger when no engine holds it, or
a snapshot the engine took (``POST /ledger/snapshot``, engine/ledger_snapshot.py).
``LedgerError`` says so when the file is locked.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any


import duckdb

from engine.config_sources import paths_of
from engine.deal_letters import letters_of
from engine.deal_resolve import (ACKED, FLAGGED_EVENTS, REVERSAL_FLAGGED, RESOLVED, acks_after, approved, code_of,
                                 flag_state, resolution_of, stamp)
from engine.exact_json import stored_json
from engine.ledger_store import COLUMNS, LedgerError, connect, require_bsp_ledger
from engine.txn.approval import APPROVED
from formats.currencies import minor_units as _minor_units

def minor_units(currency: str | None) -> int:
    """The currency's ISO 4217 minor units (letters or number: formats/currencies.py), 2 when not listed;
    amounts are shown with their currency's decimals when that loses nothing (the column stores 4)."""
    places = _minor_units(currency or "")
    return 2 if places is None else places


def display_amount(amount: Decimal | None, currency: str | None) -> Decimal | None:
    """``amount`` with its currency's decimals (120.5000 CNY -> 120.50) unless that would drop digits."""
    if amount is None:
        return None
    q = amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
    if q == amount:
        return q
    return amount.normalize()   # more decimals than the currency has: show them all


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"query_deals: {name} must be a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _after(before: tuple[datetime, str] | None, name: str) -> list[Any] | None:
    """The parameters of a page's ``(time < ? OR (time = ? AND id < ?))``: after ``(time, id)`` newest first."""
    if before is None:
        return None
    at, ident = before
    at = _utc(at, name)
    return [at, at, str(ident)]


@contextmanager
def _reading(path: Path, con: Any | None) -> Iterator[Any]:
    """``con`` as given (the caller keeps it open), else a read-only connection closed after use."""
    if con is not None:
        yield con
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger file here (an engine creates it on its first run)")
    own = connect(path, read_only=True)
    try:
        require_bsp_ledger(own, path)
        yield own
    finally:
        own.close()


def _select(sql: str, filters: list[tuple[str, Any]], order: str, limit: int | None, caller: str) -> tuple[str, list[Any]]:
    """``sql`` with a WHERE of the ``(condition, value)`` pairs whose value is not None, ORDER BY and LIMIT.

    A condition has one ``?``, or as many as its value (a list) has items.
    """
    where = [cond for cond, value in filters if value is not None]
    params: list[Any] = []
    for _, value in filters:
        if isinstance(value, list):
            params.extend(value)
        elif value is not None:
            params.append(value)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if limit is not None:
        if limit < 0:
            raise ValueError(f"{caller}: limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    return sql, params


def _as_utc(row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for k in keys:
        if row.get(k) is not None:
            row[k] = row[k].astimezone(timezone.utc)


def _deal_values(d: dict[str, Any]) -> dict[str, Any]:
    """A ``deals`` row as callers get it: amount with its currency's decimals, aware UTC times, JSON parsed."""
    d["amount"] = display_amount(d["amount"], d["currency"])
    _as_utc(d, ("received_at", "finished_at"))
    for k in ("request", "response"):
        if d[k] is not None:
            d[k] = stored_json(d[k])
    return d


def query_deals(
    path: str | Path,
    *,
    deal_type: str | None = None,
    status: str | None = None,
    reference: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 50,
    con: Any | None = None,
    flagged: bool = False,
    before: tuple[datetime, str] | None = None,
    resolved: bool = False,
    currency: str | None = None,
    party: str | None = None,
    statement_breaks: bool = False,
) -> list[dict[str, Any]]:
    """Deals matching every given filter, newest first (by received_at).

    ``since`` is inclusive, ``until`` exclusive; naive datetimes are taken as
    UTC.  ``limit=None`` returns all.  Each dict has the ``deals`` columns:
    ``amount`` as ``Decimal`` (with its currency's decimals), timestamps as
    aware UTC datetimes, ``request``/``response`` parsed from JSON (money in
    them is an exact string).  ``con``: an open connection to read through
    (the engine's own process passes one; see ``engine.ops.ledger_reads``)
    instead of opening ``path`` read-only.  ``flagged``: only deals flagged for an operator (an event
    ``flagged``: ``engine.txn.flagging``, ``engine.txn.recovery``; or ``reversal flagged``: an ISO 8583
    reversal stored and forwarded not acknowledged after its attempts, appended after the row, ``engine.txn.saf``)
    whose flag is open (not resolved by an operator since: ``engine.deal_resolve``), or, with ``resolved``, the
    resolved ones too; each row then has ``resolution``: the operator's (``at``, ``outcome``, ``note``, ``by``...)
    or None while the flag is open.
    ``before``: ``(received_at, deal_id)`` of the last row of a previous page: only the deals after it in
    this order (older, or as old with a smaller id), so pages never skip nor repeat a deal
    (``engine.admin.cursor``).
    ``currency``: only deals in this currency, in any case (``cny`` finds ``CNY``: ISO 4217 codes have no case,
    as the key-conflict fingerprint compares them).  ``party``: only deals whose ``party`` column is exactly this
    text, as the route's ``deal`` step stored it (as the reports' ``--party`` matches it): the column only, never
    the request's (possibly encrypted) fields; a route that stores a mask (``mask_pan(...)``) is found by its mask.
    ``statement_breaks``: only deals with an event ``statement break`` (a statement a ``continuity`` step found
    not following on from its account's last one: engine/statement_chains.py).
    """
    return list(iter_deals(path, deal_type=deal_type, status=status, reference=reference, since=since,
                           until=until, limit=limit, con=con, flagged=flagged, before=before, resolved=resolved,
                           currency=currency, party=party, statement_breaks=statement_breaks))


# the events that flag a deal for an operator (``flagged``, ``reversal flagged``: appended later by the
# store-and-forward task: the row is chained and never updated) and an operator's resolution (``resolved``):
# a flag is open while it is newer than the deal's newest ``resolved``, unless it is a ``reversal flagged``
# closed by a later acknowledged reversal of its call (``reversed NAME``, ``approved``: the host settled it);
# the deal's flag is open while one of its flags is (engine.deal_resolve.flag_state, the same rule in Python).
# Read, never written: the chained events stay as they were appended.
_FLAGGED_IN = ", ".join("?" for _ in FLAGGED_EVENTS)
# a ``reversed NAME`` event ``{a}`` whose DE 39 is an approval: its detail's ``approved``, else (an event written
# before bsp kept it) its ``response_code`` among engine.txn.approval.APPROVED (engine.deal_resolve.approved)
assert all(c.isdigit() for c in APPROVED)          # literals below: digits only, nothing to quote
_APPROVED_SQL = ("coalesce(({a}.detail->>'approved') = 'true', trim({a}.detail->>'response_code') IN ("
                 + ", ".join(f"'{c}'" for c in sorted(APPROVED)) + "), false)")
_CALL_SQL = "json_extract_string({f}.detail, '$.not_undone[0]')"        # the call a ``reversal flagged`` is about
_OPEN_FROM = (     # each flag event, less those before the newest ``resolved`` and those an approved ack closed
    "FROM deal_events f "
    "LEFT JOIN (SELECT deal_id, max(seq) AS m FROM deal_events WHERE to_state = ? GROUP BY deal_id) r "
    "ON r.deal_id = f.deal_id "
    "LEFT JOIN (SELECT deal_id, seq, to_state FROM deal_events WHERE starts_with(to_state, ?) "
    f"AND {_APPROVED_SQL.format(a='deal_events')}) a ON f.to_state = ? AND a.deal_id = f.deal_id AND a.seq > f.seq "
    f"AND a.to_state = ? || {_CALL_SQL.format(f='f')} "
    f"WHERE f.to_state IN ({_FLAGGED_IN}) AND f.seq > coalesce(r.m, -1) AND a.deal_id IS NULL")
_OPEN_FLAG = f"deal_id IN (SELECT f.deal_id {_OPEN_FROM})"
_OPEN_PARAMS = [RESOLVED, ACKED, REVERSAL_FLAGGED, ACKED, *FLAGGED_EVENTS]

FETCH_ROWS = 2048      # rows fetched from DuckDB at a time when streaming


# A deal whose ISO 8583 reversal was flagged after its row was written (event ``reversal flagged``, engine.txn.saf)
# reads as a deal flagged with its row does: its reason, and its dead letter's (id = the deal's id), end with
# FLAG_NOTE and the event's ``why``; a reversal acknowledged after the flag (``reversed NAME``) adds ACK_NOTE
# after that ``why`` (``ack_note``: closed with an approving code, else still open).  The note is added when
# read: the row and the dead letter are chained as written (engine.audit) and never changed; the events that
# say it are appended to the chain.
FLAG_NOTE = "; flagged for an operator: "
ACK_NOTE = "; reversal acknowledged after the flag at "
_STAMP_SQL = """strftime({a}."at" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ')"""     # deal_resolve.stamp
_ACK_SQL = (f"(? || {_STAMP_SQL.format(a='a')} || CASE WHEN {_APPROVED_SQL.format(a='a')} "
            f"THEN ? || coalesce(a.detail->>'response_code', '?') || ? "
            f"ELSE ? || coalesce(a.detail->>'response_code', '?') || ? END)")
_CLOSED = (" (code ", "): the host reversed the original, the flag is closed: nothing is left to settle")
_STILL_OPEN = (" with code ", ", not an approval: the flag stays open; ask the host about the original")
# the same note in SQL, for the dead letters' reason filter (``row`` names the outer row's id column): the notes
# of the deals with a reversal flag, made once and joined (a note made per letter took 5x as long at 1M events)
_NOTE_SQL = ("coalesce((SELECT n.note FROM (SELECT e.deal_id, ? || string_agg(e.detail->>'why' || coalesce("
             + _ACK_SQL + ", ''), '; ' ORDER BY e.seq) AS note FROM deal_events e "
             "LEFT JOIN (SELECT * FROM deal_events WHERE starts_with(to_state, ?)) a ON a.deal_id = e.deal_id "
             "AND a.seq > e.seq AND a.to_state = ? || " + _CALL_SQL.format(f='e') + " "
             "WHERE e.to_state = ? GROUP BY e.deal_id) n WHERE n.deal_id = {row}), '')")
_NOTE_PARAMS = [FLAG_NOTE, ACK_NOTE, *_CLOSED, *_STILL_OPEN, ACKED, ACKED, REVERSAL_FLAGGED]


def ack_note(ack: dict[str, Any]) -> str:
    """What a ``reversed NAME`` event after a ``reversal flagged`` of call NAME adds to that flag's ``why``."""
    text = ACK_NOTE + stamp(ack.get("at"))
    return text + (_CLOSED[0] + code_of(ack) + _CLOSED[1] if approved(ack) else
                   _STILL_OPEN[0] + code_of(ack) + _STILL_OPEN[1])


def flag_note(reason: str | None, whys: list[str]) -> str | None:
    """``reason`` with the note of its deal's ``reversal flagged`` events (``whys``, in order), if any."""
    if not whys:
        return reason
    return (reason or "") + FLAG_NOTE + "; ".join(whys)


def _whys(events: list[dict[str, Any]]) -> list[str]:
    """The ``why`` of each ``reversal flagged`` event among ``events`` (in order; ``detail`` parsed), each followed
    by the ``ack_note`` of the first acknowledged reversal of its call after it, if any."""
    out = []
    for i, e in enumerate(events):
        if e.get("to_state") == REVERSAL_FLAGGED and isinstance(e.get("detail"), dict) \
                and e["detail"].get("why") is not None:
            acks = acks_after(events, i)
            out.append(str(e["detail"]["why"]) + (ack_note(acks[0][1]) if acks else ""))
    return out


class _Flags:
    """The ``reversal flagged`` notes of the deals read through ``con``: which deals have one is read once (a scan
    of ``deal_events.to_state``, ~40 ms at 5M events), their ``why`` only for the deals read that have one."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self._ids: set[str] | None = None

    def note(self, rows: list[dict[str, Any]], id_key: str) -> None:
        """Each failed deal's (or its dead letter's) reason with the note of a reversal flagged since (``flag_note``)."""
        if not rows:
            return
        if self._ids is None:
            self._ids = {r[0] for r in self.con.execute(
                "SELECT DISTINCT deal_id FROM deal_events WHERE to_state = ?", [REVERSAL_FLAGGED]).fetchall()}
        hits = [r[id_key] for r in rows if r[id_key] in self._ids and r.get("reason") is not None]
        if not hits:
            return
        events = _flag_events(self.con, hits, [REVERSAL_FLAGGED])
        for r in rows:
            whys = _whys(events.get(r[id_key], []))
            if whys:
                r["reason"] = flag_note(r["reason"], whys)


def _flag_events(con: Any, deal_ids: list[str], states: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per deal, its events whose ``to_state`` is one of ``states`` or an acknowledged reversal (``reversed
    NAME``), in order, as ``get_deal`` gives them (``at`` aware UTC, ``detail`` parsed)."""
    events: dict[str, list[dict[str, Any]]] = {}
    if not deal_ids:
        return events
    marks = ", ".join("?" for _ in deal_ids)
    for deal_id, at, to_state, detail in con.execute(
            f'SELECT deal_id, "at", to_state, detail FROM deal_events WHERE deal_id IN ({marks}) '
            f"AND (to_state IN ({', '.join('?' for _ in states)}) OR starts_with(to_state, ?)) ORDER BY deal_id, seq",
            [*deal_ids, *states, ACKED]).fetchall():
        events.setdefault(deal_id, []).append(
            {"at": at.astimezone(timezone.utc), "to_state": to_state,
             "detail": stored_json(detail) if detail is not None else None})
    return events


def iter_deals(
    path: str | Path,
    *,
    deal_type: str | None = None,
    status: str | None = None,
    reference: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 50,
    con: Any | None = None,
    flagged: bool = False,
    before: tuple[datetime, str] | None = None,
    resolved: bool = False,
    currency: str | None = None,
    party: str | None = None,
    statement_breaks: bool = False,
) -> Iterator[dict[str, Any]]:
    """``query_deals`` as a generator: rows are fetched ``FETCH_ROWS`` at a time, so memory stays
    bounded whatever the ledger holds (``bsp deals --limit 0 --json`` on millions of deals).
    The query runs (and errors are raised) on the first ``next``."""
    sql, params = _select(
        f"SELECT {', '.join(COLUMNS)} FROM deals",
        [("deal_type = ?", deal_type), ("status = ?", status), ("reference = ?", reference),
         ("upper(currency) = ?", None if currency is None else currency.upper()), ("party = ?", party),
         ("received_at >= ?", _utc(since, "since")), ("received_at < ?", _utc(until, "until")),
         (f"deal_id IN (SELECT deal_id FROM deal_events WHERE to_state IN ({_FLAGGED_IN}))",
          list(FLAGGED_EVENTS) if flagged and resolved else None),
         (_OPEN_FLAG, _OPEN_PARAMS if flagged and not resolved else None),
         ("deal_id IN (SELECT deal_id FROM deal_events WHERE to_state = ?)",
          "statement break" if statement_breaks else None),
         ("(received_at < ? OR (received_at = ? AND deal_id < ?))", _after(before, "before"))],
        "received_at DESC, deal_id DESC", limit, "query_deals")
    return _iter_deals(Path(path), sql, params, con, flagged)


def _resolutions(con: Any, rows: list[dict[str, Any]]) -> None:
    """Each row's ``resolution`` (``engine.deal_resolve.resolution_of``) from its flag, resolution and
    acknowledged-reversal events."""
    events = _flag_events(con, [r["deal_id"] for r in rows], [*FLAGGED_EVENTS, RESOLVED])
    for r in rows:
        r["resolution"] = resolution_of({"events": events.get(r["deal_id"], [])})


def _iter_deals(path: Path, sql: str, params: list[Any], con: Any | None,
                flagged: bool = False) -> Iterator[dict[str, Any]]:
    with _reading(path, con) as c:
        side = None          # the notes' reads, beside the result being fetched (``execute`` would end it)
        flags: _Flags | None = None
        try:
            cur = c.execute(sql, params)
            while True:
                rows = cur.fetchmany(FETCH_ROWS)
                if not rows:
                    break
                chunk = [dict(zip(COLUMNS, row)) for row in rows]
                failed = [d for d in chunk if d["status"] == "failed"]
                if failed:
                    if flags is None:
                        side = side or c.cursor()
                        flags = _Flags(side)
                    flags.note(failed, "deal_id")
                if flagged:
                    if side is None:
                        side = c.cursor()
                    _resolutions(side, chunk)
                for d in chunk:
                    yield _deal_values(d)
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read deals: {exc}") from exc
        finally:
            if side is not None:
                side.close()


# ---------------------------------------------------------------- one deal's story

def _dicts(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _has_table(con: Any, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()[0][0])


class AmbiguousId(LookupError):
    """A deal id prefix that matches more than one deal."""


def open_flag_events(path: str | Path, *, con: Any | None = None) -> list[tuple[str, str, str | None, str]]:
    """``(deal_id, to_state, call, route)`` of every open flag event of the deals ``query_deals(flagged=True)`` lists
    (the same rule, ``_OPEN_FROM``; ``call``: the call a ``reversal flagged`` is about, else None), in one
    query: what the engine's open-flags gauge starts from (``engine.ops.openflags``).  ``con`` as for
    ``query_deals``."""
    path = Path(path)
    with _reading(path, con) as con:
        try:
            return [(str(d), str(t), None if c is None else str(c), str(r)) for d, t, c, r in con.execute(
                f"SELECT o.deal_id, o.to_state, o.call, d.route FROM deals d JOIN (SELECT f.deal_id, f.to_state, "
                f"{_CALL_SQL.format(f='f')} AS call {_OPEN_FROM}) o ON o.deal_id = d.deal_id",
                _OPEN_PARAMS).fetchall()]
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read the deals flagged for an operator: {exc}") from exc


def retry_made_a_deal(outcome: str | None) -> bool:
    """Whether a retry's recorded outcome says it ran as a deal (``rejected (deal ID): ...``) or was answered as
    a duplicate: that letter is seen to (its retry's deal has a dead letter of its own if it failed again).
    A retry that made no deal (``failed: the current configuration has no inbound channel ...``, a key
    missing, no reply) ran nothing: its letter still waits.  ``WAITING_SQL`` is the same test in SQL."""
    text = str(outcome or "")
    return "(deal " in text or text.startswith("duplicate")


# the dead letters waiting for an operator: status new, never retried into a deal (``retry_made_a_deal``);
# what ``count_new_dead_letters`` counts and ``bsp dead retry`` by filters selects (engine/commands/dead_select.py)
WAITING_SQL = ("status = 'new' AND (retried_at IS NULL OR NOT (coalesce(retry_outcome, '') LIKE '%(deal %' "
               "OR coalesce(retry_outcome, '') LIKE 'duplicate%'))")


# what ``bsp dead list`` (and GET /dead-letters) shows without --status / --all: what waits for an operator
# (``WAITING_SQL``) and what a retry holds (``retrying``: running, or cut short and to be settled or checked)
OPEN_SQL = f"(({WAITING_SQL}) OR status = 'retrying')"


def letter_purge(path: str | Path, letter_id: str, *, con: Any | None = None) -> dict[str, Any] | None:
    """Who purged this dead letter and when: its last chained status event of status ``purged``
    (``engine.ledger_store.LETTER_STATE``): ``{"at", "by", "via", "host", "os_user", "stated_by"}`` as recorded
    (``by`` absent for a purge before 2026-11-28, or one before the ledger had status events); None when it
    has no such event."""
    from engine.exact_json import stored_json
    from engine.ledger_store import LETTER_STATE

    path = Path(path)
    with _reading(path, con) as c:
        if not _has_table(c, "deal_events"):
            return None
        try:
            rows = c.execute('SELECT "at", detail FROM deal_events WHERE deal_id = ? AND to_state = ? '
                             "ORDER BY seq DESC", [letter_id, LETTER_STATE]).fetchall()
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read dead letter {letter_id}'s status events: {exc}") from exc
    for at, detail in rows:
        d = stored_json(detail) if detail is not None else None
        if isinstance(d, dict) and d.get("status") == "purged":
            return {"at": at.astimezone(timezone.utc) if hasattr(at, "astimezone") else at,
                    **{k: d[k] for k in ("by", "via", "host", "os_user", "stated_by") if d.get(k)}}
    return None


def letter_history(path: str | Path, letter_id: str, *, con: Any | None = None,
                   most: int = 100) -> list[dict[str, Any]]:
    """The dead letters of one message, oldest first, when a retry refused again left it in another
    (``engine.deadletter.waits_again``: the earlier letter is ``retried``, its outcome naming the next):
    ``[{"id", "status"}, ...]``, this letter among them; [] when it is the only one.  A letter named but not
    here (moved by ``bsp ledger archive``) ends the chain with status None.  At most ``most`` each way."""
    from engine.deadletter import WAITS_AGAIN, successor

    path = Path(path)
    with _reading(path, con) as c:
        if not _has_table(c, "dead_letters"):
            return []
        try:
            this = c.execute("SELECT id, status, retry_outcome FROM dead_letters WHERE id = ?",
                             [letter_id]).fetchall()
            if not this:
                return []
            seen = {letter_id}
            back: list[tuple[Any, ...]] = []
            cur = letter_id
            while len(back) < most:
                found = c.execute("SELECT id, status, retry_outcome FROM dead_letters WHERE status = 'retried' AND "
                                  "contains(retry_outcome, ?) ORDER BY id LIMIT 1", [WAITS_AGAIN + cur]).fetchall()
                if not found or found[0][0] in seen:
                    break
                back.append(found[0])
                seen.add(cur := found[0][0])
            ahead: list[tuple[Any, ...]] = []
            nxt = successor(this[0][2]) if this[0][1] == "retried" else None
            while nxt is not None and nxt not in seen and len(ahead) < most:
                seen.add(nxt)
                found = c.execute("SELECT id, status, retry_outcome FROM dead_letters WHERE id = ?", [nxt]).fetchall()
                if not found:
                    ahead.append((nxt, None, None))
                    break
                ahead.append(found[0])
                nxt = successor(found[0][2]) if found[0][1] == "retried" else None
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read dead letters: {exc}") from exc
    chain = [*reversed(back), this[0], *ahead]
    return [{"id": i, "status": st} for i, st, _ in chain] if len(chain) > 1 else []


def count_new_dead_letters(path: str | Path, *, con: Any | None = None) -> dict[str, int]:
    """How many dead letters wait for an operator: status ``new`` and never retried into a deal (a retry refused
    again leaves the message in its deal's own letter and its letter ``retried``, ``engine.deadletter.end_retry``;
    a letter left ``new`` so by a bsp before 2026-11-27 is counted in its retry's letter, not twice; one whose
    retry made no deal, its channel gone say, still waits: ``WAITING_SQL``), by error kind (``unreachable``, ``timeout``, ``rejected``,
    ``malformed``, ...): what ``bsp_dead_letters_new`` shows (engine/ops/deadcount.py), and what ``bsp dead
    retry --status new`` selects.  ``con`` as for ``query_deals``."""
    path = Path(path)
    with _reading(path, con) as con:
        try:
            return {str(k or "unknown"): int(n) for k, n in con.execute(
                f"SELECT error_kind, count(*) FROM dead_letters WHERE {WAITING_SQL} GROUP BY 1 ORDER BY 1"
            ).fetchall()}
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot count the dead letters: {exc}") from exc


def get_deal(path: str | Path, deal_id: str, *, con: Any | None = None) -> dict[str, Any] | None:
    """The whole story of one deal, or None when no deal has this id.

    ``deal_id`` may be a unique prefix (at least 8 hex digits).  The dict has
    the ``deals`` columns (as ``query_deals`` gives them) plus ``steps`` and
    ``events`` (lists of dicts in order), ``calls`` (the steps of kind
    ``call``), ``chain_seq`` and ``config`` (``version``, ``loaded_at``,
    ``files``: the route files of that configuration, or None when it was
    never recorded) and ``dead_letters`` (``engine.deal_letters.letters_of``: its
    own letter, then those its retries left, each with its status, reason and
    retries; [] for none).  ``con`` as for ``query_deals``.
    """
    path = Path(path)
    with _reading(path, con) as con:
        try:
            cols = ", ".join(COLUMNS)
            if len(deal_id) >= 32:
                rows = _dicts(con, f"SELECT {cols}, chain_seq FROM deals WHERE deal_id = ?", [deal_id])
            elif len(deal_id) >= 8:
                rows = _dicts(con, f"SELECT {cols}, chain_seq FROM deals WHERE starts_with(deal_id, ?) LIMIT 3",
                              [deal_id.lower()])
            else:
                raise ValueError(f"deal id {deal_id!r} is too short: give the 32-digit id or at least its first 8 digits")
            if len(rows) > 1:
                raise AmbiguousId(f"deal id prefix {deal_id!r} matches several deals "
                                  f"({', '.join(r['deal_id'] for r in rows)}...); give more digits")
            if not rows:
                return None
            d = rows[0]
            full = d["deal_id"]
            d["steps"] = _dicts(con, "SELECT seq, step, kind, vote, outcome, started_at, duration_ms, detail "
                                     "FROM deal_steps WHERE deal_id = ? ORDER BY seq", [full])
            d["events"] = _dicts(con, 'SELECT seq, "at", from_state, to_state, detail '
                                      "FROM deal_events WHERE deal_id = ? ORDER BY seq", [full])
            cfg = _dicts(con, "SELECT version, loaded_at FROM config_versions WHERE version = ?",
                         [d["config_version"]])
            if cfg:        # the manifest's paths (schema 11) or the whole sources' (engine/config_sources.py)
                cfg[0]["files"] = paths_of(con, d["config_version"]) or []
            d["dead_letters"] = letters_of(con, full)     # its own, then those its retries left (engine/deal_letters.py)
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read deal {deal_id}: {exc}") from exc
    _deal_values(d)
    for item in (*d["steps"], *d["events"]):
        if item.get("detail") is not None:
            item["detail"] = stored_json(item["detail"])
        _as_utc(item, ("started_at", "at"))
    d["reason"] = flag_note(d["reason"], _whys(d["events"]))   # a reversal flagged since the row: its note
    state = flag_state(d["events"])[0]
    d["flag"] = None if state == "none" else state       # "open", "resolved", "acknowledged" or None (never flagged)
    d["resolution"] = resolution_of(d)
    d["calls"] = [s for s in d["steps"] if s["kind"] == "call"]
    if cfg:
        c = cfg[0]
        d["config"] = {"version": c["version"], "loaded_at": c["loaded_at"].astimezone(timezone.utc),
                       "files": c["files"]}
    else:
        d["config"] = None
    return d


# ---------------------------------------------------------------- dead letters

DEAD_LIST_COLUMNS = ("id", "at", "route", "channel", "reason", "error_kind", "error_code", "config_version",
                     "status", "retried_at", "retry_outcome", "raw_key", "raw_sha256", "chain_seq")


def query_dead_letters(
    path: str | Path,
    *,
    route: str | None = None,
    channel: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: list[str] | None = None,
    limit: int | None = 50,
    with_raw: bool = False,
    kind: str | None = None,
    con: Any | None = None,
    before: tuple[datetime, str] | None = None,
    open_only: bool = False,
    code: str | None = None,
) -> list[dict[str, Any]]:
    """Dead letters matching every filter, newest first.  ``reason`` is a case-insensitive substring;
    ``kind`` the ``error_kind`` (``engine.defaults.DEAD_KINDS``); ``code`` the ``error_code`` (the code its deal
    records, ``deals.response_code``: a rule's ``13``, ``91`` ...); ``open_only``: only those waiting for an
    operator or held by a retry (``OPEN_SQL``: what ``bsp dead list`` shows without --status or --all).
    ``before``: ``(at, id)`` of the last row of a previous page (as ``query_deals``'s).  The reason of a
    failed deal's letter whose ISO 8583 reversal was flagged since ends with that flag's note (``flag_note``),
    as read and as ``reason`` matches it.

    With ``with_raw`` each dict has ``raw``: the stored bytes (encrypted when
    ``raw_key`` is set; see ``engine.deadletter.raw_bytes``), None once purged.
    ``con`` as for ``query_deals``.
    """
    cols = ", ".join(f'"{c}"' for c in DEAD_LIST_COLUMNS) + (", raw" if with_raw else "")
    sql, params = _select(
        f"SELECT {cols} FROM dead_letters",
        [("route = ?", route), ("channel = ?", channel), ("status = ?", status), ("error_kind = ?", kind),
         ("error_code = ?", code),
         (f"contains(lower(reason || {_NOTE_SQL.format(row='dead_letters.id')}), lower(?))",
          None if reason is None else [*_NOTE_PARAMS, reason]),
         ('"at" >= ?', _utc(since, "since")), ('"at" < ?', _utc(until, "until")),
         (f"id IN ({', '.join('?' for _ in ids or ())})", list(ids) if ids else None),
         ('("at" < ? OR ("at" = ? AND id < ?))', _after(before, "before")),
         (OPEN_SQL, [] if open_only else None)],
        '"at" DESC, id DESC', limit, "query_dead_letters")
    path = Path(path)
    with _reading(path, con) as c:
        if not _has_table(c, "dead_letters"):
            return []
        try:
            rows = _dicts(c, sql, params)
            _Flags(c).note(rows, "id")
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: cannot read dead letters: {exc}") from exc
    for r in rows:
        _as_utc(r, ("at", "retried_at"))
    return rows
