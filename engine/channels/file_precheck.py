"""``all_or_nothing = true`` on a ``file watch`` channel: a file runs whole or not at all.

After the file's header and trailer checks (control totals) and before any record runs, every data record is
checked against the route that takes it (``engine.runtime.precheck``: decoded, its ``when``, then its leading
``let`` / ``deal`` / ``validate`` steps; nothing sent, nothing recorded), in batches of the channel's
``batch``.  When one or more fail, no record runs: the file is refused whole (``file.status`` "refused" in
its end message, the file to ``error/``), and the reason's first problem names each failing record (the
first ``LISTED``) with its line and why; a line per failing record follows in ``NAME.reason.txt``.
A file resumed after a stop with records already run is not checked again (it passed before they ran).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from engine.runtime.precheck import check_frames, dispatcher_of

LISTED = 10          # failing records named in the first problem (the end message's file.reason)


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
