"""Install the tiny plugin packages of tests/ (``plugin_kv``, ``plugin_faulty``, ...) as a user would,
with pip, into a folder put on ``sys.path`` for one test: their ``bsp.plugins`` entry points are then
what ``default_registry()`` finds.  Each set is built once per session (pip takes a second or two)."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit import REPO

_BUILT: dict[tuple[str, ...], Path] = {}


def install(packages: tuple[str, ...], factory: pytest.TempPathFactory) -> Path:
    """``packages``: folder names under tests/; returns the site folder they are installed in."""
    if packages not in _BUILT:
        target = factory.mktemp("site")
        for name in packages:
            src = factory.mktemp(name) / name       # build from a copy: the build leaves files behind
            shutil.copytree(REPO / "tests" / name, src)
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--no-build-isolation", "--target", str(target), str(src)],
                           check=True, capture_output=True)
        _BUILT[packages] = target
    return _BUILT[packages]


def on_path(packages: tuple[str, ...], factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = install(packages, factory)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site
