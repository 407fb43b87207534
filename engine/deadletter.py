"""Dead letters: every exchange rejected or failed (no route took it, it did not decode, a rule or a
counterpart refused it ...), and their retry and purge.

The runtime stores them with ``await ledger.dead_letter(DeadLetter(...))``.
A retry re-injects the raw message, exactly as received, into its channel
through the configuration running **now** (not the one that failed it)::

    result = await retry(letter, injector, keyring=keyring)

``injector`` is what the runtime provides: ``async (channel, raw) -> outcome``
(``switchboard_injector(sb)`` builds one from a running ``Switchboard``; the live engine
gives it its channels' handlers, ``switchboard_injector(gen.sb, engine.refs)``).
``retry`` never raises for a failed re-injection: the outcome says what happened.
A dead letter of kind ``unauthenticated`` (its signature or MAC was missing or
wrong) is not re-injected: its outcome says so.
"""
from __future__ import annotations

import dataclasses
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from engine.fieldcrypt import Keyring, KeyringError

Injector = Callable[[str, bytes], Awaitable[Any]]

__all__ = ["Injector", "RetryResult", "retry", "retry_once", "refusal", "raw_bytes", "switchboard_injector", "purge",
           "mark_retried", "retry_mark", "read_retry_mark", "waits_again", "successor", "WAITS_AGAIN"]

# what a claim (and an interrupted retry's note) says of the retry: the id its deal runs under and the letter's
# status before the claim, so that a start after the retry's process stopped midway settles the letter from
# the ledger (engine/txn/retry_settle.py)
_MARK = re.compile(r"\[retry deal ([0-9a-f]{32}); status before: (new|retried|retrying)\]")


# what a letter's outcome says when its retry's deal was refused again (or its row refused by the ledger) and left
# a dead letter of its own: the message waits there now, and this letter is ``retried`` (one waiting letter per
# message; ``bsp dead show`` tells the chain both ways: engine.ledger_query.letter_chain)
WAITS_AGAIN = "the message waits again as dead letter "
_WAITS = re.compile(re.escape(WAITS_AGAIN) + r"([0-9a-f]{32})")


def waits_again(outcome: str, letter_id: str) -> str:
    """``outcome`` with the link to the letter where the message waits now."""
    return f"{outcome}; {WAITS_AGAIN}{letter_id}"


def successor(outcome: str | None) -> str | None:
    """The id of the dead letter a retry left the message in (``waits_again``), or None."""
    found = _WAITS.search(outcome or "")
    return found.group(1) if found else None


def retry_mark(deal_id: str, before: str) -> str:
    return f"[retry deal {deal_id}; status before: {before}]"


def read_retry_mark(note: str | None) -> tuple[str, str] | None:
    """(deal id, status before) of a claim's note written by ``retry_mark``, or None (a claim by an older bsp,
    or through an injector that cannot name its deal)."""
    found = _MARK.search(note or "")
    return (found.group(1), found.group(2)) if found else None


@dataclass(frozen=True)
class RetryResult:
    id: str
    ok: bool
    outcome: str          # "committed (deal ID)", "rejected (deal ID): ...", "failed: ...", "duplicate: ...", ...
    at: datetime
    skipped: bool = False  # not run: a retry already went through or is running (``retry_once``)


def raw_bytes(letter: Mapping[str, Any], keyring: Keyring | None) -> bytes | None:
    """The message as received; decrypted when it was stored encrypted.  None once purged.

    Raises ``KeyringError`` naming the dead letter when it is encrypted and the key is missing.
    """
    raw = letter.get("raw")
    if raw is None:
        return None
    raw = bytes(raw)
    if letter.get("raw_key") is None:
        return raw
    if keyring is None:
        raise KeyringError(f"dead letter {letter['id']}: its message is encrypted with key "
                           f"{letter['raw_key']!r}; give the field keyring to read it (--deployment platform.yaml with ledger.field_keys, or BSP_FIELD_KEYS_FILE / BSP_FIELD_KEYS)")
    try:
        return keyring.decrypt(raw.decode(), f"dead|{letter['id']}".encode())
    except KeyringError as exc:
        raise KeyringError(f"dead letter {letter['id']}: {exc}") from None


async def retry(letter: Mapping[str, Any], injector: Injector, *, keyring: Keyring | None = None,
                deal_id: str | None = None, release: Mapping[str, Any] | None = None) -> RetryResult:
    """Re-inject one dead letter (a row of ``query_dead_letters(..., with_raw=True)``).  ``deal_id``: the id
    its deal runs under, for an injector that takes one (``names_deal``: ``switchboard_injector``'s).
    ``release``: the letter of a deal held by a screening runs only as its release (``engine.deal_hold``), which
    says what the compliance officer released (``{"deal", "hits"}``, read by the ``screen`` step)."""
    now = datetime.now(timezone.utc)
    lid = letter["id"]
    if letter.get("status") == "purged":
        return RetryResult(lid, False, "purged: the message was deleted, nothing to retry", now)
    if letter.get("error_kind") == "unauthenticated":
        # an HTTP signature travels in a header, outside the stored message: re-injected, the request
        # would run without the check it failed.  The sender signs it again and sends it again.
        return RetryResult(lid, False, "refused: the message failed authentication (kind unauthenticated); "
                                       "a retry would run it without the signature it lacked; ask the sender "
                                       "to send it again", now)
    if letter.get("error_kind") == "held" and release is None:
        return RetryResult(lid, False, f"refused: the deal was held for a compliance officer by a screening (kind "
                                       f"held); it runs again only when released: `bsp deals resolve {lid} "
                                       f"--outcome release --note ...` (or reject it: --outcome reject)", now)
    if letter.get("error_kind") == "refused_whole":
        # a record of a file refused whole (all_or_nothing, its control totals, its header: engine/channels/
        # file_precheck.py), a record no route reads included: run alone it would run part of a refused file
        return RetryResult(lid, False, "refused: the record was not run because its file was refused whole "
                                       "(kind refused_whole: all_or_nothing, its control totals or its header; "
                                       "the letter's reason says which): run alone it would run part of a file "
                                       "that runs whole or not at all; have the sender correct the file and drop "
                                       "it again (its records then run), and purge this letter once it has (bsp "
                                       f"dead purge {lid})", now)
    if release is not None and not getattr(injector, "names_deal", False):
        return RetryResult(lid, False, "failed: this injector cannot carry a release (engine.deal_hold)", now)
    routes = getattr(injector, "routes", None)
    route = letter.get("route")
    if route is not None and routes is not None and route not in routes:
        # re-injected, the message would meet no route (or another one, unawares): nothing runs, the letter waits
        return RetryResult(lid, False, f"failed: route {route!r}, which failed this letter, is not in the current "
                                       f"configuration (routes: {', '.join(sorted(routes)) or 'none'}); nothing "
                                       f"ran and the letter still waits: load a configuration with route {route!r} "
                                       f"(bsp reload), then retry it, or purge it (bsp dead purge {lid}) and have "
                                       f"its sender send it again", now)
    try:
        raw = raw_bytes(letter, keyring)
    except KeyringError as exc:
        return RetryResult(lid, False, f"failed: {exc}", now)
    if raw is None:
        return RetryResult(lid, False, "failed: the stored message is gone", now)
    # the route that failed it, to an injector that takes it: a file's end message is offered to that route again
    # with its file.* (``engine.channels.file_end.end_origin``), not to the record routes
    # (and the letter, whose id is its deal's: the calls that deal made are not made again, file_end_calls)
    named = {"route": route, "letter": lid} if route is not None and getattr(injector, "names_route", False) else {}
    try:
        if release is not None:
            outcome = await injector(letter["channel"], raw, deal_id=deal_id, release=release,  # type: ignore[call-arg]
                                     **named)
        elif deal_id is not None and getattr(injector, "names_deal", False):
            outcome = await injector(letter["channel"], raw, deal_id=deal_id, **named)     # type: ignore[call-arg]
        else:
            outcome = await injector(letter["channel"], raw, **named)
    except Exception as exc:   # the injector is the runtime's; its failure is this retry's outcome
        return RetryResult(lid, False, f"failed: {type(exc).__name__}: {exc}", now)
    text = str(outcome)
    return RetryResult(lid, text.split(" ", 1)[0] == "committed" or text.startswith("ok"), text, now)


def refusal(row: Mapping[str, Any], *, again_hint: str = "add --again") -> str:
    """Why a dead letter is not retried again: its status, when its retry ran (or began) and what it produced
    (the outcome names the new deal: ``committed (deal ID)``), and what ``--again`` risks."""
    at = row.get("retried_at")
    when = at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(at, datetime) else str(at)
    outcome = row.get("retry_outcome") or "no outcome recorded"
    if row.get("status") == "retrying":
        return (f"refused: status retrying: a retry of it began at {when} ({outcome}) and has not recorded its "
                f"outcome yet; it is not run twice. If that retry's process stopped before it ended, the next start "
                f"settles it from its deal when it can (docs/ledger.md#dead-letters); otherwise see whether its "
                f"deal ran (`bsp deals --since` that time), then {again_hint} to run it again")
    nxt = successor(row.get("retry_outcome"))
    if nxt is not None:
        waits = row.get("successor_status")
        if waits in ("new", "retrying"):
            return (f"refused: status retried: retried at {when}: {outcome}; retry that one (`bsp dead retry "
                    f"{nxt}`), not this one: the message waits there (status {waits}), so this one is not run "
                    f"again, even with --again (the message would run twice)")
        return (f"refused: status retried: retried at {when}: {outcome} (status {waits or 'unknown'} now); it is "
                f"not run again. {again_hint} to re-inject it anyway: a route with a deal key answers the repeat "
                f"as a duplicate, but on a route without one the exchange runs a second time")
    return (f"refused: status retried: already retried at {when}: {outcome}; it is not run again. {again_hint} "
            f"to re-inject it anyway: a route with a deal key answers the repeat as a duplicate, but on a route "
            f"without one the exchange runs a second time")


async def retry_once(ledger: Any, letter: Mapping[str, Any], injector: Injector, *, keyring: Keyring | None = None,
                     again: bool = False, who: str = "bsp dead retry", again_hint: str = "add --again",
                     by: str | None = None, via: str = "admin API", by_what: str = "token",
                     deal_id: str | None = None, release: Mapping[str, Any] | None = None) -> RetryResult:
    """Claim the letter in the ledger (``Ledger.claim_dead_letter``: status ``retrying``, atomic), ``retry`` it,
    record the outcome: ``retried`` when it went through, else the status it had.  A letter already
    ``retried``, or whose retry is running, is not run unless ``again``: the result is ``skipped``,
    its outcome the ``refusal``.  ``ledger`` is an open ``engine.ledger.Ledger`` (the engine's, or this
    process's).  ``by``: who asked, recorded with the outcome (``retry_outcome``): the admin token's name,
    "committed (deal ...) (admin API, token 'ops')"; or, ``bsp dead retry`` on the ledger file (``via``
    "bsp dead retry", ``by_what`` "by"), its --by or the OS user: "committed (deal ...) (bsp dead retry, by
    'alice')" (engine/operator.py)."""
    import os
    import socket

    from engine.deal import new_deal_id

    now = datetime.now(timezone.utc)
    note = f"in progress: {who} (pid {os.getpid()} on {socket.gethostname()}) since {now:%Y-%m-%d %H:%M:%S} UTC"
    # the deal's id is chosen now and named in the claim (durable before anything runs), so that if this
    # process stops midway the next start finds what became of it (engine/txn/retry_settle.py); only for
    # an injector that runs the deal under a given id
    if getattr(injector, "names_deal", False):
        deal_id = deal_id or new_deal_id()      # a release names it first, in its event (engine.deal_hold)
    else:
        deal_id = None
    claimed, row = await ledger.claim_dead_letter(letter["id"], at=now, note=note, again=again, deal_id=deal_id)
    if not claimed:
        if row is not None and row["status"] in ("retried", "retrying"):
            return RetryResult(letter["id"], False, refusal(row, again_hint=again_hint), now, skipped=True)
        # purged (retry says so, nothing is injected) or gone since it was read
        return await retry(dict(letter, status="purged"), injector, keyring=keyring) if row is not None else \
            RetryResult(letter["id"], False, "failed: the dead letter is no longer in the ledger", now)
    try:
        res = await retry(letter, injector, keyring=keyring, deal_id=deal_id, release=release)
    except BaseException as exc:
        # stopped while its deal ran (the engine stopping, Ctrl-C on bsp dead retry): whether it went through
        # is unknown, so the letter stays ``retrying`` (refused unless again), but no longer says "in progress"
        # of a retry that ended: the note says it was interrupted and what to check
        import trio

        why = "cancelled" if isinstance(exc, trio.Cancelled) else type(exc).__name__
        with trio.CancelScope(shield=True):
            try:
                await ledger.mark_dead_letters(
                    [letter["id"]], status="retrying", retried_at=now,
                    retry_outcome=f"interrupted ({why}) while its deal ran: {who} stopped at "
                                  f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC before the outcome was "
                                  f"known; see whether its deal ran (`bsp deals --since {now:%Y-%m-%dT%H:%M:%S}Z`)"
                                  + (f" {retry_mark(deal_id, row['status'])}" if deal_id is not None else ""))
            except Exception:     # the ledger cannot be written: the claim's note stays; what stopped it goes on
                pass
        raise
    # not through: back to what it was (a stale ``retrying`` taken with ``again``: to new), unless its deal left a
    # dead letter of its own (refused again, or its row refused by the ledger): the message waits there now, and
    # this letter becomes ``retried``, its outcome naming that one (``end_retry``: checked and written in one
    # transaction, so one letter of the message waits).  A retry stopped midway (the process killed;
    # interrupted: above) leaves ``retrying``, which the next retry refuses and the next start settles
    back = "retried" if row["status"] == "retried" else "new"
    outcome = res.outcome if by is None else f"{res.outcome} ({via}, {by_what} {by!r})"
    status = "retried" if res.ok else back
    linked = await end_retry(ledger, res.id, status=status, retried_at=res.at, outcome=outcome,
                             deal_id=None if res.ok else (deal_id or _outcome_deal(res.outcome)))
    if linked is not None:
        res = RetryResult(res.id, res.ok, waits_again(res.outcome, linked), res.at, res.skipped)
    return res


_DEAL_IN = re.compile(r"\(deal ([0-9a-f]{32})\)")


def _outcome_deal(outcome: str) -> str | None:
    """The new deal an outcome names (``rejected (deal ID): ...``), for an injector that cannot name it first."""
    found = _DEAL_IN.search(outcome or "")
    return found.group(1) if found else None


async def end_retry(ledger: Any, letter_id: str, *, status: str, retried_at: datetime, outcome: str,
                    deal_id: str | None) -> str | None:
    """Record a retry's outcome on its letter (``Ledger.end_retry``): ``status``, unless the retry's deal
    ``deal_id`` left a dead letter of its own, then ``retried`` and the outcome linking to it.  Returns the id
    of that letter, or None.  A ledger without ``end_retry`` (another implementation) records ``status``."""
    end = getattr(ledger, "end_retry", None)
    if end is not None:
        return await end(letter_id, status=status, retried_at=retried_at, outcome=outcome, deal_id=deal_id)
    await ledger.mark_dead_letters([letter_id], status=status, retried_at=retried_at, retry_outcome=outcome)
    return None


# a keyed route answers a repeated deal key with the original answer and runs nothing again: a retry of a
# request whose key an earlier deal keeps (it committed, or something of it may stay at a counterpart:
# docs/transactions.md "Which failures keep the key") is such a repeat.  A failed deal of which nothing
# reached a counterpart frees its key: its retry runs as a new deal.
DUPLICATE = ("duplicate: the route's deal key is kept by an earlier deal, so its answer was repeated and nothing "
             "ran again (a keyed deal that may have left something at a counterpart is never run twice)")


def duplicate_outcome(deal_id: str | None, reason: str | None) -> str:
    """The outcome of a retry answered as a repeat: ``DUPLICATE``, then the duplicate deal and its reason as the
    ledger stores it (which deal keeps the key and why, and what to do: ``engine.txn.keyhold``)."""
    if not reason:
        return DUPLICATE + "; settle it with the counterpart instead (`bsp deals show` tells the deal's story)"
    return f"{DUPLICATE}: deal {deal_id}: {reason}" if deal_id else f"{DUPLICATE}: {reason}"


@asynccontextmanager
async def offline_injector(program: Any, registry: Any, led: Any, overrides: Mapping[str, Any]
                           ) -> AsyncIterator[Injector]:
    """An injector over ``program`` run in this process against its counterparts (``bsp dead retry`` and a
    held deal released without ``--live``): the configuration recorded in ``led``, its outbound channels
    started, and the task that writes what waits for a transaction log that could not be written (the
    switchboard is not run: its dispatchers are fed directly).  Its channels stop when the block ends."""
    import trio

    from engine.runtime.switchboard import Switchboard
    from engine.txn import backlog

    await led.record_config(program.version, program.sources)
    sb = Switchboard(program, registry, ledger=led, overrides={k: dict(v) for k, v in overrides.items()})
    async with trio.open_nursery() as nursery:
        for ch in sb.channels.values():
            if ch.role in ("connect", "both"):
                await nursery.start(ch.run)
        backlog.keep_all_up(nursery, sb.dispatchers.values())
        try:
            yield switchboard_injector(sb)
        finally:
            nursery.cancel_scope.cancel()


def switchboard_injector(sb: Any, handlers: Mapping[str, Any] | None = None) -> Injector:
    """An injector over a ``Switchboard`` whose outbound channels run: the retry becomes a deal.

    ``handlers``: the handler of each inbound channel to go through instead of the switchboard's
    dispatchers (a live engine's ``HandlerRef``s: the retry then counts as a batch of the generation
    it runs on, which a reload waits for, and in the channel's figures).  The outcome is the new
    deal's status (``committed (deal ID)``; ``rejected (deal ID): REASON`` / ``failed (deal ID): REASON``, the new
    deal and why, as the ledger stores it; or ``duplicate: ...`` when a deal key answered it, with the
    reason the earlier deal keeps its key: ``duplicate_outcome``), as the
    dispatcher reports it for that message (``conn.extra["outcomes"]`` and ``["deals"]``), whatever other
    traffic does meanwhile.
    """
    from engine.channels.base import ConnInfo

    async def inject(channel: str, raw: bytes, deal_id: str | None = None,
                     release: Mapping[str, Any] | None = None, route: str | None = None,
                     letter: str | None = None) -> str:
        from engine.channels.file_end import end_origin
        from engine.channels.file_end_calls import done_of

        inbound = handlers if handlers is not None else sb.dispatchers
        disp = inbound.get(channel)
        if disp is None:
            known = ", ".join(sorted(inbound)) or "none"
            return (f"failed: the current configuration has no inbound channel {channel!r} (inbound: {known}); "
                    f"nothing ran and the letter still waits: load a configuration with channel {channel!r} "
                    f"(bsp reload), then retry it, or purge it and have its sender send it again")
        outcomes: list[tuple[str, bool]] = []
        deals: list[tuple[str | None, str | None]] = []
        extra: dict[str, Any] = {"outcomes": outcomes, "deals": deals}
        if deal_id is not None:
            extra["deal_id"] = deal_id        # the deal runs under the id its claim names (``preset_deal_id``)
        if release is not None:
            from engine.steps.screen import RELEASE_KEY

            extra[RELEASE_KEY] = dict(release)    # what the compliance officer released (engine.deal_hold)
        # a file's end message (its letter's route one whose `when` reads file.end): its file.* again, so that
        # that route takes it, header and trailer from the channel's index (engine/channels/file_end.py), and
        # without the calls its failed deal made (engine/channels/file_end_calls.py); not run with its header
        # and trailer null when the index that noted them is gone
        end = await end_origin(getattr(sb.dispatchers.get(channel), "routes", ()), getattr(sb, "channels", None),
                               channel, route, raw)
        if end is not None:
            if end.missing is not None:
                return f"failed: {end.missing}"
            done = await done_of(getattr(sb, "ledger", None), letter)
            if done:
                end = dataclasses.replace(end, done=done)
            extra["origins"] = [end]
        got = await disp.handle(ConnInfo(channel, "bsp dead retry", 0, extra=extra), [raw])
        if release is not None and deal_id is not None:
            late[deal_id] = got[0] if got else None      # a released deal's reply: ``deliver`` (engine.deal_hold)
        if not outcomes:
            return "no reply"
        status, recorded = outcomes[0]
        if recorded in ("logged", "memory"):      # acted on; its row waits for the ledger (engine/txn/late_record.py)
            where = f" (deal {deals[0][0]})" if deals and deals[0][0] else ""
            return (f"{status}{where}, its row not written yet: its calls went out but the ledger could not be "
                    f"written; the engine writes the row once it can (event reply_not_sent): do not retry again")
        if not recorded:
            return (f"failed: its deal ({status}) could not be written to the ledger, so no answer was given; "
                    f"see the engine's log, then retry again")
        if status == "duplicate":
            return duplicate_outcome(*(deals[0] if deals else (None, None)))
        return _deal_outcome(status, *(deals[0] if deals else (None, None)))

    late: dict[str, bytes | None] = {}

    async def deliver(channel: str, deal_id: str) -> dict[str, Any] | None:
        """The reply of the released deal ``deal_id`` to ``channel``'s own reply address (engine/channels/late_reply.py);
        None when it has none."""
        from engine.channels.late_reply import deliver_late

        return await deliver_late(sb, channel, late.pop(deal_id, None))

    inject.names_deal = True      # type: ignore[attr-defined]
    inject.names_route = True     # type: ignore[attr-defined]
    inject.deliver = deliver      # type: ignore[attr-defined]
    program = getattr(sb, "program", None)
    if program is not None:       # the routes of the configuration it runs: a letter whose route is gone waits
        inject.routes = frozenset(r.name for r in program.routes)     # type: ignore[attr-defined]
    return inject


def _deal_outcome(status: str, deal_id: str | None, reason: str | None) -> str:
    """The outcome of a retry whose new deal is ``status``: ``committed (deal ID)``, or for a deal refused
    again ``rejected (deal ID): REASON`` / ``failed (deal ID): REASON``, the reason as the ledger stores it
    (classified values masked), so that the operator sees which deal and why without another command."""
    where = f" (deal {deal_id})" if deal_id else ""
    if status == "committed":
        return status + where
    return f"{status}{where}: {reason}" if reason else f"{status}{where}"


def mark_retried(path: str | Path, results: Sequence[RetryResult], *, audit_key: bytes | None = None) -> int:
    """Record retry outcomes (status ``retried`` when it went through, or when the retry's deal left a dead letter
    of its own: ``LedgerStore.end_retry``) in a ledger no engine holds."""
    from engine.ledger_store import LedgerStore

    store = LedgerStore.open(Path(path), audit_key)
    try:
        n = 0
        for r in results:
            store.end_retry(r.id, status="retried" if r.ok else "new", retried_at=r.at, outcome=r.outcome,
                            deal_id=None if r.ok else _outcome_deal(r.outcome))
            n += 1
        return n
    finally:
        store.close()


def purge(path: str | Path, ids: Sequence[str], *, audit_key: bytes | None = None,
          by: str | None = None, four_eyes: bool = False) -> int:
    """Delete the stored messages of these dead letters (status ``purged``).

    Who purged is recorded in each letter's chained status event (``by``: ``by`` else the OS user running
    this, ``via`` ``bsp dead purge``, the host, and the OS user beside a ``by`` naming another), as a
    retry's outcome names who retried: the message is destroyed, so who did it must stay.  ``four_eyes``: the
    purge of letters whose purge another operator approved (``dead.purge``): who is the OS user, what bsp can
    tell (anyone can type ``--by``), ``by`` kept beside as ``stated_by``, as the request was recorded
    (``engine.operator.os_user_not_by``; until 2026-11-28 the purge named the ``--by`` as who); without,
    ``engine.operator.by_else_os_user``.

    The row stays as a tombstone (``raw_sha256`` and the audit chain intact);
    only the message bytes go: from the table, then from the file, which is
    rewritten with its live data only (``engine.ledger_compact``; DuckDB would
    otherwise keep the old bytes in free blocks).  Returns how many rows were
    purged.  Raises ``LedgerError`` when the file cannot be rewritten (the rows
    are purged then, and the message says so and what to do).
    """
    from engine.ledger_compact import compact
    from engine.ledger_store import LedgerError, LedgerStore

    from engine.operator import by_else_os_user, os_user_not_by

    path = Path(path)
    who, where = (os_user_not_by if four_eyes else by_else_os_user)(by)
    store = LedgerStore.open(path, audit_key)
    try:
        n = store.update_dead_letters(list(ids), status="purged", drop_raw=True,
                                      actor={"by": who, "via": "bsp dead purge", **where})
    finally:
        store.close()
    if n:
        try:
            compact(path)
        except LedgerError as exc:
            raise LedgerError(f"{n} dead letter(s) purged from the table, but their old bytes stay in the "
                              f"file's free blocks: {exc}; then rewrite the file as docs/ledger.md#dead-letters "
                              f"shows (no engine running)") from None
    return n
