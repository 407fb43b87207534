"""A reload refused for a route file with an error is one readable line in the engine's log (default format):
the place (file:line:col), the error and its help, for each problem; not the rendered source snippet and its
carets, which the log's line-break escaping turned into one line full of literal \\n."""
from __future__ import annotations

import logging
from pathlib import Path

from engine.commands.top import render
from engine.ops.backend import EngineBackend
from engine.ops.logs import Scrubber, TextFormatter
from opskit import ECHO, live


async def test_a_refused_reload_is_one_readable_log_line(tmp_path: Path, caplog) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "1")
    async with live([route], tmp_path / "l.duckdb") as eng:
        caplog.set_level(logging.ERROR, logger="bsp")
        route.write_text((ECHO % "2").replace("reply Req {", "reply Rsq {"))
        result = await eng.reload()
        assert not result.ok
        assert any("^" in d for d in result.diagnostics)          # `bsp reload` still gets the snippet
        doc = dict(await EngineBackend(eng).status())
    (record,) = [r for r in caplog.records if "failed; the running configuration" in r.getMessage()]
    line = TextFormatter(Scrubber()).format(record)
    assert "\\n" not in line and "^^^" not in line and "\n" not in line, line
    assert f"{route}:10:11: error[E020]: unknown format `Rsq`" in line, line
    assert line.endswith("help: did you mean `Req`?"), line
    # `bsp status` says why (a --watch or SIGHUP reload has no `bsp reload` to print it), `bsp top` in red
    last = doc["reloads"][-1]
    assert last["ok"] is False and last["error"] == f"{route}:10:11: error[E020]: unknown format `Rsq` help: did you " \
        "mean `Req`?", last
    assert "last reload FAILED, the running configuration is kept: " in _table(doc), _table(doc)


def _table(doc: dict) -> str:
    import io

    from rich.console import Console
    out = Console(width=400, record=True, file=io.StringIO())
    out.print(render(doc, None, 0, {}))
    return out.export_text()
