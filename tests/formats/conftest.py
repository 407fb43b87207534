"""Shared fixtures for format tests."""
from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    """The conformance corpus (``<repo>/../shared/corpus``); skips when absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    return CORPUS.resolve()
