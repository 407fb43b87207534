"""Dead letters a stopped retry left claimed (status ``retrying``), settled on the next start.

A retry claims its letter first (``engine.deadletter.retry_once``: status ``retrying``, one update), naming in
the claim the id its deal will run under and the letter's status before (``retry_mark``); the deal is created
with that id (``conn.extra["deal_id"]``, ``engine.runtime.exchange.preset_deal_id``).  A process killed between
the claim and the outcome (``kill -9``, a crash, a power cut; Ctrl-C writes "interrupted" and the mark too)
leaves the letter ``retrying``.  On the next start, once the letter's channel is recovered (the journal loaded
into DuckDB, the deals the transaction log held in flight resolved: ``TxnManager.ready``), each such letter
claimed before this process started is settled from what the ledger knows::

    its deal has a row              the outcome a finished retry records: ``retried`` when it committed;
                                    ``retried`` naming the deal's own dead letter, where the message waits
                                    now, when it was refused again (``end_retry``); else (a duplicate) back to
                                    the status before (``new``), naming the deal and its reason
    the deal's row was refused      ``retried``, naming that dead letter (kind ``unrecorded``): the message
    (a dead letter of its id)       waits there
    no row, nothing of the deal     it never began (a deal that reaches a call is logged before the call
    in the transaction log          leaves; one without calls leaves nothing outside bsp): back to the status
                                    before, outcome "not run: ..."
    anything else                   left ``retrying``, its outcome saying what is unknown and what to check,
                                    and a warning naming the letter: the deal still in flight in the
                                    transaction log (its route gone, say), a claim that names no deal
                                    (written by an older bsp), a ledger
                                    run with ``--ledger-sync none`` (nothing proves a deal absent)

A letter whose channel the configuration no longer has is not looked at (its channel is never recovered).
The deal cannot have been archived: archiving moves a time prefix with its dead letters, and the deal is
younger than its letter, which is still here.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from engine.deadletter import _deal_outcome, duplicate_outcome, end_retry, read_retry_mark
from engine.txn.log import log_path

log = logging.getLogger("bsp.dead")

UNSETTLED = "unsettled"


def _stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


async def settle_retries(mgr: Any, channel: str, started: datetime) -> int:
    """Settle the letters of ``channel`` claimed before ``started`` (this process's start); returns how many
    were settled.  Never raises: a failure is logged and the letters stay as they are."""
    try:
        return await _settle(mgr, channel, started)
    except Exception:       # the ledger cannot be read or written now: the letters stay claimed, as before
        log.exception("dead letters of channel %s left retrying by a stopped retry: not settled on this start; "
                      "they stay retrying (bsp dead list --status retrying)", channel)
        return 0


async def _settle(mgr: Any, channel: str, started: datetime) -> int:
    ledger = mgr.ledger
    if not hasattr(ledger, "retrying_dead_letters"):      # a ledger without dead letters (a replay's)
        return 0
    rows = [r for r in await ledger.retrying_dead_letters(channel)
            if r["retried_at"] is not None and r["retried_at"] < started]
    if not rows:
        return 0
    marks = {r["id"]: read_retry_mark(r["retry_outcome"]) for r in rows}
    ends = await ledger.deal_ends([m[0] for m in marks.values() if m is not None])
    txn = mgr.log if (mgr._log is not None or log_path(ledger.path).exists()) else None
    durable = getattr(ledger, "sync", "duckdb") != "none"
    now = datetime.now(timezone.utc)
    settled = 0
    for r in rows:
        lid, mark = r["id"], marks[r["id"]]
        claimed = _stamp(r["retried_at"])
        if mark is None:
            await _unsettled(ledger, r, "its claim does not name the deal its retry ran (claimed by a bsp before "
                             f"2026-11-27, or through an injector that cannot name it): see whether a deal of "
                             f"channel {channel} ran it (`bsp deals --since {claimed}`)", now)
            continue
        deal_id, before = mark
        back = "retried" if before == "retried" else "new"
        end = ends.get(deal_id)
        if end is not None and end["status"] is not None:
            status, reason = end["status"], end["reason"]
            outcome = (duplicate_outcome(deal_id, reason) if status == "duplicate"
                       else _deal_outcome(status, deal_id, reason))
            became = "retried" if status == "committed" else back
            # refused again: its deal's own dead letter holds the message now, so this one becomes retried, its
            # outcome naming that one (one letter of the message waits: ``end_retry``)
            linked = await end_retry(
                ledger, lid, status=became, retried_at=r["retried_at"], deal_id=None if status == "committed" else
                deal_id, outcome=f"{outcome} (settled on restart at {_stamp(now)}: the retry claimed at {claimed} "
                                 f"stopped before recording it)")
            log.warning("dead letter %s: its retry (claimed %s) stopped before recording its outcome; its deal %s "
                        "ended %s: the letter is now %s%s (bsp deals show %s)", lid, claimed, deal_id, status,
                        "retried" if linked else became,
                        f", the message waits again as dead letter {linked}" if linked else "", deal_id)
            settled += 1
        elif end is not None:
            # its deal ran, the ledger refused its row and kept its message as dead letter ``deal_id`` (kind
            # unrecorded), which waits with the warning to check the counterparts first
            await end_retry(ledger, lid, status=back, retried_at=r["retried_at"], deal_id=deal_id,
                            outcome=f"failed: its deal {deal_id} ran but the ledger refused its row (dead letter "
                                    f"{deal_id}, kind unrecorded: see whether its calls reached the counterparts "
                                    f"before a retry) (settled on restart at {_stamp(now)}: the retry claimed at "
                                    f"{claimed} stopped before recording it)")
            log.warning("dead letter %s: its retry (claimed %s) stopped before recording its outcome; its deal %s "
                        "ran but its row was refused by the ledger: the message waits again as dead letter %s "
                        "(bsp dead show %s)", lid, claimed, deal_id, deal_id, deal_id)
            settled += 1
        elif txn is not None and (deal_id in txn.pending or deal_id in txn.unrecorded or deal_id in txn.accepted):
            await _unsettled(ledger, r, f"its deal {deal_id} is still in flight in the transaction log "
                             f"({log_path(ledger.path).name}; its route is not in this configuration, or its "
                             f"recovery failed: see the log above): it may have reached a counterpart", now)
        elif not durable:
            await _unsettled(ledger, r, f"its deal {deal_id} has no row, but this ledger runs with --ledger-sync none "
                             f"(not durable), so that proves nothing: see whether a deal of channel {channel} ran it "
                             f"(`bsp deals --since {claimed}`)", now)
        else:
            await ledger.mark_dead_letters(
                [lid], status=back, retried_at=r["retried_at"],
                retry_outcome=f"not run: the retry claimed at {claimed} stopped before its deal {deal_id} began "
                              f"(no row, nothing in the transaction log; settled on restart at {_stamp(now)}); "
                              f"released: retry it again")
            log.warning("dead letter %s: its retry (claimed %s) stopped before its deal %s began: released to %s; "
                        "retry it again (bsp dead retry %s)", lid, claimed, deal_id, back, lid)
            settled += 1
    return settled


async def _unsettled(ledger: Any, row: dict[str, Any], why: str, now: datetime) -> None:
    """Leave the letter ``retrying`` (never run twice), its outcome and a warning saying why and what to do."""
    lid, note = row["id"], row["retry_outcome"] or ""
    todo = (f"it stays retrying (not retried by filters; a retry by id is refused); {why}; if it did not run, "
            f"`bsp dead retry {lid} --again`")
    log.warning("dead letter %s: a retry claimed it at %s and stopped before recording its outcome; %s",
                lid, _stamp(row["retried_at"]), todo)
    if note.startswith(UNSETTLED):
        return                              # said on an earlier start
    mark = read_retry_mark(note)
    from engine.deadletter import retry_mark
    await ledger.mark_dead_letters(
        [lid], status="retrying", retried_at=row["retried_at"],
        retry_outcome=f"{UNSETTLED} since {_stamp(now)}: the retry claimed at {_stamp(row['retried_at'])} stopped "
                      f"before recording its outcome; {todo}" + (f" {retry_mark(*mark)}" if mark else
                                                                  f" (its claim said: {note})"))
