"""`bsp deals --since X --until Y` with X not before Y is a usage error naming both (it printed an empty table:
"no deals match", read as "there were none"), as `bsp dead list` does."""
from __future__ import annotations

from pathlib import Path

import trio
import typer
from typer.testing import CliRunner

from engine.commands.deals import register
from engine.ledger import open_ledger


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["deals", *args])


def test_since_after_until_is_a_usage_error_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"

    async def create() -> None:
        async with open_ledger(path, audit_key=None):
            pass

    trio.run(create)
    for since, until in (("2026-03-02", "2026-03-01"), ("2026-03-01", "2026-03-01"), ("1h", "2h")):
        res = cli("--ledger", str(path), "--since", since, "--until", until)
        text = " ".join(res.output.replace("│", " ").split())
        assert res.exit_code == 2, res.output
        assert f"--since {since} (" in text and f"is not before --until {until} (" in text, text
        assert "no deal can match" in text, text
    res = cli("--ledger", str(path), "--since", "2026-03-01", "--until", "2026-03-02")
    assert res.exit_code == 0 and "no deals match these filters" in res.output, res.output
