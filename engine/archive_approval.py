"""Four eyes on ``bsp ledger archive`` (``ledger.archive`` in ``operators.four_eyes``; engine/four_eyes.py).

The archive runs on the ledger file with the engine stopped, where bsp can tell only the OS user, so it goes as
``dead.purge`` does: the first run records a request (who: the OS user; what: ``--before`` as an exact time and
``--out`` as an absolute path, with the plan: the records and deals that would move) and moves nothing; another
operator approves it through the running engine's admin API (``bsp approvals approve ID --live``: a named token,
not the requester); the next run with the same ``--before`` and ``--out`` (the engine stopped again) finds the
approval, claims it (``approval done``: ``archive started``, written before the first record is copied) and
archives, once: a claimed approval is not used again, except to finish the same archive after a crash (its
``OUT`` written, not anchored yet).  The request, written after the records it is about, stays in the live
ledger unless the archive takes the whole chain (no deal received on or after ``--before``): then it goes with
the records into the archive, and the live ledger keeps the claim.

    verdict = gate(job.store, policy, before, out, who, where)   # "run" (claim it), "resume", "requested"
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

ACTION = "ledger.archive"
STARTED = "archive started"


def params_of(before: datetime, out: Path) -> dict[str, str]:
    """The request's params that name the archive: ``--before`` as an exact UTC time (an age such as ``90d`` is
    fixed when asked: the run gives the time itself) and ``--out`` as an absolute path."""
    at = before.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return {"before": at, "out": str(Path(out).resolve())}


@dataclass
class Verdict:
    kind: str                       # run: approved, to be claimed; resume: claimed before; requested; waiting
    request: Mapping[str, Any]


def gate(store: Any, policy: Any, before: datetime, out: Path, plan: Mapping[str, Any], resume: bool,
         by: str | None) -> Verdict:
    """What four eyes allows this run (``store``: the archive job's open ledger store): ``run`` an approved
    request not claimed yet; ``resume`` (``resume``: ``OUT`` written by a run that stopped) a request claimed for
    this very archive; else a new request is recorded (``requested``), or one waits already (``waiting``)."""
    from engine.deal import new_deal_id
    from engine.four_eyes import Refused, listing, record_request, same_archive
    from engine.operator import os_user_not_by

    params = params_of(before, out)
    con = store.connection
    mine = [r for r in listing(con, every=True, limit=None, now=policy.now())
            if r.get("action") == ACTION and same_archive(r.get("params") or {}, params)]
    for r in mine:
        if r["state"] == "approved" and r.get("run") is None:
            return Verdict("run", r)
    if resume:
        for r in mine:
            if r["state"] == "approved" and str((r.get("run") or {}).get("outcome") or "").startswith(STARTED):
                return Verdict("resume", r)
    who, where = os_user_not_by(by)
    try:
        req = record_request(store, ACTION, new_deal_id(), {**params, **plan}, who, "ledger file", policy.expire,
                             now=policy.now, **where)
    except Refused as exc:
        if exc.why != "already_requested":
            raise
        waiting = next(r for r in mine if r["state"] == "pending")
        return Verdict("waiting", waiting)
    return Verdict("requested", req)


def claim(store: Any, request: Mapping[str, Any], first: int, cut: int, out: Path) -> None:
    """Claim the approval before the first record is copied (``approval done``, ``archive started``): it is not
    used again, whatever becomes of the run (a crash: the same command finishes the same archive)."""
    from engine.four_eyes import finish

    finish(store, str(request["id"]), True, f"{STARTED}: records {first}..{cut} to {Path(out).resolve()}")


def command(params: Mapping[str, Any]) -> str:
    """The command that carries an approved request out (the engine stopped)."""
    return f"bsp ledger archive --before {params.get('before')} --out {params.get('out')}"


__all__ = ["ACTION", "Verdict", "claim", "command", "gate", "params_of"]
