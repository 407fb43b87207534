"""Every reload that switches is in the log at the default level (warning), whoever asked: `bsp reload` and
`POST /reload` too, with the token that asked (not only SIGHUP and --watch); one line each, with its plan."""
from __future__ import annotations

import logging
from pathlib import Path

from opskit import ECHO, live


async def test_an_admin_reload_is_logged_at_the_default_level_once(tmp_path: Path, caplog) -> None:
    route = tmp_path / "r.route"
    route.write_text(ECHO % "v1")
    async with live([route], tmp_path / "l.duckdb") as eng:
        first = eng.version
        route.write_text(ECHO % "v2")
        with caplog.at_level(logging.WARNING, logger="bsp.reload"):
            result = await eng.reload(source="admin", by="ops-alice")
        assert result.ok
    lines = [r.getMessage() for r in caplog.records if r.name == "bsp.reload" and r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"reloaded: version {first} -> {result.version} (generation 2) "
                               f"(admin, token 'ops-alice')"), lines
    assert "\n" not in lines[0]                       # one line: the text log would show a literal \n
    assert lines[0].endswith(": channels kept: front; routes changed: echo (echo: declaration changed); "
                             "formats kept: Req"), lines[0]
