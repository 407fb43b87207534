"""``all_or_nothing = true`` on a ``file watch`` channel: a file runs whole or not at all.

After the file's header and trailer checks (control totals) and before any record runs, every data record is
checked against the route that takes it (``engine.runtime.precheck``: decoded, its ``when``, then its leading
``let`` / ``deal`` / ``validate`` steps; nothing sent, nothing recorded), in batches of the channel's
``batch``.  When one or more fail, no record runs: the file is refused whole (``file.status`` "refused" in
its end message, the file to ``error/``), and the reason's first problem names each failing record (the
first ``LISTED``) with its line and why; a line per failing record follows in ``NAME.reason.txt``.
A file resumed after a stop with records already run is not checked again (it passed before they ran).

So that the ledger accounts for every line (an auditor asks what became of each salary of a refused payroll),
each data record of a file refused so is then **recorded as a rejected deal** of the route that takes it, kind
``refused_whole`` (``record_refused``): its reason says the file was refused whole and why, and whether this
record failed the checks (its own status, code and text; its code is the deal's) or passed them (code 30); its
deal values are those its ``deal`` step gave in the check.  A record no route reads (it does not decode, no
route's ``when`` takes it) is one too: its deal's route says so as when it runs ("(malformed)", "(unrouted)"),
its kind is ``refused_whole`` all the same.  Nothing runs: no call, no ``on error``.  Each has its dead letter,
which ``bsp dead retry`` refuses (a record of it run alone would break the all or nothing: the sender drops the
corrected file again).  No deal key is taken (the deals were never admitted): the corrected file's records,
under the same keys, run.  Their ids are made from the file's bytes and the record's number (the file's
modification time as their time part), so a stop between their rows and the file's move records none twice:
the restart, which refuses the file again, records only the rows not in the ledger yet.

A file refused whole before its records are checked, for its control totals or its header or trailer (one that
cannot be read), with or without ``all_or_nothing``, has its data records recorded the same way
(``record_unrun``): the reason names the file's refusal, with no verdict of the route's checks (they are not why,
and a header that cannot be read leaves ``file.header`` null); code 30, or the record's own when no route reads
it.  A file whose data records cannot be told apart has none recorded: one that cannot be split into records,
or has fewer than its header and trailer records; nor has a file not read (over ``max_file_bytes``, not a
file), nor a repeat of a file already run (``run_once``: the same bytes, whose records the ledger holds from
that run).  The end message of a file whose records are recorded so counts them: ``file.records`` and
``file.rejected`` both the number of its data records.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from engine.runtime.precheck import check, check_frames, dispatcher_of

LISTED = 10          # failing records named in the first problem (the end message's file.reason)
REFUSED_WHOLE = "refused_whole"      # the kind of the deal of each record of a file refused whole


async def check_all(watcher: Any, path: Path, data: bytes, records: Any, first: int, handler: Any,
                    head: tuple[int, bytes] | None, header: Any) -> list[str]:
    """The problems that refuse the file whole (none: every record passes its route's checks)."""
    start = f"record {first}, byte offset {records[0][0]}: all_or_nothing = true on channel {watcher.name}"
    disp = dispatcher_of(handler)
    if disp is None:         # a handler that is no engine's (a test's own): the promise cannot be kept
        return [f"{start}: the records cannot be checked before they run (the channel's handler has no "
                f"routes), so the file is refused whole and no record was run"]
    conn = watcher.file_conn(path, data)
    origins_of = watcher.origins(path, data, len(records), first, head, header)
    bad: list[tuple[Any, Any]] = []             # (origin, failure) of each record that fails
    for at in range(0, len(records), watcher.batch):
        chunk = list(records[at:at + watcher.batch])
        origins = origins_of(chunk, at)
        conn.extra["origins"] = origins
        for origin, failure in zip(origins, check_frames(disp, conn, [r for _, r in chunk])):
            if failure is not None:
                bad.append((origin, failure))
        await trio.sleep(0)                     # a long file: the engine's other channels carry on
    if not bad:
        return []
    first_bad = bad[0]
    why = (f"{len(bad)} of {len(records)} record(s) fail the checks of their route (the first: record "
           f"{first_bad[0].record}" + (f" (line {first_bad[0].line})" if first_bad[0].line is not None else "")
           + f": {first_bad[1].status} {first_bad[1].code} {_short(first_bad[1])})")
    await record_refused(watcher, path, data, records, first, disp, handler, head, header,
                         f"all_or_nothing = true on channel {watcher.name}: not run, its file {path.name} was "
                         f"refused whole: {why}", checked=True)
    named = "; ".join(f"record {o.record}" + (f" (line {o.line})" if o.line is not None else "")
                      + f": {f.status} {f.code} {_short(f)}" for o, f in bad[:LISTED])
    more = f"; and {len(bad) - LISTED} more (NAME.reason.txt names each)" if len(bad) > LISTED else ""
    return ([f"{start}: {len(bad)} of {len(records)} record(s) fail the checks of their route, so the file is "
             f"refused whole and no record was run: {named}{more}"]
            + [f"record {o.record}, byte offset {o.offset}: {f.status} ({f.kind}, code {f.code}): {f.detail}"
               for o, f in bad])


def _short(f: Any) -> str:
    """A failure as the first problem lists it: a rule's own text, else the detail."""
    return f.text if f.kind == "rejected" and f.text else f.detail


async def record_unrun(watcher: Any, path: Path, data: bytes, records: Any, first: int, handler: Any,
                       head: tuple[int, bytes] | None, header: Any, problem: str) -> int:
    """Each data record of a file refused whole for its control totals or its header / trailer (``problem``,
    the file's first) recorded as a rejected deal (see the module); returns how many were recorded."""
    disp = dispatcher_of(handler)
    if disp is None or not records:
        return 0
    return await record_refused(watcher, path, data, records, first, disp, handler, head, header,
                                f"not run, its file {path.name} on channel {watcher.name} was refused whole: "
                                f"{problem}", checked=False)


async def record_refused(watcher: Any, path: Path, data: bytes, records: Any, first: int, disp: Any, handler: Any,
                         head: tuple[int, bytes] | None, header: Any, why: str, checked: bool) -> int:
    """Each data record of the refused file recorded as a rejected deal (see the module), those the ledger does
    not hold yet; returns how many were recorded.  ``why``: the file's refusal, as each reason begins;
    ``checked``: the refusal is the route's checks' (each reason says how this record fared in them)."""
    from datetime import datetime, timezone

    from engine.channels.base import ConnInfo
    from engine.channels.file_watch import _stored
    from engine.runtime.exchange import Exchange

    ledger = getattr(disp, "ledger", None)
    if ledger is None:
        return 0
    if getattr(ledger, "sync", None) == "none":
        await ledger.wait_loaded()          # rows a stop left: known before any is made again
    ids = _ids(path, data)
    origins_of = watcher.origins(path, data, len(records), first, head, header)
    file = {"name": path.name, "size": len(data)}
    now = datetime.now(timezone.utc)
    made = 0
    for at in range(0, len(records), watcher.batch):
        chunk = list(records[at:at + watcher.batch])
        origins = origins_of(chunk, at)
        chunk_ids = [ids(o.record) for o in origins]
        known = await ledger.known_deal_ids(chunk_ids)
        exs = []
        for origin, (_, raw), did in zip(origins, chunk, chunk_ids):
            if did in known:
                continue
            conn = ConnInfo(channel=watcher.name, peer=path.name, number=0,
                            extra={"file": file, "origins": [origin], "deal_id": did})
            ex = check(disp, Exchange(disp.channel, conn, raw, now, 0))
            _refuse(ex, why, checked)
            exs.append(ex)
        if exs:
            await disp._record(exs)
            made += len(exs)
        await trio.sleep(0)
    await _stored(handler)
    return made


def _refuse(ex: Any, why: str, checked: bool) -> None:
    """``ex``'s failure made the file's refusal (kind ``refused_whole``), saying how this record fared in its
    route's checks when they refused the file (``checked``), or that no route reads it."""
    from engine.runtime.exchange import StepFailure

    f = ex.failure
    unread = f is not None and ex.route is None       # no route took it (malformed, unrouted)
    if checked:
        own: str | None = (f"this record fails them: {f.status} {f.code} {f.detail}" if f is not None
                           else "this record passed them")
    else:
        own = f"no route reads this record: {f.status} {f.code} {f.detail}" if unread else None
    mine = f if f is not None and (checked or unread) else None      # its own code and text are the deal's
    detail = "; ".join(w for w in (why, own, "the corrected file, dropped again, runs it") if w)
    ex.failure = None
    failure = StepFailure(REFUSED_WHOLE, detail, code=mine.code if mine is not None else None,
                          text=(mine.text if mine is not None else None),
                          where=mine.where if mine is not None else None)
    if unread:
        failure.record_kind = f.kind
    ex.fail(failure)


def _ids(path: Path, data: bytes) -> Any:
    """``id_of(record)``: the deal id of a record of this file's refusal: the same at a restart (the file's
    bytes and modification time unchanged), so that rows already recorded are not made again."""
    from hashlib import blake2b

    try:
        ms = int(path.stat().st_mtime * 1000)
    except OSError:
        ms = 0
    head = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
    base = blake2b(data, digest_size=16).digest()
    return lambda record: head + blake2b(base + str(record).encode(), digest_size=10).hexdigest()
