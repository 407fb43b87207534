"""Tamper evidence for the ledger: an HMAC chain over every record, and its verification.

Every row of a chained table carries ``chain_seq`` (a strictly increasing
position, assigned by the single ledger writer) and
``mac = HMAC-SHA256(key, table || canonical(row) || mac of the previous record)``.
``canonical`` is built from the row's Arrow columns (the same function on the
write side and when verifying), each field as ``<byte length>:<text>`` or ``~``
for NULL, joined with ``|``; ``chain_seq`` is one of the fields.

The key lives outside the database: ``BSP_AUDIT_KEY`` (base64, >= 32 bytes) or
``BSP_AUDIT_KEY_FILE`` (a file holding that base64 text).  Either may hold an audit *keyring* instead
(``audit_key_from_text``: ``{"current": "a2", "keys": {...}}`` or ``a2:<b64>,a1:<b64>``); keys are named by
id and ``fingerprint`` (never the key).  A writer opening a chain whose head verifies with an older key of
the ring rotates it (``engine.ledger_store.rotate_audit_key``): one ``audit_keys`` record sealed with the
old key names the new key, and everything after it is sealed with the new one.  ``verify`` finds the ring's
key of the first keyed record, follows the rotation records (``_Keys``), and reports records sealed with a
key the ring lacks as ``MissingKey`` (cannot verify, not a break).  Without a key the
writer still assigns ``chain_seq`` but leaves ``mac`` NULL, and ``verify``
says the ledger is not protected.

``audit_head`` holds one row: the last ``chain_seq`` and
``HMAC(key, "head" || seq || last mac)``, updated in every write
transaction, so deleting the newest records is detected too; the head each writer keeps outside the file
(``<ledger>.audit-head``, engine/audit_cut.py) catches a head row deleted or put back from an earlier copy with
them, and a writer open that finds such a cut records a chained ``audit break`` that ``verify`` reports.

A run of records with a NULL ``mac`` (written while the engine had no key: the
key was configured later; a keyed chain is not opened for writing without its key,
nor with another one: ``engine.ledger_store.check_audit_key``) is not a break: ``verify``
reports it as an ``Unprotected`` span (first and last seq, count, times), and the
first keyed record after it must chain from the zero mac, as the writer does.  A
mac removed by hand from a keyed chain still breaks: the record after it (or the
chain head) no longer verifies.

A ledger some of whose oldest records were moved to an archive file (``bsp ledger archive``,
engine/ledger_archive.py) keeps an *anchor* per archive (``audit_anchor``: the seq and mac of the last
record archived, the archive's file name and sha256, and a digest of the deal keys kept for it in
``archived_deals``, sealed with ``anchor_seal``): ``verify`` starts from the newest anchor (the next record
chains from its mac) and checks each anchor's seal and keys (``_check_anchors``).  ``continuity`` checks an
archive file against the anchor that names it.

``deal_keys`` (the deal key index, ledger schema 4) is not chained: it is derived from the chained
``deal_events`` and ``deals``, and ``verify`` recomputes it from them (``_check_keys``).
"""
from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import heapq
import hmac
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from operator import itemgetter
from typing import Any, Callable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from engine.defaults import AUDIT_ENV_KEY, AUDIT_ENV_KEY_FILE

ENV_KEY = AUDIT_ENV_KEY
ENV_KEY_FILE = AUDIT_ENV_KEY_FILE
ZERO_MAC = bytes(32)
MIN_KEY_BYTES = 32

# Chained tables: name -> (record id expression, content columns in canonical order).
CHAINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "deals": ("deal_id", (
        "chain_seq", "deal_id", "deal_type", "route", "config_version", "channel", "reference",
        "amount", "currency", "party", "status", "response_code", "reason",
        "received_at", "finished_at", "duration_ms", "request", "response")),
    "deal_steps": ("deal_id || ' step ' || seq", (
        "chain_seq", "deal_id", "seq", "step", "kind", "vote", "outcome", "started_at",
        "duration_ms", "detail")),
    "deal_events": ("deal_id || ' event ' || seq", (
        "chain_seq", "deal_id", "seq", "at", "from_state", "to_state", "detail")),
    "dead_letters": ("id", (
        "chain_seq", "id", "at", "route", "channel", "reason", "error_kind", "error_code",
        "raw_sha256", "config_version")),
    # ``manifest`` (ledger schema 11, engine/config_sources.py) is an OPTIONAL column: see ``canonical``
    "config_versions": ("version", ("chain_seq", "version", "loaded_at", "sources", "manifest")),
    # a rotation of the audit key (ledger schema 7): sealed with the old key, the records after it with the new
    "audit_keys": ("'rotation to ' || key_id", (
        "chain_seq", "at", "key_id", "fingerprint", "previous_key_id", "previous_fingerprint")),
}

# The time column of each chained table (when a span of unprotected records was written).
TIME_COLUMN = {"deals": "received_at", "deal_steps": "started_at", "deal_events": "at", "dead_letters": "at",
               "config_versions": "loaded_at", "audit_keys": "at"}

__all__ = ["Anchor", "anchor_seal", "continuity", "keys_digest", "AuditError", "AuditKey", "key_source", "load_audit_key", "audit_key_from_text", "canonical", "seal",
           "head_mac", "verify", "VerifyReport", "Break", "Unprotected", "CHAINED", "ENV_KEY", "ENV_KEY_FILE",
           "ZERO_MAC", "MissingKey", "Rotation", "fingerprint", "ring_of", "key_label", "ring_labels"]


class AuditError(ValueError):
    """An unusable audit key (the message names the variable or file)."""


FINGERPRINT_LABEL = b"bsp audit key fingerprint"


def fingerprint(key: bytes) -> str:
    """A key's public name: the first 16 hex digits of HMAC-SHA256(key, "bsp audit key fingerprint").  Logs,
    messages and rotation records name a key by its id and this, never by the key."""
    return hmac.digest(key, FINGERPRINT_LABEL, "sha256").hex()[:16]


class AuditKey(bytes):
    """An audit key that knows where it came from (``source``: ``BSP_AUDIT_KEY``, ``BSP_AUDIT_KEY_FILE=PATH``,
    ``platform.yaml:4:14: ledger.audit_key (PATH)``), so that a ledger refusing it can say which key to fix.
    Its repr and str name the source, never the key.

    ``key_id`` (empty for a single key given without one) and ``ring``: the audit keyring it belongs to, the
    current key first (the one writers seal with); the others are older keys, kept to verify the records they
    sealed and to rotate a ledger from them (docs/security.md, "Rotating the audit key")."""

    source: str
    key_id: str
    ring: tuple["AuditKey", ...]

    def __new__(cls, key: bytes, source: str = "", key_id: str = "") -> "AuditKey":
        obj = super().__new__(cls, key)
        obj.source = source
        obj.key_id = key_id
        obj.ring = (obj,)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ring_key, ([(bytes(k), k.source, k.key_id) for k in self.ring], self.ring.index(self)))

    def __repr__(self) -> str:
        named = f"{self.key_id} (fp {self.fingerprint}) " if self.key_id else ""
        return f"<audit key {named}from {self.source or 'the caller'}>"

    __str__ = __repr__

    @property
    def fingerprint(self) -> str:
        return fingerprint(self)

    @property
    def label(self) -> str:
        """``a2 (fp 1f0c...)``: how messages name the key."""
        return f"{self.key_id} (fp {self.fingerprint})" if self.key_id else f"fp {self.fingerprint}"


def _ring_key(entries: list[tuple[bytes, str, str]], index: int) -> AuditKey:
    ring = tuple(AuditKey(k, s, i) for k, s, i in entries)
    for k in ring:
        k.ring = ring
    return ring[index]


def ring_of(key: bytes | None) -> tuple[bytes, ...]:
    """The keyring ``key`` belongs to, the current key first: ``(key,)`` for a key without one."""
    if key is None:
        return ()
    return getattr(key, "ring", None) or (key,)


def key_label(key: bytes) -> str:
    """How messages name ``key``: its id and fingerprint (never the key)."""
    return getattr(key, "label", None) or f"fp {fingerprint(key)}"


def ring_labels(key: bytes | None) -> str:
    """The ring's keys for a message: ``a2 (fp ...), a1 (fp ...)`` (the current one first)."""
    return ", ".join(key_label(k) for k in ring_of(key))


def key_source(key: bytes | None) -> str:
    """Where ``key`` came from, for messages (never the key itself)."""
    source = getattr(key, "source", "")
    return source or "given by the caller"


def audit_key_from_text(text: str, where: str, source: str | None = None) -> AuditKey:
    """The current key of the audit keyring written as ``text``; ``where`` names its source in errors (never
    the key) and is kept as its ``source``.  ``text`` is one base64 key (a ring of one key, without an id),
    a JSON document ``{"current": "a2", "keys": {"a1": "<base64>", "a2": "<base64>"}}``, or a list
    ``a2:<base64>,a1:<base64>`` (the first entry is current): the shapes of the field keyring
    (engine/fieldcrypt.py).  Base64 holds neither ``:`` nor ``,`` nor ``{``, so the shapes do not overlap."""
    body = text.strip()
    if body.startswith("{"):
        entries, current = _ring_json(body, where)
    elif ":" in body or "," in body:
        entries, current = _ring_list(body, where)
    else:
        return AuditKey(_decode_key(text, where), where if source is None else source)
    ring: list[AuditKey] = []
    seen: dict[bytes, str] = {}
    for kid, b64 in entries:
        if not _KEY_ID.fullmatch(kid):
            raise AuditError(f"{where}: audit key id {kid!r}: use letters, digits, '.', '_' or '-' "
                             f"(1 to 64 characters), e.g. a2 or 2026-q1")
        key = _decode_key(b64, f"{where}: key {kid}")
        if key in seen:
            raise AuditError(f"{where}: keys {seen[key]} and {kid} are the same key: give each id its own key")
        seen[key] = kid
        ring.append(AuditKey(key, where if source is None else source, kid))
    ring.sort(key=lambda k: k.key_id != current)          # the current key first, the others in their order
    members = tuple(ring)
    for k in members:
        k.ring = members
    return members[0]


_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _ring_json(body: str, where: str) -> tuple[list[tuple[str, str]], str]:
    shape = '{"current": "a2", "keys": {"a1": "<base64>", "a2": "<base64>"}}'
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise AuditError(f"{where}: the audit keyring is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}); expected {shape}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"] \
            or not isinstance(doc.get("current"), str):
        raise AuditError(f"{where}: expected an audit keyring {shape}")
    keys = doc["keys"]
    if doc["current"] not in keys:
        raise AuditError(f"{where}: the current audit key {doc['current']!r} is not among the keys "
                         f"({', '.join(map(str, keys))}): add it under \"keys\" or name one of them")
    if not all(isinstance(v, str) for v in keys.values()):
        raise AuditError(f"{where}: each audit key must be a base64 string; expected {shape}")
    return [(str(k), v) for k, v in keys.items()], doc["current"]


def _ring_list(body: str, where: str) -> tuple[list[tuple[str, str]], str]:
    entries = []
    for n, part in enumerate(body.split(","), 1):
        kid, sep, b64 = part.strip().partition(":")
        if not sep or not kid.strip():
            raise AuditError(f"{where}: entry {n} of the audit keyring is not <id>:<base64> (expected "
                             f"a2:<base64>,a1:<base64>, the current key first)")
        entries.append((kid.strip(), b64))
    ids = [k for k, _ in entries]
    dup = next((k for k in ids if ids.count(k) > 1), None)
    if dup is not None:
        raise AuditError(f"{where}: the audit key id {dup} appears twice")
    return entries, entries[0][0]


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuditError(f"{where}: the audit key is not base64 (make one with: "
                         f"python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\")") from None
    if len(key) < MIN_KEY_BYTES:
        raise AuditError(f"{where}: the audit key is {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes")
    return key


def load_audit_key(environ: Mapping[str, str] | None = None) -> AuditKey | None:
    """The current audit key (with its ring: ``audit_key_from_text``) from ``BSP_AUDIT_KEY_FILE`` or
    ``BSP_AUDIT_KEY``; None when neither is set."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_KEY_FILE)
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise AuditError(f"{ENV_KEY_FILE}={path}: cannot read the audit key file: {exc.strerror}") from None
        return audit_key_from_text(text, path, f"{ENV_KEY_FILE}={path}")
    text = env.get(ENV_KEY)
    return audit_key_from_text(text, ENV_KEY) if text else None


# ------------------------------------------------------------------ canonical form

# Columns added to a chained table after rows were sealed without them: a NULL one adds nothing to the canonical
# form (the rows sealed before it verify as they did), a value adds ``|len:text``; a table without the column (an
# older file) is read as all NULL.  config_versions.manifest (schema 11): a row holds either its whole ``sources``
# (field 4) or a ``manifest`` (field 5, ``sources`` NULL), so the two forms never canonicalise alike.
OPTIONAL_COLUMNS = frozenset({"manifest"})


def canonical(table: pa.Table, columns: Sequence[str]) -> list[bytes]:
    """One canonical byte string per row: ``len:text`` (``~`` for NULL) per column, joined by ``|``; an
    ``OPTIONAL_COLUMNS`` column only when not NULL."""
    if table.num_rows == 0:
        return []
    fields = []
    optional = []
    for name in columns:
        if name in OPTIONAL_COLUMNS and name not in table.column_names:
            continue
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
        text = pc.cast(col, pa.string())
        n = pc.cast(pc.binary_length(text), pa.string())
        field = pc.binary_join_element_wise(n, text, ":")
        if name in OPTIONAL_COLUMNS:
            optional.append(pc.fill_null(pc.binary_join_element_wise("", field, "|"), ""))
        else:
            fields.append(pc.fill_null(field, "~"))
    joined = pc.binary_join_element_wise(*fields, "|")
    if optional:
        joined = pc.binary_join_element_wise(joined, *optional, "")
    return pc.cast(joined, pa.binary()).to_pylist()


def seal(table_name: str, table: pa.Table, columns: Sequence[str], key: bytes | None,
         last_seq: int, prev: bytes) -> tuple[pa.Table, int, bytes]:
    """``table`` with ``chain_seq`` and ``mac`` columns appended; returns it and the new chain state.

    ``table`` must not have ``chain_seq`` yet; it is numbered from ``last_seq + 1``.
    """
    n = table.num_rows
    seqs = pa.array(range(last_seq + 1, last_seq + 1 + n), pa.int64())
    table = table.append_column("chain_seq", seqs)
    if key is None:
        return table.append_column("mac", pa.nulls(n, pa.binary())), last_seq + n, ZERO_MAC
    tag = table_name.encode() + b"\x00"
    macs = []
    digest = hmac.digest
    for canon in canonical(table, columns):
        prev = digest(key, tag + canon + prev, "sha256")
        macs.append(prev)
    return table.append_column("mac", pa.array(macs, pa.binary())), last_seq + n, prev


def head_mac(key: bytes, seq: int, last_mac: bytes) -> bytes:
    return hmac.digest(key, b"head\x00" + str(seq).encode() + b"\x00" + last_mac, "sha256")


@dataclass
class Anchor:
    """Where the records an archive took end (``audit_anchor``): records ``first_seq``..``chain_seq`` are in
    the file ``archive`` (its sha256); ``keys`` / ``keys_sha256``: the archived_deals rows kept for it."""

    chain_seq: int
    mac: bytes | None
    first_seq: int
    archive: str
    sha256: str
    archived_at: Any
    keys: int
    keys_sha256: str
    seal: bytes | None
    key_fp: str | None = None     # the fingerprint of the audit key that sealed it (ledger schema 7; None before)
    # the digest of the ``limit`` totals and statement links carried forward for it (``carried_digest``), sealed
    # with it; None in an anchor made before 2026-11-27 (those rows not covered)
    carried_sha256: str | None = None

    def __str__(self) -> str:
        return (f"records {self.first_seq}..{self.chain_seq} archived to {self.archive} "
                f"(sha256 {self.sha256[:16]}...)")


ANCHOR_COLUMNS = ("chain_seq, mac, first_seq, archive, sha256, archived_at, keys, keys_sha256, seal, key_fp, "
                  "carried_sha256")


def anchor_seal(key: bytes, a: Anchor) -> bytes:
    """The anchor's own mac: its seq and mac, the archive's name and sha256, the digest of its keys, and the
    fingerprint of the key that seals it (``key_fp``, when set)."""
    parts = [str(a.chain_seq), (a.mac or b"").hex(), str(a.first_seq), a.archive, a.sha256, str(a.keys),
             a.keys_sha256]
    if a.key_fp:             # schema 7 on: the sealing key's fingerprint is sealed too
        parts.append(a.key_fp)
    if a.carried_sha256:     # the totals and links carried forward for it (``carried_digest``)
        parts.append("carried:" + a.carried_sha256)
    text = "\x00".join(parts)
    return hmac.digest(key, b"anchor\x00" + text.encode(), "sha256")


def anchors(con: Any) -> list[Anchor]:
    """The ledger's anchors, oldest first (none when nothing was archived, or a ledger before schema 6)."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_anchor'"
                       ).fetchall()[0][0]:
        return []
    out = []
    columns = ANCHOR_COLUMNS
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'audit_anchor'").fetchall()}
    for optional in ("key_fp", "carried_sha256"):        # a file of schema 6, or made before, read-only
        if optional not in have:
            columns = columns.replace(optional, "NULL")
    for r in con.execute(f"SELECT {columns} FROM audit_anchor ORDER BY chain_seq").fetchall():
        out.append(Anchor(int(r[0]), bytes(r[1]) if r[1] is not None else None, int(r[2]), r[3], r[4], r[5],
                          int(r[6]), r[7], bytes(r[8]) if r[8] is not None else None, r[9], r[10]))
    return out


# The digest of what ``bsp ledger archive`` carried forward into the live ledger for one anchor: its
# ``archived_totals`` rows (the ``limit`` totals the moved deals count in) and its ``archived_links`` rows (the
# last statement of each ``continuity`` chain), each field length-prefixed (``~`` for NULL), the amounts as their
# DECIMAL(38,4) text; the same SQL when the archive seals it and when verify checks it.
CARRIED_DIGEST = """
SELECT sha256(coalesce(string_agg(line, chr(10) ORDER BY line), '')) FROM (
  SELECT 'total|' || concat_ws('|', {f_total}, {f_key}, {f_cur}, {f_day}, {f_amount}, {f_into}) AS line
  FROM archived_totals WHERE anchor_seq = $1
  UNION ALL SELECT 'link|' || concat_ws('|', {f_deal}, {f_detail}) FROM archived_links WHERE anchor_seq = $1)
""".format(**{f"f_{n}": f"coalesce(length({c}) || ':' || {c}, '~')" for n, c in (
    ("total", "total"), ("key", "key"), ("cur", "currency"), ("day", "day"),
    ("amount", "CAST(amount AS VARCHAR)"), ("into", "into_key"), ("deal", "deal_id"), ("detail", "detail"))})


def carried_digest(con: Any, anchor_seq: int) -> str:
    """``CARRIED_DIGEST`` of the rows carried forward for the anchor at ``anchor_seq``."""
    return str(con.execute(CARRIED_DIGEST, [anchor_seq]).fetchall()[0][0])


# The digest of a set of (key, deal_id, status, response_code, finished_at) rows, as ``bsp ledger archive``
# computes it when it keeps the archived deals' keys and ``verify`` when it checks them: the same SQL on both
# sides.  ``{rows}`` is a query giving those five columns.
KEYS_DIGEST = """
SELECT count(*), sha256(coalesce(string_agg(
    length(key) || ':' || key || '|' || deal_id || '|' || status || '|' ||
    coalesce(length(response_code) || ':' || response_code, '~') || '|' || CAST(epoch_us(finished_at) AS VARCHAR),
    chr(10) ORDER BY key, deal_id), ''))
FROM ({rows})
"""


def keys_digest(con: Any, rows_sql: str, params: Sequence[Any] = ()) -> tuple[int, str]:
    n, digest = con.execute(KEYS_DIGEST.format(rows=rows_sql), list(params)).fetchall()[0]
    return int(n), str(digest)


# ------------------------------------------------------------------ verification

@dataclass
class Break:
    """One problem in the chain: where (chain_seq, table, record) and what is wrong."""

    seq: int | None
    table: str
    record: str | None
    what: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "no seq"
        rec = f" {self.record}" if self.record else ""
        return f"{where} ({self.table}{rec}): {self.what}"


@dataclass
class Unprotected:
    """A run of consecutive records written without an audit key (NULL mac): nothing proves them intact."""

    first_seq: int
    last_seq: int
    count: int
    first_at: Any = None        # the time of its first and last record (datetime), when known
    last_at: Any = None
    _first: tuple[str, Any] = ("", None)      # (table, record id) of the first and last record
    _last: tuple[str, Any] = ("", None)

    def __str__(self) -> str:
        seqs = f"seq {self.first_seq}" if self.first_seq == self.last_seq else f"seq {self.first_seq}..{self.last_seq}"
        when = ""
        if self.first_at is not None:
            a, b = _iso(self.first_at), _iso(self.last_at) if self.last_at is not None else None
            when = f", written {a}" + (f" .. {b}" if b is not None and b != a else "")
        return f"{seqs} ({self.count} record{'s' if self.count != 1 else ''}{when})"


def _iso(t: Any) -> str:
    try:
        return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (AttributeError, ValueError):
        return str(t)


@dataclass
class MissingKey:
    """Records (or an anchor) sealed with an audit key the ring given to ``verify`` lacks: they cannot be
    checked (not a break: nothing says they were changed, nothing proves they were not)."""

    key_id: str | None
    fingerprint: str
    first_seq: int
    last_seq: int
    what: str = ""          # an anchor's archive, for an anchor sealed with it
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.key_id} (fp {self.fingerprint})" if self.key_id else f"the key with fp {self.fingerprint}"

    def __str__(self) -> str:
        if self.what:
            sealed = f"the anchor of the archive {self.what} (seq {self.first_seq}) is sealed with it"
        elif self.last_seq >= self.first_seq:
            span = f"seq {self.first_seq}" if self.first_seq == self.last_seq else f"seq {self.first_seq}..{self.last_seq}"
            sealed = f"the records {span} are sealed with it"
        else:
            sealed = f"the chain head after seq {self.last_seq} is sealed with it"
        return (f"add key {self.label} to the audit keyring: {sealed} (a rotation of the audit key), and "
                f"the ring given does not hold it{self.note}")


@dataclass
class VerifyReport:
    path: Path
    keyed: bool
    records: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    unprotected: list[Unprotected] = field(default_factory=list)
    seconds: float = 0.0
    last_seq: int = 0
    anchors: list[Anchor] = field(default_factory=list)     # archives this ledger's oldest records went to
    archive: tuple[int, int, str] | None = None              # this file is an archive: (first, last seq, source)
    stopped_early: bool = False      # stopped at max_breaks: the records after last_seq were not read
    wrong_key: bool = False          # neither the head nor any sealed record checked verifies with the key
    missing: list[MissingKey] = field(default_factory=list)  # sealed with keys the ring lacks: not checked
    keys_used: list[tuple[int, str]] = field(default_factory=list)   # (from seq, key label) of each key span
    # each ``ledger merge`` record (engine/ledger_merge.py): records of an old copy sealed again here, not a break
    merges: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every record is protected by the chain, checked, and none was tampered with."""
        return self.keyed and not self.breaks and not self.unprotected and not self.missing

    @property
    def unprotected_records(self) -> int:
        return sum(u.count for u in self.unprotected)

    @property
    def protected_records(self) -> int:
        return self.records - self.unprotected_records

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


VERIFY_BATCH = 65_536      # records read (and canonicalised) at a time, per table


def _tables(con: Any) -> list[str]:
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return [name for name in CHAINED if name in have]


def _stream(con: Any, table: str, batch: int) -> Iterator[tuple[int, Any, bytes, Any, bytes]]:
    """``(chain_seq, mac, canonical, record id, tag)`` of the chained rows of ``table`` in seq order, read
    ``batch`` rows at a time on a cursor of its own (the tables are merged by seq as they stream)."""
    rid, cols = CHAINED[table]
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                      "AND table_catalog = current_database()", [table]).fetchall()}
    cols = tuple(c for c in cols if c in have or c not in OPTIONAL_COLUMNS)
    quoted = ", ".join(f'"{c}"' for c in cols)
    whole = table == "config_versions" and "sealed_whole" in have
    cur = con.cursor()
    try:
        reader = cur.sql(f"SELECT {rid} AS _rid, mac, {quoted}{', sealed_whole' if whole else ''} FROM {table} "
                             f"WHERE chain_seq IS NOT NULL ORDER BY chain_seq").to_arrow_reader(batch)
        tag = table.encode() + b"\x00"
        for rb in reader:
            t = pa.Table.from_batches([rb])
            if whole:
                t = _rebuilt(con, t)
            yield from zip(t.column("chain_seq").to_pylist(), t.column("mac").to_pylist(), canonical(t, cols),
                           t.column("_rid").to_pylist(), itertools.repeat(tag))
    finally:
        cur.close()


def _rebuilt(con: Any, t: pa.Table) -> pa.Table:
    """A batch of config_versions rows with each ``sealed_whole`` row (written before ledger schema 11, split by
    its migration) as it was sealed: its whole ``sources`` JSON rebuilt from the manifest and ``config_files``,
    no manifest.  A text missing leaves ``sources`` NULL: the row then fails its mac (and
    ``_check_config_files`` names the file)."""
    from engine.config_sources import rebuild_json, texts_of

    flags = t.column("sealed_whole").to_pylist()
    if not any(flags):
        return t
    sources, manifests = t.column("sources").to_pylist(), t.column("manifest").to_pylist()
    parsed = {i: json.loads(manifests[i]) for i, flag in enumerate(flags) if flag and manifests[i] is not None}
    texts = texts_of(con, sorted({h for m in parsed.values() for h in m.values()}))    # each text once per batch
    for i, m in parsed.items():
        sources[i] = rebuild_json(m, texts) if all(h in texts for h in m.values()) else None
        manifests[i] = None
    t = t.set_column(t.column_names.index("sources"), "sources", pa.array(sources, pa.string()))
    return t.set_column(t.column_names.index("manifest"), "manifest", pa.array(manifests, pa.string()))


@dataclass
class Rotation:
    """A rotation record (``audit_keys``): from the record after ``seq`` on, the chain is sealed with
    ``key_id`` / ``fingerprint``; the records before it (and it) with ``previous_fingerprint``."""

    seq: int
    key_id: str
    fingerprint: str
    previous_key_id: str | None
    previous_fingerprint: str


class _Keys:
    """The keys ``verify`` checks a chain with: the ring given (``ring_of``) and the chain's rotation records
    (read before the stream: a handful of rows)."""

    def __init__(self, con: Any, key: bytes, report: VerifyReport, after: int) -> None:
        self.con, self.report = con, report
        self.ring = ring_of(key)
        self.by_fp = {fingerprint(k): k for k in self.ring}
        self.rotations: dict[int, Rotation] = {}
        if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_keys'"
                       ).fetchall()[0][0]:
            for r in con.execute("SELECT chain_seq, key_id, fingerprint, previous_key_id, previous_fingerprint "
                                 "FROM audit_keys WHERE chain_seq > ? ORDER BY chain_seq", [after]).fetchall():
                self.rotations[int(r[0])] = Rotation(int(r[0]), r[1], r[2], r[3], r[4])
        self._seqs = sorted(self.rotations)

    def after(self, seq: int) -> int:
        """The seq of the first rotation record after ``seq``, or -1."""
        i = bisect.bisect_right(self._seqs, seq)
        return self._seqs[i] if i < len(self._seqs) else -1

    def _use(self, seq: int, key: bytes) -> bytes:
        self.report.keys_used.append((seq, key_label(key)))
        return key

    def _missing(self, key_id: str | None, fp: str, seq: int) -> MissingKey:
        m = MissingKey(key_id, fp, seq, seq - 1)
        self.report.missing.append(m)
        return m

    def resolve(self, seq: int, msg: bytes, mac: bytes, hint: bytes | None) -> tuple[bytes | None,
                                                                                    MissingKey | None]:
        """The key of the keyed record at ``seq`` (``msg``: what its mac covers): the ring's key it verifies
        with; when none does (the record was altered, or its key is not in the ring), ``hint``, else the key
        the next rotation record says sealed the records before it, else the chain head's key."""
        for k in self.ring:
            if hmac.digest(k, msg, "sha256") == mac:
                return self._use(seq, k), None
        if hint is not None:
            return self._use(seq, hint), None
        nxt = self.after(seq - 1)
        if nxt != -1:
            r = self.rotations[nxt]
            k = self.by_fp.get(r.previous_fingerprint)
            if k is None:
                return None, self._missing(r.previous_key_id, r.previous_fingerprint, seq)
            return self._use(seq, k), None
        return self._use(seq, self.head_key()), None

    def head_key(self) -> bytes:
        """The ring's key the chain head verifies with (the current one when none does)."""
        from engine.ledger_store import chain_state

        rows = self.con.execute("SELECT chain_seq, mac FROM audit_head").fetchall() if self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_head'").fetchall()[0][0] else []
        if rows and rows[0][0] is not None and rows[0][1] is not None and len(self.ring) > 1:
            seq, last_mac = chain_state(self.con)
            for k in self.ring:
                if head_mac(k, int(rows[0][0]), last_mac if seq == rows[0][0] else b"") == bytes(rows[0][1]):
                    return k
        return self.ring[0]

    def rotate(self, seq: int, cur: bytes | None, ok: bool, blind: MissingKey | None
               ) -> tuple[bytes | None, MissingKey | None, bytes | None]:
        """After the rotation record at ``seq`` (``ok``: its mac verified): ``(key, blind, hint)`` for the
        records after it."""
        r = self.rotations[seq]
        new = self.by_fp.get(r.fingerprint)
        if blind is None and not ok:
            # its content is not proven: the next record is checked with the ring's key it verifies with
            return None, None, new or cur
        if blind is None and cur is not None and fingerprint(cur) != r.previous_fingerprint:
            self.report.breaks.append(Break(seq, "audit_keys", f"rotation to {r.key_id}",
                                            f"the rotation record says the records before it were sealed with "
                                            f"fp {r.previous_fingerprint}, they were sealed with {key_label(cur)}"))
        if new is None:
            named = next((k for k in self.ring if getattr(k, "key_id", "") == r.key_id), None)
            m = self._missing(r.key_id, r.fingerprint, seq + 1)
            if named is not None:
                m.note = f"; the ring's {r.key_id} is another key (fp {fingerprint(named)})"
            if blind is None and cur is not None:
                # the rotation record is proven by the old key only: its holder may have written it (a key
                # nobody has, the records after it deleted) to stop verify here
                m.note += (f"; the rotation record naming it (seq {seq}) is sealed with {key_label(cur)}: if no "
                           f"one has a key with fp {r.fingerprint}, it was written by someone holding "
                           f"{key_label(cur)}, and the records after it may have been deleted or replaced: "
                           f"restore the ledger from a backup")
            return None, m, None
        return self._use(seq + 1, new), None, None


def verify(con: Any, path: Path, key: bytes | None, *, max_breaks: int = 20,
           progress: Callable[[int, int], None] | None = None, batch: int | None = None) -> VerifyReport:
    """Check the whole chain of the ledger open on ``con`` (read-only is enough).

    Without a key the report says so (``keyed`` False) and checks nothing.  The records stream
    (``batch`` per table at a time, default ``VERIFY_BATCH``, merged by ``chain_seq``): memory
    does not grow with the ledger.  ``progress(done, total)`` is called every ``batch`` records.
    """
    report = VerifyReport(path=path, keyed=key is not None)
    if key is None:
        return report
    batch = batch or VERIFY_BATCH
    start = time.perf_counter()
    tables = _tables(con)
    for name in tables:
        report.by_table[name] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    if not report.by_table.get("audit_keys", 1):
        del report.by_table["audit_keys"]          # never rotated: not named in the counts
    report.records = total = sum(report.by_table.values())
    breaks = report.breaks

    def add(b: Break) -> bool:
        breaks.append(b)
        return len(breaks) >= max_breaks

    for name in tables:
        rid = CHAINED[name][0]
        for (r,) in con.execute(f"SELECT {rid} FROM {name} WHERE chain_seq IS NULL LIMIT ?",
                                [max_breaks]).fetchall():
            if add(Break(None, name, r, "row has no chain position: it was inserted outside the ledger writer "
                                        "(or predates the audit chain)")):
                break
        if len(breaks) >= max_breaks:
            break
    from engine.ledger_store import archive_of

    report.anchors = anchors(con)
    report.archive = archive_of(con)
    chain = heapq.merge(*(_stream(con, name, batch) for name in tables), key=itemgetter(0))
    digest = hmac.digest
    prev = ZERO_MAC
    last = 0
    anchor = report.anchors[-1] if report.anchors else None
    if anchor is not None:        # the records up to it were archived: the next one chains from its mac
        last, prev = anchor.chain_seq, anchor.mac or ZERO_MAC
    before_table, before_rid = "", None
    # The key the records are checked with: found at the first keyed record (the ring's key it verifies
    # with), then the one each rotation record names (``_Keys``); ``blind``: records sealed with a key the
    # ring lacks (``MissingKey``), not checked.
    keys = _Keys(con, key, report, anchor.chain_seq if anchor is not None else 0)
    cur: bytes | None = None
    blind: MissingKey | None = None
    blind_failed: list[tuple[int, str, Any]] = []    # the records of the blind span (none verifies with the ring)
    hint: bytes | None = None
    next_rot = keys.after(0)
    # A record right after a gap or a moved record was chained to a predecessor
    # that is no longer there: it cannot be checked on its own, and its failure
    # is a consequence of the break already reported.
    after_break = False
    diagnosed = 0
    unprotected = report.unprotected
    sealed_ok = sealed_bad = 0
    for pos, (seq, mac, canon, rid, tag) in enumerate(chain):
        if len(breaks) >= max_breaks:
            report.stopped_early = True
            break
        if progress is not None and pos and pos % batch == 0:
            progress(pos, total)
        table = tag[:-1].decode()
        if anchor is not None and seq <= anchor.chain_seq:
            add(Break(seq, table, rid, f"a record at or before the archive anchor ({anchor}): it belongs to the "
                                       f"archive, not to this ledger (copied back, or its seq changed)"))
            continue
        if seq == last:
            add(Break(seq, table, rid, f"seq {seq} appears twice: a record was copied or its seq changed"))
            continue
        follows_break, after_break = after_break, False
        if seq != last + 1:
            follows_break = True
            before = (f"after seq {last} ({before_table} {before_rid})" if before_table else
                      f"right after the archive anchor ({anchor})" if anchor is not None else "at the start")
            gone = f"seq {last + 1}" if seq == last + 2 else f"seq {last + 1}..{seq - 1}"
            add(Break(last + 1, "chain", None,
                      f"{gone} missing {before} and before seq {seq} ({table} {rid}): record(s) deleted, or a "
                      f"seq changed"))
        last = seq
        before_table, before_rid = table, rid
        if mac is None:            # written without a key: one span per run (a key configured later, ...)
            run = unprotected[-1] if unprotected and unprotected[-1].last_seq == seq - 1 and not follows_break \
                else None
            if run is None:
                run = Unprotected(seq, seq, 0, _first=(table, rid))
                unprotected.append(run)
            run.last_seq, run.count, run._last = seq, run.count + 1, (table, rid)
            prev = ZERO_MAC
            continue
        if blind is not None:      # sealed with a key the ring lacks: nothing to check it with
            known = next((k for k in keys.ring if digest(k, tag + canon + prev, "sha256") == mac), None)
            if known is not None:
                # a record of the span verifies with a key of the ring: the span was not sealed with a key the
                # ring lacks (a forged rotation record, or a record modified so that no key opened it): the
                # records before it in the span are breaks, not a key to add
                report.missing.remove(blind)
                for b_seq, b_table, b_rid in blind_failed:
                    add(Break(b_seq, b_table, b_rid,
                              f"content does not match its mac under any key of the ring, and a later record "
                              f"(seq {seq}) verifies with {key_label(known)}: modified (the chain said it was "
                              f"sealed with {blind.label}, a key the ring lacks; that claim is not taken)"))
                blind_failed.clear()
                cur, blind, hint = keys._use(seq, known), None, None
            else:
                blind.last_seq = seq
                if len(blind_failed) < max_breaks:
                    blind_failed.append((seq, table, rid))
        if blind is not None:
            if seq == next_rot:
                blind_failed.clear()
                cur, blind, hint = keys.rotate(seq, cur, False, blind)
                next_rot = keys.after(seq)
            prev = mac
            continue
        msg = tag + canon + prev
        if cur is None:            # the first keyed record (or the first after an unchecked rotation)
            cur, blind = keys.resolve(seq, msg, mac, hint)
            if blind is not None:
                blind_failed.append((seq, table, rid))
                prev = mac
                continue
        ok = digest(cur, msg, "sha256") == mac
        if ok:
            sealed_ok += 1
        elif not follows_break:
            sealed_bad += 1
        if not ok and not follows_break:
            diagnosed += 1
            run = unprotected[-1] if unprotected and unprotected[-1].last_seq == seq - 1 else None
            if run is not None:
                what = (f"content does not match its mac, and it follows records without a mac ({run}): "
                        f"their mac was removed, or this record was modified")
            elif diagnosed <= 3:     # the search for a moved record costs a pass over the chain
                what = _diagnose(con, tables, cur, pos, seq, mac, canon, tag)
            else:
                what = "content does not match its mac: modified, or moved"
            if seq == next_rot:
                what += (" (a rotation of the audit key: the records after it are checked with the key of the "
                         "ring they verify with)")
            after_break = what.startswith("written at seq")
            add(Break(seq, table, rid, what))
        if seq == next_rot:
            cur, blind, hint = keys.rotate(seq, cur, ok, None)
            next_rot = keys.after(seq)
        prev = mac
    if progress is not None:
        progress(total, total)
    report.last_seq = last
    _times(con, unprotected)
    if sealed_bad and not sealed_ok and not report.missing and all(_head_fails(con, tables, k) for k in keys.ring):
        _wrong_key(key, sealed_bad, report)
        report.seconds = time.perf_counter() - start
        return report
    if blind is None and not report.stopped_early:    # the head names the last record: only a check that read it
        _check_head(con, cur if cur is not None else keys.head_key(), last, prev, report)
        _check_current(cur, keys, report)
        _check_outside_head(con, path, key, last, prev, report)
    _check_orphans(con, report)
    _check_audit_breaks(con, report)
    _merges(con, report)
    _check_raw(con, report)
    _check_config_files(con, report)
    _check_keys(con, report)
    _check_letters(con, report)
    _check_letters_kept(con, report)
    _check_anchors(con, keys, report, cur if blind is None and not report.stopped_early else None)
    report.seconds = time.perf_counter() - start
    return report


def _diagnose(con: Any, tables: list[str], key: bytes, pos: int, seq: int, mac: bytes, canon: bytes,
              tag: bytes) -> str:
    """Why the record at ``pos`` in seq order fails: moved from elsewhere, or modified.

    A second pass over the chain's (seq, mac) pairs, streamed: would it verify at another position?"""
    union = " UNION ALL ".join(f"SELECT chain_seq, mac FROM {t} WHERE chain_seq IS NOT NULL" for t in tables)
    cur = con.cursor()
    try:
        reader = cur.sql(f"SELECT chain_seq, mac FROM ({union}) ORDER BY chain_seq").to_arrow_reader(VERIFY_BATCH)
        p = 0
        before: Any = ZERO_MAC
        for rb in reader:
            for seq_p, mac_p in zip(rb.column(0).to_pylist(), rb.column(1).to_pylist()):
                if p != pos:
                    # the record as it was written at position p: its seq, its predecessor's mac
                    for prev in (before, mac_p):
                        if prev is None:
                            continue
                        if hmac.digest(key, tag + _with_seq(canon, seq, seq_p) + prev, "sha256") == mac:
                            return (f"written at seq {seq_p} but now at seq {seq}: records reordered "
                                    f"(chain_seq changed); its content is intact")
                before = mac_p
                p += 1
    finally:
        cur.close()
    return "content does not match its mac: the record was modified after it was written"


def _with_seq(canon: bytes, old: int, new: int) -> bytes:
    """The canonical bytes with the leading chain_seq field replaced (it is always the first column)."""
    o, n = str(old).encode(), str(new).encode()
    prefix = str(len(o)).encode() + b":" + o
    assert canon.startswith(prefix)
    return str(len(n)).encode() + b":" + n + canon[len(prefix):]


def _head_fails(con: Any, tables: list[str], key: bytes) -> bool:
    """The chain head has a mac and it does not verify with ``key`` over the mac of the record it names
    (as ``LedgerStore.open`` checks a writer's key): with a wrong key it never does."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_head'").fetchall()[0][0]
    rows = con.execute("SELECT chain_seq, mac FROM audit_head").fetchall() if exists else []
    if not rows or rows[0][0] is None or rows[0][1] is None:
        return False
    seq, mac = int(rows[0][0]), bytes(rows[0][1])
    union = " UNION ALL ".join(f"SELECT mac FROM {t} WHERE chain_seq = ?" for t in tables)
    found = con.execute(union, [seq] * len(tables)).fetchall() if tables else []
    last_mac = bytes(found[0][0]) if found and found[0][0] is not None else b""
    return not hmac.compare_digest(head_mac(key, seq, last_mac), mac)


def _wrong_key(key: bytes, bad: int, report: VerifyReport) -> None:
    """Replace the report's breaks (every record would read as modified) by one that says what is likely."""
    report.wrong_key = True
    report.breaks = [Break(None, "audit key", None,
                           f"the audit key ({key_source(key)}) is not the key this ledger's chain was sealed with: "
                           f"neither the chain head nor any of the {bad} sealed record(s) checked verifies with it. "
                           f"Verify with the key the engine writes this ledger with (--deployment platform.yaml "
                           f"for its ledger.audit_key, or {ENV_KEY_FILE} / {ENV_KEY}; look for a typo, another "
                           f"environment's key, a key file replaced). If it is that key, every record and the head "
                           f"were rewritten: restore the ledger from a backup (docs/security.md#the-key)")]


def _check_current(cur: bytes | None, keys: "_Keys", report: VerifyReport) -> None:
    """A live ledger's chain must end sealed with the ring's current key: a writer opening it with the ring
    rotates it to that key at once.  A chain ending with an older key of the ring is what a holder of that old
    key (leaked, rotated out) leaves when they delete the rotation record and every record after it and
    re-seal the head: each record and the head verify, with the key kept in the ring to check the old ones."""
    if cur is None or report.archive is not None or len(keys.ring) < 2:
        return
    current = keys.ring[0]
    if fingerprint(cur) == fingerprint(current):
        return
    report.breaks.append(Break(
        report.last_seq, "audit_head", None,
        f"the chain ends sealed with {key_label(cur)}, not with the ring's current key {key_label(current)}: "
        f"a writer opening this ledger with this ring rotates it to the current key first, so either no writer "
        f"has opened it since {key_label(current)} became current (start the engine or any writer, then verify "
        f"again; a backup made before: verify it with a ring whose current key is {key_label(cur)}), or the "
        f"rotation record to {key_label(current)} and every record after it were deleted and the head re-sealed "
        f"by someone holding {key_label(cur)} (an old key that leaked): restore the ledger from a backup"))


def _check_head(con: Any, key: bytes, last: int, last_mac: bytes, report: VerifyReport) -> None:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_head'").fetchall()[0][0]
    rows = con.execute("SELECT chain_seq, mac FROM audit_head").fetchall() if exists else []
    row = rows[0] if rows else None
    if row is None:
        report.breaks.append(Break(None, "audit_head", None,
                                   "the chain head row is missing: the newest records cannot be checked for deletion"
                                   if last else
                                   "the chain head row is missing and the chain is empty: a ledger has its head "
                                   "from its creation, so its records and head were deleted (or the ledger predates "
                                   "bsp's audit head)"))
        return
    seq, mac = row
    tail = report.unprotected[-1] if report.unprotected else None
    if mac is None and seq == last and tail is not None and tail.last_seq == last:
        return                     # written without a key after the last record, which has no mac either
    if seq is None or mac is None:
        report.breaks.append(Break(seq, "audit_head", None, "the chain head has no mac (written without a key)"))
        return
    if seq > last:
        report.breaks.append(Break(last + 1, "audit_head", None,
                                   f"the chain head says seq {seq} was written but the last record is seq {last}: "
                                   f"the newest {seq - last} record(s) were deleted"))
    elif head_mac(key, seq, last_mac if seq == last else b"") != bytes(mac):
        report.breaks.append(Break(seq, "audit_head", None,
                                   "the chain head does not match the last record (head modified, or records "
                                   "added after it outside the ledger writer)"))


def _times(con: Any, spans: list[Unprotected], most: int = 20) -> None:
    """The write times of the first and last record of the first ``most`` unprotected spans."""
    for span in spans[:most]:
        for attr, (table, _rid), seq in (("first_at", span._first, span.first_seq),
                                          ("last_at", span._last, span.last_seq)):
            col = TIME_COLUMN.get(table)
            if col is None:
                continue
            rows = con.execute(f'SELECT "{col}" FROM {table} WHERE chain_seq = ? LIMIT 1', [seq]).fetchall()
            if rows:
                setattr(span, attr, rows[0][0])


def _check_outside_head(con: Any, path: Path, key: bytes, last: int, last_mac: bytes, report: VerifyReport) -> None:
    """The chain against the head every writer keeps beside the ledger (``<ledger>.audit-head``,
    engine/audit_cut.py): records deleted from its end and a head row copied back in the file show here before
    any writer opens it again (the writer's open then records them as an ``audit break``)."""
    from engine import audit_cut

    if report.archive is not None or any(b.table == "audit_head" and b.seq is not None for b in report.breaks):
        return                  # the head in the file named the problem already (a head row gone names none)
    found = audit_cut.problem(con, Path(path), key, last, last_mac, head_row=False)
    if found is not None:
        report.breaks.append(Break(found[1], "audit_head", "kept outside the ledger", found[0]))


def _check_audit_breaks(con: Any, report: VerifyReport) -> None:
    """Each chained ``audit break`` record (engine/audit_cut.py): a writer found, when it opened the ledger,
    records deleted from the chain's end while none had it open, recorded it and wrote on.  Its own mac is
    checked with the chain; it stays a break for as long as the ledger is kept."""
    if "deal_events" not in report.by_table:
        return
    resolved = _resolved_breaks(con)
    for seq, at, what in con.execute(
            "SELECT chain_seq, \"at\", json_extract_string(detail, '$.what') FROM deal_events "
            "WHERE to_state = 'audit break' ORDER BY chain_seq").fetchall():
        if seq in resolved:          # listed with the merge that resolves it (_merges)
            continue
        report.breaks.append(Break(seq, "audit break", None,
                                   f"recorded by the writer that opened the ledger at {_iso(at)}: {what}"))


def _resolved_breaks(con: Any) -> dict[int, int]:
    """``{audit break seq: ledger merge seq}``: each ``audit break`` record a later chained ``ledger merge`` record
    names in ``resolves`` (engine/ledger_merge.py: the cut the break recorded is the restore of a snapshot, and
    the merge copied back from the old copy whose chain end that cut reached, its chain verified).  Both records
    are checked with the chain like every record, so neither can be added or changed without breaking it."""
    out: dict[int, int] = {}
    for seq, detail in con.execute("SELECT chain_seq, detail FROM deal_events WHERE to_state = 'ledger merge' "
                                   "ORDER BY chain_seq").fetchall():
        try:
            d = json.loads(detail) if detail else {}
        except ValueError:
            continue
        for b in (d.get("resolves") or []) if isinstance(d, dict) else []:
            if isinstance(b, int) and b < seq:
                out.setdefault(b, seq)
    return out


def _merges(con: Any, report: VerifyReport) -> None:
    """One line per chained ``ledger merge`` record (``bsp ledger merge``, engine/ledger_merge.py): the records an
    old copy of the ledger held and this one lacked, sealed again here (their own seq and mac not kept), from which
    file, and the cut of the restore it explains.  Checked with the chain like every record; not a break."""
    if "deal_events" not in report.by_table:
        return
    for seq, at, detail in con.execute(
            "SELECT chain_seq, \"at\", detail FROM deal_events WHERE to_state = 'ledger merge' ORDER BY chain_seq"
            ).fetchall():
        d = json.loads(detail) if detail else {}
        span = (f"records seq {d.get('first_seq')}..{d.get('last_seq')}" if d.get("first_seq") is not None
                else "no records")
        counts = ", ".join(f"{n} {t}" for t, n in (d.get("records") or {}).items() if n)
        cut = f"; it brings back the cut of the restore: {d['cut']}" if d.get("cut") else ""
        resolves = [b for b in (d.get("resolves") or []) if isinstance(b, int) and b < seq]
        if resolves:
            cut += (f"; it resolves the audit break{'s' if len(resolves) > 1 else ''} at seq "
                    f"{', '.join(map(str, resolves))} (a writer opened the restored ledger before the merge: the "
                    f"records that break names as cut are those the old copy held, copied back here)")
        report.merges.append(f"seq {seq}: ledger merge at {_iso(at)} by {d.get('by')}: {span} ({counts or 'none'}) "
                             f"copied from {d.get('from')} (sha256 {str(d.get('from_sha256'))[:16]}..., its chain "
                             f"to seq {d.get('from_last_seq')}: {d.get('old_chain')}){cut}")


def _check_raw(con: Any, report: VerifyReport) -> None:
    """A dead letter's stored message must still hash to its (mac-covered) ``raw_sha256``."""
    if "dead_letters" not in report.by_table:
        return
    rows = con.execute("SELECT chain_seq, id FROM dead_letters WHERE raw IS NOT NULL AND "
                       "sha256(raw) <> raw_sha256 ORDER BY chain_seq LIMIT 5").fetchall()
    for seq, lid in rows:
        report.breaks.append(Break(seq, "dead_letters", lid,
                                   "the stored message (raw) does not match its sha256: it was replaced"))


# (chain_seq, version, path, h) per file of each manifest (engine/config_sources.py)
_MANIFEST_ROWS = ("SELECT chain_seq, version, unnest(map_keys(m)) AS path, unnest(map_values(m)) AS h FROM (SELECT "
                  "chain_seq, version, CAST(manifest AS MAP(VARCHAR, VARCHAR)) AS m FROM config_versions "
                  "WHERE manifest IS NOT NULL)")


def _check_config_files(con: Any, report: VerifyReport) -> None:
    """A configuration text (``config_files``, ledger schema 11, outside the chain) must still hash to its
    sha256, which the chained manifests name; every text a manifest names must be there."""
    if "config_versions" not in report.by_table or not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'config_files' "
            "AND table_catalog = current_database()").fetchall()[0][0]:
        return
    for (h,) in con.execute("SELECT sha256 FROM config_files WHERE sha256(text) <> sha256 ORDER BY sha256 LIMIT 5"
                            ).fetchall():
        names = con.execute(f"SELECT version, path FROM ({_MANIFEST_ROWS}) WHERE h = ? ORDER BY chain_seq, path "
                            f"LIMIT 3", [h]).fetchall()
        named = "; ".join(f"version {v}: {p}" for v, p in names) or "no version names it"
        report.breaks.append(Break(None, "config_files", h, f"the stored file text does not match its sha256: it "
                                                           f"was replaced ({named})"))
    for seq, version, path, h in con.execute(
            f"SELECT * FROM ({_MANIFEST_ROWS}) WHERE h NOT IN (SELECT sha256 FROM config_files) "
            f"ORDER BY chain_seq, path LIMIT 5").fetchall():
        report.breaks.append(Break(seq, "config_versions", version, f"the text of {path} (sha256 {h}) is missing "
                                                                   f"from config_files: it was deleted"))


def _check_orphans(con: Any, report: VerifyReport) -> None:
    for table in ("deal_steps", "deal_events"):
        if table not in report.by_table or "deals" not in report.by_table:
            continue
        # a dead letter's status events (schema 10) are written on its id, also for a letter of kind
        # ``unrecorded``, which has no deal row
        mine = (" AND deal_id NOT IN (SELECT id FROM dead_letters)"
                if table == "deal_events" and "dead_letters" in report.by_table else "")
        if table == "deal_events":        # an ``audit break`` record is on an id of its own (_check_audit_breaks)
            # four eyes: engine/four_eyes.py; a ledger merge record: engine/ledger_merge.py (_merges)
            mine += (" AND to_state NOT IN ('audit break', 'four eyes policy', 'ledger merge')"
                     # a reload's or an archive's four-eyes request: on an id of its own (four_eyes.OWN_TARGET)
                     " AND NOT (starts_with(to_state, 'approval ') AND "
                     "json_extract_string(detail, '$.action') IN ('config.reload', 'ledger.archive'))")
        rows = con.execute(f"SELECT DISTINCT deal_id FROM {table} WHERE deal_id NOT IN "
                           f"(SELECT deal_id FROM deals){mine} ORDER BY 1 LIMIT 5").fetchall()
        for (deal_id,) in rows:
            report.breaks.append(Break(None, "deals", deal_id,
                                       f"the deal row is gone but its {table} remain: the deal was deleted"))


def _check_letters(con: Any, report: VerifyReport) -> None:
    """A dead letter's status, retried_at and retry_outcome change after the fact (outside its mac); since
    ledger schema 10 each change appends a chained ``dead_letter`` event on the letter's id
    (``engine.ledger_store.letter_events``): the row must hold what its last such event says, and a letter
    without one must be ``new`` and never retried.  A letter set back to ``new`` by hand would otherwise be
    run again by the next ``bsp dead retry``.  In a ledger of an older schema (an archive, a file no bsp of
    schema 10 opened yet) only the letters that have such an event are compared."""
    from engine.ledger_store import LETTER_STATE

    if not {"dead_letters", "deal_events"} <= report.by_table.keys():
        return
    schema = 0
    if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
                   ).fetchall()[0][0]:
        schema = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    rows = con.execute(
        "SELECT l.chain_seq, l.id, l.status, l.retried_at, l.retry_outcome, e.detail IS NOT NULL, "
        "json_extract_string(e.detail, '$.status'), json_extract_string(e.detail, '$.retried_at'), "
        "json_extract_string(e.detail, '$.outcome') FROM dead_letters l LEFT JOIN "
        "(SELECT deal_id, arg_max(detail, seq) AS detail FROM deal_events WHERE to_state = ? GROUP BY deal_id) e "
        "ON e.deal_id = l.id WHERE (e.detail IS NOT NULL OR ? >= 10) AND ("
        "coalesce(json_extract_string(e.detail, '$.status'), 'new') IS DISTINCT FROM l.status "
        "OR TRY_CAST(json_extract_string(e.detail, '$.retried_at') AS TIMESTAMPTZ) IS DISTINCT FROM l.retried_at "
        "OR json_extract_string(e.detail, '$.outcome') IS DISTINCT FROM l.retry_outcome) "
        "ORDER BY l.chain_seq LIMIT 5", [LETTER_STATE, schema]).fetchall()
    for seq, lid, status, retried, outcome, has, e_status, e_retried, e_outcome in rows:
        now = f"status {status!r}, retried_at {_iso(retried) if retried is not None else None}, outcome {outcome!r}"
        if not has:
            what = (f"the letter reads {now} but no chained event records a status change of it: its status was "
                    f"changed outside the ledger writer, or its status events were deleted (a retry or purge "
                    f"records one)")
        else:
            what = (f"the letter reads {now} but its last chained status event says status {e_status!r}, "
                    f"retried_at {e_retried}, outcome {e_outcome!r}: its status was changed outside the ledger "
                    f"writer (or that event deleted)")
        if status == "new":
            what += "; a `bsp dead retry` would run it again: set it back as the event says before any retry"
        report.breaks.append(Break(seq, "dead_letters", lid, what))


# the deal statuses that keep their message as a dead letter of the deal's id (engine.txn.manager.dead_letter_of,
# stored in the deal's own transaction since 2026-11-26): every kind of refusal or failure (unrouted, malformed,
# unauthenticated, a rule's, a counterpart's, a timeout, held by a screening ...); a duplicate never has one (the
# original's answer stands), a committed deal neither
LETTER_KEEPING = ("rejected", "failed")


def _check_letters_kept(con: Any, report: VerifyReport, most: int = 5) -> None:
    """Every rejected or failed deal has its dead-letter row (same id; a purged one stays as a tombstone): a row
    deleted whose status never changed leaves no status event, so without this it shows only as a gap in the
    chain.  One anti-join on the letters' primary key, streamed by DuckDB (the deals are probed, not loaded);
    the first ``most`` by seq are named, the count of the others said."""
    if not {"deals", "dead_letters"} <= report.by_table.keys():
        return
    statuses = ", ".join(f"'{s}'" for s in LETTER_KEEPING)
    rows = con.execute(
        f"SELECT d.chain_seq, d.deal_id, d.status, count(*) OVER () FROM deals d WHERE d.status IN ({statuses}) "
        f"AND NOT EXISTS (SELECT 1 FROM dead_letters l WHERE l.id = d.deal_id) "
        f"ORDER BY d.chain_seq NULLS LAST, d.deal_id LIMIT ?", [most]).fetchall()
    for n, (seq, deal_id, status, total) in enumerate(rows):
        more = total - len(rows)
        what = (f"the {status} deal {deal_id} has no dead letter: its message was kept as dead letter {deal_id} "
                f"in the deal's own transaction (a purge keeps the row as a tombstone), so the row was deleted "
                f"outside the ledger writer (a gap in the chain after the deal says so), or never written (a bsp "
                f"before 2026-11-26 stored it after the deal, on its own: a crash in between lost it); the message "
                f"is lost unless a backup or snapshot from before holds it (bsp dead show {deal_id} --ledger BACKUP)")
        if n == len(rows) - 1 and more > 0:
            what += f"; {more} more rejected or failed deal(s) without their dead letter, not named here"
        report.breaks.append(Break(seq, "dead_letters", deal_id, what))


def _check_keys(con: Any, report: VerifyReport) -> None:
    """deal_keys (ledger schema 4) is a derived index, outside the chain: it must hold exactly the keys the
    chained deal_events and deals imply.  A row missing would let a repeat past the key store's retention run
    again; a row added would refuse a new deal as a repeat.  A ledger without the table (schema 3 or older,
    not opened by a newer engine yet) has nothing to compare."""
    from engine.ledger_store import KEYS_FROM_EVENTS

    if not {"deals", "deal_events"} <= report.by_table.keys():
        return
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_keys'").fetchall()[0][0]:
        return
    for sql, what in (
            (f"SELECT key, deal_id FROM ({KEYS_FROM_EVENTS}) EXCEPT SELECT key, deal_id FROM deal_keys",
             "the deal's events carry this key but deal_keys has no row for it (deleted): a repeat past the "
             "key store's retention would run again"),
            (f"SELECT key, deal_id FROM deal_keys EXCEPT SELECT key, deal_id FROM ({KEYS_FROM_EVENTS})",
             "deal_keys names this deal for this key but no chained event of a non-duplicate deal does "
             "(a row added, changed, or left by a deleted deal)")):
        for key, deal_id in con.execute(f"SELECT * FROM ({sql}) ORDER BY 2, 1 LIMIT 5").fetchall():
            report.breaks.append(Break(None, "deal_keys", f"{deal_id} key {key!r}", what))


def _check_anchors(con: Any, keys: "_Keys", report: VerifyReport, final: bytes | None = None) -> None:
    """Each anchor sealed with the key it names (``key_fp``: the writer's current key when the archive was made;
    an anchor of schema 6, without one, with any key of the ring: only a holder of that key can make its seal),
    the archives one after the other from seq 1, and (in the live ledger,
    not in an archive, which carries its predecessors' anchors only to start its check) the deal keys kept
    for each archive (``archived_deals``) exactly those its anchor's digest covers: a row deleted would let a
    repeat of an archived deal run again."""
    expect = 1
    # the keys this ledger's chain names (its rotation records, the spans sealed with a key the ring lacks): an
    # anchor sealed with a key the ring lacks is sealed with one of them (the writer's current key when the
    # archive was made seals the chain around it too); a fingerprint no record names was written by hand, and
    # taking it for a missing key would turn a changed anchor (its kept deal keys deleted) into 'cannot verify'
    named = {m.fingerprint for m in report.missing}
    for r in keys.rotations.values():
        named.update((r.fingerprint, r.previous_fingerprint))
    for a in report.anchors:
        sealed = a.seal is not None and any(hmac.compare_digest(anchor_seal(k, a), a.seal) for k in
                                            ([keys.by_fp[a.key_fp]] if a.key_fp in keys.by_fp else keys.ring))
        if not sealed and a.seal is not None and a.key_fp and a.key_fp not in keys.by_fp and a.key_fp in named:
            # its key is not in the ring: nothing proves the anchor either way (and nothing passes as intact)
            report.missing.append(MissingKey(None, a.key_fp, a.chain_seq, a.chain_seq, what=a.archive))
        elif not sealed and a.seal is not None and a.key_fp and a.key_fp not in keys.by_fp:
            report.breaks.append(Break(a.chain_seq, "audit_anchor", a.archive,
                                       f"the archive anchor names the key fp {a.key_fp}, which is not in the ring "
                                       f"and which no record of this ledger names (no rotation record, no records "
                                       f"sealed with it): its key fingerprint was changed, with its seal no longer "
                                       f"matching (if the anchor was sealed with a key retired before every "
                                       f"record kept here, add that key to the ring and verify again)"))
        elif not sealed:
            report.breaks.append(Break(a.chain_seq, "audit_anchor", a.archive,
                                       "the archive anchor does not match its seal (its seq, mac, archive name, "
                                       "sha256, keys or key fingerprint were changed)"))
        elif (final is not None and a.key_fp and report.archive is None
              and a.key_fp != fingerprint(final)):
            # a rotation seals the anchors again with the new key (engine.ledger_store.rotate_audit_key): one
            # still sealed with an older key of the ring was sealed again by someone holding that old key
            report.breaks.append(Break(a.chain_seq, "audit_anchor", a.archive,
                                       f"the archive anchor is sealed with {_fp_label(keys, a.key_fp)}, "
                                       f"not with {key_label(final)}, the key the chain ends with: a rotation of "
                                       f"the audit key seals the anchors again with the new key, so this one was "
                                       f"sealed again by someone holding the old key (its kept deal keys may "
                                       f"have been deleted: a repeat of an archived deal could run again)"))
        if a.first_seq != expect:
            report.breaks.append(Break(a.first_seq, "audit_anchor", a.archive,
                                       f"the archive starts at seq {a.first_seq}, the one before it ends at seq "
                                       f"{expect - 1}: an anchor was deleted or changed"))
        expect = a.chain_seq + 1
    if report.archive is not None or not report.anchors:
        return
    for a in report.anchors:
        n, digest = keys_digest(con, "SELECT key, deal_id, status, response_code, finished_at FROM archived_deals "
                                     "WHERE anchor_seq = ?", [a.chain_seq])
        if (n, digest) != (a.keys, a.keys_sha256):
            report.breaks.append(Break(a.chain_seq, "archived_deals", a.archive,
                                       f"the deal keys kept for the archived deals ({n} rows) are not the {a.keys} "
                                       f"the anchor sealed: rows deleted, added or changed (a repeat of an archived "
                                       f"deal could run again)"))
        if a.carried_sha256 and carried_digest(con, a.chain_seq) != a.carried_sha256:
            report.breaks.append(Break(a.chain_seq, "archived_totals", a.archive,
                                       "the limit totals and statement links carried forward for the archived deals "
                                       "(archived_totals, archived_links) are not those the anchor sealed: rows "
                                       "deleted, added or changed (a total without a period, an LC's drawings, "
                                       "would count the archived deals wrong: compare with the archive's counted "
                                       "and released events, docs/ledger.md#archiving)"))
    known = [a.chain_seq for a in report.anchors]
    for table in ("archived_deals", "archived_totals", "archived_links"):
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                           [table]).fetchall()[0][0]:
            continue
        stray = con.execute(f"SELECT count(*) FROM {table} WHERE NOT list_contains(?, anchor_seq)",
                            [known]).fetchall()[0][0]
        if stray:
            report.breaks.append(Break(None, table, None,
                                       f"{stray} row(s) name no archive anchor: added outside bsp ledger archive"))


def _fp_label(keys: "_Keys", fp: str) -> str:
    k = keys.by_fp.get(fp)
    return key_label(k) if k is not None else f"fp {fp}"


def continuity(live: Any, arc: Any, arc_path: Path, arc_sha256: str, live_path: Path | str = "the ledger") -> list[str]:
    """Problems (empty: none) joining the archive open on ``arc`` (``arc_path``, the sha256 of its bytes) to
    the ledger open on ``live`` (``live_path``): an anchor of the live ledger must name it by its last seq, its
    sha256, its last record's mac and its deal keys.  Verify each chain on its own as well (``verify``)."""
    from engine.ledger_store import archive_of, chain_state

    which = (f"give the archive file this ledger's anchor names (`bsp audit verify --ledger {live_path}` names "
             f"the archives of this ledger)")
    where = archive_of(arc)
    if where is None:
        return [f"{arc_path}: not an archive written by bsp ledger archive (no ledger_archive row); {which}"]
    first, last, _source = where
    found = [a for a in anchors(live) if a.chain_seq == last]
    if not found:
        return [f"{arc_path}: holds records {first}..{last}, and no anchor of the live ledger ends at seq {last}: "
                f"it is not an archive of this ledger (or its anchor was deleted); {which}"]
    a = found[0]
    problems = []
    if a.first_seq != first:
        problems.append(f"{arc_path}: holds records {first}..{last}, the anchor says {a.first_seq}..{a.chain_seq}")
    if arc_sha256 != a.sha256:
        problems.append(f"{arc_path}: sha256 {arc_sha256} is not the {a.sha256} the anchor recorded when it was "
                        f"archived (as {a.archive}): the file was changed or replaced")
    seq, mac = chain_state(arc)
    if (seq, mac) != (a.chain_seq, a.mac or ZERO_MAC):
        problems.append(f"{arc_path}: its last record (seq {seq}) and mac are not the anchor's (seq {a.chain_seq}): "
                        f"the chain does not continue from this file into the live ledger")
    from engine.ledger_store import ARCHIVED_KEYS
    if (keys_digest(arc, ARCHIVED_KEYS) != (a.keys, a.keys_sha256)):
        problems.append(f"{arc_path}: the deal keys of its deals are not those the live ledger keeps for it "
                        f"(archived_deals, anchor seq {a.chain_seq})")
    if problems:
        problems.append(f"{arc_path}: not the file {live_path} archived as {a.archive} (records "
                        f"{a.first_seq}..{a.chain_seq}): put back the copy of {a.archive} kept when it was written "
                        f"(its sha256 is {a.sha256}) and verify again")
    return problems


def sha256_hex(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()
