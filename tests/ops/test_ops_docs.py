"""docs/operations.md stays true: every `bsp run` / `bsp top` / `bsp status` option and every metric is documented."""
from __future__ import annotations

import re

import typer

from engine.commands import admin, run
from engine.metrics import Metrics
from opskit import REPO

DOC = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")


def _options(register) -> dict[str, list[str]]:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    cmd = typer.main.get_command(app)
    return {name: [f for p in c.params for f in p.opts if f.startswith("--") and f != "--help"]
            for name, c in cmd.commands.items()}


def test_every_operations_option_is_documented() -> None:
    opts = {**_options(run.register), **_options(admin.register)}
    missing = [f"bsp {cmd} {flag}" for cmd in ("run", "top", "status", "reload") for flag in opts[cmd]
               if flag not in ("--url", "--token-file", "--ca", "--cert", "--key", "--verbose", "--count",
                               "--connections")
               and not re.search(re.escape(flag) + r"\b", DOC)]
    assert missing == []


def test_every_metric_family_is_documented() -> None:
    names = {m.name.removeprefix("bsp_") for m in Metrics().registry.collect()}
    missing = sorted(n for n in names if f"`{n}" not in DOC)
    assert missing == []
