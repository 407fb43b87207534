"""``given CHANNEL sends file "NAME.csv" [twice]``: a whole file through a ``file watch`` channel in a route test.

The file (its path from the test file) is dropped into a folder of the test's own and run by a real
``FileWatcher`` built from the channel's declaration (its options, formats, control totals, ``run_once``,
``end_message``), over the test's engine: what a record test cannot show (a file refused for its control
totals, a file dropped again, the end-of-file message) is tested in the language.  Each record, and the end
message, is an exchange of its own (``ExchangeCtx``): the test's expectations read the calls, deals and dead
letters of all of them together, and its scripted answers are taken in the order the calls are made.  Each test
has its own folder (its file index starts empty), so ``twice`` drops the file again within the test; the
ledger, as for any test, is the suite's.
"""
from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path
from typing import Any, Callable

from engine.channels.file_watch import FileWatcher
from engine.replay.context import CURRENT, ExchangeCtx

_FOLDERS = itertools.count(1)


class PerRecord:
    """The handler a test's file watcher runs its batches through: one frame at a time, each as an exchange
    of its own (``new_ctx``), so the engine's taps note each record's calls and deal apart."""

    def __init__(self, real: Any, new_ctx: Callable[[bytes], ExchangeCtx]) -> None:
        self.real = real
        self.new_ctx = new_ctx

    @property
    def dispatcher(self) -> Any:
        return getattr(self.real, "dispatcher", self.real)

    async def handle(self, conn: Any, frames: list[bytes]) -> list[bytes | None]:
        return await self.handle_via(conn, frames, None)

    async def handle_via(self, conn: Any, frames: list[bytes], via: Any) -> list[bytes | None]:
        replies: list[bytes | None] = []
        for i, frame in enumerate(frames):
            one = dataclasses.replace(conn, extra={**conn.extra, "batch_index": i})
            token = CURRENT.set(self.new_ctx(frame))
            try:
                if hasattr(self.real, "handle_via"):
                    (reply,) = await self.real.handle_via(one, [frame], via)
                else:
                    (reply,) = await (via(self.real) if via is not None else self.real).handle(one, [frame])
            finally:
                CURRENT.reset(token)
            replies.append(reply)
        return replies


async def send_file(program: Any, binder: Any, handler: Any, workdir: Path, t: Any, number: int,
                    script: dict[str, Any], scope: dict[str, Any], where: str) -> list[ExchangeCtx]:
    """Run the test's file (twice with ``twice``) through its channel; the exchanges it made, in order."""
    ch = t.send.channel
    decl = program.channels[ch]
    folder = Path(workdir) / "files" / f"{next(_FOLDERS)}-{ch}"
    folder.mkdir(parents=True)
    options = {k: v for k, v in decl.options.items() if k not in ("done_dir", "error_dir")}
    watcher = FileWatcher(ch, {**options, "dir": str(folder)})
    watcher.bind_codecs(binder)
    ctxs: list[ExchangeCtx] = []

    def new_ctx(raw: bytes) -> ExchangeCtx:
        ctx = ExchangeCtx(number, ch, str(len(ctxs) + 1), raw)
        ctx.extra.update(script=script, problems=[], scope=scope, where=where, file_sent=True)
        ctxs.append(ctx)
        return ctx

    source = Path(t.send.path)
    for _ in range(2 if t.send.twice else 1):
        dropped = folder / source.name
        shutil.copyfile(source, dropped)
        await watcher.process(dropped, PerRecord(handler, new_ctx))
    return ctxs
