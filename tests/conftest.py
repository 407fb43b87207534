"""Settings for the whole suite.

Hypothesis: no per-example deadline anywhere (speed is measured in bench/, never asserted in a test;
a loaded CI machine would otherwise fail a property for being slow), and under CI (``CI=true``, as
``.ci/run`` is run) a derandomized search, so that a run is reproducible: a property that fails in
CI fails again on the same commit.  Locally each run explores new examples.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import socket
import sys
import threading

import pytest

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")


# A test still running after this many seconds is a hang (the slowest test takes well under a minute on a
# loaded machine): the watchdog names it, prints every thread's stack and ends the run (exit 70), rather
# than hold CI for its 90 minutes with nothing said.  BSP_TEST_WATCHDOG=0 turns it off (a debugger session).
WATCHDOG_SECONDS = float(os.environ.get("BSP_TEST_WATCHDOG", "600"))


def _hung(nodeid: str, config: pytest.Config) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:              # the test's output is captured: say it where the run's output goes
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(f"\n\nbsp test watchdog: {nodeid} is still running after {WATCHDOG_SECONDS:g} s: a hang. "
                     f"The stack of every thread follows; the run stops here.\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(70)


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Set up before the test's other fixtures and torn down after them: a hang in a fixture's teardown (a
    nursery that never closes) is caught too."""
    if WATCHDOG_SECONDS <= 0:
        yield
        return
    timer = threading.Timer(WATCHDOG_SECONDS, _hung, args=(request.node.nodeid, request.config))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture(autouse=True)
def _bsp_log_handlers_removed():
    """A command run in-process (typer's CliRunner) installs bsp's log handlers on the root logger
    (engine/ops/logs.py), writing to the runner's stream, which is closed when the command ends: later
    log lines of other tests then fail with "I/O operation on closed file".  Remove them after each test,
    and put the root logger's level back (``bsp test`` sets it to CRITICAL: later tests' caplog would
    then see no warning)."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_bsp", False):
            root.removeHandler(h)
            h.close()


@pytest.fixture
def dead_port():
    """A loopback port nobody listens on, for the whole test: bound (no other test or process can take it)
    and never listening, so a connection to it is refused.  A port picked by binding a socket and closing
    it is free only until someone else binds it: on a busy CI machine another test or run could, and the
    "unreachable" the test expects would be answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class HeldPort:
    """A loopback port nobody listens on until the test serves there (see ``held_port``)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def release(self) -> int:
        """Unbind it, just before the test's server binds it; its port."""
        self._sock.close()
        return self.port


@pytest.fixture
def held_port():
    """A loopback port refused at first, served later by the test: bound until ``release()`` (so no other
    test or process takes it while the test checks what happens with nobody there), which the test calls
    just before its own server binds the port."""
    held = HeldPort()
    try:
        yield held
    finally:
        held.release()


# ----------------------------------------------------------------------------- virtual time and worker threads

_threads_busy = [0]          # trio.to_thread.run_sync calls not yet returned (the ledger's DuckDB writes, ...)


def thread_aware(clock):
    """``clock`` (a ``trio.testing.MockClock``), its autojump waiting while a worker thread is busy.

    Autojump advances virtual time once every task has been blocked for ``autojump_threshold`` real
    seconds, and a task waiting for ``trio.to_thread.run_sync`` counts as blocked.  On a loaded machine a
    DuckDB commit can take longer than the threshold, and virtual time then ran past the engine's own
    deadlines (a call timeout, store and forward's repeat) while the engine was only waiting for its ledger:
    a test failed for the machine's load, not for the code (CI, card certification, late 0210).  With this
    the clock jumps only when no worker thread is working.  (MockClock cannot be subclassed; trio's run loop
    calls the clock's ``_autojump``, replaced here on the instance.)"""
    jump = clock._autojump

    def autojump() -> None:
        if _threads_busy[0] == 0:
            jump()

    clock._autojump = autojump
    return clock


@pytest.fixture(autouse=True)
def _count_worker_threads(monkeypatch):
    import trio

    real = trio.to_thread.run_sync

    async def counted(*args, **kwargs):
        _threads_busy[0] += 1
        try:
            return await real(*args, **kwargs)
        finally:
            _threads_busy[0] -= 1

    monkeypatch.setattr(trio.to_thread, "run_sync", counted)
    yield


@pytest.fixture
def mock_clock():
    """pytest-trio's ``mock_clock``, but one that does not jump while a worker thread is busy
    (``thread_aware``)."""
    import trio.testing

    return thread_aware(trio.testing.MockClock())
