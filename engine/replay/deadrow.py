"""The dead letters an exchange wrote, in a capture (``frames.dead_letters``), so a replay compares them.

A rejected or failed exchange is kept in the dead-letter store with its reason; operators retry from it. A
candidate that stops writing one (a rule turned off), writes one the recording did not (a new rule), or
writes it for another reason (kind ``timeout`` instead of ``refused``) changes what lands on the operators'
desk even when the reply is the same.  The tap stores, on the exchange's request row, a JSON list of the
dead letters the exchange wrote: ``{"route", "kind", "code", "reason"}`` each (``[]``: none), the reason
with its places in the route files as the file's name alone (``(at pay.route)``: the folder moves with the
candidate, the line with an edit above it) and masked as the exchange's frames are when the capture is.  A capture written before this column holds NULL:
its dead letters are not compared.  Pure: no engine.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from formats.classify import mask_text

FIELDS = ("kind", "code", "route", "reason")
# where in the route files the failure arose (``(at /srv/cand/pay.route:14:9)``, ``expect at ...:82:14 is
# false``): the folder moves with the candidate and the line with any line added above it, which is no change
# of what the exchange did; the file's name is kept
_PLACE = re.compile(r"[^\s()]*?([^/\\\s()]+\.route):\d+:\d+")


# what a replay's virtual endpoint adds to a recorded failure it gives again (engine.replay.replayer)
_AS_RECORDED = " (as recorded)"
# a counterpart's failure as its channel told it (``channel cp_host: cannot connect to 10.1.2.3:5000 ...``):
# a route test's ``answers unreachable`` / ``timeout`` / ``error`` gives the kind, not that text
_FAILED_CALL = re.compile(r"^(.*?: channel [^\s:]+)")
CALL_FAILURES = ("unreachable", "timeout", "lost")
# a deal's id (engine.deal.new_deal_id: 32 hex digits): every run makes new ones (``... used by deal X ...``)
_DEAL_ID = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])")
# where an `http listen` channel refused a request before any route (``(at POST /payments/1 from
# 127.0.0.1:57814)``): the client's port is new in every run, and a replay feeds the route, not the socket
_HTTP_WHERE = re.compile(r" \(at [A-Z]+ \S+ from [^\s()]+\)")


def reason_text(reason: str) -> str:
    """A dead letter's reason as stored and compared: its places in the route files as the file's name alone
    (``(at pay.route)``), a deal's id as ``<deal id>`` (each run makes its own), and without the ``(as
    recorded)`` a replay adds to a counterpart failure it gives again, nor the ``(at POST /path from
    HOST:PORT)`` of an `http listen` refusal (the port is new in every run)."""
    return _DEAL_ID.sub("<deal id>", _HTTP_WHERE.sub("", _PLACE.sub(r"\1", reason)).replace(_AS_RECORDED, ""))


def reason_head(reason: str, kind: str | None = None) -> str:
    """The reason before its first place in the route files (``rejected: invalid amount``): what a route test
    expects (its ``reason`` is "contains"), whatever folder the test's routes are in; for a counterpart that
    failed (``kind`` unreachable, timeout, lost), up to the channel (``unreachable: call auth: channel
    cp_host``): the test's ``answers unreachable`` does not repeat the channel's own words."""
    m = re.search(r"\s*\([^()]*\.route\b", reason)
    head = reason[:m.start()] if m else reason
    if kind in CALL_FAILURES:
        m = _FAILED_CALL.match(head)
        if m:
            head = m.group(1)
    return head


def values(letter: Any, known: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The compared fields of a ``DeadLetter`` (the reason masked with ``known`` when given)."""
    reason = getattr(letter, "reason", None)
    if isinstance(reason, str):
        reason = reason_text(reason)
        if known:
            reason = mask_text(reason, known)
    out = {"kind": getattr(letter, "error_kind", None), "code": getattr(letter, "error_code", None),
           "route": getattr(letter, "route", None), "reason": reason}
    return {k: (None if v is None else str(v)) for k, v in out.items()}


def dump(letters: Iterable[Any], known: Mapping[str, str] | None = None) -> str:
    return json.dumps([values(dl, known) for dl in letters], sort_keys=True)


def load(stored: str | None) -> list[dict[str, str | None]] | None:
    """The stored dead letters ([] none written; None: a capture of before the column), or ``ValueError``
    saying what is wrong with the value."""
    if stored is None:
        return None
    try:
        data = json.loads(stored)
    except ValueError as exc:
        raise ValueError(f"the exchange's dead letters are not JSON ({exc}), expected a list of objects") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError(f"the exchange's dead letters are {stored!r:.60}, expected a JSON list of objects")
    out = []
    for d in data:
        bad = [k for k in FIELDS if d.get(k) is not None and not isinstance(d.get(k), str)]
        if bad:
            raise ValueError(f"a dead letter of the exchange has {bad[0]} = {d[bad[0]]!r:.60}, expected a text or null")
        out.append({k: d.get(k) for k in FIELDS})
    return out
