"""``file.watch``: process each complete file dropped in a directory, its records in batches.

Complete files only: a file is taken when it appears under its final name
(writers write ``.NAME`` or ``NAME.tmp``/``.part`` and rename into place), or,
with ``complete = "marker"``, when ``NAME.done`` appears beside it, or, with
``complete = "stable"`` (a sender writing in place), once its size and time have
not changed for ``settle`` (``engine.channels.file_change``).  Files
already there at start are taken too (initial scan).  In every mode a file that
changed as it was read is not run (it is read again at the next look), and one
that changed as its records ran goes to ``error/`` as it is now, its reason
saying which records ran.  Each file's records
(``record``: lines; csv = rows whose quoted fields may hold line breaks;
fixed = ``record_size`` bytes each; rdw / rdw_le = IBM variable records with a
4-byte record descriptor word; rje = SWIFT messages separated by ``$``; whole =
the file is one record; camt053 = each statement of an ISO 20022 bank-to-customer file:
``formats.batchfile``)
go through the route in batches of ``batch`` records (1,000 by default), one after
the other, so a file of a million records holds a batch's exchanges in memory at a
time, not the file's; every record is a deal.  Then the file
moves to ``done/``, or to ``error/`` with ``NAME.reason.txt`` beside it naming
each bad record (number, byte offset, error kind and detail) when any record
was rejected or failed, or when the file cannot be split into records.
``skip_header`` / ``skip_trailer``: that many records at the start / end of each
file (a CSV header line, a batch header and trailer record) are not deals; the
records are still numbered from the file's first.  ``header_row = true``
(record = csv or lines): the first record after the skipped ones names the
columns; it is not a deal, and every record reaches the routes with it (the
header row, a line break, the row), so a ``csv`` format matches its columns by
name: in any order, extra columns ignored.  ``trailer = FORMAT`` (with
``skip_trailer``): the first trailer record's ``trailer_count`` field must equal
the number of data records, and its ``trailer_total`` field the sum of every
record's ``total_field`` read as ``total_format``; when they do not, no record
runs and the file goes to ``error/`` saying what the trailer said and what the
file holds (``formats.batchfile.ControlTotals``).  A file is run once: its bytes
are remembered (``engine.channels.file_index``), and the same bytes dropped
again go to ``error/`` with nothing run (``run_once = false`` runs them).  An
archived file is never replaced: a second ``PAY.csv`` is kept as ``PAY.2.csv``.
Each record goes with its ``RecordOrigin`` (``engine.channels.file_origin``): the
route reads ``file.name``, ``file.line``, ``file.record``, ``file.offset`` and
``file.records``, and a record that does not decode is told at its byte offset
in the file, naming its line.  A file over ``max_file_bytes`` (checked on its size before it is read)
is not read: it goes to ``error/`` with its reason, noted in the index without a SHA-256.

The log has one line per file at most, never one per record (a record's problem is in the reason file),
but a progress line every ``PROGRESS_EVERY`` (30) seconds of a file that runs longer (records run of the
file's, rejected or failed so far, records/s); ``status()`` (``bsp status``, ``bsp top``) gives the file
running now, its data records and how many have run,
and the files going to ``error/`` go through the channel's ``FaultLog`` (engine/faultlog.py): the first of
each kind (bad records, cannot be split, already run, too big, changed while it ran) in full, a folder of
thousands of them counted and summed up in one line per 30 seconds and at the stop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import itertools
import logging
import math
import os
from collections import deque
from pathlib import Path
from typing import Any

import trio
from watchfiles import awatch

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.staged import Staging
from engine.channels.file_change import (ChangedWhileRead, NotAFile, Settling, TooBig, change_text, changed_reason,
                                         read_unchanged, records_text, signature)
from engine.channels.file_index import NOT_READ, FileIndex, content_id
from engine.channels.file_folders import check_folder, free_name_at, open_folder, write_at
from engine.channels.file_end import Tally, send_end, summary_of
from engine.channels import file_keep, file_precheck
from engine.channels.file_origin import FILE_FIELDS, RecordOrigin, line_breaks
from engine.channels.http_listen_dispatch import Outcome, dispatch_batch
from engine.channels.options import ChannelConfigError, built_check, duration_above_zero, seconds
from engine.faultlog import FaultLog
from engine.filemodes import make_shared_dirs
from formats.component import ComponentSpec, OptionSpec
from formats.batchfile import RECORD_KINDS, ControlTotals, Records, split_offsets
from formats.errors import FormatError

log = logging.getLogger("bsp.channel.file")

_NUMBERS = itertools.count(1)
# files being run by a watcher of this process: during a reload the next generation's watcher of the
# same folder starts while the last one may still be running a file; it leaves that file alone
_RUNNING: set[Path] = set()
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".done", ".reason.txt")
RECENT_FILES = 256            # names of the files run lately kept in memory (processed / failed)
STUCK_SHOWN = 20             # files that stay in the folder (unreadable, cannot be moved) bsp status names
PROGRESS_EVERY = 30.0         # seconds between the progress lines of a file that takes longer
MAX_FILE_BYTES = 1 << 30      # option max_file_bytes: a file is read whole, its records held as it runs
# kinds of files going to error/ (FaultLog): what a summary line calls them
ERROR_NOUNS = {"bad records": "files to error/ with rejected or failed records (each with its NAME.reason.txt)",
               "not split": "files to error/ that cannot be split into records",
               "repeat": "files to error/ whose bytes already ran (run_once)",
               "too big": "files to error/ over max_file_bytes",
               "not a file": "symbolic links (never followed) and other entries that are not files, to error/",
               "changed": "files to error/ that changed while they ran",
               "refused whole": "files to error/ refused whole, a record failing its route's checks (all_or_nothing)"}


class FileWatcher:
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        d = options.get("dir")
        if not d:
            raise ChannelConfigError(f"channel {name}: option dir: the directory to watch is required")
        self.dir = Path(d)
        self.address = str(self.dir)
        self.pattern = options.get("pattern") or "*"
        self.complete = options.get("complete") or "rename"
        if self.complete not in ("rename", "marker", "stable"):
            raise ChannelConfigError(f"channel {name}: option complete: expected \"rename\", \"marker\" or "
                                     f"\"stable\", got {self.complete!r}")
        if options.get("settle") is not None and self.complete != "stable":
            raise ChannelConfigError(f"channel {name}: option settle is for complete = \"stable\" "
                                     f"(complete is {self.complete!r})")
        self.settle = duration_above_zero(name, options, "settle", 2.0)
        # complete = "stable": files seen, each with its size and time and since when they have not changed
        self._settling = Settling(self.settle) if self.complete == "stable" else None
        self.record = options.get("record") or "lines"
        if self.record not in RECORD_KINDS:
            raise ChannelConfigError(f"channel {name}: option record: expected one of {', '.join(RECORD_KINDS)}, "
                                     f"got {self.record!r}")
        self.record_size = options.get("record_size")
        if self.record == "fixed" and (not isinstance(self.record_size, int) or self.record_size <= 0):
            raise ChannelConfigError(f"channel {name}: record = fixed needs record_size, the bytes of each record "
                                     f"(e.g. record_size = 120)")
        self.rdw_includes_header = options.get("rdw_includes_header", True)
        if not isinstance(self.rdw_includes_header, bool):
            raise ChannelConfigError(f"channel {name}: option rdw_includes_header: expected true or false, "
                                     f"got {self.rdw_includes_header!r}")
        if not self.rdw_includes_header and self.record not in ("rdw", "rdw_le"):
            raise ChannelConfigError(f"channel {name}: option rdw_includes_header is for record = \"rdw\" or "
                                     f"\"rdw_le\" (record is {self.record!r})")
        quote = options.get("quote")
        self.quote = '"' if quote is None else quote
        if not isinstance(self.quote, str) or len(self.quote) > 1 or not self.quote.isascii():
            raise ChannelConfigError(f"channel {name}: option quote: expected one ASCII character "
                                     f"(or \"\" for none), got {quote!r}")
        if self.quote != '"' and self.record != "csv":
            raise ChannelConfigError(f"channel {name}: option quote is for record = \"csv\" "
                                     f"(record is {self.record!r})")
        self.skip_header = _count(name, "skip_header", options.get("skip_header"))
        self.skip_trailer = _count(name, "skip_trailer", options.get("skip_trailer"))
        self.header_row = options.get("header_row", False)
        if not isinstance(self.header_row, bool):
            raise ChannelConfigError(f"channel {name}: option header_row: expected true or false, "
                                     f"got {self.header_row!r}")
        if self.header_row and self.record not in ("csv", "lines"):
            raise ChannelConfigError(f"channel {name}: option header_row is for record = \"csv\" or \"lines\" "
                                     f"(record is {self.record!r})")
        self.trailer = options.get("trailer")
        self.trailer_count, self.trailer_total = options.get("trailer_count"), options.get("trailer_total")
        self.header = options.get("header")
        self.header_count, self.header_total = options.get("header_count"), options.get("header_total")
        self.total_field, self.total_format = options.get("total_field"), options.get("total_format")
        _check_controls(name, self.trailer, self.trailer_count, self.trailer_total, self.header, self.header_count,
                        self.header_total, self.total_field, self.total_format, self.skip_header, self.skip_trailer)
        self.controls: ControlTotals | None = None      # bind_codecs makes it (the trailer's)
        self.header_controls: ControlTotals | None = None   # the header's control totals
        self.header_codec: Any = None                   # the header's format: file.header
        self.trailer_codec: Any = None                  # the trailer's format: file.trailer of the end message
        self.staging = Staging()        # what bind_codecs takes from a configuration bound meanwhile
        if (self.skip_header or self.skip_trailer) and self.record == "whole":
            raise ChannelConfigError(f"channel {name}: skip_header / skip_trailer need records to skip; "
                                     f"record = whole makes the file one record")
        self.done_dir = Path(options.get("done_dir") or self.dir / "done")
        self.error_dir = Path(options.get("error_dir") or self.dir / "error")
        # retention of done/ and error/ (None: for ever, as before 2026-11-27): engine/channels/file_keep.py
        self.keep_done = file_keep.keep_option(name, options, "keep_done")
        self.keep_error = file_keep.keep_option(name, options, "keep_error")
        self.sweep_every = file_keep.SWEEP_EVERY
        self.sweeps = 0                           # sweeps done (each of both folders)
        self.debounce = seconds(options.get("debounce"), 0.05)
        self.rescan = duration_above_zero(name, options, "rescan", 5.0)
        self.problem: str | None = None          # why the folder cannot be watched now (bsp status)
        self._stuck_files: dict[Path, str] = {}  # files that could not be run or archived, and why (logged once)
        self._written: set[Path] = set()         # files seen changing as they were read (logged once)
        self.run_once = bool(options.get("run_once", True))
        # one more message per file, its summary, once it has run or been refused (engine/channels/file_end.py)
        self.end_message = options.get("end_message", False)
        if not isinstance(self.end_message, bool):
            raise ChannelConfigError(f"channel {name}: option end_message: expected true or false, "
                                     f"got {self.end_message!r}")
        # every data record checked against its route (decoded, its let / deal / validate steps) before any
        # runs: one that fails refuses the file whole (engine/channels/file_precheck.py)
        self.all_or_nothing = options.get("all_or_nothing", False)
        if not isinstance(self.all_or_nothing, bool):
            raise ChannelConfigError(f"channel {name}: option all_or_nothing: expected true or false, "
                                     f"got {self.all_or_nothing!r}")
        self.batch = options.get("batch", 1000)
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise ChannelConfigError(f"channel {name}: option batch: expected a number of records of 1 or more, "
                                     f"got {self.batch!r}")
        self.max_file_bytes = options.get("max_file_bytes", MAX_FILE_BYTES)
        if not isinstance(self.max_file_bytes, int) or isinstance(self.max_file_bytes, bool) \
                or self.max_file_bytes < 1:
            raise ChannelConfigError(f"channel {name}: option max_file_bytes: expected a number of bytes of 1 or "
                                     f"more (e.g. max_file_bytes = {MAX_FILE_BYTES}), got {self.max_file_bytes!r}")
        self._index: FileIndex | None = None
        self._stop = trio.Event()
        self._draining = False
        # the names of the files run lately, for tests and a glance (bounded: a watcher runs for months);
        # the counts since start are files_done / files_error
        self.processed: deque[str] = deque(maxlen=RECENT_FILES)
        self.failed: deque[str] = deque(maxlen=RECENT_FILES)
        self._counts = [0, 0]                    # files to done/, to error/: shared with the next object (a reload)
        self._before: FileWatcher | None = None  # the object a reload replaced, while it finishes its file
        self.running: str | None = None          # the file being run now
        self.ran_records = 0                      # records of the file being run, run so far
        # its progress (bsp status, bsp top, and a log line every progress_every seconds of a long file):
        # its data records, and how many of them have their deals recorded (those before a stop included)
        self.running_records = 0
        self.running_done = 0
        self.progress_every = PROGRESS_EVERY
        # files to error/: the first of each kind in full, a folder of them counted (engine/faultlog.py)
        self.faults = FaultLog(log, f"channel {name}", clock=trio.current_time)

    def bind_codecs(self, ctx: Any) -> None:
        """The switchboard's binder hands the formats named by ``trailer``, ``header`` and ``total_format``."""
        records = ctx.codec(self.total_format) if self.total_format is not None else None
        bound: dict[str, Any] = {"controls": None, "header_controls": None, "header_codec": None,
                                 "trailer_codec": None}
        for role, fmt, count, total in (("trailer", self.trailer, self.trailer_count, self.trailer_total),
                                        ("header", self.header, self.header_count, self.header_total)):
            if fmt is None:
                continue
            codec = ctx.codec(fmt)
            for option, c, f, field in ((f"{role}_count", codec, fmt, count), (f"{role}_total", codec, fmt, total),
                                        ("total_field", records, self.total_format,
                                         self.total_field if total is not None else None)):
                names = c.field_names() if field is not None and hasattr(c, "field_names") else None
                if names and field.split(".")[0] not in names:
                    raise ChannelConfigError(f"option {option}: format {f} has no field {field!r} "
                                             f"(its fields: {', '.join(names)})")
            bound[f"{role}_codec"] = codec
            if count is not None or total is not None:
                bound["controls" if role == "trailer" else "header_controls"] = ControlTotals(
                    codec, count_field=count, total_field=total, sum_field=self.total_field if total else None,
                    sum_codec=records if total else None, role=role)
        if self.trailer is not None or self.header is not None:
            # a configuration bound while another runs on this channel: in force from the swap (``adopt``)
            self.staging.bind(ctx, lambda: self.__dict__.update(bound))

    def adopt(self, ctx: Any) -> None:
        """The configuration bound by ``ctx`` runs now (a reload kept this channel): its trailer formats."""
        self.staging.adopt(ctx)

    # -- Listener -----------------------------------------------------------
    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # done/ and error/ a symbolic link (planted by whoever writes the inbox): the channel does not start,
        # before anything (a sweep, the file index) uses them (engine/channels/file_folders.py)
        self._check_folders()
        try:
            async with trio.open_nursery() as ticker:
                ticker.start_soon(self.faults.run)       # summaries of files to error/, when due
                if self.keep_done is not None or self.keep_error is not None:
                    ticker.start_soon(self._sweeps)      # retention of done/ and error/: at start, then hourly
                await self._serve(handler, task_status)
                ticker.cancel_scope.cancel()
        finally:
            self.faults.flush()                         # the counts not yet written

    async def _sweeps(self) -> None:
        """Delete what is older than ``keep_done`` / ``keep_error`` in done/ and error/, at start and every
        ``sweep_every`` seconds; one log line per folder and sweep."""
        while True:
            await self.sweep()
            await trio.sleep(self.sweep_every)

    async def sweep(self) -> None:
        for folder, option, keep in ((self.done_dir, "keep_done", self.keep_done),
                                     (self.error_dir, "keep_error", self.keep_error)):
            if keep is None:
                continue
            try:
                swept = await trio.to_thread.run_sync(file_keep.sweep, folder, keep)
            except OSError as exc:             # the folder cannot be listed: said, tried again at the next sweep
                log.error("channel %s: %s = %s: cannot sweep %s: %s; tried again in %s", self.name, option,
                          file_keep.age_text(keep), folder, exc.strerror or exc, file_keep.age_text(self.sweep_every))
                continue
            log.log(logging.WARNING if swept.failed else logging.INFO, "%s",
                    file_keep.sweep_line(self.name, folder, option, keep, swept))
        self.sweeps += 1

    def _stamp(self, folder: Path, archived: str) -> None:
        """A file moved to a folder with a retention: its age there counts from now (file_keep.stamp)."""
        if (self.keep_done if folder == self.done_dir else self.keep_error) is not None:
            with contextlib.suppress(OSError):
                file_keep.stamp(folder / archived)
                reason = folder / f"{archived}.reason.txt"
                if reason.exists():
                    file_keep.stamp(reason)

    def _check_folders(self) -> None:
        """Make the inbox, done/ and error/ if missing (as the process's umask makes them, the engine's is
        owner-only); a done/ or error/ that is a symbolic link or not a folder is refused (LinkedFolder)."""
        make_shared_dirs(self.dir)
        for option, d in (("done_dir", self.done_dir), ("error_dir", self.error_dir)):
            check_folder(self.name, option, d)

    def _folder(self, folder: Path) -> Any:
        """done/ or error/ opened never through a link (a context manager giving its descriptor)."""
        return open_folder(self.name, "done_dir" if folder == self.done_dir else "error_dir", folder)

    async def _serve(self, handler: ExchangeHandler, task_status: Any) -> None:
        self._check_folders()
        await self._files()
        task_status.started()
        log.info("channel %s: watching %s for %s", self.name, self.dir, self.pattern)
        while not self._draining:
            try:
                await self._watch(handler)
            except (OSError, RuntimeError) as exc:       # RuntimeError: watchfiles' own (its watch died)
                if self.problem is None:
                    log.error("channel %s: cannot watch %s: %s; the engine's other channels carry on, and this "
                              "one looks again every %gs (restore the folder or its permissions)",
                              self.name, self.dir, getattr(exc, "strerror", None) or exc, self.rescan)
                self.problem = f"cannot watch {self.dir}: {getattr(exc, 'strerror', None) or exc}"
                with trio.CancelScope() as self._wait_scope:
                    await trio.sleep(self.rescan)
        self._wait_scope = None

    async def _watch(self, handler: ExchangeHandler) -> None:
        """Arm a watch of the folder, then scan it: at once, after every change, and every ``rescan``
        seconds (a file a change event missed: dropped while the watch was being armed, on a network
        file system, past a full event queue).  Returns when draining; raises OSError when the folder
        goes away (deleted, unmounted, replaced, unreadable): its watch is then of no use."""
        stop = trio.Event()
        wake = trio.Event()
        failed: list[BaseException] = []
        where = os.stat(self.dir)
        self._check_folders()                          # a folder back from a removal may lack them

        async def watch() -> None:
            try:
                async for _changes in awatch(self.dir, stop_event=stop, debounce=int(self.debounce * 1000),
                                             recursive=False, rust_timeout=max(1, int(self.rescan * 1000)),
                                             yield_on_timeout=True):
                    wake.set()
            except (OSError, RuntimeError) as exc:       # RuntimeError: watchfiles' own (its watch died)
                failed.append(exc)
            wake.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                while not self._draining and not failed:
                    files = self.ready_files()
                    now = os.stat(self.dir)                 # gone, or another folder of that name: watch again
                    if (now.st_dev, now.st_ino) != (where.st_dev, where.st_ino):
                        raise FileNotFoundError(errno.ENOENT, "the folder was replaced while watched", str(self.dir))
                    # the folder is listed: it is watched again before any of its files runs (bsp status
                    # does not say "cannot watch" while they run)
                    if self.problem is not None and not failed:
                        log.warning("channel %s: watching %s again", self.name, self.dir)
                        self.problem = None
                    await self._scan(handler, files)
                    if self._draining or failed:
                        break
                    # a file settling (complete = "stable") is looked at again when due
                    deadline = self._settling.next_look() if self._settling is not None else math.inf
                    with trio.CancelScope(deadline=deadline) as self._wait_scope:
                        await wake.wait()
                    wake = trio.Event()
            except OSError as exc:              # raised below, out of the nursery (not in an exception group)
                failed.append(exc)
            finally:
                stop.set()
                nursery.cancel_scope.cancel()
        if failed:
            raise _cause(self.dir, failed)

    @property
    def files_done(self) -> int:
        return self._counts[0]

    @files_done.setter
    def files_done(self, value: int) -> None:
        self._counts[0] = value

    @property
    def files_error(self) -> int:
        return self._counts[1]

    @files_error.setter
    def files_error(self, value: int) -> None:
        self._counts[1] = value

    def take_over(self, old: "FileWatcher") -> None:
        """A reload replaced ``old`` (the channel's options changed) by this object: the counts since start go
        on (both count into them), and the file ``old`` is still running, on the configuration it began with,
        shows here until it ends (``bsp status``, ``bsp top``)."""
        self._counts = old._counts
        self._before = old if old.running is not None else old._before

    def _shown(self) -> "FileWatcher":
        """The object whose running file ``status`` shows: this one's, else the one a reload replaced while
        it finishes its file (forgotten once it has)."""
        if self.running is None:
            while self._before is not None and self._before.running is None:
                self._before = self._before._before
            if self._before is not None:
                return self._before
        return self

    def status(self) -> dict[str, Any]:
        """For the admin status (`bsp status`): files run to done/ and to error/, the one running now and how
        far, why the folder cannot be watched (None when it can), and the files that stay in the folder
        because they cannot be read or moved, each with why (the first ``STUCK_SHOWN``)."""
        shown = self._shown()
        running = shown.running is not None
        for path in [p for p in self._stuck_files if not p.exists()]:     # taken away since: not stuck
            self._stuck_files.pop(path)
        return {"files_done": self.files_done, "files_error": self.files_error, "running": shown.running,
                "running_records": shown.running_records if running else None,
                "running_done": shown.running_done if running else None, "problem": self.problem,
                "stuck": {p.name: why for p, why in sorted(self._stuck_files.items())[:STUCK_SHOWN]}}

    def stop_accepting(self) -> None:
        self._draining = True
        scope = getattr(self, "_wait_scope", None)
        if scope is not None:
            scope.cancel()

    # -- files --------------------------------------------------------------
    def ready_files(self) -> list[Path]:
        out = []
        for p in sorted(self.dir.iterdir()):
            n = p.name
            if not p.is_file() or n.startswith(".") or n.endswith(_PARTIAL_SUFFIXES):
                continue
            if not fnmatch.fnmatch(n, self.pattern):
                continue
            if self.complete == "marker" and not p.with_name(n + ".done").exists():
                continue
            out.append(p)
        return self._settling.ready(out) if self._settling is not None else out

    async def _scan(self, handler: ExchangeHandler, files: list[Path] | None = None) -> None:
        """Run ``files`` (by default the folder's ready files, listed now) one after the other."""
        for path in self.ready_files() if files is None else files:
            if self._draining:
                return
            if path.resolve() in _RUNNING:          # another watcher (a reload's) runs it now
                continue
            if not path.exists():                   # listed before another watcher (a reload's) ran it to done/
                continue                            # or error/: not shown as running while its read fails
            try:
                await self.process(path, handler)
            except FileNotFoundError as exc:
                if exc.filename is not None and Path(exc.filename) == path and not path.exists():
                    if self.ran_records:
                        log.error("channel %s: %s was removed from %s after %d of its records ran (their deals "
                                  "are in the ledger), so it is in neither done/ nor error/: find out what "
                                  "removed it", self.name, path.name, self.dir, self.ran_records)
                    else:
                        log.info("channel %s: %s went away before it was run (taken by another reader?)",
                                 self.name, path.name)
                    continue
                self._stuck(path, exc)
            except OSError as exc:                  # cannot read it, write its reason, or move it: next scan
                self._stuck(path, exc)

    def _stuck(self, path: Path, exc: OSError) -> None:
        """A file that could not be run or archived stays where it is and is tried again at the next scan
        (its records already recorded are not run again: the index says how far it went); logged once
        per cause, the engine carries on."""
        why = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        if self._stuck_files.get(path) != why:
            self._stuck_files[path] = why
            log.error("channel %s: %s stays in %s: %s; tried again every %gs (its records already run are not "
                      "run again)", self.name, path.name, self.dir, why, self.rescan)

    def _deal_records(self, records: Records | list[tuple[int, bytes]],
                      problems: list[str]) -> tuple[Records | list[tuple[int, bytes]], int, Any, Any]:
        """The file's records that are deals (headers and trailers set aside, each with the header row
        when ``header_row``), the number of the first, the header record's fields (``header =
        FORMAT``: ``file.header``; else None) and None.  No record when the file fails its header / trailer
        counts or its control totals, or its header cannot be read (the problem is added to ``problems``): the
        data records that are not run come last instead of None (each is recorded as a rejected deal of the
        file's refusal: ``file_precheck.record_unrun``), or None when there are too few records to tell them
        apart."""
        heads = self.skip_header + int(self.header_row)     # records before the first deal
        if not records or not (heads or self.skip_trailer):
            return records, 1, None, None
        if len(records) < heads + self.skip_trailer:
            what = "header row" if self.header_row and not self.skip_header else "header"
            problems.append(f"record 1, byte offset 0: the file has {len(records)} record(s), fewer than "
                            f"its {heads} {what} and {self.skip_trailer} trailer record(s)")
            return [], 1, None, None
        trailer_number = len(records) - self.skip_trailer + 1
        trailer = records[trailer_number - 1] if self.skip_trailer else None
        body = records[heads:len(records) - self.skip_trailer]
        if self.header_row:         # each record goes with the header row: columns by name
            # put before each record as it is run, not held once per record
            body = body.with_head(records[self.skip_header][1] + b"\n")
        first = heads + 1
        header_values = None
        if self.header_codec is not None:
            at, raw = records[0]
            try:
                header_values = self.header_codec.decode(raw)
            except FormatError as exc:
                problems.append(f"record 1, byte offset {at}: the header cannot be read: {exc}; no record was run")
                return [], first, None, body
        for controls, record, number in ((self.header_controls, records[0], 1),
                                         (self.controls, trailer, trailer_number)):
            if controls is not None and record is not None:
                problem = controls.check(record, number, body, first)
                if problem is not None:         # nothing of a file that fails its control totals runs
                    problems.append(problem)
                    return [], first, header_values, body
        return body, first, header_values, None

    async def _files(self) -> FileIndex:
        # before a file is noted taken: done/ or error/ replaced by a link since the start is refused (the file
        # stays in the inbox, nothing of it run); the index's own writes never follow a link either
        self._check_folders()
        if self._index is None:
            self._index = await trio.to_thread.run_sync(FileIndex, self.done_dir)
        return self._index

    async def process(self, path: Path, handler: ExchangeHandler) -> bool:
        """One file through the route; returns True when it went to done/."""
        key = path.resolve()
        _RUNNING.add(key)
        self.running = path.name
        self.ran_records = 0                    # this file's records run by this call (told if it goes away)
        self.running_records = self.running_done = 0
        # the file's generation stays in use from its first batch to its last (engine/ops/generation.py)
        holding = getattr(handler, "holding", None)
        try:
            with holding() if holding is not None else contextlib.nullcontext():
                return await self._process(path, handler)
        finally:
            _RUNNING.discard(key)
            self.running = None

    async def _run(self, path: Path, data: bytes, records: Records, first: int, resume: int,
                   earlier: int, sha: str, handler: ExchangeHandler, head: tuple[int, bytes] | None,
                   header: Any = None, tally: Tally | None = None, rerun: bool = False) -> list[str]:
        """Run ``records`` from index ``resume`` in bounded batches, one after the other, noting after
        each batch how far the file's deals are recorded; returns the problems (a line each).  Each
        record goes with its ``RecordOrigin`` (``file.name``, ``file.line`` ... in the route; a decoder's
        byte offset counted from the file's start); ``head``: the header row (offset, bytes) the
        records carry with header_row; ``header``: the header record's fields (``file.header``); ``tally``:
        the outcomes of the file's deals, counted on (the end message's, and the index's ``ran`` lines);
        ``rerun``: the file was being run when the engine stopped, so its first batch now may be one whose deals
        were recorded before the stop and whose ``ran`` line was not: a record of it answered as a duplicate
        of a committed deal (94) is that deal, done, not a problem of the file (its tally says duplicate)."""
        tally = tally if tally is not None else Tally()
        index = await self._files()
        conn = self.file_conn(path, data)
        origins_of = self.origins(path, data, len(records), first, head, header)
        problems: list[str] = []
        self.running_records, self.running_done = len(records), resume
        began = told = trio.current_time()
        for at in range(resume, len(records), self.batch):
            chunk = list(records[at:at + self.batch])      # this batch's records, sliced from the file
            batch_conn = dataclasses.replace(conn, extra={**conn.extra, "origins": origins_of(chunk, at)})
            outcomes: list[Outcome] = await dispatch_batch(handler, batch_conn, [r for _, r in chunk])
            for n, ((offset, _), out) in enumerate(zip(chunk, outcomes), first + at):
                tally.add(out.status, out.kind)
                if rerun and at == resume and out.kind == "duplicate" and out.code == "94":
                    continue            # run before the stop, its `ran` line not noted: the deal is committed
                if out.status in ("rejected", "failed"):
                    problems.append(f"record {n}, byte offset {offset}: {out.status} ({out.kind}, code "
                                    f"{out.code}): {out.detail or out.text}")
            self.ran_records += len(chunk)
            await _stored(handler)
            # the batch's deals are recorded: a stop from here on resumes after it
            await trio.to_thread.run_sync(index.note, sha, "ran", path.name,
                                          f"{at + len(chunk)}:{earlier + len(problems)}" + tally.note())
            self.running_done = at + len(chunk)
            now = trio.current_time()
            if now - told >= self.progress_every and self.running_done < len(records):
                told = now              # a long file: how far it is, for the clerk reading the log
                rate = (self.running_done - resume) / (now - began) if now > began else 0.0
                log.info("channel %s: %s: %d of %d records run (%d%%), %d rejected or failed so far, "
                         "%.0f records/s", self.name, path.name, self.running_done, len(records),
                         100 * self.running_done // len(records), earlier + len(problems), rate)
        last = first + len(records) - 1
        if (problems and problems[-1].startswith(f"record {last}, ") and self.record in ("lines", "csv")
                and not self.skip_trailer and data and not data.endswith((b"\n", b"\r"))):
            # the last record refused, and no line break after it: the usual mark of a file taken half-written
            problems.append(f"record {last}, byte offset {records[-1][0]}: the file does not end with a line "
                            f"break and its last record was refused: it may have been taken while its sender was "
                            f"still writing it (the rest of it is not in this file); the sender should write "
                            f"under a temporary name (.{path.name} or {path.name}.tmp) and rename it into place, "
                            f"or set complete = \"stable\" (or \"marker\") on channel {self.name}")
        if resume and (earlier or problems):
            which = (f"; their dead letters name them: bsp dead list --reason \"file {path.name} record\""
                     if earlier else "")
            problems.insert(0, f"record {first}, byte offset {records[0][0]}: records {first} to "
                               f"{first + resume - 1} ran before the engine stopped, {earlier} of them "
                               f"rejected or failed (their deals are in the ledger{which}); this run began at "
                               f"record {first + resume}")
        return problems

    def file_conn(self, path: Path, data: bytes) -> ConnInfo:
        """The connection a file's batches go on (one per file run)."""
        return ConnInfo(channel=self.name, peer=path.name, number=next(_NUMBERS),
                        extra={"file": {"name": path.name, "size": len(data)}})

    def origins(self, path: Path, data: bytes, n_records: int, first: int, head: tuple[int, bytes] | None,
                header: Any) -> Any:
        """``origins_of(chunk, at)``: the ``RecordOrigin`` of each record of ``chunk``, the file's data records
        from index ``at`` (asked in file order: the lines are counted once)."""
        lines = _LineCounter(data) if self.record in ("lines", "csv") else None
        head_line = lines.line_at(head[0]) if lines is not None and head is not None else None

        def origins_of(chunk: list[tuple[int, bytes]], at: int) -> list[RecordOrigin]:
            return [RecordOrigin(path.name, n, offset, lines.line_at(offset) if lines is not None else None,
                                 n_records, head=len(head[1]) + 1 if head is not None else 0,
                                 head_offset=head[0] if head is not None else 0, head_line=head_line,
                                 header=header)
                    for n, (offset, _) in enumerate(chunk, first + at)]
        return origins_of

    def _still_written(self, path: Path, exc: ChangedWhileRead) -> None:
        """A file that changed as it was read: nothing of it runs; it is read again at the next look."""
        if path not in self._written:
            self._written.add(path)
            log.warning("channel %s: %s changed while it was read (%s): nothing of it was run, and it is read "
                        "again at the next look; its sender is writing it in place: it should write under a "
                        "temporary name and rename, or set complete = \"stable\"", self.name, path.name, exc)

    def _write_reason(self, archived: str, reason: str) -> None:
        with self._folder(self.error_dir) as fd:       # never through a link planted as error/
            write_at(fd, f"{archived}.reason.txt", reason)

    def _archive(self, path: Path, folder: Path) -> str:
        """A free name in ``folder`` for ``path`` (an earlier file of the same name stays), never through a
        link planted as the folder."""
        with self._folder(folder) as fd:
            return free_name_at(fd, path.name)

    def _move(self, path: Path, folder: Path, archived: str) -> None:
        """``path`` renamed to ``folder/archived``, relative to the folder opened without following a link."""
        with self._folder(folder) as fd:
            os.replace(path, archived, dst_dir_fd=fd)

    async def _process(self, path: Path, handler: ExchangeHandler) -> bool:
        try:
            data, seen = await trio.to_thread.run_sync(read_unchanged, path, self.max_file_bytes)
        except ChangedWhileRead as exc:
            self._still_written(path, exc)
            return False
        except TooBig as exc:
            await self._too_big(path, exc, handler)
            return False
        except NotAFile as exc:
            await self._not_read(path, "not a file", f"{path.name}: {exc}; it was not read and no record was run "
                                                     f"(deliver the file itself)", handler)
            return False
        index = await self._files()
        sha = content_id(data)
        problems: list[str] = []
        records: Records | list[tuple[int, bytes]] = []
        head: tuple[int, bytes] | None = None     # with header_row: the header row (offset, bytes)
        first = 1
        resume = earlier = 0                     # records recorded before a stop, and their problems
        tally = Tally()                          # their deals' outcomes (the end message's counts)
        cut = None
        ends: tuple[bytes | None, bytes | None] = (None, None)    # the header and trailer records' bytes
        kind = "bad records"                     # why it goes to error/ if it does (the log's kinds)
        refused_whole = 0                        # data records not run, the file refused whole: rejected deals
        before = index.finished(sha)
        if before is not None and self.run_once:
            kind = "repeat"
            problems.append(f"record 1, byte offset 0: the same bytes as file {before.name}, run to its end at "
                            f"{before.at} (it is {before.status}/{before.archived}): a file is run once, so no "
                            f"record was run; to run it again, change it, or set run_once = false")
        else:
            cut = index.interrupted(sha)
            if cut is None:
                same = index.named(path.name, sha)
                if same is not None:         # the bytes differ: run, but the clerk hears of it
                    log.warning("channel %s: %s: a file of that name, with other bytes, ran at %s (%s/%s); running "
                                "this one too (a file is refused only when its bytes are the same): if it is a "
                                "corrected file sent again, check the deals of the first one (bsp files %s)",
                                self.name, path.name, same.at, same.status, same.archived, self.dir)
                await trio.to_thread.run_sync(index.note, sha, "taken", path.name)
            else:                                              # data records already recorded
                resume, earlier = cut.ran, cut.ran_problems
                tally = Tally.of_ran(cut.archived, earlier) if cut.status == "ran" else tally
                log.warning("channel %s: %s was being run when the engine stopped; %s", self.name, path.name,
                            f"resuming after its first {resume} data record(s), whose deals are recorded"
                            if resume else "running it again (routes with a deal key answer its repeated "
                                           "records from the ledger)")
            try:
                records = split_offsets(data, self.record, self.record_size, self.quote,
                                        rdw_includes_header=self.rdw_includes_header)
            except FormatError as exc:
                kind = "not split"
                problems.append(f"record {exc.record}, byte offset {exc.offset}: cannot split the file into "
                                f"{self.record} records: {exc.message}"
                                + (f" (hint: {exc.hint})" if exc.hint else ""))
            head = records[self.skip_header] if self.header_row and len(records) > self.skip_header else None
            ends = _ends(records, self.skip_header, self.skip_trailer)
            records, first, header_values, unrun = self._deal_records(records, problems)
            if unrun is not None and not resume:
                # refused whole for its control totals or header: each data record a rejected deal (file_precheck)
                await file_precheck.record_unrun(self, path, data, unrun, first, handler, head, header_values,
                                                 problems[-1])
                refused_whole = len(unrun)
            if records and self.all_or_nothing and not resume:
                # every record checked before any runs: one that fails refuses the file whole
                refusal = await file_precheck.check_all(self, path, data, records, first, handler, head,
                                                        header_values)
                if refusal:
                    kind = "refused whole"
                    problems += refusal
                    refused_whole, records = len(records), []
        if records:
            problems += await self._run(path, data, records, first, resume, earlier, sha, handler, head,
                                        header_values, tally, rerun=cut is not None)
        # a sender still writing the file as its records ran: the file as it is now goes to error/
        now = signature(path)
        change = change_text(seen, now) if now != seen else None
        ok = not problems and change is None
        folder = self.done_dir if ok else self.error_dir
        # removed while running: made again beside the index; a link planted meanwhile is refused
        archived = self._archive(path, folder)           # an earlier file of the same name stays
        if change is not None:
            self._write_reason(archived, changed_reason(path.name, self.name, change, len(data), records, first,
                                                        problems))
        elif not ok:
            self._write_reason(archived, f"file {path.name}: {len(problems)} problem(s) in {len(records)} "
                                         f"record(s)\n" + "".join(p + "\n" for p in problems))
        if self.end_message:        # before the move: a stop until it is noted ended leaves the file here
            refused = change is not None or (not ok and not records)
            why = (f"changed while it was read ({change})" if change is not None else problems[0] if refused
                   else None)
            # a file refused whole with its data records told apart counts them: each is a rejected deal
            await send_end(self, handler, index, sha, summary_of(
                path.name, "refused" if refused else "done", why, refused_whole or len(records),
                Tally(rejected=refused_whole) if refused_whole else tally,
                f"{'done' if ok else 'error'}/{archived}", *ends))
        self._move(path, folder, archived)
        if change is None:                               # written to in the instant of the move
            now = signature(folder / archived)
            if now != seen:
                change = change_text(seen, now)
                if ok:
                    ok, archived = False, self._move_on(archived, path.name)
                self._write_reason(archived, changed_reason(path.name, self.name, change, len(data), records,
                                                            first, problems))
        self._stamp(self.done_dir if ok else self.error_dir, archived)
        self._stuck_files.pop(path, None)
        self._written.discard(path)
        if change is not None:
            ran = (f"{records_text(first, first + len(records) - 1)} of the bytes read ran, their deals in the "
                   f"ledger" if records else "no record was run")
            self._to_error("changed", path, archived, f"{path.name} changed while it was read ({change}); the "
                           f"whole file as it is now -> error/{archived}; {ran} (see its reason file); its sender "
                           f"should write under a temporary name and rename, or set complete = \"stable\"",
                           f"changed while it was read ({change}); {ran}", logging.ERROR)
        elif not ok:
            self._to_error(kind, path, archived, f"{path.name} -> error/{archived}: {problems[0]}", problems[0])
        else:
            log.info("channel %s: %s -> done/%s (%d records)", self.name, path.name, archived, len(records))
            self.processed.append(path.name)
            self.files_done += 1
        self.running = None          # in done/ or error/ now (bsp status): what follows is the index's note
        # a refused repeat is noted as such: it does not replace the run it repeats
        status = "repeat" if before is not None and self.run_once else "done" if ok else "error"
        await trio.to_thread.run_sync(index.note, sha, status, path.name, archived)
        marker = path.with_name(path.name + ".done")
        if marker.exists():
            marker.unlink()
        return ok

    async def _too_big(self, path: Path, exc: TooBig, handler: ExchangeHandler) -> None:
        """A file over ``max_file_bytes``: not read, nothing run; to error/ with its reason, like a bad file.
        The index notes it without a content id (its bytes were not read), so the same file dropped again
        once the bound is raised runs."""
        problem = (f"the file is {exc.size} bytes, over max_file_bytes = {exc.limit} of channel {self.name}: it "
                   f"was not read and no record was run; to run it, raise max_file_bytes on the channel (a file "
                   f"is held in memory, with its records, while it runs) and drop it again, or have its sender "
                   f"split it")
        await self._not_read(path, "too big", problem, handler)

    async def _not_read(self, path: Path, kind: str, problem: str, handler: ExchangeHandler) -> None:
        """A file refused before it was read (over max_file_bytes, a symbolic link): moved to error/ as it is
        (a link is moved, never its target) with its reason; noted without a content id."""
        index = await self._files()
        archived = self._archive(path, self.error_dir)
        self._write_reason(archived, f"file {path.name}: 1 problem(s) in 0 record(s)\n{problem}\n")
        if self.end_message:
            await send_end(self, handler, index, NOT_READ, summary_of(
                path.name, "refused", problem, 0, Tally(), f"error/{archived}", None, None))
        self._move(path, self.error_dir, archived)
        self._stamp(self.error_dir, archived)
        self._stuck_files.pop(path, None)
        self._written.discard(path)
        self._to_error(kind, path, archived, f"{path.name} -> error/{archived}: {problem}", problem)
        await trio.to_thread.run_sync(index.note, NOT_READ, "error", path.name, archived)
        marker = path.with_name(path.name + ".done")
        if marker.exists():
            marker.unlink()

    def _to_error(self, kind: str, path: Path, archived: str, text: str, reason: str,
                  level: int = logging.WARNING) -> None:
        """A file moved to error/: the first of its kind in full, a folder of them counted and summed up."""
        self.failed.append(path.name)
        self.files_error += 1
        self.faults.occurred(kind, text, noun=ERROR_NOUNS[kind], source=path.name,
                             reason=f"-> error/{archived}: {reason}", level=level, logger=log)

    def _move_on(self, archived: str, name: str) -> str:
        """A file that reached done/ as its sender wrote to it moves on to error/; its name there."""
        moved = self._archive(Path(name), self.error_dir)
        with self._folder(self.done_dir) as fd, self._folder(self.error_dir) as to:
            os.replace(archived, moved, src_dir_fd=fd, dst_dir_fd=to)
        return moved


def _ends(records: Any, skip_header: int, skip_trailer: int) -> tuple[bytes | None, bytes | None]:
    """The bytes of the file's first (header) and first trailer record, when the channel skips them."""
    header = records[0][1] if skip_header and records else None
    trailer = records[len(records) - skip_trailer][1] if skip_trailer and len(records) >= skip_trailer else None
    return header, trailer


class _LineCounter:
    """The file line a byte offset is on, for offsets asked in ascending order (each byte counted once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.line = 1

    def line_at(self, offset: int) -> int:
        if offset < self.pos:            # asked out of order (never, records come in file order): count again
            self.pos, self.line = 0, 1
        self.line += line_breaks(self.data[self.pos:offset])
        self.pos = offset
        return self.line


async def _stored(handler: ExchangeHandler) -> None:
    """Return once the deals acknowledged so far are stored.  With ``--ledger-sync none`` a deal is
    acknowledged before it is in DuckDB (``engine.journal``): the index must not say a batch ran before
    its deals are there, or a crash in between loses them (the restart resumes after them).  With
    ``journal`` and ``duckdb`` an acknowledged deal is stored already: nothing to wait for."""
    ledger = getattr(getattr(handler, "dispatcher", handler), "ledger", None)
    if getattr(ledger, "sync", None) == "none":
        await ledger.wait_loaded()


def _cause(folder: Path, failed: list[BaseException]) -> BaseException:
    """Why the watch of ``folder`` ended: the OS error a look at the folder met; else, when the watch
    died first (watchfiles raises FileNotFoundError('No such file or directory (os error 2) about
    ["..."]'), no errno, or a RuntimeError: e.g. the folder removed as its watch was armed), the
    folder's own error when it cannot be opened now: one text for one cause (bsp status, the log)."""
    for exc in reversed(failed):
        if isinstance(exc, OSError) and exc.strerror:
            return exc
    try:
        with os.scandir(folder):            # opened, not read: gone, not a folder, or not readable
            pass
    except OSError as exc:
        return exc
    return failed[-1]


def _check_controls(name: str, trailer: Any, count: Any, total: Any, header: Any, header_count: Any,
                    header_total: Any, field: Any, fmt: Any, skip_header: int, skip_trailer: int) -> None:
    """The options of the trailer's and the header's control totals (``total_field`` / ``total_format``
    shared: the records' field both total)."""
    for role, record_fmt, n, t, skip, where in (
            ("trailer", trailer, count, total, skip_trailer, "last"),
            ("header", header, header_count, header_total, skip_header, "first")):
        if record_fmt is None:
            given = [o for o, v in ((f"{role}_count", n), (f"{role}_total", t)) if v is not None]
            if given:
                example = "BatchTrailer" if role == "trailer" else "BatchHeader"
                raise ChannelConfigError(f"channel {name}: option {given[0]} needs {role}, the format of the "
                                         f"file's {role} record (e.g. {role} = {example})")
            continue
        if not skip:
            raise ChannelConfigError(f"channel {name}: option {role}: the {role} is the file's {where} record and "
                                     f"not a deal; set skip_{role} = 1")
        if role == "trailer" and n is None and t is None:
            raise ChannelConfigError(f"channel {name}: option trailer: name the trailer's fields to check, "
                                     f"trailer_count (the number of records) and/or trailer_total (a total)")
        if t is not None and (field is None or fmt is None):
            raise ChannelConfigError(f"channel {name}: option {role}_total needs total_field (the records' field "
                                     f"it totals) and total_format (the records' format)")
    if total is None and header_total is None and (field is not None or fmt is not None):
        if trailer is None and header is None:
            raise ChannelConfigError(f"channel {name}: option {'total_field' if field is not None else 'total_format'}"
                                     f" needs trailer, the format of the file's trailer record (e.g. trailer = "
                                     f"BatchTrailer), or header, that of its header record")
        raise ChannelConfigError(f"channel {name}: option {'total_field' if field is not None else 'total_format'} "
                                 f"is for trailer_total or header_total; add one (the trailer's or header's field "
                                 f"holding the total)")


def _count(channel: str, option: str, value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ChannelConfigError(f"channel {channel}: option {option}: expected 0 or more records, got {value!r}")
    return value


def check_receive(channel: Any, fmt: Any) -> str | None:
    """``bsp check``: a route on a channel with ``header_row`` must read CSV by header names."""
    if channel.options.get("header_row") is not True:
        return None
    if fmt.kind != "csv":
        return (f"with header_row = true each record comes with the file's header row, which a {fmt.kind} "
                f"format cannot read\nreceive as a csv format (its columns are then matched by the header's "
                f"names), or drop header_row")
    if fmt.options.get("header", True) is False:
        return ("with header_row = true each record comes with the file's header row, and format "
                f"`{fmt.name}` is csv header false (columns by position)\ndeclare it with header true "
                "(the default) to match its columns by name")
    return None


def build(decl: Any) -> FileWatcher:
    return FileWatcher(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="file.watch",
    doc=(
        "Watch a directory (watchfiles) and process each complete file's records, in batches of `batch`, through "
        "the channel's routes; every record is a deal. Complete means renamed into place (names starting "
        "with `.` or ending in .tmp/.part are ignored), or, with `complete = \"marker\"`, a `NAME.done` file "
        "beside it, or, with `complete = \"stable\"` (a sender that writes in place), its size and time "
        "unchanged for `settle`. Files already there at start are processed first. A symbolic link is never "
        "followed: it goes to `error/` unread (the link, not its target), as does a pipe or a device. A file that changed while "
        "its records ran goes to `error/` as it is now, its reason saying which records ran (their deals are "
        "in the ledger). Afterwards the file moves to "
        "`done/`, or to `error/` with `NAME.reason.txt` naming each bad record (number, byte offset, "
        "error kind, detail) when any record was rejected or failed or the file cannot be split. "
        "A file is run once (the same bytes again go to `error/`, nothing run), an archived file is "
        "never replaced (`PAY.2.csv`), and a trailer's or header's control totals can be checked before any "
        "record runs. The route reads where its record came from: `file.name`, `file.line` (lines and csv "
        "records), `file.record`, `file.offset`, `file.records`, and the fields of the file's header record "
        "(`header = FORMAT`) as `file.header.FIELD`; a record that does not decode is told at its byte "
        "offset in the file and its line."
    ),
    check=built_check(FileWatcher),
    check_receive=check_receive,
    provides=("file",),
    provides_fields={"file": FILE_FIELDS},
    options=(
        OptionSpec("dir", "path", "The directory to watch.", required=True),
        OptionSpec("pattern", "string", "Glob of the file names taken (e.g. \"*.csv\").", default="*"),
        OptionSpec("complete", "string", "How a file is known complete: rename (renamed into place), marker "
                   "(NAME.done beside it) or stable (its size and time unchanged for settle: for a sender that "
                   "writes in place).", default="rename", choices=("rename", "marker", "stable")),
        OptionSpec("settle", "duration", "complete = stable: how long a file's size and modification time must "
                   "stay unchanged before it is taken; longer than the sender's longest pause in writing "
                   "(default 2s).", default=None),
        OptionSpec("record", "string", "How records are split: lines; csv (rows whose quoted fields "
                   "may hold line breaks); fixed (record_size bytes); rdw / rdw_le (4-byte record descriptor "
                   "word, big / little endian); rje (SWIFT messages separated by `$`); whole (one record per "
                   "file); camt053 (each `<Stmt>` of a camt.053, `Rpt` of a camt.052, `Ntfctn` of a camt.054, as "
                   "a document of its own with the file's envelope and group header). lines and csv drop a UTF-8 byte order mark at the start of the file; the other "
                   "kinds keep it (bytes).", default="lines", choices=RECORD_KINDS),
        OptionSpec("record_size", "int", "Bytes per record for record = fixed.", default=None),
        OptionSpec("rdw_includes_header", "bool", "record = rdw or rdw_le: the RDW length counts its own 4 "
                   "bytes (IBM); false when it counts only the record's data (as the copybook format's option "
                   "of that name).", default=True),
        OptionSpec("quote", "string", "The quote character of record = csv (\"\" for none: then rows are "
                   "lines).", default='"'),
        OptionSpec("skip_header", "int", "Records at the start of each file that are not deals (a CSV "
                   "header line, a batch header record).", default=None),
        OptionSpec("skip_trailer", "int", "Records at the end of each file that are not deals (a batch "
                   "trailer record).", default=None),
        OptionSpec("header_row", "bool", "record = csv or lines: the first record after skip_header names the "
                   "columns; it is not a deal, and each record reaches the routes with it, so a csv format "
                   "matches its columns by name (any order, extra columns ignored).", default=False),
        OptionSpec("trailer", "format", "With skip_trailer: the format of the (first) trailer record, whose "
                   "control totals are checked before any record runs; a file that fails them goes to error/ "
                   "and none of its records is a deal.", default=None),
        OptionSpec("trailer_count", "string", "The trailer's field holding the number of data records.",
                   default=None),
        OptionSpec("trailer_total", "string", "The trailer's field holding the sum of total_field over the "
                   "data records (exact, Decimal).", default=None),
        OptionSpec("header", "format", "With skip_header: the format of the file's first record, its batch "
                   "header; the routes read its fields as file.header.FIELD (a payroll file's company and value "
                   "date), and header_count / header_total check its control totals before any record runs; a "
                   "header that cannot be read, or fails them, sends the file to error/ with no record a deal.",
                   default=None),
        OptionSpec("header_count", "string", "The header's field holding the number of data records.",
                   default=None),
        OptionSpec("header_total", "string", "The header's field holding the sum of total_field over the "
                   "data records (exact, Decimal).", default=None),
        OptionSpec("total_field", "string", "The data records' field trailer_total / header_total sums (e.g. "
                   "\"amount\").", default=None),
        OptionSpec("total_format", "format", "The format total_field is read with (usually the routes' "
                   "receive format).", default=None),
        OptionSpec("all_or_nothing", "bool", "Check every data record against its route before any runs (decoded, "
                   "its `when`, then the route's leading let / deal / validate steps: nothing sent, nothing "
                   "recorded); when one fails, the file is refused whole: no record runs, the file goes to error/ "
                   "and its end message (file.reason) names each failing record, its line and why.",
                   default=False),
        OptionSpec("batch", "int", "Records run together (one batch through the routes, one ledger group "
                   "commit); a larger file runs as several batches, one after the other.", default=1000),
        OptionSpec("max_file_bytes", "int", "Largest file taken, in bytes, checked before it is read (a file "
                   "is read whole and held while it runs, with 16-24 bytes a record saying where each is). "
                   "A bigger one is not read: it goes to error/ with a reason giving its size and this bound.",
                   default=MAX_FILE_BYTES),
        OptionSpec("run_once", "bool", "A file whose bytes were already run to the end is not run again: it "
                   "goes to error/ saying when it ran (false: run it again).", default=True),
        OptionSpec("end_message", "bool", "Once a file has wholly run (every record's deal final) or been refused "
                   "as a whole, deliver ONE more message to the routes whose `when` reads file.end: the file's "
                   "summary (file.status done / refused, file.reason, file.records, file.committed, file.rejected, "
                   "file.failed, file.duplicate, file.archived, file.header, file.trailer); once, across a crash.",
                   default=False),
        OptionSpec("done_dir", "path", "Where processed files go (default DIR/done); never a symbolic link (refused "
                   "at start).", default=None),
        OptionSpec("error_dir", "path", "Where files with bad records go (default DIR/error); never a symbolic link "
                   "(refused at start).", default=None),
        OptionSpec("keep_done", "duration", "How long a file stays in done/ (e.g. 30d): older ones are deleted, "
                   "at the channel's start and every hour, one log line per sweep; a file's time there is set to "
                   "its move. Default: kept for ever (delete them by your retention policy).", default=None),
        OptionSpec("keep_error", "duration", "How long a file stays in error/ (e.g. 90d), its NAME.reason.txt "
                   "with it; as keep_done. Default: kept for ever.", default=None),
        OptionSpec("debounce", "duration", "Quiet time before a burst of changes is handled.", default=None),
        OptionSpec("rescan", "duration", "The folder is also looked at this often, changes or not (a file a "
                   "change event missed: a network file system, the watch being armed); a folder that "
                   "cannot be watched (removed, unmounted) is tried again this often (default 5s).",
                   default=None),
    ),
    build=build,
    examples=(
        'channel batch_in = file watch {\n'
        '    dir         = "inbox"\n'
        '    pattern     = "*.dat"\n'
        '    record      = "fixed"\n'
        '    record_size = 80\n'
        '}',
    ),
)
