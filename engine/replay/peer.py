"""The peer a channel authenticated (``peer.*`` in the route, ``ConnInfo.who``) in a capture.

The tap stores it with the request row of every inbound exchange that had one (``frames.peer``, a JSON
object ``{"cn": ..., "san": [...], "address": ...}``, the values of ``engine.tls.peer_values``); a replay
gives it back to the route as ``peer.*``, so a deal key built from ``peer.cn`` is the same; ``--to-tests``
writes it as the test's ``peer { ... }`` clause.  A capture of before it was stored replays with ``peer.*``
null, as a channel without a peer gives them.
"""
from __future__ import annotations

import json
from typing import Any

from dsl.peer import PEER_FIELDS


def dump(who: dict[str, Any] | None) -> str | None:
    return None if who is None else json.dumps({k: who.get(k) for k in PEER_FIELDS}, sort_keys=True)


def load(text: str | None) -> dict[str, Any] | None:
    """The stored peer, or None (none stored).  ``ValueError`` saying what is wrong for a value that is not
    one (a capture edited by hand, or damaged)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the request's peer is not JSON ({exc}), expected an object {{\"cn\": ..., \"san\": "
                         f"[...], \"address\": ...}}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the request's peer is a JSON {type(data).__name__}, expected an object")
    for k in ("cn", "address"):
        if data.get(k) is not None and not isinstance(data[k], str):
            raise ValueError(f"the request's peer has {k} = {data[k]!r:.60}, expected a text or null")
    san = data.get("san")
    if san is not None and not (isinstance(san, list) and all(isinstance(v, str) for v in san)):
        raise ValueError(f"the request's peer has san = {san!r:.60}, expected a list of texts")
    return {"cn": data.get("cn"), "san": list(san or []), "address": data.get("address")}


def clause(text: str | None, literal: Any) -> str:
    """`` peer { cn = "PARTNER-A"  address = "10.1.2.3:51012" }``: the recorded peer as a route test gives it,
    or "" (none recorded); ``literal`` writes a value in the route language."""
    who = load(text)
    if who is None:
        return ""
    shown = [f"{k} = {literal(who[k])}" for k in PEER_FIELDS if who[k]]
    return f" peer {{ {'  '.join(shown)} }}" if shown else ""
