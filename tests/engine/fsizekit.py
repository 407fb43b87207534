"""Kit for the storage fault tests: a real engine process whose files cannot grow past a limit
(``RLIMIT_FSIZE``, SIGXFSZ ignored: writes fail with EFBIG as on a full disk with ENOSPC), driven on stdin.

    async with fsize_engine(tmp_path, ROUTE, load_wait=0.05) as eng:
        c = await Client.open(eng.port)              # the channel ``front``
        await eng.command("limit 3000")              # no file grows past 3000 bytes ("limit wal": DuckDB's WAL)
        await eng.command("unlimit")                 # space is back
        await eng.status()                           # {"ledger": ..., "reasons": [...]} as GET /status has them
        eng.err                                      # its stderr so far (logging at WARNING)
    # on exit: killed if still running (no drain: a restart must find everything)

``eng.stop()`` closes stdin instead: the engine drains as ``bsp run`` does on SIGTERM; a ``LedgerError``
is printed as ``bsp run`` prints it (``error: ...``, exit 1)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import trio

from kit import REPO, Client

# The route the storage fault tests serve: a JSON payment answered 00 once its deal is recorded.
ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
}
"""

# the engine below with 4 KiB journal segments (a few deals fill one)
SMALL_SEGMENTS = {"segment_bytes": 4096, "load_wait": 0.05}


async def ask(c: Client, ref: str, wait: float) -> bool:
    """Send one payment of ROUTE; whether it was answered (acknowledged) within ``wait`` seconds."""
    await c.send(b'{"ref":"%s","amount":10.25}' % ref.encode())
    with trio.move_on_after(wait):
        (reply,) = await c.recv_json(1)
        assert reply == {"ref": ref, "code": "00"}
        return True
    return False


# A real engine: journaled ledger (options from argv[4], e.g. small segments so a few deals fill one),
# optionally a transaction log of ``txn_segment_bytes``; fault injection on stdin.
ENGINE = textwrap.dedent("""
    import json, logging, os, resource, signal, sys, trio
    sys.path.insert(0, sys.argv[3])
    from dsl.load import compile_paths
    from engine.journal import open_journaled_ledger
    from engine.ledger_store import LedgerError
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # a write past the limit fails with EFBIG
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    HARD = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    OPTIONS = json.loads(sys.argv[4])
    TXN_SEGMENT = OPTIONS.pop("txn_segment_bytes", None)
    AT_START = OPTIONS.pop("limit_at_start", None)          # "wal" or bytes: the disk is full from the start
    if AT_START is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[2] + ".wal") if AT_START == "wal"
                                                   else int(AT_START), HARD))

    async def main():
        reg = default_registry()
        program = compile_paths([sys.argv[1]], reg).program
        async with open_journaled_ledger(sys.argv[2], **OPTIONS) as led:
            if TXN_SEGMENT:
                from engine.txn import manager_for
                from engine.txn.log import TxnLog, log_path
                manager_for(led)._log = TxnLog(log_path(sys.argv[2]), segment_bytes=TXN_SEGMENT)
            sb = Switchboard(program, reg, ledger=led)
            async with trio.open_nursery() as n:
                await n.start(sb.run)
                print("serving", sb.channel("front").port, flush=True)
                stdin = trio.lowlevel.FdStream(0)
                buf = b""
                while True:
                    chunk = await stdin.receive_some(1024)
                    if not chunk:         # stdin closed: stop as bsp run does on SIGTERM
                        sb.drain()
                        return
                    buf += chunk
                    while b"\\n" in buf:
                        line, buf = buf.split(b"\\n", 1)
                        cmd = line.split()
                        if cmd[0] == b"status":          # what bsp status shows of the ledger (the admin API's)
                            from engine.ops.backend import ledger_status
                            row, reasons = ledger_status(led)
                            print(json.dumps({"ledger": row, "reasons": reasons}), flush=True)
                            continue
                        size = (resource.RLIM_INFINITY if cmd[0] != b"limit" else   # "limit wal": DuckDB cannot write
                                os.path.getsize(sys.argv[2] + ".wal") if cmd[1] == b"wal" else int(cmd[1]))
                        resource.setrlimit(resource.RLIMIT_FSIZE, (size, HARD))
                        print("ok", flush=True)
    try:
        trio.run(main)
    except LedgerError as exc:                             # as bsp run reports it
        print(f"error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"error: {note}", file=sys.stderr)
        sys.exit(1)
""")


class FsizeEngine:
    """The engine process: its ledger, the port of ``front``, its stderr (``err``, read as it comes)."""

    def __init__(self, proc: trio.Process, ledger: Path) -> None:
        self.proc = proc
        self.ledger = ledger
        self.port = 0
        self.err = bytearray()
        self._out = bytearray()
        self._err_closed = trio.Event()

    async def line(self) -> str:
        """The next line the engine prints on stdout."""
        while b"\n" not in self._out:
            chunk = await self.proc.stdout.receive_some(4096)
            assert chunk, "the engine exited"
            self._out += chunk
        line, _, rest = bytes(self._out).partition(b"\n")
        self._out[:] = rest
        return line.decode()

    async def command(self, cmd: str) -> None:
        """``limit N``, ``limit wal`` or ``unlimit``; returns once the engine has applied it."""
        await self.proc.stdin.send_all(cmd.encode() + b"\n")
        assert await self.line() == "ok"

    async def status(self) -> dict:
        """The ledger's row of the engine's status and its reasons (``engine.ops.backend.ledger_status``, what
        ``GET /status`` shows of the ledger): ``{"ledger": {..., "faults": [...]}, "reasons": [...]}``."""
        await self.proc.stdin.send_all(b"status\n")
        return json.loads(await self.line())

    async def stop(self) -> int:
        """Close stdin (the engine drains and stops); its exit code, once its stderr is read to the end."""
        await self.proc.stdin.aclose()
        code = await self.proc.wait()
        await self._err_closed.wait()
        return code

    async def kill(self) -> None:
        self.proc.kill()
        await self.proc.wait()

    async def _read_err(self) -> None:
        while chunk := await self.proc.stderr.receive_some(65536):
            self.err.extend(chunk)
        self._err_closed.set()


def fsize_start(tmp_path: Path, route_text: str, **options: object) -> subprocess.CompletedProcess:
    """Run the engine of ``fsize_engine`` on the same files until it exits by itself (a start-up that fails:
    ``limit_at_start="wal"`` or a byte count makes the disk full before the ledger is opened); stdin is
    closed, so an engine that does start drains and stops at once."""
    route = tmp_path / "pay.route"
    route.write_text(route_text)
    script = tmp_path / "engine_main.py"
    script.write_text(ENGINE)
    return subprocess.run([sys.executable, str(script), str(route), str(tmp_path / "ledger.duckdb"), str(REPO),
                           json.dumps(options)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)


@asynccontextmanager
async def fsize_engine(tmp_path: Path, route_text: str, **options: object) -> AsyncIterator[FsizeEngine]:
    """Start the engine on ``route_text`` (``tmp_path/pay.route``, ledger ``tmp_path/ledger.duckdb``) with
    ``options`` for ``open_journaled_ledger`` (and ``txn_segment_bytes``); yields once it serves."""
    route = tmp_path / "pay.route"
    route.write_text(route_text)
    script = tmp_path / "engine_main.py"
    script.write_text(ENGINE)
    ledger = tmp_path / "ledger.duckdb"
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(script), str(route), str(ledger), str(REPO), json.dumps(options)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    eng = FsizeEngine(proc, ledger)
    try:
        async with trio.open_nursery() as n:
            n.start_soon(eng._read_err)
            with trio.fail_after(60):
                eng.port = int((await eng.line()).split()[1])
            yield eng
            n.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            await eng.kill()
