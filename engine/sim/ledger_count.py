"""Counting lost requests: what the simulators sent against the replies they
got AND the deal rows the ledger holds for them.

A request is *lost* when it got no reply, or when no deal row of this run
(same configuration version, received since the run started, same inbound
channel) carries its key.  The key of a row is its deal reference; a request
rejected before its route's ``deal`` step, or taken by a route with no
``deal`` step, has no reference, so its key is read from the decoded request
(``trace_no``, ``request_id``, ``reference``); a frame that did not decode is
stored as hex, and its keys are the trailing run of letters and digits of
that text and the trailing run of digits (``GARBAGE000000000034`` ->
``000000000034``).  A request a batch client put in a file of its own, which the channel refused whole
(``all_or_nothing``: ``Service.refused_whole``), is a rejected deal of its own (kind ``refused_whole``); the
file's end deal, whose file is named after it, is found by it too (a ledger of a bsp before 2026-11-28
recorded no deal for such a request).  Nothing is assumed: each request is looked up.

A repeat (a request the simulator sent again, ``SentRequest.repeat``) is found
by a row of status ``duplicate`` with its key (one row per repeat), or else by
a row of its own: a repeat whose original freed its deal key (nothing of the
original reached a counterpart, e.g. its first call ``unreachable``:
engine.txn.keyhold) rightly runs as a new deal, recorded with the status it
ended with, so its key has one more row of another status than its original's
(counted apart, ``Accounting.ran_again``).  An original is found only by a row
of another status: an original answered as a duplicate is not found.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Collection, Iterable

import duckdb
import orjson

KEY_FIELDS = ("trace_no", "request_id", "reference", "ref")
_TRAILING = re.compile(rb"([0-9A-Za-z]+)\s*$")
_DIGITS = re.compile(rb"([0-9]+)\s*$")


@dataclass(frozen=True)
class SentRequest:
    service: str
    channel: str
    key: str
    replied: bool
    repeat: bool = False


@dataclass
class Accounting:
    sent: int = 0
    replies: int = 0
    in_ledger: int = 0
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    ran_again: int = 0      # repeats found by a row of their own: their original freed its key, they ran anew
    by_service: dict[str, int] = field(default_factory=dict)     # service -> lost


def row_keys(reference: str | None, request_json: str | None, *, keyring: Any = None,
             deal_id: str | None = None) -> list[str]:
    """The keys a deal row can be found by (see the module doc).  With a field keyring an undecodable frame
    is stored encrypted (``engine.fieldcrypt.protect_raw``, bound to ``deal_id``): ``keyring`` opens it."""
    if reference:
        return [reference.strip()]
    if not request_json:
        return []
    try:
        req = orjson.loads(request_json)
    except orjson.JSONDecodeError:
        return []
    if isinstance(req, str) and keyring is not None and deal_id is not None:
        from engine.fieldcrypt import KeyringError, decrypt_value, is_encrypted
        if is_encrypted(req):
            try:
                req = decrypt_value(req, keyring, context=deal_id, path="request")
            except (KeyringError, ValueError):
                return []
    if isinstance(req, dict):
        return [str(req[name]).strip() for name in KEY_FIELDS if req.get(name)][:1]
    if isinstance(req, str):                      # an undecodable frame, stored as hex
        try:
            raw = bytes.fromhex(req)
        except ValueError:
            return []
        refused = _refused_file(raw)
        if refused is not None:
            return [refused]
        return [m.group(1).decode("ascii") for m in (_TRAILING.search(raw), _DIGITS.search(raw)) if m]
    return []


def _refused_file(raw: bytes) -> str | None:
    """The stem of the file's name when ``raw`` is the end message (end_message = true: its summary as JSON,
    stored as the route read it, bytes) of a file refused whole: a batch client that puts a request in a file
    of its own, named after it (``Service.refused_whole``), finds the request by it; else None."""
    if not raw.startswith(b'{"name": '):
        return None
    try:
        summary = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(summary, dict) and summary.get("status") == "refused" and "archived" in summary \
            and isinstance(summary.get("name"), str):
        return Path(summary["name"]).stem
    return None


def ledger_rows(ledger_path: Path, config_version: str, since: datetime, *,
                keyring: Any = None) -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], int]]:
    """How many deal rows this run wrote that are not duplicates, by (inbound channel, key) (a
    ``Counter``: a repeat that ran as a new deal adds one to its original's), and how many ``duplicate``
    rows each (channel, key) has.  Rows of several configuration versions: add the counters up
    (``Counter.update``), not ``|`` (which keeps the larger count).  ``keyring``: the field keyring the engine
    wrote with, which opens an undecodable frame's stored bytes (``row_keys``)."""
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT channel, reference, CAST(request AS VARCHAR), status = 'duplicate', deal_id "
                           "FROM deals WHERE config_version = ? AND received_at >= ?",
                           [config_version, since]).fetchall()
    finally:
        con.close()
    keys: Counter[tuple[str, str]] = Counter()
    dups: dict[tuple[str, str], int] = {}
    for channel, reference, request, duplicate, deal_id in rows:
        for key in row_keys(reference, request, keyring=keyring, deal_id=deal_id):
            if duplicate:
                dups[(channel, key)] = dups.get((channel, key), 0) + 1
            else:
                keys[(channel, key)] += 1
    return keys, dups


def ledger_keys(ledger_path: Path, config_version: str, since: datetime) -> set[tuple[str, str]]:
    """(inbound channel, key) of every deal row this run wrote, duplicates included."""
    keys, dups = ledger_rows(ledger_path, config_version, since)
    return set(keys) | set(dups)


def count_lost(sent: Iterable[SentRequest], keys: Collection[tuple[str, str]], *, examples: int = 5,
               duplicates: dict[tuple[str, str], int] | None = None) -> Accounting:
    """``duplicates`` (from ``ledger_rows``): repeats are looked up there, each taking one row, and
    else in ``keys`` beyond the original's row (a ``Counter`` from ``ledger_rows``: each row past the
    first of a key is one repeat that ran as a new deal; a plain set has none); without ``duplicates``
    a repeat is looked up in ``keys`` as any request."""
    acc = Accounting()
    left = dict(duplicates or {})
    anew = {k: n - 1 for k, n in keys.items() if n > 1} if isinstance(keys, Counter) else {}
    for s in sent:
        acc.sent += 1
        acc.replies += s.replied
        if s.repeat and duplicates is not None:
            k = (s.channel, s.key)
            found = left.get(k, 0) > 0
            if found:
                left[k] -= 1
            elif anew.get(k, 0) > 0:        # its original freed the key: it ran as a new deal, its own row
                anew[k] -= 1
                found = True
                acc.ran_again += 1
        else:
            found = (s.channel, s.key) in keys
        acc.in_ledger += found
        if not (s.replied and found):
            acc.lost += 1
            acc.by_service[s.service] = acc.by_service.get(s.service, 0) + 1
            if len(acc.lost_examples) < examples:
                why = ("no reply, no duplicate deal row and no deal row of its own" if s.repeat and not (s.replied or found)
                       else "no duplicate deal row and no deal row of its own" if s.repeat and s.replied
                       else "no reply and no deal row" if not (s.replied or found)
                       else "no reply" if not s.replied else "no deal row")
                acc.lost_examples.append(f"{s.service} {s.channel} {s.key}: {why}")
    return acc


# A repeat the engine rightly did not answer with its original's reply, by the ledger's own record of it:
# * its key was freed (engine.txn.keyhold: nothing of the deal stayed at a counterpart; the deal's ``accepted``
#   event names it ``key_freed``): the repeat ran again as a new deal, with the reply that deal got, and may
#   have reached a counterpart again (an ``on refusal free`` debit presented again, a call made again after
#   its cancel): never paid twice, since nothing of the earlier deal stands;
# * it came past the key store's retention: recorded ``duplicate`` with a ``duplicate`` event
#   ``{"past_retention": true}``, answered 94, not run again (docs/transactions.md#key-retention).
_MARKS = """
SELECT d.channel, d.reference, CAST(d.request AS VARCHAR),
       bool_or(e.to_state = 'accepted' AND json_exists(e.detail, '$.key_freed')) AS freed,
       bool_or(e.to_state = 'duplicate' AND json_extract_string(e.detail, '$.past_retention') = 'true') AS past
FROM deals d JOIN deal_events e ON e.deal_id = d.deal_id
WHERE d.config_version = ? AND d.received_at >= ? AND e.to_state IN ('accepted', 'duplicate')
GROUP BY d.deal_id, d.channel, d.reference, CAST(d.request AS VARCHAR)
HAVING freed OR past
"""


@dataclass
class RepeatMarks:
    """What the ledger records of the keys a repeat rightly ran again for or was refused past the retention."""

    freed: Counter[tuple[str, str]] = field(default_factory=Counter)   # (channel, key): deals that freed it
    past_retention: set[tuple[str, str]] = field(default_factory=set)  # (channel, key): a repeat answered 94

    def freed_any(self, key: str) -> int:
        """Deals of this run, on any inbound channel, that freed ``key``."""
        return sum(n for (_, k), n in self.freed.items() if k == key)


def repeat_marks(ledger_path: Path, config_version: str, since: datetime) -> RepeatMarks:
    """The ``RepeatMarks`` of the deals this run wrote (as ``ledger_rows`` reads them)."""
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute(_MARKS, [config_version, since]).fetchall()
    finally:
        con.close()
    marks = RepeatMarks()
    for channel, reference, request, freed, past in rows:
        for key in row_keys(reference, request):
            if freed:
                marks.freed[(channel, key)] += 1
            if past:
                marks.past_retention.add((channel, key))
    return marks


@dataclass
class RepeatSplit:
    """The repeats sent, by what the engine rightly did with them; ``differs``: the defects (another reply
    than the original's, or none, with nothing in the ledger to say why)."""

    same: int = 0                 # answered with the original's reply byte for byte
    ran_again: int = 0            # the key was freed: ran again as a new deal (any reply)
    past_retention: int = 0       # past the key store's retention: 94, not run again
    differs: list[Any] = field(default_factory=list)


def split_repeats(repeats: Iterable[tuple[str, str, bool, Any]], marks: RepeatMarks) -> RepeatSplit:
    """``repeats``: (inbound channel, key, whether its reply differs from its original's, the repeat)."""
    out = RepeatSplit()
    for channel, key, differs, item in repeats:
        if marks.freed.get((channel, key), 0):
            out.ran_again += 1
        elif differs and (channel, key) in marks.past_retention:
            out.past_retention += 1
        elif differs:
            out.differs.append(item)
        else:
            out.same += 1
    return out


def split_twice(calls: Iterable[tuple[str, str, int]], marks: RepeatMarks) -> tuple[list[str], list[str]]:
    """(counterpart, reference, calls) seen more than once -> (defects, rightly again): a reference whose key
    (the reference, or its first word: ``REF cancel``) was freed by at least ``calls - 1`` deals reached the
    counterpart again for a deal that ran again, each time after nothing of the one before stood."""
    bad: list[str] = []
    again: list[str] = []
    for counterpart, ref, n in calls:
        freed = max(marks.freed_any(k) for k in {ref, ref.split(" ", 1)[0]})
        (again if freed >= n - 1 else bad).append(f"{counterpart} {ref} ({n} calls)")
    return bad, again
