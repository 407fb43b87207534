"""``bsp ledger archive``: move the oldest deals out of the live ledger into an archive file (offline).

The audit chain (engine/audit.py) is one sequence over every chained table, so what moves is a *prefix*
of it: every record written before the first record of a deal received on or after ``before`` (``plan``).
The cut moves back further while a deal of the prefix still has records after it (a resolution, a
reversal's attempts, the rest of the write its deals row was in): no deal is split between two files.

    job = prepare(Path("var/bsp.duckdb"), Path("arc/2026-01.duckdb"), before, audit_key)
    print(job.plan.describe()); job.refusals      # what would move, why it may not
    job.run(progress)                             # write, verify, move, compact
    job.close()

``run``:

1. writes the prefix to ``OUT.partial`` (same schema; the previous anchors; its own ``ledger_archive`` row
   that makes it read-only, ``audit_head`` at its last record), fsyncs it, verifies its chain with the key
   (it must end at the live record's seq and mac) and renames it to ``OUT``;
2. in one transaction of the live ledger: keeps the deal keys of the moved deals (``archived_deals``, for
   the idempotency look-up past the key store's retention), adds the anchor (``audit_anchor``: the last
   moved record's seq and mac, ``OUT``'s name and sha256, the keys' digest, sealed), deletes the moved
   records, and re-seals at the end of the chain the configuration versions kept deals still name;
3. closes the ledger and rewrites it with its live data only (``engine.ledger_compact``).

A crash before 2 commits leaves the live ledger unchanged (and at most ``OUT``); a crash after it leaves
both files consistent, the live file not compacted yet.  Running the same command again finishes either:
``OUT`` already anchored is only compacted; ``OUT`` written but not anchored is checked against the live
ledger and used.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

from engine.audit import (ANCHOR_COLUMNS, CHAINED, ZERO_MAC, Anchor, anchor_seal, anchors, carried_digest,
                          fingerprint, head_mac, keys_digest, ring_of, seal, verify)
from engine.config_sources import MANIFEST_HASHES
from engine.durable import fsync_dir
from engine.ledger_store import (ARCHIVED_KEYS, DDL, JOURNAL_DDL, KEYS_INDEX_DDL, SCHEMA_VERSION, LedgerError,
                                 LedgerStore, archive_of, connect)

__all__ = ["ArchiveJob", "Plan", "prepare", "sha256_file"]

Progress = Callable[[int, int], None] | None
COPY_CHUNK = 500_000          # records copied per statement (the progress moves between them)


@dataclass
class Plan:
    before: datetime
    first: int                     # first seq moved (the anchor's + 1)
    cut: int                       # last seq moved; < first: nothing to move
    last_seq: int                  # the ledger's last record
    mac: bytes | None = None       # the mac of record ``cut``
    counts: dict[str, int] = field(default_factory=dict)
    received: tuple[Any, Any] = (None, None)        # first / last received_at of the moved deals
    held_back: int = 0             # deals received before ``before`` that stay (records after the cut)
    held_example: tuple[str, Any] | None = None
    keep_configs: list[str] = field(default_factory=list)
    new_dead: int = 0              # dead letters moved that were never retried or purged
    resume: bool = False           # OUT exists, written by a run that stopped before anchoring it

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    def describe(self, ledger: Path, out: Path) -> str:
        if self.cut < self.first:
            return (f"{ledger}: nothing to archive: no deal or dead letter was written before the first deal "
                    f"received on or after {_day(self.before)}")
        c = self.counts
        lo, hi = self.received
        span = f", received {_iso(lo)} .. {_iso(hi)}" if lo is not None else ""
        lines = [f"{'finish archiving' if self.resume else 'archive'} records {self.first}..{self.cut} of {ledger} "
                 f"to {out}: {c.get('deals', 0):,} deals{span}; {c.get('deal_steps', 0):,} steps, "
                 f"{c.get('deal_events', 0):,} events, {c.get('dead_letters', 0):,} dead letters"
                 f"{f' ({self.new_dead:,} never retried nor purged)' if self.new_dead else ''}, "
                 f"{c.get('config_versions', 0):,} configuration versions"
                 f"{f' ({len(self.keep_configs)} still named by the deals that stay: copied, kept in the ledger)' if self.keep_configs else ''}"]
        rest = self.last_seq - self.cut
        lines.append(f"the live ledger keeps records {self.cut + 1}..{self.last_seq} ({rest:,})" if rest > 0 else
                     "the live ledger keeps no record (its chain continues from the anchor)")
        if self.held_back and self.held_example is not None:
            d, at = self.held_example
            lines.append(f"{self.held_back:,} deal(s) received before {_day(self.before)} stay in the live ledger: "
                         f"they have records written with or after the first one kept (e.g. deal {d}, received "
                         f"{_iso(at)}: a resolution, a reversal's attempts, or one write with it); a later "
                         f"archive takes them")
        return "\n".join(lines)


def _iso(t: Any) -> str:
    try:
        return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (AttributeError, ValueError):
        return str(t)


def _day(t: datetime) -> str:
    return _iso(t)


def sha256_file(path: Path, progress: Progress = None) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ the plan

def plan(con: Any, before: datetime, *, cut: int | None = None) -> Plan:
    """What moves for ``before`` (or, resuming, up to ``cut``)."""
    from engine.ledger_store import chain_state, last_anchor

    anchor = last_anchor(con)
    first = (anchor[0] if anchor else 0) + 1
    last_seq = chain_state(con)[0]
    if cut is None:
        row = con.execute("SELECT least((SELECT min(chain_seq) FROM deals WHERE received_at >= ?), "
                          "(SELECT min(chain_seq) FROM dead_letters WHERE \"at\" >= ?))", [before, before]).fetchall()
        cut = (row[0][0] if row[0][0] is not None else last_seq + 1) - 1
    p = Plan(before=before, first=first, cut=cut, last_seq=last_seq)
    held: dict[str, Any] = {}
    while p.cut >= first:            # no deal split between the files: move the cut before such a deal
        rows = con.execute(
            "SELECT deal_id, chain_seq, received_at FROM deals WHERE chain_seq BETWEEN ? AND ? AND deal_id IN ("
            "SELECT deal_id FROM deal_steps WHERE chain_seq > ? UNION ALL SELECT deal_id FROM deal_events WHERE "
            "chain_seq > ? UNION ALL SELECT id FROM dead_letters WHERE chain_seq > ?) "
            # a letter without a deal row (kind unrecorded) whose status changed since (its dead_letter events,
            # ledger schema 10) stays with them
            "UNION ALL SELECT id, chain_seq, \"at\" FROM dead_letters WHERE chain_seq BETWEEN ? AND ? AND id IN ("
            "SELECT deal_id FROM deal_events WHERE chain_seq > ?) ORDER BY chain_seq",
            [first, p.cut, p.cut, p.cut, p.cut, first, p.cut, p.cut]).fetchall()
        if not rows:
            break
        for d, _, at in rows:
            if at < before:
                held[d] = at
        p.cut = int(rows[0][1]) - 1
    if held:
        d = min(held, key=lambda k: held[k])
        p.held_back, p.held_example = len(held), (d, held[d])
    if p.cut < first:
        return p
    for t in CHAINED:
        p.counts[t] = con.execute(f"SELECT count(*) FROM {t} WHERE chain_seq BETWEEN ? AND ?",
                                  [first, p.cut]).fetchall()[0][0]
    if not p.counts["deals"] and not p.counts["dead_letters"]:
        p.cut, p.counts = first - 1, {}          # configuration versions alone: nothing worth an archive
        return p
    union = " UNION ALL ".join(f"SELECT mac FROM {t} WHERE chain_seq = ?" for t in CHAINED)
    macs = con.execute(union, [p.cut] * len(CHAINED)).fetchall()
    p.mac = bytes(macs[0][0]) if macs and macs[0][0] is not None else None
    p.received = tuple(con.execute("SELECT min(received_at), max(received_at) FROM deals WHERE chain_seq "
                                   "BETWEEN ? AND ?", [first, p.cut]).fetchall()[0])  # type: ignore[assignment]
    p.new_dead = con.execute("SELECT count(*) FROM dead_letters WHERE chain_seq BETWEEN ? AND ? AND status = 'new'",
                             [first, p.cut]).fetchall()[0][0]
    # configuration versions of the prefix still named by what stays (and the newest one, likely running)
    p.keep_configs = [r[0] for r in con.execute(
        "SELECT version FROM config_versions WHERE chain_seq BETWEEN ? AND ? AND (version IN ("
        "SELECT config_version FROM deals WHERE chain_seq > ? UNION SELECT config_version FROM dead_letters "
        "WHERE chain_seq > ?) OR version = (SELECT arg_max(version, loaded_at) FROM config_versions)) ORDER BY version",
        [first, p.cut, p.cut, p.cut]).fetchall()]
    return p


# ------------------------------------------------------------------ refusals

def refusals(con: Any, p: Plan) -> list[str]:
    """Why the prefix may not move yet, each naming the deals and what to do (empty: it may)."""
    from engine.ledger_query import _OPEN_FROM, _OPEN_PARAMS

    if p.cut < p.first:
        return []
    out = []
    # the rule `bsp deals --flagged` lists by (a resolution, or the host's approval of a flagged reversal,
    # closes a flag), not a copy of it
    flagged = con.execute(
        f"SELECT DISTINCT f.deal_id {_OPEN_FROM} AND f.deal_id IN "
        f"(SELECT deal_id FROM deals WHERE chain_seq BETWEEN ? AND ?) ORDER BY 1",
        [*_OPEN_PARAMS, p.first, p.cut]).fetchall()
    if flagged:
        ids = [r[0] for r in flagged]
        out.append(f"{len(ids)} deal(s) flagged for an operator and not resolved: {_names(ids)}. Settle each with its "
                   f"counterpart and record it (`bsp deals resolve ID --outcome ... --note ...`; `bsp deals "
                   f"--flagged` lists them), or archive up to an earlier --before")
    return out


def _names(ids: list[str], most: int = 5) -> str:
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _journal_refusals(store: LedgerStore) -> tuple[set[str], list[str]]:
    """Deals acknowledged and only in the journal (``<ledger>.journal/``: the engine was killed before its
    loader took them, ``engine.journal``): the next start loads them after every record there is, so an
    archive made now would leave them out of their period (and their keys out of ``archived_deals``).
    Returns (their ids, the refusal)."""
    from engine.journal import JOURNAL_NAME, JournalError, journal_dir, unloaded

    jdir = journal_dir(store.path)
    try:
        ids, where = unloaded(jdir, store.journal_position(JOURNAL_NAME))
    except JournalError as exc:
        return set(), [f"{exc}; the engine reads that folder when it starts: start it once (it loads what the "
                       f"journal holds), stop it, then archive"]
    if not ids:
        return set(), []
    return set(ids), [
        f"{jdir}: {len(ids):,} deal(s) acknowledged by the engine are only in its journal, not loaded into the "
        f"ledger yet (in {_names([w.name for w in where], 3)}: the engine stopped without draining, a crash or a "
        f"kill): {_names(ids)}. Its next start loads them after every record there is, so an archive made now "
        f"would leave them out of their period. Start the engine once (it loads them before it serves), stop it "
        f"(Ctrl-C or SIGTERM: it drains), then archive; do not delete the journal"]


def _txn_scan(txn: Path) -> tuple[dict[str, tuple[str, Any]], dict[str, tuple[str | None, Any]], set[str]]:
    """What the transaction log still holds: deals in flight {id: (entry kind, received at)}, answers whose
    ledger row it does not mark recorded {id: (key, received at)}, and the deals with a reversal queued."""
    from engine.txn.log import read

    entries, _ = read(txn)
    pending: dict[str, tuple[str, Any]] = {}
    unrecorded: dict[str, tuple[str | None, Any]] = {}
    reversals: set[str] = set()
    queued: set[str] = set()
    for e in entries:
        t, i = e.get("t"), e.get("id")
        if t in ("a", "begin"):
            pending[i] = (t, e.get("at"))
        elif t == "end":
            at = pending.pop(i, (None, e.get("at")))[1]
            if not e.get("recorded"):
                unrecorded[i] = (e.get("key"), at)
        elif t == "recorded":
            for i in e.get("ids", ()):
                unrecorded.pop(i, None)
                if pending.get(i, ("",))[0] == "a":
                    del pending[i]                # a light deal's row is its end
        elif t == "rev":
            queued.add(f"{i}|{e.get('step')}")
        elif t == "revrec":
            queued.discard(f"{i}|{e.get('step')}")
    reversals = {r.split("|", 1)[0] for r in queued}
    return pending, unrecorded, reversals


def _txn_refusals(con: Any, p: Plan, txn: Path,
                  journaled: set[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """Deals the transaction log (``<ledger>.txn``) still works on.  Returns (refusals, ids, keys): the
    answers and light deals of the prefix whose rows the log does not mark recorded yet (after a clean stop
    the last marks are missing: they travel with the next write) are marked recorded before the records move
    (``ArchiveJob.run``), as the next start would; otherwise it would write their rows again.  ``journaled``:
    the deals whose rows are in the journal, not loaded yet (``_journal_refusals`` names them): not in flight."""
    pending, unrecorded, reversals = _txn_scan(txn)
    journaled = journaled or set()
    ids = sorted(set(pending) | set(unrecorded) | reversals)
    if not ids:
        return [], [], []
    have = {r[0]: r[1] for r in con.execute("SELECT deal_id, chain_seq FROM deals WHERE list_contains(?, deal_id)",
                                            [ids]).fetchall()}
    moved = {i for i, s in have.items() if p.first <= s <= p.cut}
    out = []
    early = sorted(i for i, (_, at) in [*pending.items(), *unrecorded.items()]
                   if i not in have and i not in journaled and (at is None or _before(at, p.before)))
    if early:
        out.append(f"{txn}: {len(early)} deal(s) received before {_day(p.before)} are left in flight in the "
                   f"transaction log, without their ledger row (the engine stopped or crashed while they ran): "
                   f"{_names(early)}. Start the engine once (it resolves them by their route's `on restart` "
                   f"policy and records them), stop it, then archive")
    busy = sorted(i for i in moved if i in reversals or pending.get(i, ("",))[0] == "begin")
    if busy:
        out.append(f"{txn}: {len(busy)} deal(s) of the records to move still have work in the transaction log (an "
                   f"ISO 8583 reversal not acknowledged yet, or an answer the log could not record): "
                   f"{_names(busy)}. Start the engine and let it finish them (`bsp status` shows queued "
                   f"reversals), stop it, then archive")
    mark = sorted(i for i in moved if i in unrecorded or pending.get(i, ("",))[0] == "a")
    keys = [k for i in mark if (k := unrecorded.get(i, (None, None))[0])]
    return out, mark, keys


def mark_recorded(txn: Path, ids: list[str], keys: list[str]) -> None:
    """Mark these deals' rows recorded in the transaction log (durable), as the engine's next start would."""
    from engine.txn.log import TxnLog

    log = TxnLog(txn, retention=None)       # keeps every key: the engine applies its own retention
    try:
        log.append([{"t": "recorded", "ids": ids, "keys": keys}])
    finally:
        log.close()


def _before(at: Any, before: datetime) -> bool:
    try:
        t = datetime.fromisoformat(str(at))
    except ValueError:
        return True
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t < before


# ------------------------------------------------------------------ the job

class ArchiveJob:
    def __init__(self, store: LedgerStore, out: Path, p: Plan, refusals: list[str], done: Anchor | None) -> None:
        self.store, self.out, self.plan, self.refusals = store, out, p, refusals
        self.txn: Path | None = None
        self.to_mark: tuple[list[str], list[str]] = ([], [])     # (ids, keys) to mark recorded in the log
        self.already = done            # OUT is anchored already (a run stopped before compacting)
        self._open = True

    @property
    def con(self) -> Any:
        return self.store.connection    # this process owns the ledger exclusively (offline)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.store.close()

    def run(self, progress: Callable[[str, str], Any] | None = None) -> str:
        """Do it; returns the archive's sha256.  ``progress(what, unit)`` is a context manager giving a
        ``(done, total)`` callable or None (``engine.progress.work_progress``)."""
        from contextlib import nullcontext

        def stage(what: str, unit: str) -> Any:
            return progress(what, unit) if progress is not None else nullcontext(None)

        path = self.store.path
        if self.already is not None:
            self.close()
            _compact(path)
            return self.already.sha256
        p = self.plan
        partial = self.out.with_name(self.out.name + ".partial")
        if not p.resume:
            with stage("archive: copy", "records") as prog:
                self._write(partial, prog)
            with stage("archive: verify", "records") as prog:
                self._verify(partial, prog)
            os.replace(partial, self.out)
            fsync_dir(self.out.parent)
        else:
            with stage("archive: verify", "records") as prog:
                self._verify(self.out, prog)
        with stage("archive: sha256", "bytes") as prog:
            digest = sha256_file(self.out, prog)
        if self.txn is not None and self.to_mark[0]:
            mark_recorded(self.txn, *self.to_mark)
        self._move(digest)
        self.close()
        _compact(path)
        return digest

    # -- 1. the archive file

    def _write(self, partial: Path, prog: Progress) -> None:
        p, con = self.plan, self.con
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            leftover.unlink(missing_ok=True)
        statements = [s for s in (DDL + ";" + JOURNAL_DDL).split(";") if s.strip()]
        indexes = [s for s in statements if "CREATE INDEX" in s] + [KEYS_INDEX_DDL]
        arc = connect(partial, read_only=False)
        try:
            for stmt in statements:
                if "CREATE INDEX" not in stmt:
                    arc.execute(stmt).fetchall()
            arc.execute("INSERT INTO schema_version VALUES (?, ?)",
                        [SCHEMA_VERSION, datetime.now(timezone.utc)]).fetchall()
        finally:
            arc.close()
        con.execute("ATTACH ? AS arc", [str(partial)]).fetchall()
        try:
            done = 0
            for t in CHAINED:
                cols = ", ".join(f'"{r[0]}"' for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
                    "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall())
                for lo in range(p.first, p.cut + 1, COPY_CHUNK):
                    hi = min(lo + COPY_CHUNK - 1, p.cut)
                    n = con.execute(f"INSERT INTO arc.{t} ({cols}) SELECT {cols} FROM main.{t} "
                                    f"WHERE chain_seq BETWEEN ? AND ?", [lo, hi]).fetchall()[0][0]
                    done += int(n)
                    if prog is not None:
                        prog(done, p.records)
            # the texts the archived configuration versions name (schema 11, engine/config_sources.py)
            con.execute("INSERT INTO arc.config_files (sha256, text) SELECT sha256, text FROM main.config_files "
                        "WHERE sha256 IN (" + MANIFEST_HASHES.format(table="arc.config_versions", where="") + ")"
                        ).fetchall()
            con.execute("INSERT INTO arc.deal_keys (key, deal_id) SELECT k.key, k.deal_id FROM deal_keys k JOIN deals d "
                        "ON d.deal_id = k.deal_id WHERE d.chain_seq BETWEEN ? AND ?", [p.first, p.cut]).fetchall()
            con.execute(f"INSERT INTO arc.audit_anchor ({ANCHOR_COLUMNS}) SELECT {ANCHOR_COLUMNS} "
                        f"FROM main.audit_anchor").fetchall()
            # the field keys' check values (engine/field_key_checks.py): a reveal from the archive, and bsp audit
            # verify with a field keyring, check the keyring against them as against the live ledger's
            con.execute("INSERT INTO arc.field_key_checks (key_id, token, created_at) "
                        "SELECT key_id, token, created_at FROM main.field_key_checks").fetchall()
            head_key = key_at(con, self.store.audit_key, p.cut) if self.store.audit_key else None
            head = head_mac(head_key, p.cut, p.mac or ZERO_MAC) if head_key is not None else None
            con.execute("INSERT INTO arc.audit_head VALUES (?, ?)", [p.cut, head]).fetchall()
            con.execute("INSERT INTO arc.ledger_archive VALUES (?, ?, ?, ?)",
                        [p.first, p.cut, str(self.store.path), datetime.now(timezone.utc)]).fetchall()
            for stmt in indexes:
                con.execute(stmt.replace(" ON ", " ON arc.", 1)).fetchall()
            con.execute("CHECKPOINT arc").fetchall()
        finally:
            con.execute("DETACH arc").fetchall()
        _fsync(partial)

    def _verify(self, file: Path, prog: Progress) -> None:
        """The archive's chain verifies with the key on its own and ends where the live record it copies ends."""
        p = self.plan
        arc = connect(file, read_only=True)
        try:
            report = verify(arc, file, self.store.audit_key, progress=prog)
            last = report.last_seq
            from engine.ledger_store import chain_state
            seq, mac = chain_state(arc)
            counts = {t: arc.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in CHAINED}
        finally:
            arc.close()
        problems = [str(b) for b in report.breaks[:3]] + [f"cannot verify: {m}" for m in report.missing[:3]]
        if (last, seq, mac) != (p.cut, p.cut, p.mac or ZERO_MAC):
            problems.append(f"its last record is seq {seq}, the live ledger's is seq {p.cut} (or their macs differ)")
        if counts != p.counts:
            problems.append(f"it holds {counts}, the live ledger {p.counts}")
        if problems:
            raise LedgerError(f"{file}: the archive does not verify: " + "; ".join(problems) + f". Nothing was "
                              f"removed from {self.store.path}; run `bsp audit verify --ledger {self.store.path}` "
                              f"(a break there is in the live ledger itself), remove {file} and try again")

    # -- 2. the live ledger, one transaction

    def _move(self, digest: str) -> None:
        p, store, con = self.plan, self.store, self.con
        rng = [p.first, p.cut]
        keys_sql = ARCHIVED_KEYS + " AND d.chain_seq BETWEEN ? AND ?"

        with store.transaction() as tail:
            # with each key, the values of its deal (schema 9): a repeat with others is a key conflict
            con.execute(f"INSERT INTO archived_deals (key, deal_id, status, response_code, finished_at, anchor_seq, "
                        f"amount, currency, party) SELECT a.*, ?, d.amount, d.currency, d.party "
                        f"FROM ({keys_sql}) a JOIN deals d ON d.deal_id = a.deal_id", [p.cut, *rng]).fetchall()
            n, keys_sha = keys_digest(con, "SELECT key, deal_id, status, response_code, finished_at FROM "
                                           "archived_deals WHERE anchor_seq = ?", [p.cut])
            # the totals and links carried forward first: the anchor seals their digest
            carry_totals(con, p)
            carry_links(con, p)
            a = Anchor(p.cut, p.mac, p.first, self.out.name, digest, datetime.now(timezone.utc), n, keys_sha, None,
                       fingerprint(store.audit_key) if store.audit_key else None, carried_digest(con, p.cut))
            a.seal = anchor_seal(store.audit_key, a) if store.audit_key else None
            con.execute(f"INSERT INTO audit_anchor ({ANCHOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [a.chain_seq, a.mac, a.first_seq, a.archive, a.sha256, a.archived_at, a.keys, a.keys_sha256,
                         a.seal, a.key_fp, a.carried_sha256]).fetchall()
            con.execute("DELETE FROM deal_keys WHERE deal_id IN (SELECT deal_id FROM deals WHERE chain_seq BETWEEN "
                        "? AND ?)", rng).fetchall()
            for t in CHAINED:
                keep = " AND NOT list_contains(?, version)" if t == "config_versions" else ""
                con.execute(f"DELETE FROM {t} WHERE chain_seq BETWEEN ? AND ?{keep}",
                            rng + ([p.keep_configs] if keep else [])).fetchall()
            if p.keep_configs:          # copied, not moved: sealed again at the end of the live chain
                cols = CHAINED["config_versions"][1][1:]
                t = con.sql(f"SELECT {', '.join(cols)} FROM config_versions WHERE list_contains($1, version) "
                            f"ORDER BY chain_seq", params=[p.keep_configs]).to_arrow_table()
                sealed, tail.seq, tail.prev = seal("config_versions", t, CHAINED["config_versions"][1],
                                                   store.audit_key, tail.seq, tail.prev)
                for version, s, mac in zip(sealed.column("version").to_pylist(), sealed.column("chain_seq").to_pylist(),
                                           sealed.column("mac").to_pylist()):
                    # a row the schema 11 migration split is sealed again as a manifest row
                    con.execute("UPDATE config_versions SET chain_seq = ?, mac = ?, sealed_whole = NULL "
                                "WHERE version = ?", [s, mac, version]).fetchall()
            # the texts no version left in the ledger names (they are in the archive)
            con.execute("DELETE FROM config_files WHERE sha256 NOT IN (" +
                        MANIFEST_HASHES.format(table="config_versions", where="") + ")").fetchall()


def carry_totals(con: Any, p: Plan) -> int:
    """Keep in the live ledger what the moved deals count in ``limit`` totals (``archived_totals``, anchor
    ``p.cut``): per total, key, currency and day, their ``counted`` events net of their ``released`` ones
    and of the figures ``rekeyed`` moved to a key's current digest (engine/totals.py; the old digest's rows
    name the current one, ``into_key``, as ``LedgerStore.counted_totals`` does), so that an engine started
    after the archive still counts them (an LC's drawings, an issue's quota: a total without a period never
    expires).  A daily total's bucket is kept only for days an
    engine may still read (from two days before ``before``); buckets netting to nothing are left out.  In the
    transaction that anchors the archive: the rows and the anchor are there together or not at all."""
    since = date.fromordinal(p.before.date().toordinal() - 2).isoformat()
    return int(con.execute(
        "INSERT INTO archived_totals (anchor_seq, total, key, currency, day, amount, into_key) "
        "WITH e AS (SELECT to_state AS s, json_extract_string(detail, '$.total') AS t, "
        "json_extract_string(detail, '$.key') AS k, coalesce(json_extract_string(detail, '$.currency'), '') AS c, "
        "coalesce(json_extract_string(detail, '$.day'), '') AS d, "
        "CAST(json_extract_string(detail, '$.amount') AS DECIMAL(38,4)) AS a, json_extract_string(detail, '$.from') AS f "
        "FROM deal_events WHERE chain_seq BETWEEN ? AND ? AND to_state IN ('counted', 'released', 'rekeyed')), "
        "r AS (SELECT t, k, c, d, CASE WHEN s = 'released' THEN -a ELSE a END AS v, CAST(NULL AS VARCHAR) AS i FROM e "
        "UNION ALL SELECT t, f, c, d, -a, k FROM e WHERE s = 'rekeyed') "
        "SELECT ?, t, k, c, d, sum(v), i FROM r WHERE t IS NOT NULL AND v IS NOT NULL AND (d = '' OR d >= ?) "
        "GROUP BY t, k, c, d, i HAVING sum(v) <> 0",
        [p.first, p.cut, p.cut, since]).fetchall()[0][0] or 0)


def carry_links(con: Any, p: Plan) -> int:
    """Keep in the live ledger the last ``statement link`` of each chain of a ``continuity`` step among the
    moved deals (``archived_links``, anchor ``p.cut``): the next statement of the account is still checked
    against it after the archive (engine/statement_chains.py).  The last by closing day, number and page,
    as the engine orders them; in the transaction that anchors the archive."""
    return int(con.execute(
        "INSERT INTO archived_links (anchor_seq, deal_id, detail) "
        "SELECT ?, deal_id, detail FROM (SELECT e.deal_id, e.detail, row_number() OVER (PARTITION BY "
        "json_extract_string(e.detail, '$.chain'), json_extract_string(e.detail, '$.key') ORDER BY "
        "coalesce(json_extract_string(e.detail, '$.day'), '') DESC, "
        "coalesce(CAST(json_extract_string(e.detail, '$.number') AS BIGINT), 0) DESC, "
        "coalesce(CAST(json_extract_string(e.detail, '$.page') AS BIGINT), 0) DESC, e.chain_seq DESC) AS n "
        "FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id WHERE e.chain_seq BETWEEN ? AND ? "
        "AND e.to_state = 'statement link' AND d.status = 'committed') WHERE n = 1",
        [p.cut, p.first, p.cut]).fetchall()[0][0] or 0)


def _compact(path: Path) -> None:
    from engine.ledger_compact import compact

    try:
        compact(path)
    except LedgerError as exc:
        raise LedgerError(f"the records were moved out of {path} and its anchor written, but the file still holds "
                          f"their bytes in free blocks: {exc}; run the same bsp ledger archive command again (no "
                          f"engine running) to rewrite it") from None


def key_at(con: Any, audit_key: bytes, seq: int) -> bytes:
    """The key of ``audit_key``'s ring the chain is sealed with after record ``seq`` (the head of an archive
    ending there): the one the last rotation record up to ``seq`` names, else the one the first rotation
    after it rotated from, else ``audit_key`` (no rotation since)."""
    rows = con.execute("SELECT fingerprint, key_id FROM audit_keys WHERE chain_seq <= ? ORDER BY chain_seq DESC "
                       "LIMIT 1", [seq]).fetchall() or con.execute(
        "SELECT previous_fingerprint, previous_key_id FROM audit_keys WHERE chain_seq > ? ORDER BY chain_seq "
        "LIMIT 1", [seq]).fetchall()
    if not rows:
        return audit_key
    fp, kid = rows[0]
    for k in ring_of(audit_key):
        if fingerprint(k) == fp:
            return k
    raise LedgerError(f"the records up to seq {seq} are sealed with the audit key {kid or ''} (fp {fp}), which the "
                     f"audit keyring does not hold: add it to the ring (keep every key the ledger was sealed with) "
                     f"and archive again")


def prepare(path: Path, out: Path, before: datetime, audit_key: bytes | None) -> ArchiveJob:
    """Open the ledger (offline: ``LedgerError`` when an engine holds it) and plan the archive."""
    from engine.txn.log import log_path

    if audit_key is None:
        raise LedgerError(f"{path}: no audit key: an archive must be provably the ledger's own records, sealed and "
                          f"anchored with the key the engine writes with; give --deployment platform.yaml (its "
                          f"ledger.audit_key), or set BSP_AUDIT_KEY_FILE / BSP_AUDIT_KEY")
    store = LedgerStore.open(path, audit_key)
    try:
        con = store.connection
        done = next((a for a in anchors(con) if a.archive == out.name), None)
        if done is not None:
            if not out.exists() or sha256_file(out) != done.sha256:
                raise LedgerError(f"{out}: the ledger already has an archive named {out.name} (records "
                                  f"{done.first_seq}..{done.chain_seq}) and this file is not it (missing or "
                                  f"changed); give another --out name")
            p = Plan(before=before, first=done.first_seq, cut=done.chain_seq, last_seq=store.last_seq)
            return ArchiveJob(store, out, p, [], done)
        resume_cut = None
        if out.exists():
            resume_cut = _resumable(con, out, path)
        p = plan(con, before, cut=resume_cut)
        p.resume = resume_cut is not None
        journaled, why = _journal_refusals(store)
        job = ArchiveJob(store, out, p, why + refusals(con, p), None)
        txn = log_path(path)
        if txn.exists() and p.cut >= p.first:
            more, ids, keys = _txn_refusals(con, p, txn, journaled)
            job.refusals += more
            job.txn, job.to_mark = txn, (ids, keys)
        return job
    except BaseException:
        store.close()
        raise


def _resumable(con: Any, out: Path, path: Path) -> int:
    """The last seq of ``out`` when it is an archive of the ledger's next records that a run stopped before
    anchoring (its first record right after the anchor, its last one's mac the live record's)."""
    from engine.ledger_store import chain_state, last_anchor

    taken = (f"{out}: exists and is not an unfinished archive of {path}; an archive is never overwritten: give "
             f"another --out name")
    try:
        arc = connect(out, read_only=True)
    except LedgerError:
        raise LedgerError(taken) from None
    try:
        where = archive_of(arc)
        state = chain_state(arc) if where is not None else None
    except Exception:
        raise LedgerError(taken) from None
    finally:
        arc.close()
    if where is None or state is None:
        raise LedgerError(taken)
    first, last, _ = where
    anchor = last_anchor(con)
    if first != (anchor[0] if anchor else 0) + 1:
        raise LedgerError(taken)
    union = " UNION ALL ".join(f"SELECT mac FROM {t} WHERE chain_seq = ?" for t in CHAINED)
    macs = con.execute(union, [last] * len(CHAINED)).fetchall()
    mac = bytes(macs[0][0]) if macs and macs[0][0] is not None else ZERO_MAC
    if not macs or state != (last, mac):
        raise LedgerError(taken)
    return last
