"""``bsp ledger merge OLD_COPY``: after a restore, the deals the old (damaged or replaced) copy of the ledger holds
and the restored ledger lacks, copied back and re-chained into the restored ledger's audit chain.

    job = prepare(old, key)                  # the old copy checked (its own chain, with the audit key), read-only
    store = LedgerStore.open(ledger, key, merge=job)    # the merge runs inside the writer's opening transaction
    job.result                               # MergeResult: counts, the seq range, the merge record's seq

What is copied: each deal of the old copy whose ``deal_id`` the ledger lacks, with its steps, its events and its
dead letter; each dead letter the ledger lacks (a letter of kind ``unrecorded`` has no deal row) with its events;
the configuration versions those name that the ledger lacks (with their texts, ``config_files``); the deal keys
(``deal_keys``) of the deals copied.  The records are **sealed again** at the end of the ledger's chain with the
current audit key, in the old copy's chain order: their old seq and mac are not kept (a mac is over its seq and
the record before it: the old ones cannot be valid here, and none is forged).  Then one chained ``deal_events``
record, ``to_state`` ``ledger merge`` (``MERGE_STATE``) on an id of its own, says what was imported, from which
file (its sha256, its chain's last seq and mac, whether that chain verified), into which seq range, and by whom:
``bsp audit verify`` lists it, an auditor can check the old copy against it.  All in one transaction: after a
crash nothing was merged, run it again.  What the ledger holds already is never changed; run twice, the second
run finds nothing to copy and writes nothing.

The restored ledger put in place of the old one lacks the records the old one's head (``<ledger>.audit-head``,
engine/audit_cut.py) names: the first writer to open it would record an ``audit break``.  When that head is the
old copy's own chain end (the same seq and mac, sealed with the audit key) and the restored chain is a prefix of
the old copy's (the restored ledger's last record is in the old copy at the same seq, with the same mac: a
snapshot of that ledger), the cut is exactly what this merge brings back: it is named in the merge record
(``cut``) instead of a break, and verify is clean afterwards.  Any other cut is recorded as a break as always.
When a writer opened the restored ledger first (an engine ran on it) and recorded that cut as an ``audit break``,
the merge record names that break in ``resolves`` (the merge point) when the break's head (``head_seq`` /
``head_mac``) is the old copy's chain end, the chain it found a prefix of the old copy's, and the old copy's chain
verified (``MergeJob.resolves``): ``engine.audit.verify`` then lists the break with the merge, not as a break.

The field keys' check values (``field_key_checks``, engine/field_key_checks.py, not chained) the old copy holds
for key ids the ledger has none for are copied with the deals, one row per key id (``key_checks``).

The old copy's own chain must verify (``engine.audit.verify`` with the audit key); else the merge is refused,
unless ``force`` (the command's ``--force``): then the merge record says so (``old_chain``) and the command
warns loudly.  Events and dead letter states the old copy holds for deals the ledger also holds (a resolution,
a retry after the snapshot) are not copied: ``diverged`` names them for an operator to look at.
"""
from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from engine.audit import ZERO_MAC, verify as verify_chain
from engine.audit_cut import BREAK_STATE, _mac_at
from engine.ledger_store import (KEYS_FROM_EVENTS, LedgerError, append_chained, archive_of, chain_state, connect,
                                 schema_of)

MERGE_STATE = "ledger merge"
# the chained tables copied, in this order (a deal's config version before it, a letter after its deal)
TABLES = ("config_versions", "deals", "deal_steps", "deal_events", "dead_letters")
# columns outside the chain copied with their rows (not in engine.audit.CHAINED's canonical columns)
_NOT_COPIED = {"chain_seq", "mac", "sealed_whole"}


class MergeRefused(LedgerError):
    """The old copy cannot be merged (its chain does not verify, it is an archive, ...); nothing was written."""


@dataclass
class MergeResult:
    counts: dict[str, int] = field(default_factory=dict)     # table -> records copied
    first_seq: int | None = None                             # the seq range they were sealed at
    last_seq: int | None = None
    record_seq: int | None = None                            # the ``ledger merge`` record's seq; None: nothing done
    cut: str | None = None                                   # the cut the merge explains (instead of a break)
    diverged: list[str] = field(default_factory=list)        # what differs and was left as the ledger holds it
    twice: list[str] = field(default_factory=list)           # deal keys answered in both (a merged and a kept deal)
    resolves: list[dict[str, Any]] = field(default_factory=list)   # the ``audit break`` records it brings back
    key_checks: list[str] = field(default_factory=list)      # key ids whose field key check value was copied

    @property
    def copied(self) -> int:
        return sum(self.counts.values())


@dataclass
class MergeJob:
    old: Path
    key: bytes | None
    old_last_seq: int
    old_last_mac: bytes
    old_sha256: str
    old_chain: str                     # "verified", or what is wrong with it (merged with --force)
    dry_run: bool = False
    result: MergeResult = field(default_factory=MergeResult)

    # ------------------------------------------------------------ LedgerStore.open's hooks
    def explains(self, head: Any, last_seq: int, last_mac: bytes, con: Any) -> bool:
        """Whether the cut a writer open finds (the head kept outside names more than the ledger holds) is this
        restore: that head is the old copy's chain end, and the ledger's chain is a prefix of the old copy's."""
        from engine.audit_cut import sealed_end
        end = sealed_end(head, self.key)
        if end is None or end != (self.old_last_seq, self.old_last_mac) or last_seq >= end[0]:
            return False
        return self._prefix(con, last_seq, last_mac)

    def _prefix(self, con: Any, last_seq: int, last_mac: bytes) -> bool:
        """Whether the ledger's chain up to ``last_seq`` (its record there has ``last_mac``) is the old copy's: the
        old copy holds the same record (mac) at that seq (each mac is over the one before: the whole prefix)."""
        if last_seq == 0:
            return True
        old = self._alias(con)
        rows = con.execute(" UNION ALL ".join(f"SELECT mac FROM {old}.{t} WHERE chain_seq = ?" for t in TABLES),
                           [last_seq] * len(TABLES)).fetchall()
        return len(rows) == 1 and bytes(rows[0][0] or ZERO_MAC) == last_mac

    def resolves(self, con: Any) -> list[dict[str, Any]]:
        """The ``audit break`` records of the ledger this merge brings back (a writer opened the restored file
        before the merge, an engine ran on it): the break names the head kept outside as the old copy's chain end
        (``head_seq`` / ``head_mac``; a break recorded before 2026-11-28 names its seq only, in its text), the
        chain it found (``found_last_seq``) is a prefix of the old copy's, the old copy's chain verified, and no
        earlier ``ledger merge`` record resolves it already.  ``[{"seq", "at", "cut"}]``, named in the merge record
        (``resolves``): ``bsp audit verify`` lists each as resolved by the merge, not as a break."""
        if self.key is None or self.old_chain != "verified":
            return []
        done = {int(s) for (d,) in con.execute(
            f"SELECT detail FROM deal_events WHERE to_state = '{MERGE_STATE}'").fetchall()
            for s in (_loads(d).get("resolves") or []) if isinstance(s, int)}
        out: list[dict[str, Any]] = []
        for seq, at, detail in con.execute(
                f"SELECT chain_seq, \"at\", detail FROM deal_events WHERE to_state = '{BREAK_STATE}' "
                f"ORDER BY chain_seq").fetchall():
            d = _loads(detail)
            if seq in done or not isinstance(d.get("found_last_seq"), int):
                continue
            head_seq, head_mac = d.get("head_seq"), d.get("head_mac")
            if head_seq is None:        # recorded before the break named the head: its seq, from its text
                m = _REACHED.search(str(d.get("what") or ""))
                head_seq = int(m.group(1)) if m else None
                if head_seq != self.old_last_seq:
                    continue
            elif (head_seq, head_mac) != (self.old_last_seq, self.old_last_mac.hex()):
                continue
            found = d["found_last_seq"]
            if found >= self.old_last_seq or found >= seq:
                continue
            there, mac = _mac_at(con, found) if found else (True, ZERO_MAC)
            if not there or not self._prefix(con, found, mac or ZERO_MAC):
                continue
            out.append({"seq": seq, "at": at.isoformat() if hasattr(at, "isoformat") else str(at),
                        "cut": f"seq {found + 1}..{self.old_last_seq}"})
        return out

    def run(self, con: Any, key: bytes | None, seq: int, prev: bytes, cut: str | None) -> tuple[int, bytes]:
        """Copy what the ledger lacks, inside the caller's transaction; returns the new chain state."""
        res = self.result
        res.cut = cut
        old = self._alias(con)
        # what the ledger lacks, read before anything is copied (each table's copy is chosen by these lists)
        deals = [r[0] for r in con.execute(f"SELECT deal_id FROM {old}.deals EXCEPT SELECT deal_id FROM deals "
                                           f"ORDER BY 1").fetchall()]
        letters = [r[0] for r in con.execute(f"SELECT id FROM {old}.dead_letters EXCEPT SELECT id FROM dead_letters "
                                             f"ORDER BY 1").fetchall()]
        ids = sorted(set(deals) | set(letters))
        versions = [r[0] for r in con.execute(
            f"SELECT config_version FROM {old}.deals WHERE list_contains($1, deal_id) UNION SELECT config_version "
            f"FROM {old}.dead_letters WHERE list_contains($2, id) EXCEPT SELECT version FROM config_versions "
            f"ORDER BY 1", [deals, letters]).fetchall()]
        where = {"config_versions": ("list_contains($1, version)", versions),
                 "deals": ("list_contains($1, deal_id)", deals),
                 "deal_steps": ("list_contains($1, deal_id)", ids),
                 "deal_events": (f"list_contains($1, deal_id) AND to_state <> '{MERGE_STATE}'", ids),
                 "dead_letters": ("list_contains($1, id)", letters)}
        copied_deals = deals
        res.diverged = self._diverged(con, old)
        # audit breaks a writer recorded for the cut this copy brings back (read before anything is appended)
        res.resolves = self.resolves(con)
        res.key_checks = self._key_checks(con, old)
        first = seq + 1
        if not self.dry_run:
            texts = self._texts(con, old, versions)
        for table in TABLES:
            cols = [c for c in self._columns(con, table) if c not in _NOT_COPIED]
            have = set(self._columns(con, table, old))
            select = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in cols)
            kept = (f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.deal_id = o.deal_id AND t.seq = o.seq)"
                    if table in ("deal_steps", "deal_events") else "")
            cond, chosen = where[table]
            arrow = con.sql(f"SELECT {select} FROM {old}.{table} o WHERE {cond}{kept} ORDER BY chain_seq",
                            params=[chosen]).to_arrow_table()
            res.counts[table] = arrow.num_rows
            if self.dry_run or not arrow.num_rows:
                continue
            if table == "config_versions":
                con.execute(f"INSERT INTO config_files SELECT sha256, text FROM {old}.config_files WHERE "
                            f"list_contains(?, sha256) AND sha256 NOT IN (SELECT sha256 FROM config_files)",
                            [texts]).fetchall()
            seq, prev = append_chained(con, table, arrow, key, seq, prev)
        if self.dry_run:
            return seq, prev
        if res.key_checks:          # not chained: the field keys' check values the ledger lacks, one row per key id
            con.execute(f"INSERT INTO field_key_checks (key_id, token, created_at) SELECT key_id, arg_min(token, "
                        f"created_at), min(created_at) FROM {old}.field_key_checks WHERE list_contains(?, key_id) "
                        f"GROUP BY key_id ORDER BY key_id", [res.key_checks]).fetchall()
        if copied_deals:
            con.execute(f"INSERT INTO deal_keys (key, deal_id) SELECT key, deal_id FROM ({KEYS_FROM_EVENTS}) k "
                        f"WHERE list_contains(?, k.deal_id)", [copied_deals]).fetchall()
            res.twice = [f"key {k!r}: deal {a} (merged) and deal {b} (in the restored ledger)" for k, a, b in
                         con.execute("SELECT m.key, m.deal_id, o.deal_id FROM deal_keys m JOIN deal_keys o "
                                     "ON o.key = m.key AND o.deal_id <> m.deal_id JOIN deals d ON d.deal_id = "
                                     "o.deal_id WHERE list_contains(?, m.deal_id) AND NOT list_contains(?, "
                                     "o.deal_id) AND d.status <> 'duplicate' ORDER BY 1 LIMIT 20",
                                     [copied_deals, copied_deals]).fetchall()]
        if seq >= first:
            res.first_seq, res.last_seq = first, seq
        if seq < first and cut is None and not res.resolves:
            return seq, prev                   # nothing to copy, no cut, no break to resolve: nothing is written
        from engine.deal import new_deal_id
        from engine.ledger_store import append_events

        detail = {"what": "records of an old copy of this ledger missing here, sealed again at the end of the chain",
                  "from": str(self.old), "from_sha256": self.old_sha256, "from_last_seq": self.old_last_seq,
                  "from_last_mac": self.old_last_mac.hex(), "old_chain": self.old_chain,
                  "first_seq": res.first_seq, "last_seq": res.last_seq, "records": res.counts,
                  "cut": cut, "by": _who()}
        if res.resolves:
            detail["resolves"] = [b["seq"] for b in res.resolves]
        if res.key_checks:
            detail["field_key_checks"] = res.key_checks
        row = {"deal_id": new_deal_id(), "seq": 1, "at": datetime.now(timezone.utc), "from_state": None,
               "to_state": MERGE_STATE, "detail": orjson.dumps(detail).decode()}
        seq, prev = append_events(con, [row], key, seq, prev)
        res.record_seq = seq
        return seq, prev

    def close(self, con: Any) -> None:
        alias = getattr(self, "_attached", None)
        if alias is not None:
            con.execute(f"DETACH {alias}").fetchall()
            self._attached = None

    # ------------------------------------------------------------ helpers
    def _alias(self, con: Any) -> str:
        alias = getattr(self, "_attached", None)
        if alias is None:
            alias = f"bsp_merge_{secrets.token_hex(4)}"
            con.execute(f"ATTACH '{str(self.old).replace(chr(39), chr(39) * 2)}' AS {alias} (READ_ONLY)").fetchall()
            self._attached = alias
        return alias

    @staticmethod
    def _columns(con: Any, table: str, catalog: str | None = None) -> list[str]:
        cat = "current_database()" if catalog is None else "?"
        return [r[0] for r in con.execute(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_catalog = {cat} "
            f"ORDER BY ordinal_position", [table] + ([catalog] if catalog is not None else [])).fetchall()]

    @staticmethod
    def _texts(con: Any, old: str, versions: list[str]) -> list[str]:
        """The sha256 of every configuration text the versions to copy name (their manifests)."""
        rows = con.execute(f"SELECT manifest FROM {old}.config_versions WHERE list_contains(?, version) AND "
                           f"manifest IS NOT NULL", [versions]).fetchall()
        return sorted({h for (m,) in rows for h in orjson.loads(m).values()})

    @staticmethod
    def _key_checks(con: Any, old: str) -> list[str]:
        """The key ids the old copy holds a field key check value for and the ledger does not
        (engine/field_key_checks.py): values sealed under them after the snapshot come back with the deals, and
        their check value with them, so that a keyring with another key under such an id is refused here too."""
        have = {r[0] for r in con.execute(
            "SELECT table_catalog FROM information_schema.tables WHERE table_name = 'field_key_checks'").fetchall()}
        if old not in have:
            return []
        return [r[0] for r in con.execute(
            f"SELECT DISTINCT key_id FROM {old}.field_key_checks WHERE key_id NOT IN "
            f"(SELECT key_id FROM field_key_checks) ORDER BY 1").fetchall()]

    @staticmethod
    def _diverged(con: Any, old: str) -> list[str]:
        """Deals and dead letters both files hold whose later history differs (left as the ledger holds it)."""
        out = [f"deal {d}: the old copy has {n} event(s) after the restored ledger's last one of it "
               f"(last: {st}); not copied, look at them: bsp deals show {d} --ledger OLD_COPY"
               for d, n, st in con.execute(
                   f"SELECT o.deal_id, count(*), arg_max(o.to_state, o.seq) FROM {old}.deal_events o JOIN "
                   f"(SELECT deal_id, max(seq) AS s FROM deal_events GROUP BY deal_id) r ON r.deal_id = o.deal_id "
                   f"WHERE o.seq > r.s AND o.to_state <> '{MERGE_STATE}' GROUP BY o.deal_id ORDER BY 1 LIMIT 20"
               ).fetchall()]
        out += [f"dead letter {i}: status {a!r} in the old copy, {b!r} here (left as it is here); before any "
                f"`bsp dead retry` of it, see what the old copy says (bsp dead show {i} --ledger OLD_COPY)"
                for i, a, b in con.execute(
                    f"SELECT o.id, o.status, l.status FROM {old}.dead_letters o JOIN dead_letters l ON l.id = o.id "
                    f"WHERE o.status IS DISTINCT FROM l.status ORDER BY 1 LIMIT 20").fetchall()]
        return out


_REACHED = re.compile(r"says the chain reached seq (\d+) at")


def _loads(detail: Any) -> dict[str, Any]:
    try:
        d = orjson.loads(detail) if detail else {}
    except orjson.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare(old: Path, key: bytes | None, *, force: bool = False, dry_run: bool = False,
            max_breaks: int = 5) -> tuple[MergeJob, list[str]]:
    """The job for the old copy at ``old``, checked read-only, and the problems of its chain (``[]``: it
    verifies).  ``MergeRefused`` when it does not verify and not ``force``, or it cannot be merged at all."""
    old = Path(old)
    found, _ = schema_of(old)
    try:
        con = connect(old, read_only=True)
    except LedgerError as exc:
        raise MergeRefused(f"{old}: the old copy cannot be read: {exc}") from None
    try:
        if not found:
            raise MergeRefused(f"{old}: not a bsp ledger (no schema_version table): give the copy of the ledger "
                               f"taken aside before the restore")
        if archive_of(con) is not None:
            raise MergeRefused(f"{old}: an archive written by bsp ledger archive: its deals were moved out of the "
                               f"ledger on purpose, not lost; read it with --ledger {old}")
        last_seq, last_mac = chain_state(con)
        problems: list[str] = []
        if key is None:
            problems.append("no audit key: the old copy's chain cannot be checked")
        else:
            report = verify_chain(con, old, key, max_breaks=max_breaks)
            problems += [str(b) for b in report.breaks]
            problems += [f"records without a mac: {u}" for u in report.unprotected]
            problems += [str(m) for m in report.missing]
    finally:
        con.close()
    if problems and not force:
        raise MergeRefused(f"{old}: the old copy's own audit chain does not verify, so what it holds cannot be "
                           f"trusted as the engine wrote it:\n  " + "\n  ".join(problems[:max_breaks]) +
                           "\nNothing was merged. Look at it first (bsp audit verify --ledger "
                           f"{old}); to merge it anyway, knowing that, add --force (the merge record says so)")
    chain = "verified" if not problems else "NOT verified, merged with --force: " + "; ".join(problems[:3])
    return MergeJob(old, key, last_seq, last_mac, sha256_of(old), chain, dry_run=dry_run), problems


__all__ = ["MERGE_STATE", "MergeJob", "MergeRefused", "MergeResult", "prepare", "sha256_of"]
