"""A reload that changes a ``file watch`` channel and the channel its route calls while a file is half run:
the old watcher finishes the file on the old configuration (its outbound channel is kept open until then),
every record is recorded once, the file goes to done/, and ``bsp status`` shows the file's progress and the
channel's counts across the reload."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer
from engine.ops.backend import EngineBackend
from opskit import live, rows

ROUTE = """
format Rec = json
channel inbox = file watch {
    dir     = "%(inbox)s"
    pattern = "*.jsonl"
    batch   = %(batch)d
}
channel back = tcp connect {
    address = "127.0.0.1:%(port)d"
    framing = length4
    timeout = %(timeout)s
}
route take {
    receive from inbox as Rec
    deal REC { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Rec reply Rec { ref = msg.ref } expect post.status == "OK"
}
"""


class Gate:
    """A length4 JSON counterpart that answers the first ``free`` requests at once and holds the others until
    ``release`` is set; counts each reference."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.seen: list[str] = []
        self.release = trio.Event()
        self.held = trio.Event()          # set once a request is held

    async def handler(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                for p in f.feed(data):
                    ref = orjson.loads(p)["ref"]
                    self.seen.append(ref)
                    if len(self.seen) > self.free:
                        self.held.set()
                        await self.release.wait()
                    try:
                        await stream.send_all(f.frame(orjson.dumps({"ref": ref, "status": "OK"})))
                    except trio.BrokenResourceError:
                        return


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(30):
        while not cond():
            await trio.sleep(0.01)


async def test_reload_changing_file_channel_and_its_call_midway_finishes_the_file_once(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    refs = [f"R{i:02d}" for i in range(10)]
    gate = Gate(free=3)
    route = tmp_path / "r.route"
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, gate.handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        text = functools.partial(lambda **kw: ROUTE % {"inbox": inbox, "port": port, **kw})
        route.write_text(text(batch=2, timeout="10s"))
        ledger = tmp_path / "l.duckdb"
        async with live([route], ledger) as eng:
            backend = EngineBackend(eng)
            (inbox / ".f.tmp").write_text("".join(f'{{"ref": "{r}"}}\n' for r in refs))
            os.replace(inbox / ".f.tmp", inbox / "f.jsonl")
            await gate.held.wait()                  # the second batch's call is held at the counterpart
            route.write_text(text(batch=3, timeout="11s"))      # both channels changed
            result = await eng.reload(source="test")
            assert result.ok, result.diagnostics
            assert set(result.plan["channels"]["changed"]) == {"inbox", "back"}
            assert result.plan["why"]["channels"]["inbox"] == ("options changed (batch): a new channel takes over, "
                                                               "the old one finishes what it is running")
            # right after the reload, the old watcher is still running the file: bsp status says so
            status = await backend.status()
            row = status["channels"]["inbox"]
            assert (row["running"], row["running_records"], row["running_done"]) == ("f.jsonl", 10, 2), row
            for _ in range(20):                     # the retired generation goes idle between batches, if it can
                await trio.sleep(0)
            gate.release.set()
            await wait_for(lambda: (inbox / "done" / "f.jsonl").exists() or (inbox / "error" / "f.jsonl").exists(),
                           "the file handled")
            assert not (inbox / "error").exists() or not list((inbox / "error").iterdir()), \
                (inbox / "error" / "f.jsonl.reason.txt").read_text()
            status = await backend.status()
            row = status["channels"]["inbox"]
            assert (row["files_done"], row["files_error"], row["running"]) == (1, 0, None), row
        listeners[0].socket.close()
        nursery.cancel_scope.cancel()
    assert sorted(gate.seen) == refs                  # each record called once
    deals = rows(ledger, "SELECT reference, status FROM deals ORDER BY reference")
    assert deals == [(r, "committed") for r in refs]
    assert rows(ledger, "SELECT count(*) FROM dead_letters") == [(0,)]
