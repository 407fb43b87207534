"""``file.write``: a `call` target that writes each request as a file, atomically.

Each payload is written to ``.NAME.tmp`` in ``dir``, fsynced, renamed to NAME
and the directory fsynced, so a reader never sees a partial file.  NAME comes
from ``name``: ``{date}`` (YYYYMMDD), ``{time}`` (HHMMSS), ``{seq}`` (6 digits,
the next number whose file does not exist yet), ``{uuid}``.  The reply is
JSON ``{"file": NAME, "bytes": N}``; a write that fails fails the call
(kind ``failed``) naming the path and the OS error.
"""
from __future__ import annotations

import itertools
import os
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import trio

from engine.channels.base import ChannelError, request_one
from engine.channels.options import ChannelConfigError
from formats.component import ComponentSpec, OptionSpec

_FIELDS = {"date", "time", "seq", "uuid"}
_FIELD = re.compile(r"\{([^{}]*)\}")


class FileWriter:
    role = "connect"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        d = options.get("dir")
        if not d:
            raise ChannelConfigError(f"channel {name}: option dir: the directory to write to is required")
        self.dir = Path(d)
        self.address = str(self.dir)
        self.pattern = options.get("name") or "{date}-{seq}.dat"
        bad = [f for f in _FIELD.findall(self.pattern) if f not in _FIELDS]
        if bad or "/" in self.pattern or self.pattern.startswith("."):
            raise ChannelConfigError(
                f"channel {name}: option name: {self.pattern!r} " +
                (f"uses unknown field(s) {', '.join('{' + b + '}' for b in bad)}" if bad
                 else "must be a plain file name") +
                "; fields are {date}, {time}, {seq}, {uuid} (e.g. name = \"PAY-{date}-{seq}.csv\")")
        self.fsync = bool(options.get("fsync", True))
        self._seq = itertools.count(1)
        self._lock = trio.Lock()
        self.written: list[str] = []

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        task_status.started()

    def _next_name(self) -> str:
        now = datetime.now()
        while True:
            n = next(self._seq)
            name = self.pattern.format(date=now.strftime("%Y%m%d"), time=now.strftime("%H%M%S"),
                                       seq=f"{n:06d}", uuid=uuid.uuid4().hex)
            if not (self.dir / name).exists():
                return name

    def _write(self, name: str, payload: bytes) -> None:
        final = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, payload)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    async def request_many(self, payloads: list[bytes], timeout: float | None = None) -> list[bytes | ChannelError]:
        out: list[bytes | ChannelError] = []
        async with self._lock:                   # names are taken in request order
            for p in payloads:
                name = self._next_name()
                try:
                    await trio.to_thread.run_sync(self._write, name, p)
                except OSError as exc:
                    out.append(ChannelError(f"channel {self.name}: cannot write {self.dir / name}: "
                                            f"{exc.strerror or exc}", channel=self.name))
                    continue
                self.written.append(name)
                out.append(orjson.dumps({"file": name, "bytes": len(p)}))
        return out

    request = request_one


def build(decl: Any) -> FileWriter:
    return FileWriter(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="file.write",
    doc=(
        "A `call` target that writes each request as a file in `dir`: written to a hidden temporary "
        "name, fsynced, renamed into place (atomic) and the directory fsynced. `name` is a pattern with "
        "{date}, {time}, {seq} (6 digits, first free number) and {uuid}. The reply is JSON "
        "`{\"file\": NAME, \"bytes\": N}`; a failed write fails the deal (kind `failed`)."
    ),
    options=(
        OptionSpec("dir", "path", "The directory written to (created if missing).", required=True),
        OptionSpec("name", "string", "File name pattern, e.g. \"PAY-{date}-{seq}.csv\".",
                   default="{date}-{seq}.dat"),
        OptionSpec("fsync", "bool", "fsync the file and the directory (turn off only for tests).", default=True),
    ),
    build=build,
    examples=(
        'channel settlement_out = file write {\n'
        '    dir  = "outbox"\n'
        '    name = "PAY-{date}-{seq}.csv"\n'
        '}',
    ),
)
