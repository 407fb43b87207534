"""The ledger's DuckDB side: schema, Arrow batches, the blocking connection.

Everything here is synchronous and runs on the ledger's writer thread
(``engine/ledger.py`` owns the scheduling).  One ``LedgerStore`` owns one
read-write DuckDB connection; nothing else may touch it.
"""
from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from engine import audit_cut, field_key_checks, filemodes, ledger_memory
from engine.config_sources import rebuild_json, split, texts_of
from engine.audit import (CHAINED, ENV_KEY, ENV_KEY_FILE, ZERO_MAC, anchor_seal, anchors, fingerprint, head_mac,
                          key_label, key_source, ring_labels, ring_of, seal)
from engine.duckdb_open import open_problem
from engine.faultlog import storage_fix

SCHEMA_VERSION = 11    # 2: deal_steps, deal_events, dead_letters, audit_head; chain_seq + mac everywhere
                       # 3: deals without PRIMARY KEY and secondary indexes (see _MIGRATE_3)
                       # 4: deal_keys, the deal key index (see _MIGRATE_4)
                       # 5: journal_state.done (a refused load loaded deal by deal: engine/journal.py); a bsp
                       #    of schema 4 would ignore it and load those deals twice, so it must refuse the file
                       # 6: audit_anchor, archived_deals, ledger_archive (bsp ledger archive: engine/ledger_archive.py);
                       #    a bsp of schema 5 would start the chain check at seq 1 and run a repeat of an archived
                       #    deal again, so it must refuse the file
                       # 7: audit_keys (audit key rotation records, chained) and audit_anchor.key_fp (the
                       #    fingerprint of the key that sealed the anchor): a bsp of schema 6 would refuse a
                       #    rotated ledger's key, or read the rotation records' seqs as a gap
                       # 8: field_key_checks (one check value per field key id: engine/field_key_checks.py):
                       #    a bsp of schema 7 would ignore it and seal with another key under a checked id,
                       #    so it must refuse the file
                       # 9: archived_deals.amount / currency / party (the archived deal's values: a repeat of its
                       #    key with other values is a key conflict, engine/txn/fingerprint.py); a bsp of schema
                       #    8 would archive into it with 6 values for its 9 columns, so it must refuse the file
                       # 10: a dead letter's status changes are chained: each appends a deal event ``dead_letter``
                       #    (LETTER_STATE) on the letter's id, which bsp audit verify compares with the row; the
                       #    migration appends one per letter whose status is not ``new`` (``letter_events``); a bsp
                       #    of schema 9 would change statuses without the event, which verify reports, so it must
                       #    refuse the file
                       # 11: configuration sources content-addressed: config_versions.manifest {path: sha256}
                       #    (chained) and config_files (sha256, text), each text once (engine/config_sources.py);
                       #    the migration splits the rows it can rebuild byte for byte (``_migrate_to_11``); a bsp
                       #    of schema 10 would read a manifest row's sources as NULL, so it must refuse the file

# Money column: DECIMAL(24,4).  20 digits before the point hold any bank
# amount (incl. high-nominal currencies such as IDR, VND, IRR summed over a
# day); 4 after it hold every ISO 4217 minor unit (CLF and UYW have 4; BHD,
# KWD, JOD, OMR, TND 3).  Amounts with more decimals are refused, never rounded.
AMOUNT_PRECISION = 24
AMOUNT_SCALE = 4
AMOUNT_MAX_INT_DIGITS = AMOUNT_PRECISION - AMOUNT_SCALE

DDL = f"""
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS deals (
    deal_id        VARCHAR NOT NULL,
    deal_type      VARCHAR NOT NULL,
    route          VARCHAR NOT NULL,
    config_version VARCHAR NOT NULL,
    channel        VARCHAR NOT NULL,
    reference      VARCHAR,
    amount         DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}),
    currency       VARCHAR,
    party          VARCHAR,
    status         VARCHAR NOT NULL,
    response_code  VARCHAR,
    reason         VARCHAR,
    received_at    TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    DOUBLE NOT NULL,
    request        JSON,
    response       JSON
);
CREATE TABLE IF NOT EXISTS config_versions (
    version   VARCHAR PRIMARY KEY,
    loaded_at TIMESTAMPTZ NOT NULL,
    sources   JSON
);
ALTER TABLE deals ADD COLUMN IF NOT EXISTS chain_seq BIGINT;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS mac BLOB;
ALTER TABLE config_versions ADD COLUMN IF NOT EXISTS chain_seq BIGINT;
ALTER TABLE config_versions ADD COLUMN IF NOT EXISTS mac BLOB;
-- schema 11: a version's sources content-addressed (engine/config_sources.py): the row holds the manifest
-- (path -> sha256) (chained), each distinct text is stored once in config_files (checked by its hash)
ALTER TABLE config_versions ADD COLUMN IF NOT EXISTS manifest JSON;
-- true: a row written before schema 11 that the migration split, whose mac covers the whole sources JSON, which
-- bsp audit verify rebuilds from the manifest and config_files (outside the mac: any other value fails it)
ALTER TABLE config_versions ADD COLUMN IF NOT EXISTS sealed_whole BOOLEAN;
CREATE TABLE IF NOT EXISTS config_files (
    sha256 VARCHAR PRIMARY KEY,
    text   VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS deal_steps (
    deal_id     VARCHAR NOT NULL,
    seq         INTEGER NOT NULL,
    step        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    vote        VARCHAR,
    outcome     VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms DOUBLE NOT NULL,
    detail      JSON,
    chain_seq   BIGINT,
    mac         BLOB
);
CREATE INDEX IF NOT EXISTS deal_steps_deal ON deal_steps (deal_id);
CREATE TABLE IF NOT EXISTS deal_events (
    deal_id    VARCHAR NOT NULL,
    seq        INTEGER NOT NULL,
    "at"       TIMESTAMPTZ NOT NULL,
    from_state VARCHAR,
    to_state   VARCHAR NOT NULL,
    detail     JSON,
    chain_seq  BIGINT,
    mac        BLOB
);
CREATE INDEX IF NOT EXISTS deal_events_deal ON deal_events (deal_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id             VARCHAR PRIMARY KEY,
    "at"           TIMESTAMPTZ NOT NULL,
    route          VARCHAR,
    channel        VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    error_kind     VARCHAR,
    error_code     VARCHAR,
    raw            BLOB,
    raw_key        VARCHAR,
    raw_sha256     VARCHAR NOT NULL,
    config_version VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,
    retried_at     TIMESTAMPTZ,
    retry_outcome  VARCHAR,
    chain_seq      BIGINT,
    mac            BLOB
);
CREATE INDEX IF NOT EXISTS dead_letters_at ON dead_letters ("at");
CREATE TABLE IF NOT EXISTS audit_head (
    chain_seq BIGINT,
    mac       BLOB
);
CREATE TABLE IF NOT EXISTS deal_keys (
    key     VARCHAR NOT NULL,
    deal_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_anchor (
    chain_seq   BIGINT NOT NULL,
    mac         BLOB,
    first_seq   BIGINT NOT NULL,
    archive     VARCHAR NOT NULL,
    sha256      VARCHAR NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL,
    keys        BIGINT NOT NULL,
    keys_sha256 VARCHAR NOT NULL,
    seal        BLOB
);
CREATE TABLE IF NOT EXISTS archived_deals (
    key           VARCHAR NOT NULL,
    deal_id       VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    response_code VARCHAR,
    finished_at   TIMESTAMPTZ NOT NULL,
    anchor_seq    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_deals_key ON archived_deals (key);
-- schema 9: what an archived keyed deal was about (engine/txn/fingerprint.py: a repeat of its key with another
-- amount, currency or party is a key conflict), NULL in the rows archived before (their repeats: plain duplicates)
ALTER TABLE archived_deals ADD COLUMN IF NOT EXISTS amount DECIMAL(24,4);
ALTER TABLE archived_deals ADD COLUMN IF NOT EXISTS currency VARCHAR;
ALTER TABLE archived_deals ADD COLUMN IF NOT EXISTS party VARCHAR;
-- schema 7: audit key rotation (engine/audit.py): one chained record per rotation, sealed with the old key
CREATE TABLE IF NOT EXISTS audit_keys (
    "at"                 TIMESTAMPTZ NOT NULL,
    key_id               VARCHAR NOT NULL,
    fingerprint          VARCHAR NOT NULL,
    previous_key_id      VARCHAR,
    previous_fingerprint VARCHAR NOT NULL,
    chain_seq            BIGINT,
    mac                  BLOB
);
ALTER TABLE audit_anchor ADD COLUMN IF NOT EXISTS key_fp VARCHAR;
-- the digest of the archived_totals and archived_links rows carried forward for the anchor (engine/audit.py
-- carried_digest), under its seal, NULL in anchors made before it (added without a schema change)
ALTER TABLE audit_anchor ADD COLUMN IF NOT EXISTS carried_sha256 VARCHAR;
-- schema 8: one check value per field key id that sealed values in this ledger (engine/field_key_checks.py),
-- not chained (docs/ledger.md#field_key_checks): bsp ledger archive leaves it in the live ledger and copies it into the archive
CREATE TABLE IF NOT EXISTS field_key_checks (
    key_id     VARCHAR NOT NULL,
    token      VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_archive (
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    source      VARCHAR NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL
);
-- the `limit` totals carried forward by bsp ledger archive (engine/ledger_archive.py): per total, key, currency
-- and day, what the moved deals' `counted` events net of their `released` ones held, read back with the live
-- events at an engine's start (LedgerStore.counted_totals).  into_key: the current digest a figure under an
-- old digest was moved into (`rekeyed` events), the rows of that old digest only.  Not chained, as archived_deals: the archive the
-- anchor seals holds the events they sum (docs/ledger.md#archiving)
CREATE TABLE IF NOT EXISTS archived_totals (
    anchor_seq BIGINT NOT NULL,
    total      VARCHAR NOT NULL,
    key        VARCHAR,
    currency   VARCHAR NOT NULL,
    day        VARCHAR NOT NULL,
    amount     DECIMAL(38,4) NOT NULL,
    into_key   VARCHAR
);
-- the last `statement link` of each chain of a `continuity` step among the deals bsp ledger archive moved out
-- (engine/statement_chains.py, engine/ledger_archive.py carry_links): read back with the live links at an
-- engine's start (LedgerStore.statement_links).  Not chained: the archive the anchor seals holds the events
CREATE TABLE IF NOT EXISTS archived_links (
    anchor_seq BIGINT NOT NULL,
    deal_id    VARCHAR NOT NULL,
    detail     VARCHAR NOT NULL
);
"""

# The deal key index (past the key store's retention a repeat is looked up here: ``deals_by_key``).
# Created after the migrations, so that a back-fill (``_MIGRATE_4``) builds it once, in bulk.
KEYS_INDEX_DDL = "CREATE INDEX IF NOT EXISTS deal_keys_key ON deal_keys (key)"

# The event states whose detail carries the deal key (``{"key": ...}``): ``accepted`` (engine/txn/manager.py
# _admit), ``in flight at restart`` (a deal resolved on restart, engine/txn/recovery.py _resolve) and the final
# status of a row written again from the transaction log (recovery.py _rerecord).  A ``duplicate`` deal's
# events name the key too, but a duplicate is never the deal a key leads to.
KEY_STATES: tuple[str, ...] = ("accepted", "in flight at restart", "committed", "failed", "rejected")

# Where the write-ahead journal (engine/journal.py) has been loaded up to; one row per journal.  ``done``:
# how many deals past byte ``offset`` of ``segment`` (in journal order) are loaded too: 0 after a load of
# whole records; more while a refused load is loaded deal by deal, each deal's transaction moving it on.
# Added after the table (a ledger of an earlier bsp gets it with 0: the same position as before).
JOURNAL_DDL = """CREATE TABLE IF NOT EXISTS journal_state (
    journal   VARCHAR NOT NULL,
    segment   BIGINT NOT NULL,
    "offset"  BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE journal_state ADD COLUMN IF NOT EXISTS done BIGINT DEFAULT 0"""

COLUMNS: tuple[str, ...] = (
    "deal_id", "deal_type", "route", "config_version", "channel", "reference",
    "amount", "currency", "party", "status", "response_code", "reason",
    "received_at", "finished_at", "duration_ms", "request", "response",
)

_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema([
    ("deal_id", pa.string()),
    ("deal_type", pa.string()),
    ("route", pa.string()),
    ("config_version", pa.string()),
    ("channel", pa.string()),
    ("reference", pa.string()),
    ("amount", pa.decimal128(AMOUNT_PRECISION, AMOUNT_SCALE)),
    ("currency", pa.string()),
    ("party", pa.string()),
    ("status", pa.string()),
    ("response_code", pa.string()),
    ("reason", pa.string()),
    ("received_at", _TS),
    ("finished_at", _TS),
    ("duration_ms", pa.float64()),
    ("request", pa.string()),
    ("response", pa.string()),
])

STEP_SCHEMA = pa.schema([
    ("deal_id", pa.string()), ("seq", pa.int32()), ("step", pa.string()), ("kind", pa.string()),
    ("vote", pa.string()), ("outcome", pa.string()), ("started_at", _TS), ("duration_ms", pa.float64()),
    ("detail", pa.string()),
])
EVENT_SCHEMA = pa.schema([
    ("deal_id", pa.string()), ("seq", pa.int32()), ("at", _TS), ("from_state", pa.string()),
    ("to_state", pa.string()), ("detail", pa.string()),
])
DEAD_SCHEMA = pa.schema([
    ("id", pa.string()), ("at", _TS), ("route", pa.string()), ("channel", pa.string()),
    ("reason", pa.string()), ("error_kind", pa.string()), ("error_code", pa.string()),
    ("raw", pa.binary()), ("raw_key", pa.string()), ("raw_sha256", pa.string()),
    ("config_version", pa.string()), ("status", pa.string()),
])
CONFIG_SCHEMA = pa.schema([("version", pa.string()), ("loaded_at", _TS), ("sources", pa.string()),
                           ("manifest", pa.string())])
DEAD_COLUMNS: tuple[str, ...] = tuple(DEAD_SCHEMA.names) + ("retried_at", "retry_outcome")
STEP_COLUMNS: tuple[str, ...] = tuple(STEP_SCHEMA.names)
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)


# Version 3 drops the deals PRIMARY KEY and its two indexes: they cost ~2.6 us of DuckDB CPU per
# inserted row (40 % of the insert, measured) and most of the memory growth.  Deal ids are unique by
# construction (48-bit ms time + 80 random bits, engine/deal.py new_deal_id) and the journal loads
# each record exactly once; DuckDB's zone maps serve the time-range and id / reference lookups of
# `bsp deals` (100k rows: a few ms).  DuckDB cannot drop a primary key in place: the table is copied.
_MIGRATE_3 = """
DROP INDEX IF EXISTS deals_reference;
DROP INDEX IF EXISTS deals_received_at;
ALTER TABLE deals RENAME TO deals_v2;
{create_deals};
INSERT INTO deals SELECT {columns}, chain_seq, mac FROM deals_v2;
DROP TABLE deals_v2
"""


def _deals_ddl() -> str:
    start = DDL.index("CREATE TABLE IF NOT EXISTS deals (")
    return DDL[start:DDL.index(");", start) + 1].replace("IF NOT EXISTS ", "").replace(
        "    response       JSON\n)", "    response       JSON,\n    chain_seq      BIGINT,\n    mac            BLOB\n)")


def _migrate_to_3(con: duckdb.DuckDBPyConnection) -> None:
    sql = _MIGRATE_3.format(create_deals=_deals_ddl(), columns=", ".join(f'"{c}"' for c in COLUMNS))
    for stmt in sql.split(";"):
        if stmt.strip():
            con.execute(stmt).fetchall()


# Version 4 adds deal_keys (key, deal_id): one row per deal that carried a deal key and is not itself a
# ``duplicate``, written in the same transaction as the deal (``LedgerStore.write``).  Before it, a key past
# the key store's retention was looked up by scanning every deal_events row with json_extract_string (50-65 ms
# per lookup at 1M deals, growing with the ledger).  KEYS_FROM_EVENTS: the deal_keys rows the chained
# deal_events and deals imply, read as the old lookup read them; the back-fill of an older ledger inserts
# them, and ``bsp audit verify`` (engine/audit.py) compares deal_keys with them.
KEYS_FROM_EVENTS = f"""
SELECT DISTINCT json_extract_string(e.detail, '$.key') AS key, e.deal_id
FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id
WHERE e.to_state IN ({", ".join(f"'{s}'" for s in KEY_STATES)})
  AND json_type(e.detail, '$.key') = 'VARCHAR' AND d.status <> 'duplicate'
"""
# The (key, deal_id, status, response_code, finished_at) of the keyed deals a ledger holds: what
# ``bsp ledger archive`` keeps in the live ledger's archived_deals for the deals it moves (``AND d.chain_seq
# <= ?`` appended), and what ``engine.audit.continuity`` reads from an archive to compare with them.
ARCHIVED_KEYS = ("SELECT k.key, k.deal_id, d.status, d.response_code, d.finished_at FROM deal_keys k "
                 "JOIN deals d ON d.deal_id = k.deal_id WHERE d.status <> 'duplicate'")
_MIGRATE_4 = f"INSERT INTO deal_keys (key, deal_id) {KEYS_FROM_EVENTS}"


def _migrate_to_4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_MIGRATE_4).fetchall()


def key_rows(deals: Sequence["DealRows"]) -> list[tuple[str, str]]:
    """The deal_keys rows of ``deals``: (key, deal_id) for each key named in a ``KEY_STATES`` event of a deal
    whose status is not ``duplicate`` (once per deal and key)."""
    out: list[tuple[str, str]] = []
    for d in deals:
        if not d.events or d.row.get("status") == "duplicate":
            continue
        seen: set[str] = set()
        for e in d.events:
            detail = e.get("detail")
            if not detail or e.get("to_state") not in KEY_STATES:
                continue
            if isinstance(detail, str):        # JSON text (Ledger.prepare); skip the parse when it names no key
                if '"key"' not in detail:
                    continue
                detail = orjson.loads(detail)
            key = detail.get("key") if isinstance(detail, dict) else None
            if isinstance(key, str) and key not in seen:
                seen.add(key)
                out.append((key, d.row["deal_id"]))
    return out


# The deal event that records a dead letter's status change (ledger schema 10): written on the letter's id
# (the id of the deal it came from; a letter of kind ``unrecorded`` has no deal row, its events are the letter's
# own), detail {"status", "retried_at", "outcome"} as the dead_letters row holds them after the change.  The
# row's columns are outside the mac (they change); the events are chained, and ``bsp audit verify`` compares
# each letter with its last such event (engine/audit.py ``_check_letters``).
LETTER_STATE = "dead_letter"


def letter_events(con: duckdb.DuckDBPyConnection, ids: Sequence[str] | None, key: bytes | None, seq: int,
                  prev: bytes, at: datetime | None = None,
                  actor: Mapping[str, Any] | None = None) -> tuple[int, bytes]:
    """Append one chained ``LETTER_STATE`` event per dead letter of ``ids`` holding its status, retried_at and
    retry_outcome as the row has them now, inside the caller's transaction; returns the new chain state.
    ``ids`` None: the migration to schema 10 (every letter whose status is not ``new`` and that has no such
    event yet: the starting point of its chained history).  ``actor``: who made the change, added to the
    detail beside those three (``{"by", "via", "host", "os_user"}``, None values dropped): a purge, whose
    row has no outcome naming who (a retry's outcome names them); verify compares the three only."""
    if ids is not None and not ids:
        return seq, prev
    where = ("list_contains(?, l.id)" if ids is not None else
             f"l.status <> 'new' AND NOT EXISTS (SELECT 1 FROM deal_events x WHERE x.deal_id = l.id "
             f"AND x.to_state = '{LETTER_STATE}')")
    # the events of these letters only (an operator's or a retry's change: one index look-up, not a scan)
    mine = "WHERE list_contains(?, deal_id) " if ids is not None else ""
    rows = con.execute(
        f"SELECT l.id, l.status, l.retried_at, l.retry_outcome, e.n, e.st FROM dead_letters l LEFT JOIN "
        f"(SELECT deal_id, max(seq) AS n, arg_max(to_state, seq) AS st FROM deal_events {mine}GROUP BY deal_id) e "
        f"ON e.deal_id = l.id WHERE {where} ORDER BY l.chain_seq",
        [list(ids), list(ids)] if ids is not None else []).fetchall()
    if not rows:
        return seq, prev
    when = at or datetime.now(timezone.utc)
    events = [{"deal_id": lid, "seq": int(n or 0) + 1, "at": when, "from_state": st, "to_state": LETTER_STATE,
               "detail": orjson.dumps({"status": status, "retried_at": _iso_us(retried), "outcome": outcome,
                                       **{k: v for k, v in (actor or {}).items() if v is not None}}).decode()}
              for lid, status, retried, outcome, n, st in rows]
    return append_events(con, events, key, seq, prev)


def _iso_us(t: datetime | None) -> str | None:
    """A TIMESTAMPTZ as ISO 8601 in UTC to the microsecond (what verify casts back and compares)."""
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _insert_sql(table: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{c}"' for c in [*schema.names, "chain_seq", "mac"])
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _bsp_batch"


def append_chained(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table, key: bytes | None, seq: int,
                   prev: bytes) -> tuple[int, bytes]:
    """Seal ``arrow`` (``engine.audit.seal``: ``chain_seq`` and ``mac`` from the chain ending at ``seq`` /
    ``prev``, with ``key``; none without) and insert it into the chained ``table``, inside the caller's
    transaction; returns the new chain state.  The one way a record joins the chain: ``LedgerStore``'s writes,
    a dead letter's status event (``letter_events``), a reveal (``engine.reveal_log``), an ``audit break``
    (``engine.audit_cut``) and a rotation record (``rotate_audit_key``).  On a failed insert the transaction
    is aborted and DuckDB refuses the unregister until the ROLLBACK: the insert's own error is raised, and the
    caller's ROLLBACK unregisters the batch (``LedgerStore.transaction``; ``register`` replaces it anyway)."""
    if arrow.num_rows == 0:
        return seq, prev
    sealed, seq, prev = seal(table, arrow, CHAINED[table][1], key, seq, prev)
    con.register("_bsp_batch", sealed)
    try:
        con.execute(_insert_sql(table, arrow.schema)).fetchall()
    except BaseException:
        try:
            con.unregister("_bsp_batch")
        except duckdb.Error:
            pass
        raise
    con.unregister("_bsp_batch")
    return seq, prev


def append_events(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]], key: bytes | None, seq: int,
                  prev: bytes) -> tuple[int, bytes]:
    """``append_chained`` of ``deal_events`` rows (dicts of ``EVENT_SCHEMA``'s columns)."""
    return append_chained(con, "deal_events", _table(EVENT_SCHEMA, rows), key, seq, prev)


_INSERT = _insert_sql("deals", ARROW_SCHEMA)


@dataclass
class DealRows:
    """One deal as rows: the deals row and its deal_steps / deal_events rows."""

    row: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    dead: dict[str, Any] | None = None      # its dead_letters row (a rejected or failed deal), same transaction


class LedgerError(RuntimeError):
    """The ledger could not open, store or read; the message says which file and why."""


class KeyMismatch(LedgerError):
    """The ledger's audit chain is keyed and this process has no audit key, or another one
    (``check_audit_key``): nothing may be written to it."""


_log = logging.getLogger("bsp.ledger")


def chain_state(con: duckdb.DuckDBPyConnection) -> tuple[int, bytes]:
    """(last ``chain_seq``, its mac, or the zero mac when it has none) of the ledger open on ``con``."""
    # a file of an older schema opened read-only (an archive, a backup) may lack the newer tables
    union = " UNION ALL ".join(f"SELECT chain_seq, mac FROM {t}" for t in CHAINED if _has_table(con, t))
    rows = con.execute(f"SELECT chain_seq, mac FROM ({union}) WHERE chain_seq IS NOT NULL "
                       f"ORDER BY chain_seq DESC LIMIT 1").fetchall()
    anchor = last_anchor(con)
    if anchor is not None and (not rows or int(rows[0][0]) <= anchor[0]):
        rows = [anchor]            # every record up to the anchor was archived (bsp ledger archive)
    if not rows:
        return 0, ZERO_MAC
    row = rows[0]
    return int(row[0]), bytes(row[1]) if row[1] is not None else ZERO_MAC


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchall()[0][0])


def last_anchor(con: duckdb.DuckDBPyConnection) -> tuple[int, bytes | None] | None:
    """(chain_seq, mac) of the last record archived out of this ledger (``audit_anchor``, written by
    ``bsp ledger archive``: the next record chains from that mac), or None when nothing was archived."""
    if not _has_table(con, "audit_anchor"):
        return None
    rows = con.execute("SELECT chain_seq, mac FROM audit_anchor ORDER BY chain_seq DESC LIMIT 1").fetchall()
    if not rows:
        return None
    return int(rows[0][0]), bytes(rows[0][1]) if rows[0][1] is not None else None


def archive_of(con: duckdb.DuckDBPyConnection) -> tuple[int, int, str] | None:
    """(first seq, last seq, ledger it came from) when the file open on ``con`` is an archive written by
    ``bsp ledger archive`` (read-only: no writer may extend its chain), else None."""
    if not _has_table(con, "ledger_archive"):
        return None
    rows = con.execute("SELECT first_seq, last_seq, source FROM ledger_archive LIMIT 1").fetchall()
    return (int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None


NO_KEY_SOURCES = (f"ledger.audit_key in the deployment file, else {ENV_KEY_FILE} (a file holding the base64 key) "
                  f"or {ENV_KEY}")


def check_audit_key(con: duckdb.DuckDBPyConnection, path: Path, audit_key: bytes | None,
                    last_seq: int, last_mac: bytes) -> tuple[bool, bytes | None]:
    """Refuse (``KeyMismatch``) to write to a keyed chain without its key (the new records would be
    unprotected) or with a key it was not sealed with (``bsp audit verify`` would report every record sealed
    with it as tampered): the chain head's mac must verify with ``audit_key`` or another key of its ring
    (``engine.audit.ring_of``).  One row read and one HMAC per key of the ring, whatever the ledger's size.
    ``last_seq`` / ``last_mac``: the chain's last record (``chain_state``).

    Returns ``(starts, old)``: ``starts`` True when the chain has no key yet and ``audit_key`` starts it (the
    caller says so once); ``old`` the older key of the ring the head verifies with when it is not the current
    one: the caller rotates the chain to ``audit_key`` (``rotate_audit_key``).  The messages name the file,
    where the key came from (``engine.audit.key_source``) and the ring's key ids and fingerprints, never a key
    or a mac."""
    if not _has_table(con, "audit_head"):
        return False, None             # a ledger of schema 1, not migrated (read-only callers)
    rows = con.execute("SELECT chain_seq, mac FROM audit_head").fetchall()
    if not rows or rows[0][1] is None:
        # not keyed (yet): a key given now protects what follows, the records before stay one unprotected span
        return audit_key is not None, None
    seq, mac = int(rows[0][0]), bytes(rows[0][1])
    verify = f"`bsp audit verify --ledger {path}`"
    if audit_key is None:
        raise KeyMismatch(
            f"{path}: the audit chain this ledger already holds is keyed (sealed up to seq {seq}) and no audit key "
            f"is given: records written now would be unprotected. Give the key the ledger was written with: "
            f"{NO_KEY_SOURCES} (docs/security.md#the-key); {verify} with it checks the ledger. Nothing was written")
    source = key_source(audit_key)
    if seq != last_seq:
        raise KeyMismatch(
            f"{path}: the ledger's chain head (seq {seq}) does not match its last record (seq {last_seq}): "
            f"records were deleted, or added outside the ledger writer, so the audit key ({source}) cannot be "
            f"checked against the chain. Run {verify} to see what changed, and restore the ledger from a backup "
            f"before writing to it. Nothing was written")
    for key in ring_of(audit_key):
        if hmac.compare_digest(head_mac(key, seq, last_mac), mac):
            return False, (None if key is audit_key or key == audit_key else key)
    ring = ring_of(audit_key)
    which, tried = ((f"the audit key ({source})", f"it ({key_label(audit_key)})") if len(ring) == 1 else
                    (f"the audit keyring ({source})", f"any of its keys ({ring_labels(audit_key)}; the "
                                                                f"current one first)"))
    raise KeyMismatch(
        f"{path}: {which} does not match the audit chain this ledger already holds: its head (seq {seq}) does "
        f"not verify with {tried}, and every record sealed with it would read as tampered. Start with the key "
        f"the ledger was written with (look for a typo in the key file, another environment's key, a key file "
        f"replaced); {verify} with a key says whether the chain verifies with it (if it does not with the right "
        f"key either, the ledger's newest record was altered: verify names it). To change the key, keep the old "
        f"one in the audit keyring and make the new one current: the ledger is rotated to it "
        f"(docs/security.md#rotating-the-audit-key). Nothing was written")


ROTATION_SCHEMA = pa.schema([("at", pa.timestamp("us", tz="UTC")), ("key_id", pa.string()),
                             ("fingerprint", pa.string()), ("previous_key_id", pa.string()),
                             ("previous_fingerprint", pa.string())])


def rotate_audit_key(con: duckdb.DuckDBPyConnection, old: bytes, new: bytes, last_seq: int,
                     last_mac: bytes) -> tuple[int, bytes]:
    """Append one rotation record (``audit_keys``) to the chain ending at ``last_seq`` / ``last_mac``, sealed
    with ``old`` (it chains on the history ``old`` sealed) and naming ``new`` by id and fingerprint, and seal
    the chain head with ``new``: every record after it is sealed with ``new``.  Inside the caller's
    transaction; returns the new chain state."""
    row = pa.table({"at": [datetime.now(timezone.utc)], "key_id": [getattr(new, "key_id", "")],
                    "fingerprint": [fingerprint(new)], "previous_key_id": [getattr(old, "key_id", "") or None],
                    "previous_fingerprint": [fingerprint(old)]}, schema=ROTATION_SCHEMA)
    seq, prev = append_chained(con, "audit_keys", row, old, last_seq, last_mac)
    con.execute("DELETE FROM audit_head").fetchall()
    con.execute("INSERT INTO audit_head VALUES (?, ?)", [seq, head_mac(new, seq, prev)]).fetchall()
    # the archive anchors ``old`` sealed are sealed again with ``new`` (a handful of rows): an anchor left
    # sealed with the old key could be rewritten by whoever holds it (its kept deal keys deleted: a repeat of an
    # archived deal would run again), and verify holds a live ledger's anchors to the key its chain ends with.
    # One that does not verify with ``old`` is left as it is, for verify to report.
    for a in anchors(con):
        if a.seal is None or not hmac.compare_digest(anchor_seal(old, a), a.seal):
            continue
        a.key_fp = fingerprint(new)
        con.execute("UPDATE audit_anchor SET key_fp = ?, seal = ? WHERE chain_seq = ?",
                    [a.key_fp, anchor_seal(new, a), a.chain_seq]).fetchall()
    return seq, prev


_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)


def amount_problem(amount: Decimal) -> str | None:
    """Why ``amount`` does not fit the amount column, or None when it fits."""
    if amount != 0 and amount.adjusted() >= AMOUNT_MAX_INT_DIGITS:
        return (f"{amount} has more than {AMOUNT_MAX_INT_DIGITS} digits before the decimal point "
                f"(the ledger stores DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}))")
    exp = amount.as_tuple().exponent
    assert isinstance(exp, int)
    # trailing zeros beyond the scale are harmless: 1.50000 == 1.5000
    if exp < -AMOUNT_SCALE and amount != amount.quantize(_QUANTUM):
        return (f"{amount} has more than {AMOUNT_SCALE} decimal places; the ledger stores "
                f"DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}) and never rounds money (round it in the route)")
    return None


def rows_to_arrow(rows: Sequence[dict[str, Any]]) -> pa.Table:
    columns = []
    for name, typ in zip(ARROW_SCHEMA.names, ARROW_SCHEMA.types):
        values = [r[name] for r in rows]
        if name == "amount":
            # normalise trailing zeros beyond the scale (validated before), e.g. 1.50000
            values = [v if v is None or v.as_tuple().exponent >= -AMOUNT_SCALE  # type: ignore[operator]
                      else v.quantize(_QUANTUM) for v in values]
        columns.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


# ------------------------------------------------------------------ deal lines (NDJSON)
#
# A deal without steps, events or classified fields travels from the runtime to DuckDB as one line
# of newline-delimited JSON holding exactly the deals columns (``Ledger.deal_line`` builds it):
# amounts as exact decimal strings, datetimes ISO 8601 with their offset, the JSON columns as
# strings.  ``lines_to_arrow`` parses a run of such lines with pyarrow's JSON reader against
# ARROW_SCHEMA (multithreaded, without the GIL) into the table ``rows_to_arrow`` would build.

_LINE_OPTIONS = pa_json.ParseOptions(explicit_schema=ARROW_SCHEMA, unexpected_field_behavior="error")
_LINE_BLOCK = 1 << 20


def lines_to_arrow(lines: bytes) -> pa.Table:
    """The deals table of a run of complete NDJSON deal lines (see ``Ledger.deal_line``)."""
    if not lines:
        return ARROW_SCHEMA.empty_table()
    block = _LINE_BLOCK
    while True:
        try:
            return pa_json.read_json(pa.BufferReader(lines), parse_options=_LINE_OPTIONS,
                                     read_options=pa_json.ReadOptions(block_size=block))
        except pa.ArrowInvalid as exc:
            # a line longer than a block (a very large request): read in one block
            if "straddl" not in str(exc) or block > len(lines):
                raise
            block = len(lines) + 1


_LINE_TIMES = ("received_at", "finished_at")


def line_to_row(line: bytes) -> dict[str, Any]:
    """One deal line back as the deals row ``DealRecord.to_row`` gives (Decimal, datetimes)."""
    row = orjson.loads(line)
    for k in _LINE_TIMES:
        row[k] = datetime.fromisoformat(row[k])
    if row.get("amount") is not None:
        row["amount"] = Decimal(row["amount"])
    return row


def split_lines(lines: bytes) -> list[bytes]:
    return [ln for ln in lines.split(b"\n") if ln]


_STORAGE_TEXTS = ("could not write", "cannot open file", "no space left", "file too large", "disk quota",
                  "failed to commit", "could not fsync", "input/output error")


def storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the ledger's storage cannot be written (a full disk, a file size limit,
    an I/O error), as opposed to a row DuckDB refuses: the same rows may go in once there is room."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and any(t in text for t in _STORAGE_TEXTS)


def _locked_message(path: Path, exc: Exception) -> str:
    text = str(exc)
    problem = open_problem(exc)
    if problem == "damaged":
        return (f"{path}: the ledger file is damaged or truncated: DuckDB cannot read it. Restore it from a "
                f"copy or backup; do not start an engine on it. DuckDB said: {text}")
    if problem == "locked":
        return (f"{path}: the ledger file is locked by another process (a running bsp engine holds "
                f"it; DuckDB allows one writer process per file). To read it, stop that engine or ask it "
                f"with --live, through its admin API (bsp report, reconcile and audit verify then work on a "
                f"snapshot it takes; bsp ledger snapshot --live --out FILE keeps one). DuckDB said: {text}")
    if "different configuration" in text:
        return (f"{path}: this process already has the ledger open for writing (open_ledger is "
                f"running); DuckDB cannot add a read-only connection to it. Read it after the "
                f"ledger is closed, or from a copy. DuckDB said: {text}")
    if "not a valid DuckDB database file" in text:
        return (f"{path}: not a DuckDB file, so not a bsp ledger (a ledger is the DuckDB file the engine "
                f"writes, var/bsp.duckdb unless the deployment file's `ledger:` says otherwise); check the "
                f"path given with --ledger. DuckDB said: {text}")
    return f"{path}: cannot open the ledger: {text}"


def require_bsp_ledger(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """LedgerError unless ``con`` holds bsp's tables: a DuckDB file that is not a ledger gets one clear line
    (not a Catalog Error, nor an empty answer)."""
    if not con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = 'schema_version'").fetchall()[0][0]:
        raise LedgerError(f"{path}: a DuckDB file without bsp's tables (schema_version): is it a bsp ledger? "
                          f"Give the engine's ledger with --ledger")
    refuse_newer(con, path)


def refuse_newer(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """LedgerError when a newer bsp wrote the ledger (its tables may not read as this one expects)."""
    if not con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = 'schema_version'").fetchall()[0][0]:
        return
    found = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    if found is not None and found > SCHEMA_VERSION:
        raise LedgerError(newer_schema(path, found))


def schema_of(path: Path) -> tuple[int, tuple[int, int, int] | None]:
    """The schema version of the ledger file at ``path`` and its journal position, read without writing
    (``bsp version --ledger``); LedgerError when it is not a bsp ledger or cannot be opened (locked, damaged)."""
    from engine.ledger_leftovers import journal_position

    con = connect(path, read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_name = 'schema_version'").fetchall()[0][0]:
            raise LedgerError(f"{path}: a DuckDB file without bsp's tables (schema_version): is it a bsp ledger? "
                              f"Give the engine's ledger with --ledger")
        found = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
        return int(found or 0), journal_position(con)
    finally:
        con.close()


def newer_schema(path: Path, found: int) -> str:
    return (f"{path}: ledger schema version {found} is newer than this bsp understands ({SCHEMA_VERSION}): "
            f"a newer bsp wrote it; use that bsp (or a newer one) for this file, or give another ledger file")


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise LedgerError(_locked_message(path, exc)) from exc


NO_FIELD_CHECK: Any = object()     # LedgerStore.open: a writer that seals no field values (no keyring check)


@dataclass
class ChainTail:
    """The end of the audit chain inside a ``LedgerStore.transaction()``: the last record's seq and mac."""

    seq: int
    prev: bytes


class LedgerStore:
    """The one read-write connection to a ledger file.  Not thread-safe: one caller at a time.

    It also holds the audit chain's state (last ``chain_seq`` and mac), which
    advances only when a transaction commits.
    """

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, audit_key: bytes | None = None,
                 state: tuple[int, bytes] | None = None) -> None:
        self.path = path
        self._con = con
        self.audit_key = audit_key
        self._seq, self._prev = state if state is not None else chain_state(con)
        self._private = False           # holds engine.filemodes' owner-only umask until close
        # the `audit break` this open recorded (records cut while no writer had the file): {seq, at, what}, for
        # `bsp status` and bsp_audit_break_recorded (engine.ledger.audit_state); None when the chain was whole
        self.audit_break: dict[str, Any] | None = None
        # the field keyring whose current key's check value the next transaction records (``sealing``)
        self._unrecorded: Any = None

    @classmethod
    def open(cls, path: str | Path, audit_key: bytes | None = None, keyring: Any = NO_FIELD_CHECK,
             merge: Any = None) -> "LedgerStore":
        """The ledger, made if new.  While it is open the process's umask is owner-only
        (``engine.filemodes``): DuckDB makes the file, and its ``.wal`` after every checkpoint, 0600.

        An existing ledger whose audit chain is keyed is opened only with its key (``check_audit_key``,
        ``KeyMismatch``), checked before anything is written to it (a migration is rolled back): no
        writer seals a record with a wrong key, or none.  ``keyring``: the field keyring a writer that seals
        values opens with (``open_ledger``; None: masks only): each of its keys must open its key id's check
        value (``engine.field_key_checks``, ``KeyMismatch``); the current key's is recorded with the first
        sealed write (``sealing``).  ``merge``: an ``engine.ledger_merge.MergeJob`` (``bsp ledger merge``), run in
        this opening transaction; a cut it explains (the restore it merges back) is named in its record instead
        of an ``audit break``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if not path.exists() and (orphan := audit_cut.orphaned(path)) is not None:
            raise LedgerError(orphan)       # before DuckDB makes the file: nothing is left behind
        filemodes.hold()
        try:
            con = connect(path, read_only=False)
        except BaseException:
            filemodes.release()
            raise
        try:
            ledger_memory.apply(con, path)       # DuckDB's cache bounded (engine/ledger_memory.py)
            con.execute("BEGIN TRANSACTION").fetchall()
            row = None
            if con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_name = 'schema_version'").fetchall()[0][0]:
                row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
            found = row[0] if row else None
            if found is not None and found > SCHEMA_VERSION:
                raise LedgerError(newer_schema(path, found))
            if found is None and (orphan := audit_cut.orphaned(path)) is not None:
                raise LedgerError(orphan)   # a file with no ledger in it (emptied, or made by DuckDB alone)
            for stmt in DDL.split(";"):
                if stmt.strip():
                    con.execute(stmt).fetchall()
            if found is not None and found < 3:
                _migrate_to_3(con)
            if found is not None and found < 4:
                _migrate_to_4(con)
            con.execute(KEYS_INDEX_DDL).fetchall()
            for stmt in JOURNAL_DDL.split(";"):      # 5: journal_state with ``done`` in every ledger
                con.execute(stmt).fetchall()
            arc = archive_of(con)
            if arc is not None:
                raise LedgerError(
                    f"{path}: an archive of the ledger {arc[2]} (its audit chain records {arc[0]}..{arc[1]}, "
                    f"written by bsp ledger archive): it is read-only, nothing may be added to its chain. Read it "
                    f"with --ledger {path} (bsp deals, bsp report, bsp reconcile, bsp audit verify); an engine "
                    f"writes to the live ledger. Nothing was written")
            state = chain_state(con)
            starts, old = check_audit_key(con, path, audit_key, *state) if found is not None else (False, None)
            # records deleted from the chain's end while no writer had it open (engine/audit_cut.py): named by a
            # chained ``audit break`` record, never continued from silently
            cut = audit_cut.problem(con, path, audit_key, *state, head_row=found is not None)
            explained = None
            if cut is not None and merge is not None and merge.explains(audit_cut.read_head(path), *state, con):
                explained, cut = str(cut[0]), None       # the restore the merge brings back: named in its record
            starts = starts and cut is None and explained is None
            rotated = None
            if old is not None:
                assert audit_key is not None
                rotated = state[0] + 1
                state = rotate_audit_key(con, old, audit_key, *state)
            if cut is not None:
                assert audit_key is not None
                state = audit_cut.record_break(con, audit_key, cut[0], cut[1], *state,
                                               head=audit_cut.read_head(path))
                con.execute("DELETE FROM audit_head").fetchall()
                con.execute("INSERT INTO audit_head VALUES (?, ?)", [state[0], head_mac(audit_key, *state)]).fetchall()
            first_keyed = state[0] + 1
            if found is not None and found < 10:
                # schema 10: the status of each letter a retry or purge already changed starts its chained
                # history (``letter_events``), sealed with the audit key when there is one
                moved = letter_events(con, None, audit_key, *state)
                if moved[0] != state[0]:
                    state = moved
                    con.execute("DELETE FROM audit_head").fetchall()
                    con.execute("INSERT INTO audit_head VALUES (?, ?)", [
                        state[0], head_mac(audit_key, *state) if audit_key is not None else None]).fetchall()
            if found is not None and found < 11:
                # schema 11: the sources of each version stored once per distinct text (engine/config_sources.py)
                n_split, n_kept = _migrate_to_11(con)
                if n_split or n_kept:
                    _log.info("%s: %d configuration version(s) split into a manifest and config_files, %d kept "
                              "whole (not rebuilt byte for byte)", path, n_split, n_kept)
            if merge is not None:
                merged = merge.run(con, audit_key, *state, explained)
                merge.close(con)
                if merged[0] != state[0]:
                    state = merged
                    con.execute("DELETE FROM audit_head").fetchall()
                    con.execute("INSERT INTO audit_head VALUES (?, ?)", [
                        state[0], head_mac(audit_key, *state) if audit_key is not None else None]).fetchall()
            key_warnings: list[str] = []
            if keyring is not NO_FIELD_CHECK:
                key_warnings = field_key_checks.check(con, path, keyring)
            if found is None or found < SCHEMA_VERSION:
                con.execute("INSERT INTO schema_version VALUES (?, ?)",
                            [SCHEMA_VERSION, datetime.now(timezone.utc)]).fetchall()
            if found is None and cut is None:
                # a new ledger's chain head exists from its creation (seq 0), so that a ledger whose records
                # and head were all deleted does not pass for a new one (bsp audit verify)
                con.execute("INSERT INTO audit_head VALUES (0, ?)",
                            [head_mac(audit_key, 0, ZERO_MAC) if audit_key is not None else None]).fetchall()
            con.execute("COMMIT").fetchall()
            audit_cut.write_head(path, audit_key, *state)
            if cut is not None:
                _log.error("%s: AUDIT BREAK: %s. Recorded in the audit chain as an `audit break` event at seq %d: "
                           "bsp audit verify reports it from now on. Find out who changed the ledger file while "
                           "the engine was stopped (a backup restored on purpose is recorded so too: the copy lacks what "
                           "was written after it); restore it from a backup if the records must be back "
                           "(docs/security.md#a-cut-while-the-engine-was-stopped)", path, cut[0], state[0])
            if found is not None and found < SCHEMA_VERSION:
                _log.warning("%s: ledger schema %d migrated to %d in %.2f s (one transaction); a bsp of schema %d "
                             "refuses this file from now on: to roll back, restore the copy taken before the "
                             "upgrade (docs/operations.md, \"Upgrading bsp\")", path, found, SCHEMA_VERSION,
                             time.perf_counter() - started, found)
            if starts and first_keyed > 1:
                _log.warning("%s: the ledger's audit chain had no key: the records from seq %d on are sealed "
                             "with the audit key from %s; the records written before it without a key stay "
                             "unprotected (bsp audit verify reports them)", path, first_keyed, key_source(audit_key))
            for warning in key_warnings:
                _log.warning("%s", warning)
            if rotated is not None:
                _log.warning("%s: audit key rotated: %s -> %s at seq %d (the rotation record is sealed with the "
                             "old key, the records after it with the new one; keep both keys in the audit keyring "
                             "for as long as the file is kept: bsp audit verify needs them)",
                             path, key_label(old), key_label(audit_key), rotated)
            store = cls(path, con, audit_key, state)
            store._private = True
            if cut is not None:
                store.audit_break = {"seq": state[0], "at": datetime.now(timezone.utc).isoformat(),
                                     "what": str(cut[0])}

            return store
        except BaseException:
            try:
                con.execute("ROLLBACK").fetchall()
            except duckdb.Error:
                pass
            con.close()
            filemodes.release()
            raise

    @property
    def last_seq(self) -> int:
        return self._seq

    def sealing(self, keyring: Any) -> None:
        """``keyring`` seals a value for this ledger: its current key's check value (``field_key_checks``) is
        recorded with the next transaction, if the ledger has none for that key id.  Called by the writer when
        it seals its first value (``Ledger``), not at open: a start refused after the open (the transaction
        log's keycheck, engine/txn/keycheck.py) must not leave its key recorded as the ledger's.  May be called
        from another thread than the writer's (one attribute set)."""
        self._unrecorded = keyring

    # ------------------------------------------------------------ writes

    def _append(self, table: str, arrow: pa.Table, seq: int, prev: bytes) -> tuple[int, bytes]:
        return append_chained(self._con, table, arrow, self.audit_key, seq, prev)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The one read-write connection, for reads that must see what this process holds locked and for the
        statements of a ``transaction()``.  Not thread-safe: one caller at a time, as the store itself."""
        return self._con

    @contextmanager
    def transaction(self) -> Iterator["ChainTail"]:
        """One transaction of ``connection`` with the audit head update: the ``ChainTail`` starts at the chain's
        end (last seq and mac); a caller that seals records (``engine.audit.seal``) advances it.  On leaving,
        ``audit_head`` is rewritten when the seq moved and the transaction commits, and the store's chain state
        follows; on an exception it is rolled back and the state stays."""
        con = self._con
        tail = ChainTail(self._seq, self._prev)
        con.execute("BEGIN TRANSACTION").fetchall()
        unrecorded = self._unrecorded
        try:
            if unrecorded is not None:
                field_key_checks.record(con, unrecorded)
            yield tail
            if tail.seq != self._seq:
                mac = head_mac(self.audit_key, tail.seq, tail.prev) if self.audit_key is not None else None
                con.execute("DELETE FROM audit_head").fetchall()
                con.execute("INSERT INTO audit_head VALUES (?, ?)", [tail.seq, mac]).fetchall()
            con.execute("COMMIT").fetchall()
        except BaseException:
            for cleanup in (lambda: con.execute("ROLLBACK").fetchall(), lambda: con.unregister("_bsp_batch")):
                try:
                    cleanup()
                except duckdb.Error:
                    pass
            raise
        self._seq, self._prev = tail.seq, tail.prev
        if unrecorded is not None and self._unrecorded is unrecorded:
            self._unrecorded = None

    def _transaction(self, body: Any) -> Any:
        """Run ``body(seq, prev) -> (seq, prev, result)`` in one ``transaction()``."""
        with self.transaction() as tail:
            tail.seq, tail.prev, result = body(tail.seq, tail.prev)
        return result

    def write(self, deals: Sequence[DealRows] = (), dead: Sequence[dict[str, Any]] = (),
              mark: tuple[str, int, int] | tuple[str, int, int, int] | None = None, lines: bytes = b"") -> None:
        """Insert deals (with their steps and events) and dead letters in one transaction.

        ``lines``: more deals, as NDJSON deal lines (``lines_to_arrow``; no steps or events).
        ``mark`` = (journal, segment, offset[, done]): the write-ahead journal position these
        rows reach (engine/journal.py), recorded in the same transaction.  A deal's own dead letter
        (``DealRows.dead``) is inserted with it.
        """
        dead = list(dead) + [d.dead for d in deals if d.dead is not None]
        def body(seq: int, prev: bytes) -> tuple[int, bytes, None]:
            if mark is not None:
                self._set_journal_position(*mark)
            if lines:
                table = lines_to_arrow(lines)
                if deals:
                    table = pa.concat_tables([table, rows_to_arrow([d.row for d in deals])])
                seq, prev = self._append("deals", table, seq, prev)
            elif deals:
                seq, prev = self._append("deals", rows_to_arrow([d.row for d in deals]), seq, prev)
            if deals:
                steps = [s for d in deals for s in d.steps]
                seq, prev = self._append("deal_steps", _table(STEP_SCHEMA, steps), seq, prev)
                events = [e for d in deals for e in d.events]
                seq, prev = self._append("deal_events", _table(EVENT_SCHEMA, events), seq, prev)
                # deal lines have no events, hence no key: only these deals can carry one
                self._insert_keys(key_rows(deals))
            if dead:
                seq, prev = self._append("dead_letters", _table(DEAD_SCHEMA, dead), seq, prev)
            return seq, prev, None
        self._transaction(body)

    def append_stories(self, stories: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[dict[str, Any]],
                                                     str | None]]) -> list[bool | LedgerError]:
        """Trace lines and events for deals already stored (what happened after their rows were written:
        a reversal's attempts, engine/txn/saf.py), ``(deal_id, steps, events, unless)`` each, in one
        transaction that continues the audit chain (group commit: engine/ledger.py).  Each story is numbered
        after its deal's own lines and events; each event's ``from_state`` is the deal's previous state.
        ``unless``: do nothing when the deal already has an event to that state (a repeat after a restart).
        Applied in order, as if one after the other: two stories of one deal are numbered one after the
        other, an ``unless`` sees an event an earlier story of the batch adds.  Returns per story whether it
        wrote, or the ``LedgerError`` of a deal that has no row (that story only: the others are written)."""
        def body(seq: int, prev: bytes) -> tuple[int, bytes, list[bool | LedgerError]]:
            con = self._con
            ids = list(dict.fromkeys(d for d, _, _, _ in stories))
            marks = ", ".join("?" * len(ids))
            have = {r[0] for r in con.execute(f"SELECT DISTINCT deal_id FROM deals WHERE deal_id IN ({marks})",
                                              ids).fetchall()}
            s0 = dict(con.execute(f"SELECT deal_id, max(seq) FROM deal_steps WHERE deal_id IN ({marks}) "
                                  "GROUP BY deal_id", ids).fetchall())
            last = {d: (int(n), st) for d, n, st in con.execute(
                f"SELECT deal_id, max(seq), arg_max(to_state, seq) FROM deal_events WHERE deal_id IN ({marks}) "
                "GROUP BY deal_id", ids).fetchall()}
            unless = sorted({u for _, _, _, u in stories if u is not None})
            reached: set[tuple[str, str]] = set()
            if unless:
                umarks = ", ".join("?" * len(unless))
                reached = {(d, st) for d, st in con.execute(
                    f"SELECT DISTINCT deal_id, to_state FROM deal_events WHERE deal_id IN ({marks}) "
                    f"AND to_state IN ({umarks})", ids + unless).fetchall()}
            out: list[bool | LedgerError] = []
            srows: list[dict[str, Any]] = []
            erows: list[dict[str, Any]] = []
            for deal_id, steps, events, u in stories:
                if deal_id not in have:
                    out.append(LedgerError(f"{self.path}: deal {deal_id} has no row: nothing can be added to it"))
                    continue
                if u is not None and (deal_id, u) in reached:
                    out.append(False)
                    continue
                s = int(s0.get(deal_id) or 0)
                for r in steps:
                    s += 1
                    srows.append({**r, "deal_id": deal_id, "seq": s})
                s0[deal_id] = s
                e, state = last.get(deal_id, (0, None))
                for r in events:
                    e += 1
                    erows.append({**r, "deal_id": deal_id, "seq": e, "from_state": state})
                    state = r["to_state"]
                    reached.add((deal_id, state))
                last[deal_id] = (e, state)
                out.append(True)
            seq, prev = self._append("deal_steps", _table(STEP_SCHEMA, srows), seq, prev)
            seq, prev = self._append("deal_events", _table(EVENT_SCHEMA, erows), seq, prev)
            return seq, prev, out
        if not stories:
            return []
        return self._transaction(body)

    def _insert_keys(self, keys: list[tuple[str, str]]) -> None:
        """deal_keys rows, in the caller's transaction (outside the audit chain: a derived index)."""
        if not keys:
            return
        self._con.register("_bsp_batch", pa.table({"key": [k for k, _ in keys], "deal_id": [d for _, d in keys]}))
        self._con.execute("INSERT INTO deal_keys (key, deal_id) SELECT key, deal_id FROM _bsp_batch").fetchall()
        self._con.unregister("_bsp_batch")    # on failure: after the ROLLBACK (_transaction)

    def known_deal_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` already have a deal row (deal ids carry no unique index since schema 3)."""
        if not ids:
            return set()
        rows = self._con.execute("SELECT DISTINCT deal_id FROM deals WHERE list_contains(?, deal_id)",
                                 [list(ids)]).fetchall()
        return {r[0] for r in rows}

    def answers_in_rows(self, ids: list[str]) -> dict[str, str]:
        """The reply of each of these deals that its row's ``response`` column holds byte for byte (a plain JSON
        reply, nothing classified, stored as sent), as said by an event ``reply_in_row`` (written when the
        deal's answer could not be logged, ``TxnManager._answers_not_logged``): {deal_id: reply text}."""
        if not ids:
            return {}
        rows = self._con.execute(
            "SELECT d.deal_id, d.response FROM deals d WHERE list_contains(?, d.deal_id) AND d.status <> 'duplicate' "
            "AND d.response IS NOT NULL AND EXISTS (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id "
            "AND json_extract_string(e.detail, '$.reply_in_row') = 'true')", [list(ids)]).fetchall()
        return {deal_id: str(text) for deal_id, text in rows}

    def reversals_due(self, ids: list[str]) -> dict[str, dict[str, int]]:
        """ISO 8583 reversals these deals queued (a ``reversal queued`` event naming the call) that are not
        acknowledged on them (no ``reversed CALL`` event) nor cancelled by an operator's resolution (no
        ``reversal cancelled`` event naming the call, engine.txn.safcancel): {deal_id: {call: attempts on
        the deal}}."""
        if not ids:
            return {}
        rows = self._con.execute(
            "SELECT deal_id, to_state, json_extract_string(detail, '$.call'), json_extract_string(detail, '$.joined') "
            "FROM deal_events "
            "WHERE list_contains(?, deal_id) AND (to_state = 'reversal queued' OR to_state LIKE 'reversed %' "
            "OR to_state LIKE 'reversal 04%' OR to_state = 'reversal cancelled') ORDER BY deal_id, seq",
            [list(ids)]).fetchall()
        due: dict[str, dict[str, int]] = {}
        done: set[tuple[str, str]] = set()
        tries: dict[str, int] = {}
        for deal_id, state, call, joined in rows:
            if state == "reversal queued" and call:
                if joined is not None:
                    continue             # joined another deal's queued reversal: nothing of its own queued
                due.setdefault(deal_id, {})[call] = 0
            elif state.startswith("reversed "):
                done.add((deal_id, state[len("reversed "):]))
            elif state == "reversal cancelled":
                if call:
                    done.add((deal_id, call))
            else:
                tries[deal_id] = tries.get(deal_id, 0) + 1
        out: dict[str, dict[str, int]] = {}
        for deal_id, calls in due.items():
            left = {c: tries.get(deal_id, 0) for c in calls if (deal_id, c) not in done}
            if left:
                out[deal_id] = left
        return out

    def joined_to(self, deal_id: str, call: str) -> list[dict[str, Any]]:
        """The deals whose ``store and forward`` advice joined deal ``deal_id``'s queued reversal of call
        ``call`` instead of being queued again (a ``reversal queued`` event naming them in ``joined`` and
        ``joined_call``, engine.txn.manager): ``[{"deal_id", "route", "call"}]``, oldest first.  Their
        reversal is that one: cancelled with it by an operator's resolution (engine.txn.safcancel)."""
        rows = self._con.execute(
            "SELECT e.deal_id, d.route, json_extract_string(e.detail, '$.call') FROM deal_events e "
            "LEFT JOIN deals d ON d.deal_id = e.deal_id WHERE e.to_state = 'reversal queued' "
            "AND json_extract_string(e.detail, '$.joined') = ? AND json_extract_string(e.detail, '$.joined_call') = ? "
            "ORDER BY e.seq", [deal_id, call]).fetchall()
        return [{"deal_id": d, "route": r, "call": c} for d, r, c in rows]

    def joins_to(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``joined_to`` for the queued reversals of all these deals in one query: ``{"DEAL|CALL": [{"deal_id",
        "route", "call"}]}`` (the reversals a previous run left in the log, acknowledged after a restart:
        engine/txn/saf.py ``_joined_story``; one scan of the events, not one per reversal)."""
        if not ids:
            return {}
        rows = self._con.execute(
            "SELECT json_extract_string(e.detail, '$.joined'), json_extract_string(e.detail, '$.joined_call'), "
            "e.deal_id, d.route, json_extract_string(e.detail, '$.call') FROM deal_events e "
            "LEFT JOIN deals d ON d.deal_id = e.deal_id WHERE e.to_state = 'reversal queued' "
            "AND list_contains(?, json_extract_string(e.detail, '$.joined')) ORDER BY e.seq", [list(ids)]).fetchall()
        out: dict[str, list[dict[str, Any]]] = {}
        for joined, joined_call, d, r, c in rows:
            out.setdefault(f"{joined}|{joined_call}", []).append({"deal_id": d, "route": r, "call": c})
        return out

    def resolutions(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The operator's resolution of each of these deals that has one (its newest ``resolved`` event,
        engine.deal_resolve) and the calls whose reversal is already cancelled on it (``reversal
        cancelled``): {deal_id: {"at": ISO 8601, "outcome", "by", ..., "cancelled": [call, ...]}}.  Asked by
        the store-and-forward task for the reversals a previous run left in the log, before it sends any
        (engine.txn.safcancel): a failure path, one query."""
        if not ids:
            return {}
        rows = self._con.execute(
            "SELECT deal_id, to_state, \"at\", detail FROM deal_events WHERE list_contains(?, deal_id) "
            "AND to_state IN ('resolved', 'reversal cancelled') ORDER BY deal_id, seq", [list(ids)]).fetchall()
        out: dict[str, dict[str, Any]] = {}
        cancelled: dict[str, list[str]] = {}
        for deal_id, state, at, detail in rows:
            d = detail if isinstance(detail, dict) else (orjson.loads(detail) if detail else {})
            if state == "resolved":
                when = at.astimezone(timezone.utc).isoformat() if isinstance(at, datetime) else str(at)
                out[deal_id] = {"at": when, **{k: v for k, v in d.items() if k in ("outcome", "by", "via", "note", "stated_by", "os_user")}}
            elif d.get("call"):
                cancelled.setdefault(deal_id, []).append(str(d["call"]))
        for deal_id, r in out.items():
            r["cancelled"] = cancelled.get(deal_id, [])
        return out

    def counted_totals(self, since: str) -> list[tuple[Any, ...]]:
        """``(total, key, currency, day, amount, into)`` of each ``counted`` deal event (``limit`` steps,
        engine/totals.py), and of each ``released`` one (an operator's resolution gave the amount back:
        engine/deal_resolve.py) with its amount negative; a ``rekeyed`` one (a figure moved from an old digest
        of a classified key to its current one: ``Totals.carry``) gives two rows, its amount under the current
        digest and, negative, under the old one with ``into`` the current (``into`` is None otherwise): every
        one of a total without a day, those of day ``since`` (ISO) or later of a daily one; then the totals
        ``bsp ledger archive`` carried forward for the deals it moved out (``archived_totals``, one row per
        bucket).  Read once when an engine with such a route starts."""
        return self._con.execute(
            "WITH e AS (SELECT to_state AS s, json_extract_string(detail, '$.total') AS t, "
            "json_extract_string(detail, '$.key') AS k, json_extract_string(detail, '$.currency') AS c, "
            "coalesce(json_extract_string(detail, '$.day'), '') AS d, json_extract_string(detail, '$.amount') AS a, "
            "json_extract_string(detail, '$.from') AS f "
            "FROM deal_events WHERE to_state IN ('counted', 'released', 'rekeyed')) "
            "SELECT t, k, c, d, CASE WHEN s = 'released' THEN '-' || a ELSE a END, CAST(NULL AS VARCHAR) FROM e "
            "WHERE d = '' OR d >= ? "
            "UNION ALL SELECT t, f, c, d, '-' || a, k FROM e WHERE s = 'rekeyed' AND (d = '' OR d >= ?) "
            "UNION ALL SELECT total, key, currency, day, CAST(amount AS VARCHAR), into_key FROM archived_totals "
            "WHERE day = '' OR day >= ?", [since, since, since]).fetchall()

    def statement_links(self) -> list[tuple[Any, ...]]:
        """``(detail, place)`` of each ``statement link`` event of a committed deal (``continuity`` steps,
        engine/statement_chains.py), then of the links ``bsp ledger archive`` carried forward
        (``archived_links``).  Read once when an engine with such a route starts."""
        return self._con.execute(
            "SELECT e.detail, 'deal ' || e.deal_id FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id "
            "WHERE e.to_state = 'statement link' AND d.status = 'committed' "
            "UNION ALL SELECT detail, 'deal ' || deal_id || ' (archived)' FROM archived_links").fetchall()

    def deals_by_key(self, keys: list[str], digests: Any = None) -> dict[str, dict[str, Any]]:
        """The first non-duplicate deal that carried each of ``keys`` (a deal key, ``route|value``):
        {key: {deal_id, status, response_code, finished_at, fp}}, the earliest by ``finished_at``; ``fp``: the
        fingerprint of its amount, currency and party (``engine.txn.fingerprint``), read from the same rows (None
        for a deal archived before schema 9).  The transaction manager asks only for keys its key store dropped
        after the retention, which are mostly new: one look-up in deal_keys' index (no scan of deal_events) and
        one in archived_deals' (the keys of deals moved out by ``bsp ledger archive``, which count as the
        earliest), and the deals rows are read only for the keys found.  ``digests``: how the party's digest
        is made (keyed with the engine's field keyring, ``engine.txn.fingerprint.Digests``; unkeyed if None)."""
        from engine.txn.fingerprint import UNKEYED, of

        if not keys:
            return {}
        # the deals archived out of this ledger (bsp ledger archive) keep their keys here: a repeat of one is
        # refused as a repeat, never run again; they are older than any deal still in the ledger
        rows = self._con.execute(
            "SELECT key, deal_id, status, response_code, finished_at, amount, currency, party FROM archived_deals "
            "WHERE list_contains(?, key) ORDER BY finished_at", [list(keys)]).fetchall()
        found = self._con.execute("SELECT key, deal_id FROM deal_keys WHERE list_contains(?, key)",
                                  [list(keys)]).fetchall()
        if found:
            live = self._con.execute(
                "SELECT deal_id, status, response_code, finished_at, amount, currency, party FROM deals "
                "WHERE list_contains(?, deal_id) AND status <> 'duplicate' ORDER BY finished_at",
                [sorted({d for _, d in found})]).fetchall()
            by_deal: dict[str, list[str]] = {}
            for k, deal_id in found:
                by_deal.setdefault(deal_id, []).append(k)
            rows += [(k, deal_id, *rest) for deal_id, *rest in live for k in by_deal.get(deal_id, ())]
        out: dict[str, dict[str, Any]] = {}
        for k, deal_id, status, code, finished, amount, currency, party in rows:
            if k not in out:
                out[k] = {"deal_id": deal_id, "status": status, "response_code": code, "finished_at": finished,
                          "fp": of(amount, currency, party, None, digests or UNKEYED)}
        return out

    def journal_position(self, journal: str) -> tuple[int, int, int] | None:
        """(segment, offset, done) of ``journal`` loaded so far (``done``: deals past the offset loaded
        too, see JOURNAL_DDL), or None.  ``open`` made the table."""
        rows = self._con.execute("SELECT segment, \"offset\", coalesce(done, 0) FROM journal_state "
                                 "WHERE journal = ?", [journal]).fetchall()
        return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def _set_journal_position(self, journal: str, segment: int, offset: int, done: int = 0) -> None:
        con = self._con
        now = datetime.now(timezone.utc)
        if con.execute("SELECT 1 FROM journal_state WHERE journal = ?", [journal]).fetchall():
            con.execute("UPDATE journal_state SET segment = ?, \"offset\" = ?, done = ?, loaded_at = ? "
                        "WHERE journal = ?", [segment, offset, done, now, journal]).fetchall()
        else:
            con.execute("INSERT INTO journal_state (journal, segment, \"offset\", done, loaded_at) "
                        "VALUES (?, ?, ?, ?, ?)", [journal, segment, offset, done, now]).fetchall()

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert deal rows (no steps or events) in one transaction."""
        self.write([DealRows(r) for r in rows])

    def insert_each(self, rows: Sequence[dict[str, Any]]) -> list[Exception | None]:
        """Insert rows one transaction each (after a batch failed), to find the culprit."""
        out: list[Exception | None] = []
        for row in rows:
            try:
                self.insert([row])
                out.append(None)
            except (duckdb.Error, pa.ArrowException) as exc:
                out.append(exc)
        return out

    def record_config(self, version: str, sources: Any, loaded_at: datetime) -> bool:
        """Store a configuration version once (the first load is kept).  True when new.

        ``sources``: ``{path: text}`` (or its JSON text): the row holds the manifest ``{path: sha256}``, each text
        not stored yet goes into ``config_files`` (engine/config_sources.py); any other value is kept whole in
        ``sources``, as before schema 11."""
        if isinstance(sources, str):      # JSON text: split only when it is what bsp writes (rebuilt as is)
            try:
                parsed = orjson.loads(sources)
            except orjson.JSONDecodeError:
                parsed = None
            parts = split(parsed) if parsed is not None and orjson.dumps(parsed).decode() == sources else None
        else:
            parts = split(sources)
        if parts is None and not isinstance(sources, (str, type(None))):
            from engine.deal import to_json

            sources = to_json(sources)

        def body(seq: int, prev: bytes) -> tuple[int, bytes, bool]:
            if self._con.execute("SELECT 1 FROM config_versions WHERE version = ?", [version]).fetchall():
                return seq, prev, False
            if parts is None:
                row = {"version": version, "loaded_at": loaded_at, "sources": sources, "manifest": None}
            else:
                manifest, texts = parts
                _store_texts(self._con, texts)
                row = {"version": version, "loaded_at": loaded_at, "sources": None, "manifest": manifest}
            seq, prev = self._append("config_versions", _table(CONFIG_SCHEMA, [row]), seq, prev)
            return seq, prev, True
        return bool(self._transaction(body))

    def update_dead_letters(self, ids: Sequence[str], *, status: str, retried_at: datetime | None = None,
                            retry_outcome: str | None = None, drop_raw: bool = False,
                            actor: Mapping[str, Any] | None = None) -> int:
        """Change the mutable columns of dead letters (status, retry outcome; raw on purge); ``actor``: who
        did it, recorded in each letter's event (``letter_events``).

        These columns are outside the mac (``raw_sha256``, covered, keeps a purged message's fingerprint); each
        change appends a chained ``LETTER_STATE`` event per letter in the same transaction (``letter_events``),
        which ``bsp audit verify`` compares with the row.  Returns how many rows changed.
        """
        if not ids:
            return 0
        sets = ["status = ?"]
        params: list[Any] = [status]
        if retried_at is not None:
            sets += ["retried_at = ?", "retry_outcome = ?"]
            params += [retried_at, retry_outcome]
        if drop_raw:
            sets.append("raw = NULL")
        marks = ", ".join("?" for _ in ids)
        with self.transaction() as tail:
            res = self._con.execute(f"UPDATE dead_letters SET {', '.join(sets)} WHERE id IN ({marks})",
                                    [*params, *ids]).fetchall()
            tail.seq, tail.prev = letter_events(self._con, list(ids), self.audit_key, tail.seq, tail.prev,
                                                actor=actor)
        return int(res[0][0]) if res else 0

    def end_retry(self, letter_id: str, *, status: str, retried_at: datetime, outcome: str,
                  deal_id: str | None) -> str | None:
        """Record a retry's outcome on its letter, in one transaction with its ``LETTER_STATE`` event: ``status``,
        unless the retry's deal ``deal_id`` has a dead letter of its own (it was refused again, or the ledger
        refused its row): the message waits there now, so this letter becomes ``retried``, its outcome naming
        that letter (``engine.deadletter.waits_again``), and one letter of the message waits.  Returns the id
        of that letter, or None."""
        from engine.deadletter import waits_again

        with self.transaction() as tail:
            linked = None
            if deal_id is not None and deal_id != letter_id and self._con.execute(
                    "SELECT 1 FROM dead_letters WHERE id = ?", [deal_id]).fetchall():
                linked, status, outcome = deal_id, "retried", waits_again(outcome, deal_id)
            self._con.execute("UPDATE dead_letters SET status = ?, retried_at = ?, retry_outcome = ? WHERE id = ?",
                              [status, retried_at, outcome, letter_id]).fetchall()
            tail.seq, tail.prev = letter_events(self._con, [letter_id], self.audit_key, tail.seq, tail.prev)
        return linked

    def claim_dead_letter(self, letter_id: str, *, at: datetime, note: str, again: bool = False,
                          deal_id: str | None = None) -> tuple[bool, dict[str, Any] | None]:
        """Mark one dead letter ``retrying`` for a retry about to run, if no retry has it: a compare-and-set
        in one UPDATE on the writer's connection, so of two retries of one letter started together (two
        ``bsp dead retry``, two ``POST /dead-letters/{id}/retry``) one claims it and the other is told.
        A letter ``new`` is claimed; one ``retried`` or ``retrying`` only with ``again``; ``purged`` never.
        Returns ``(claimed, row)``: the row's status, retried_at and retry_outcome as they were before the
        claim (``status`` the one to put back when the retry does not go through); row None: no such letter.
        ``deal_id``: the id the retry's deal will run under; the claim's note names it and the status before
        (``engine.deadletter.retry_mark``), so a start after a process stopped midway can settle the letter
        (``engine.txn.retry_settle``)."""
        found = self._con.execute("SELECT status, retried_at, retry_outcome FROM dead_letters WHERE id = ?",
                                  [letter_id]).fetchall()
        if not found:
            return False, None
        row = dict(zip(("status", "retried_at", "retry_outcome"), found[0]))
        allowed = ("new", "retried", "retrying") if again else ("new",)
        from engine.deadletter import successor
        nxt = successor(row["retry_outcome"]) if row["status"] == "retried" else None
        if nxt is not None:       # a failed retry left the message in another letter: what it is now
            st = self._con.execute("SELECT status FROM dead_letters WHERE id = ?", [nxt]).fetchall()
            row["successor_status"] = st[0][0] if st else None
            if row["successor_status"] in ("new", "retrying"):
                allowed = ("new",)      # it waits there: never run from here too, even with again
        if row["status"] not in allowed:
            return False, row
        if deal_id is not None:
            from engine.deadletter import retry_mark
            note = f"{note} {retry_mark(deal_id, row['status'])}"
        with self.transaction() as tail:
            res = self._con.execute("UPDATE dead_letters SET status = 'retrying', retried_at = ?, retry_outcome = ? "
                                    "WHERE id = ? AND status = ?", [at, note, letter_id, row["status"]]).fetchall()
            claimed = bool(res and int(res[0][0]))
            if claimed:       # chained with the claim (``letter_events``)
                tail.seq, tail.prev = letter_events(self._con, [letter_id], self.audit_key, tail.seq, tail.prev)
        return claimed, row

    def retrying_dead_letters(self, channel: str) -> list[dict[str, Any]]:
        """The dead letters of ``channel`` a retry has claimed (status ``retrying``): id, retried_at, retry_outcome."""
        found = self._con.execute("SELECT id, retried_at, retry_outcome FROM dead_letters WHERE status = 'retrying' "
                                  "AND channel = ? ORDER BY id", [channel]).fetchall()
        return [dict(zip(("id", "retried_at", "retry_outcome"), r)) for r in found]

    def deal_ends(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The status and reason of each of these deals that has a row: {deal_id: {"status", "reason"}}; a dead
        letter whose id is one of them (a deal whose row the ledger refused, kind ``unrecorded``) counts too,
        as {"status": None, "reason": its reason}."""
        if not ids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for did, status, reason in self._con.execute(
                "SELECT id, NULL, reason FROM dead_letters WHERE list_contains(?, id) UNION ALL "
                "SELECT deal_id, status, reason FROM deals WHERE list_contains(?, deal_id)",
                [list(ids), list(ids)]).fetchall():
            if status is not None or did not in out:
                out[did] = {"status": status, "reason": reason}
        return out

    def close(self) -> None:
        try:
            self._con.execute("CHECKPOINT").fetchall()
        except duckdb.Error as exc:
            if not storage_failure(exc):
                raise
            raise LedgerError(f"{self.path}: not checkpointed on close: {exc}; what was committed is in its "
                              f"write-ahead log ({self.path.name}.wal), which the next start replays: keep that "
                              f"file with the ledger, and {storage_fix(exc)} before starting again") from None
        finally:
            self._con.close()
            # where the chain ends now, kept outside the file: the next open compares (engine/audit_cut.py)
            audit_cut.write_head(self.path, self.audit_key, self._seq, self._prev)
            if self._private:
                self._private = False
                filemodes.release()


def _store_texts(con: duckdb.DuckDBPyConnection, texts: dict[str, str]) -> None:
    """Insert the texts (``{sha256: text}``) ``config_files`` does not hold yet."""
    if not texts:
        return
    have = set(texts_of(con, list(texts), "sha256"))
    new = [h for h in texts if h not in have]
    if not new:
        return
    con.register("_bsp_files", pa.table({"sha256": pa.array(new, pa.string()),
                                         "text": pa.array([texts[h] for h in new], pa.string())}))
    try:
        con.execute("INSERT INTO config_files (sha256, text) SELECT sha256, text FROM _bsp_files").fetchall()
    finally:
        con.unregister("_bsp_files")


def _migrate_to_11(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Split the sources of the rows written before schema 11 into a manifest and ``config_files``, one row at a
    time; only a row whose whole JSON the manifest rebuilds byte for byte (``rebuild_json``): its mac covers that
    text, which ``bsp audit verify`` rebuilds (``sealed_whole``).  Any other row keeps its ``sources``.
    Returns (rows split, rows kept whole)."""
    split_rows = kept = 0
    versions = [r[0] for r in con.execute("SELECT version FROM config_versions WHERE sources IS NOT NULL "
                                          "AND manifest IS NULL ORDER BY version").fetchall()]
    for version in versions:
        (text,) = con.execute("SELECT sources FROM config_versions WHERE version = ?", [version]).fetchall()[0]
        try:
            parts = split(orjson.loads(text))
        except orjson.JSONDecodeError:
            parts = None
        if parts is None or rebuild_json(orjson.loads(parts[0]), parts[1]) != text:
            kept += 1
            continue
        _store_texts(con, parts[1])
        con.execute("UPDATE config_versions SET sources = NULL, manifest = ?, sealed_whole = true WHERE version = ?",
                    [parts[0], version]).fetchall()
        split_rows += 1
    return split_rows, kept


def _table(schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_arrays([pa.array([r[n] for r in rows], type=t) for n, t in zip(schema.names, schema.types)],
                                schema=schema)
