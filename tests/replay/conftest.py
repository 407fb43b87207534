"""Fixtures for the replay tests; helpers live in replaykit.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from replaykit import SESSION, config_copy, record_session  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(scope="session")
def session_capture(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("session")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, SESSION), config
