"""Settings for the whole suite.

Hypothesis: no per-example deadline anywhere (speed is measured in bench/, never asserted in a test;
a loaded CI machine would otherwise fail a property for being slow), and under CI (``CI=true``, as
``.ci/run`` is run) a derandomized search, so that a run is reproducible: a property that fails in
CI fails again on the same commit.  Locally each run explores new examples.
"""
from __future__ import annotations

import logging
import os

import pytest

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")


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
