"""The end-of-file message of a ``file watch`` channel (option ``end_message = true``).

Once a file has been wholly run (every record's deal final: recorded, and stored with ``--ledger-sync
none``) or refused as a whole (its control totals, a header that cannot be read, a file that cannot be split
into records, the same bytes again, one over ``max_file_bytes``, one that changed while its records ran), the
channel delivers ONE more message to its routes: the file's summary.  Only the routes whose ``when`` reads
``file.end`` are offered it (``dsl.fileend``); they read::

    file.end        true (false for every record)
    file.name       the file's name as dropped
    file.status     "done": every data record ran (file.rejected / file.failed / file.duplicate say how many
                    were not committed); "refused": the file as a whole was not run (file.reason says why)
    file.reason     why it was refused, naming the record and byte offset (null when done)
    file.records    the file's data records (0 when refused before they were read: a repeat, over
                    max_file_bytes, not split into records)
    file.committed, file.rejected, file.failed, file.duplicate    their deals' outcomes (a file refused whole
                    with its records read: file.rejected = file.records, each a rejected deal of kind
                    refused_whole, engine.channels.file_precheck)
    file.archived   where the file went: "done/NAME" or "error/NAME"
    file.header     the fields of its header record (``header = FORMAT``), as for a record; null if unread
    file.trailer    the fields of its trailer record (``trailer = FORMAT``); null if unread

The message's bytes (``raw``, the deal's request) are the summary as JSON.  It is a deal like a record's.

Once, across a crash: the channel notes the message in its index (``engine.channels.file_index``: an ``end``
line with the deal id it will run under and the summary) before it runs, and ``ended`` once its deal is
recorded; both before the file moves to ``done/`` or ``error/``, whose index line (``done``, ``error``,
``repeat``) closes the note.  A stop anywhere in between leaves the file in the folder: at the restart it is
resumed (its records are not run again) or refused again (a repeat, a file over ``max_file_bytes``), and the
note, read before any end message is made (``FileIndex.last_end``), is settled rather than made again: noted
``ended``, nothing is sent; else when the ledger holds its deal (the transaction log's deals in flight
resolved first) it is not run again, else it runs under the id noted.  So a route's ``file write`` of a
summary line is made once, or, if the engine died inside the call, its deal is resolved as any record's is.

Sent again outside its file's run (the restart's recovery of its deal left in flight, ``bsp dead retry`` of
its dead letter), the message gets its ``file.*`` back from ``end_origin``: the summary from its bytes, the
header and trailer from the records noted with it in the index.  A retry whose channel reads a header or trailer
and whose index (or its note) is gone is refused (``EndOrigin.missing``), not run with them null, and the
recovery of such a message flags its deal for an operator instead of running its ``on restart`` policy
(``engine.txn.recovery``); the calls its failed deal made are not made again (``EndOrigin.done``:
``engine.channels.file_end_calls``).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import trio

from engine.channels.base import ConnInfo
from engine.deal import new_deal_ids

_COUNTS = ("committed", "rejected", "failed", "duplicate")
_NUMBERS = itertools.count(1)


@dataclass
class Tally:
    """The outcomes of a file's data records' deals so far (those before a stop included)."""
    committed: int = 0
    rejected: int = 0
    failed: int = 0
    duplicate: int = 0

    def add(self, status: str, kind: str | None) -> None:
        if kind == "duplicate":
            self.duplicate += 1
        elif status == "rejected":
            self.rejected += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.committed += 1

    def note(self) -> str:
        """After the index's ``N:P`` of a ``ran`` line: ``:C:R:D`` (failed = P - R - D)."""
        return f":{self.committed}:{self.rejected}:{self.duplicate}"

    @classmethod
    def of_ran(cls, ran: str, problems: int) -> "Tally":
        """The tally an index ``ran`` line ``N:P[:C:R:D]`` kept (a line of an older bsp: all committed but P)."""
        parts = ran.split(":")
        if len(parts) >= 5 and all(p.isdigit() for p in parts[2:5]):
            c, r, d = (int(p) for p in parts[2:5])
            return cls(c, r, max(problems - r - d, 0), d)
        n = int(parts[0]) if parts and parts[0].isdigit() else 0
        return cls(max(n - problems, 0), 0, problems, 0)


@dataclass(frozen=True)
class EndOrigin:
    """The end message's ``file.*`` (in place of a record's ``RecordOrigin``)."""
    summary: dict[str, Any]
    header: Any = None
    trailer: Any = None
    end: bool = field(default=True)
    # a retry's: the calls of its route that went through in the deal it retries, not made again
    # (``engine.channels.file_end_calls``: {name: answer as kept})
    done: dict[str, Any] = field(default_factory=dict)
    # why it cannot be sent again as it was (its header or trailer lost with the channel's index), or None
    missing: str | None = None

    @property
    def scope(self) -> dict[str, Any]:
        s = self.summary
        f = {"name": s["name"], "end": True, "status": s["status"], "reason": s.get("reason"),
             "records": s.get("records", 0), "archived": s.get("archived"), "header": self.header,
             "trailer": self.trailer, "line": None, "record": None, "offset": None}
        f.update({k: s.get(k, 0) for k in _COUNTS})
        return {"file": f}

    def relocate(self, exc: Any, frame: bytes) -> Any:
        return exc


def summary_of(name: str, status: str, reason: str | None, records: int, tally: Tally, archived: str,
               header: bytes | None, trailer: bytes | None) -> dict[str, Any]:
    """The summary noted in the index (header and trailer as hex: decoded again when the message runs)."""
    return {"name": name, "status": status, "reason": reason, "records": records, "committed": tally.committed,
            "rejected": tally.rejected, "failed": tally.failed, "duplicate": tally.duplicate, "archived": archived,
            "header_hex": header.hex() if header is not None else None,
            "trailer_hex": trailer.hex() if trailer is not None else None}


def message_bytes(summary: dict[str, Any]) -> bytes:
    """The message's bytes: the summary as JSON, without the raw header and trailer."""
    return json.dumps({k: v for k, v in summary.items() if not k.endswith("_hex")}, sort_keys=False).encode()


def _decoded(codec: Any, hexed: str | None) -> Any:
    if codec is None or not hexed:
        return None
    try:
        return codec.decode(bytes.fromhex(hexed))
    except Exception:         # noqa: BLE001 - unreadable: null, as for a record (its reason says why)
        return None


def _noted(index: Any, raw: bytes, deal_id: str | None) -> Any:
    """The index's note of the end message ``raw``: the one noted under ``deal_id`` (the message's own deal,
    recovered), else the last one whose message had these bytes (a dead letter's retry: a retry refused again
    is a deal of its own, not noted), or None."""
    ends = getattr(index, "ends", None) or {}
    note = ends.get(deal_id) if deal_id else None
    if note is not None:
        return note
    for note in reversed(list(ends.values())):
        if message_bytes(note.summary) == raw:
            return note
    return None


async def end_origin(routes: Any, channels: Any, channel: str, route: str | None, raw: bytes,
                     deal_id: str | None = None, recovering: bool = False) -> EndOrigin | None:
    """An end message sent again outside its file's run (a restart's recovery of its deal left in flight,
    ``bsp dead retry`` of its dead letter): its ``file.*`` rebuilt, so that ``route``, one whose `when` reads
    ``file.end``, takes it again, and the record routes never do.  The summary is read from its bytes (the
    summary as JSON); ``file.header`` and ``file.trailer`` are decoded again from the header and trailer records
    the channel's index noted with it (``done/.bsp-files``: its ``end`` line, found by ``deal_id`` or by the
    message's bytes), with the formats of the configuration running now: null when the index (or its line) is
    gone (``missing`` says so: what to do is the caller's to add when ``recovering``, the restart's recovery, which
    flags the deal; else a retry's).  None for any other message: ``route`` no end route of ``routes`` (the
    channel's), or bytes that are no summary."""
    if route is None or not any(getattr(br, "takes_end", False) and br.name == route for br in routes or ()):
        return None
    try:
        summary = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(summary, dict) or "name" not in summary or "status" not in summary:
        return None
    watcher = (channels or {}).get(channel)
    if watcher is None or not hasattr(watcher, "done_dir"):
        return EndOrigin(summary)
    index = getattr(watcher, "_index", None)
    if index is None:
        from engine.channels.file_index import INDEX_NAME, FileIndex

        if not (watcher.done_dir / INDEX_NAME).exists():
            return EndOrigin(summary, missing=_lost(watcher, summary, route, "is gone", recovering))
        try:
            index = await trio.to_thread.run_sync(FileIndex, watcher.done_dir)
        except OSError as exc:
            return EndOrigin(summary, missing=_lost(watcher, summary, route, f"cannot be read ({exc})", recovering))
    note = _noted(index, raw, deal_id)
    if note is None:
        return EndOrigin(summary, missing=_lost(watcher, summary, route, "has no note of this message", recovering))
    return EndOrigin(summary, _decoded(getattr(watcher, "header_codec", None), note.summary.get("header_hex")),
                     _decoded(getattr(watcher, "trailer_codec", None), note.summary.get("trailer_hex")))


def _lost(watcher: Any, summary: dict[str, Any], route: str, what: str, recovering: bool = False) -> str | None:
    """Why the end message cannot be sent again with its ``file.header`` / ``file.trailer``: the channel reads a
    header or trailer record, and the index that noted them (``done/.bsp-files``) ``what``; None for a channel
    that reads neither (nothing is lost).  A retry's ends with what to do; the recovery's (``recovering``) does
    not: ``engine.txn.recovery`` says it with the deal's id."""
    from engine.channels.file_index import INDEX_NAME

    reads = [f"{k} = {getattr(watcher, k, None) or 'FORMAT'}" for k in ("header", "trailer")
             if getattr(watcher, k + "_codec", None) is not None]
    if not reads:
        return None
    return (f"the end message of file {summary.get('name')!r} on channel {watcher.name} would run route {route!r} "
            f"with file.header and file.trailer null: the channel reads {' and '.join(reads)}, whose records were "
            f"noted with the message in its index {watcher.done_dir / INDEX_NAME}, which {what}"
            + ("" if recovering else "; nothing ran and the letter still waits: put the channel's done/ folder back "
               "(from a backup) and retry it, or purge it (bsp dead purge) and do the end route's work by hand"))


async def recorded(handler: Any, deal_id: str) -> bool:
    """Whether the ledger holds the deal ``deal_id`` (the channel recovered first: the transaction log's deals
    in flight resolved, the journal loaded)."""
    disp = getattr(handler, "dispatcher", handler)
    txn = getattr(disp, "txn", None)
    if txn is not None:
        await txn.ready(disp)
    ledger = getattr(disp, "ledger", None)
    if ledger is None or not hasattr(ledger, "deal_ends"):
        return False
    if getattr(ledger, "sync", None) == "none":
        await ledger.wait_loaded()
    return deal_id in await ledger.deal_ends([deal_id])


def _moved(watcher: Any, note: Any) -> bool:
    """Whether the file of an end note is already where its message said it goes (``done/NAME``, ``error/NAME``):
    it moved and a crash lost the index line of its move, so a file of its bytes and name in the folder now was
    dropped again, and is no longer the one the note is of (the name was free when it was chosen)."""
    where, _, archived = str(note.summary.get("archived") or "").partition("/")
    folder = {"done": getattr(watcher, "done_dir", None), "error": getattr(watcher, "error_dir", None)}.get(where)
    return folder is not None and bool(archived) and (folder / archived).exists()


async def send_end(watcher: Any, handler: Any, index: Any, sha: str, summary: dict[str, Any]) -> str:
    """Deliver the file's end message once (see the module's text); returns how: "sent", "settled" (its deal
    was recorded before a stop) or "already" (sent and noted before a stop).  Whether it was noted is read from
    the index (``last_end``: noted for this file, its move not noted) before anything is made: a stop anywhere
    between the ``end`` line and the line of the file's move (``done``, ``error``, ``repeat``) leaves the file in
    the folder, and the restart finds the note, for a file run, a repeat refused unrun and a file over
    ``max_file_bytes`` alike."""
    from engine.channels.http_listen_dispatch import dispatch_batch
    from engine.channels.file_watch import _stored

    name = summary["name"]
    before = index.last_end(sha, name)
    if before is not None and before.ended and await trio.to_thread.run_sync(_moved, watcher, before):
        before = None
    if before is not None:
        if before.ended:
            return "already"
        deal_id, summary = before.deal_id, before.summary
        if await recorded(handler, deal_id):
            await trio.to_thread.run_sync(index.note, sha, "ended", name, deal_id)
            return "settled"
    else:
        deal_id = new_deal_ids(1)[0]
        await trio.to_thread.run_sync(index.note, sha, "end", name, deal_id + " " + json.dumps(summary))
    origin = EndOrigin(summary, _decoded(watcher.header_codec, summary.get("header_hex")),
                       _decoded(getattr(watcher, "trailer_codec", None), summary.get("trailer_hex")))
    conn = ConnInfo(channel=watcher.name, peer=name, number=next(_NUMBERS),
                    extra={"file": {"name": name, "end": True}, "origins": [origin], "deal_id": deal_id})
    await dispatch_batch(handler, conn, [message_bytes(summary)])
    await _stored(handler)
    await trio.to_thread.run_sync(index.note, sha, "ended", name, deal_id)
    return "sent"
