"""``file.write``: a `call` target that writes each request as a file, atomically, or
appends it as a record to a file (``mode = "append"``).

``mode = "file"`` (the default): each payload is written to a temporary file of
its own, ``.NAME.HEX.tmp`` in ``dir``, fsynced, linked to NAME and the directory
fsynced, so a reader never sees a partial file.  NAME comes from ``name``:
``{date}`` (YYYYMMDD), ``{time}`` (HHMMSS), ``{seq}`` (6 digits, numbered per
name: the files whose names differ only in ``{seq}`` are numbered from 1, each
the first number whose file does not exist, never one this channel used before
in this run), ``{uuid}``.  The reply is JSON ``{"file": NAME, "bytes": N}``.

``mode = "append"``: each payload, followed by ``separator`` (a newline unless
set), is appended to the file NAME (``{date}`` and ``{time}`` allowed: a file
a day, say); a batch is one write and one fsync before any of its calls
answers.  The reply is JSON ``{"file": NAME, "bytes": N, "offset": AT}``, AT
being where the record starts.  A record cut short by a crash was never
answered: when the engine first appends to a file that does not end with the
separator, it cuts that torn tail off (and logs how many bytes it dropped).
``header`` (append only): a line written, with the separator, at the top of
every new file (a CSV header for a settlement file a day), in the same write
and fsync as the file's first records.

Any other ``{word}`` in ``name`` is a value each call gives (``name { word = EXPR }`` on the
call step, ``engine.channels.file_names``): ``"pacs008-{ref}.xml"`` is a file per remittance,
``"RESULT-{source}.csv"`` with ``mode = "append"`` a result file per source file.  A value that
cannot be a piece of a file name (empty, ``/``, ``\\``, NUL, ``..``, a name over 255 bytes) fails
that call (kind ``failed``) and nothing is written; the texts quote the value masked when it is
classified (``NameValues.shown``).

A write that fails fails the call (kind ``failed``) naming the path and the
OS error, and is logged.  A file is never replaced: a name without ``{seq}``
that is already taken fails the call (it used to loop for ever, freezing the
engine); with ``{seq}``, a name taken meanwhile moves on to the next number.
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import trio

from engine.channels.base import ChannelError, request_one
from engine.channels.file_names import APPEND_BUILTIN, BUILTIN, FIELD, WORD, call_fields, fill, problem
from engine.filemodes import make_shared_dirs, shared_mode
from engine.channels.options import ChannelConfigError, built_check
from formats.component import ComponentSpec, OptionSpec

_FIELDS = set(BUILTIN)
_APPEND_FIELDS = set(APPEND_BUILTIN)
_MODES = ("file", "append")
_NAME_TRIES = 100         # {seq}: names found taken at rename time before a write fails
_TMP_BASE = 240           # a longer name's temporary file is .bsp.HEX.tmp (a name holds 255 bytes)
_SEQ_KEYS = 4096          # {seq}: names (with {seq} left out) whose last number is remembered
log = logging.getLogger("bsp.channel.file_write")


class FileWriter:
    role = "connect"
    answers_json = True      # its answer is its own JSON record: a call without `reply` reads it as JSON

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        d = options.get("dir")
        if not d:
            raise ChannelConfigError(f"channel {name}: option dir: the directory to write to is required")
        self.dir = Path(d)
        self.address = str(self.dir)
        self.mode = options.get("mode") or "file"
        if self.mode not in _MODES:
            raise ChannelConfigError(f"channel {name}: option mode: {self.mode!r} is not a mode; "
                                     f"use \"file\" (a file per request) or \"append\" (a record per request)")
        append = self.mode == "append"
        self.pattern = options.get("name") or ("{date}.dat" if append else "{date}-{seq}.dat")
        fields = _APPEND_FIELDS if append else _FIELDS
        # {word}: a value each call gives (name { word = ... }); anything else in braces is refused
        bad = [f for f in FIELD.findall(self.pattern) if f not in fields and (not WORD.match(f) or f in _FIELDS)]
        if bad or "/" in self.pattern or "\\" in self.pattern or self.pattern.startswith("."):
            if bad and append and not set(bad) - _FIELDS:
                raise ChannelConfigError(
                    f"channel {name}: option name: {self.pattern!r} uses "
                    f"{', '.join('{' + b + '}' for b in bad)}, which would start a new file for every "
                    f"record; with mode = \"append\" the fields are {{date}} and {{time}} "
                    f"(e.g. name = \"SETTLE-{{date}}.csv\")")
            raise ChannelConfigError(
                f"channel {name}: option name: {self.pattern!r} " +
                (f"uses unknown field(s) {', '.join('{' + b + '}' for b in bad)}" if bad
                 else "must be a plain file name") +
                ("; fields are {date}, {time} (e.g. name = \"SETTLE-{date}.csv\")" if append else
                 "; fields are {date}, {time}, {seq}, {uuid} (e.g. name = \"PAY-{date}-{seq}.csv\")") +
                ", and a {word} each call gives with name { word = ... } (e.g. \"RESULT-{source}.csv\")")
        sep = options.get("separator")
        if sep is not None and not append:
            raise ChannelConfigError(f"channel {name}: option separator: only with mode = \"append\" "
                                     f"(a file per request needs none)")
        self.separator = ("\n" if sep is None else str(sep)).encode("utf-8")
        header = options.get("header")
        if header is not None and not append:
            raise ChannelConfigError(f"channel {name}: option header: only with mode = \"append\" (with a "
                                     f"file per request, the request is the whole file: put the header in it)")
        if header is not None and (not isinstance(header, str) or not header):
            raise ChannelConfigError(f"channel {name}: option header: expected the text of the first line, "
                                     f"e.g. header = \"ref,amount,currency\", got {header!r}")
        self.header = None if header is None else header.encode("utf-8") + self.separator
        self._checked: set[str] = set()        # append: files whose tail was checked for a torn record
        self.fsync = bool(options.get("fsync", True))
        self._next: dict[str, int] = {}        # {seq}: per name with {seq} left out, the next number to try
        self._numbered = "{seq}" in self.pattern
        self.call_fields = call_fields(self.pattern, tuple(fields))   # given by each call (name { ... })
        self.takes_names = bool(self.call_fields)
        self._lock = trio.Lock()
        self.written: list[str] = []

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        make_shared_dirs(self.dir)           # as the process's umask makes it (the engine's is owner-only)
        task_status.started()

    def _next_name(self, values: Any = None) -> tuple[str, str, str, int]:
        """The name for the next file, the name as texts show it (classified values masked), and
        for ``{seq}`` the name's key (the name with ``{seq}`` left out) and its number.  With
        ``{seq}``, files are numbered per key: ``claim-{claim_id}-{seq}.json`` numbers each claim's
        files from 1, ``PAY-{date}-{seq}.csv`` each day's; the number is the first, from the one after
        the last this channel wrote for that key, whose file does not exist.  Without ``{seq}``
        (``{date}``, ``{time}``, a fixed name) the name as the pattern makes it, even if taken:
        ``_write`` then refuses to replace that file (never a loop, never an overwrite).
        ``ValueError`` with the reason when the call's ``values`` cannot name a file."""
        now = datetime.now()
        values = values if values is not None else {}
        own = {"date": now.strftime("%Y%m%d"), "time": now.strftime("%H%M%S"), "seq": "000000",
               "uuid": uuid.uuid4().hex}
        bad = problem(self.pattern, values, self.name, own) if self.call_fields else None
        if bad is not None:
            raise ValueError(bad[1])
        if not self._numbered:
            return (fill(self.pattern, values, own), fill(self.pattern, getattr(values, "shown", values), own),
                    "", 0)
        key = fill(self.pattern, values, {**own, "seq": "\x00"})     # NUL: in no file name
        n = self._next.get(key, 1)
        while True:
            own["seq"] = f"{n:06d}"
            name = fill(self.pattern, values, own)
            if not (self.dir / name).exists():
                return name, fill(self.pattern, getattr(values, "shown", values), own), key, n
            n += 1

    def _taken(self, key: str, n: int) -> None:
        """Number ``n`` of ``key`` is used (written, or found taken): the next name of that key
        tries ``n + 1``.  Only the most recently used keys are kept (a key per claim, per day, per
        second with ``{time}``); a forgotten one starts again from 1, skipping every file that exists."""
        self._next.pop(key, None)
        self._next[key] = n + 1
        if len(self._next) > _SEQ_KEYS:
            self._next.pop(next(iter(self._next)))

    def _write(self, name: str, payload: bytes) -> None:
        """Worker thread: write ``payload`` to a hidden temporary file, fsync, and give it ``name``
        without ever replacing a file of that name (``FileExistsError`` instead).  The temporary
        file is removed when anything fails."""
        final = self.dir / name
        # a temporary name of this write alone (O_EXCL): two writers of one name at once (two
        # channels on one folder, two engines) each write their own, never one the other's
        base = name if len(name.encode("utf-8")) <= _TMP_BASE else "bsp"
        tmp = self.dir / f".{base}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            try:
                os.fchmod(fd, shared_mode(0o640))    # for the counterpart: not the ledger's owner-only umask
                view = memoryview(payload)
                while view:                      # a short write (disk nearly full) is not the whole file
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final)              # atomic, and fails if the name is taken
            except FileExistsError:
                raise
            except OSError:                      # a file system without hard links
                if os.path.lexists(final):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
                os.replace(tmp, final)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _append(self, name: str, payloads: list[bytes]) -> int:
        """Worker thread: append ``payloads`` (each + separator) to ``name`` in one write and
        fsync; returns the offset the first record starts at."""
        path = self.dir / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o640)
            os.fchmod(fd, shared_mode(0o640))        # a new file, for the counterpart (an old one keeps its mode)
        except FileExistsError:
            try:
                # never through a symbolic link: whoever can write the folder would have the engine append to
                # (and cut the torn tail of) any file it can write
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise OSError(errno.ELOOP, "it is a symbolic link, which is not followed (remove it; the channel "
                                           "creates the file itself)") from None
        try:
            if name not in self._checked:
                self._cut_torn_tail(fd, path)
                self._checked.add(name)
                if len(self._checked) > 64:         # names rotate (daily): forget old ones
                    self._checked = {name}
            at = os.lseek(fd, 0, os.SEEK_END)
            sep = self.separator
            data = b"".join([p + sep for p in payloads])
            if at == 0 and self.header:          # a new file: its header, in the same write and fsync
                data = self.header + data
                at = len(self.header)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return at

    def _cut_torn_tail(self, fd: int, path: Path) -> None:
        sep = self.separator
        size = os.fstat(fd).st_size
        if not sep or size == 0:
            return
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if tail.endswith(sep):
            return
        if self.header and size < len(self.header) and self.header.startswith(tail):
            keep = 0            # our header cut short by a crash: the file starts again
        else:
            cut = tail.rfind(sep)
            if cut < 0:     # not one whole record: not a torn tail of ours to cut (maybe not ours at all)
                raise OSError(f"{path} does not end with the record separator and has none in its last "
                              f"{len(tail)} bytes; not appending to it (move it aside)")
            keep = size - len(tail) + cut + len(sep)
        os.ftruncate(fd, keep)
        if self.fsync:
            os.fsync(fd)
        log.warning("channel %s: %s ended with %d bytes of a %s cut short (never answered); cut them off",
                    self.name, path, size - keep, "header" if keep == 0 and self.header else "record")

    async def _request_append(self, payloads: list[bytes], names: list[Any] | None) -> list[bytes | ChannelError]:
        now = datetime.now()
        own = {"date": now.strftime("%Y%m%d"), "time": now.strftime("%H%M%S")}
        out: list[bytes | ChannelError | None] = [None] * len(payloads)
        files: dict[str, tuple[str, list[int]]] = {}     # name -> (as shown, indexes of its records)
        for i in range(len(payloads)):
            values = names[i] if names is not None else {}
            bad = problem(self.pattern, values, self.name, own) if self.call_fields else None
            if bad is not None:
                out[i] = self._bad_name(bad[1])
                continue
            name = fill(self.pattern, values, own)
            files.setdefault(name, (fill(self.pattern, getattr(values, "shown", values), own), []))[1].append(i)
        step = len(self.separator)
        async with self._lock:
            for name, (shown, idx) in files.items():      # one write and fsync per file of the batch
                try:
                    at = await trio.to_thread.run_sync(self._append, name, [payloads[i] for i in idx])
                except OSError as exc:
                    err = ChannelError(f"channel {self.name}: cannot append to {self.dir / shown}: "
                                       f"{exc.strerror or exc}", channel=self.name)
                    log.error("%s", err)
                    for i in idx:
                        out[i] = err
                    continue
                for i in idx:
                    out[i] = orjson.dumps({"file": name, "bytes": len(payloads[i]), "offset": at})
                    at += len(payloads[i]) + step
                if name not in self.written:
                    self.written.append(name)
        return out  # type: ignore[return-value]

    def _bad_name(self, reason: str) -> ChannelError:
        err = ChannelError(reason, channel=self.name)
        log.error("%s", err)
        return err

    async def request_many(self, payloads: list[bytes], timeout: float | None = None,
                           names: list[Any] | None = None) -> list[bytes | ChannelError]:
        """``names``: per payload, the values of the name's ``{word}`` fields (a ``NameValues``)."""
        if self.mode == "append":
            return await self._request_append(payloads, names)
        out: list[bytes | ChannelError] = []
        async with self._lock:                   # names are taken in request order
            for i, p in enumerate(payloads):
                err: ChannelError | None = None
                for _ in range(_NAME_TRIES if self._numbered else 1):
                    try:
                        name, shown, key, n = self._next_name(names[i] if names is not None else None)
                    except ValueError as exc:
                        err = ChannelError(str(exc), channel=self.name)
                        break
                    try:
                        await trio.to_thread.run_sync(self._write, name, p)
                    except FileExistsError:      # taken since we looked (another writer): next number
                        if self._numbered:
                            self._taken(key, n)
                        err = ChannelError(
                            f"channel {self.name}: cannot write {self.dir / shown}: a file of that name exists; "
                            f"not replacing it" + ("" if self._numbered else
                                                   " (the name pattern has no {seq}: add one, e.g. "
                                                   "\"PAY-{date}-{seq}.csv\", for a file per request)"),
                            channel=self.name)
                        continue
                    except OSError as exc:
                        err = ChannelError(f"channel {self.name}: cannot write "
                                           f"{(not self.call_fields and exc.filename) or self.dir / shown}: "
                                           f"{exc.strerror or exc}", channel=self.name)
                        break
                    err = None
                    if self._numbered:
                        self._taken(key, n)
                    break
                if err is not None:
                    log.error("%s", err)
                    out.append(err)
                    continue
                self.written.append(name)
                out.append(orjson.dumps({"file": name, "bytes": len(p)}))
        return out

    request = request_one


def build(decl: Any) -> FileWriter:
    return FileWriter(decl.name, dict(decl.options))


def name_fields(decl: Any) -> list[str]:
    """``bsp check``: the ``{word}`` fields of the channel's name, which each call gives.  A built-in
    field is never a call's, in either mode: ``{seq}`` or ``{uuid}`` in an append name is refused by the
    channel itself (E055), not asked of the call as well."""
    pattern = dict(decl.options).get("name")
    return call_fields(pattern, BUILTIN) if isinstance(pattern, str) else []


COMPONENT = ComponentSpec(
    category="channel",
    name="file.write",
    doc=(
        "A `call` target that writes each request as a file in `dir`: written to a hidden temporary "
        "name, fsynced, renamed into place (atomic) and the directory fsynced. `name` is a pattern with "
        "{date}, {time}, {seq} (6 digits, numbered per name: \"claim-{claim_id}-{seq}.json\" numbers "
        "each claim's files from 1, each the first number whose file does not exist) and {uuid}, and any "
        "other {word}: a value "
        "each call gives from its deal with `name { word = EXPR }` (\"pacs008-{ref}.xml\"), refused "
        "(the deal fails, nothing is written) when it is not one piece of a file name in `dir` (empty, "
        "/, \\, NUL, .., over 255 bytes). The reply is JSON "
        "`{\"file\": NAME, \"bytes\": N}`. With `mode = \"append\"` each request is instead appended "
        "as a record (followed by `separator`) to the file `name` names ({date}, {time}: a file a day, "
        "say); a batch is one write and one fsync before its calls answer, the reply adds the record's "
        "`offset`, and a torn record a crash left at the end of the file is cut off before the first "
        "append. A file is never replaced: without {seq} a name already taken fails the call. A failed "
        "write fails the deal (kind `failed`)."
    ),
    check=built_check(FileWriter),
    call_names=name_fields,
    options=(
        OptionSpec("dir", "path", "The directory written to, relative to the route file; it must exist (bsp does not create it: bsp check reports a missing one, E047).", required=True),
        OptionSpec("name", "string", "File name pattern, e.g. \"PAY-{date}-{seq}.csv\", or \"pacs008-{ref}.xml\" "
                   "with {ref} given by each call (name { ref = msg.ref }) (default "
                   "\"{date}-{seq}.dat\"); with mode = \"append\" e.g. \"SETTLE-{date}.csv\" (default "
                   "\"{date}.dat\")."),
        OptionSpec("mode", "string", "\"file\": a file per request; \"append\": a record per request "
                   "appended to one file.", default="file", choices=_MODES),
        OptionSpec("separator", "string", "mode = \"append\": written after each record (default: a newline; "
                   "\"\" for none)."),
        OptionSpec("header", "string", "mode = append: the first line of every new file (e.g. a CSV header "
                   "\"ref,amount,currency\"), written with the file's first records.", default=None),
        OptionSpec("fsync", "bool", "fsync the file and the directory (turn off only for tests).", default=True),
    ),
    build=build,
    examples=(
        'channel settlement_out = file write {\n'
        '    dir  = "outbox"\n'
        '    name = "PAY-{date}-{seq}.csv"\n'
        '}',
        'channel settlement_day = file write {\n'
        '    dir  = "outbox"\n'
        '    name = "SETTLE-{date}.csv"\n'
        '    mode = "append"\n'
        '}',
    ),
)
