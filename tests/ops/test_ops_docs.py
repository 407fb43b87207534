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


PAGES = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]


def _platform() -> dict:
    import yaml
    return yaml.safe_load((REPO / "routes" / "platform.yaml").read_text(encoding="utf-8"))


def test_documented_environments_of_the_shipped_deployment_file_exist() -> None:
    defined = set(_platform()["environments"])
    wrong = [f"{p.relative_to(REPO)}: --env {env}" for p in PAGES
             for env in re.findall(r"bsp run routes/platform\.yaml[^\n]*?--env (\S+)", p.read_text(encoding="utf-8"))
             if env not in defined]
    assert wrong == [], f"defined in routes/platform.yaml: {sorted(defined)}"


def test_documented_admin_urls_for_the_shipped_deployment_match_its_admin_listen() -> None:
    port = _platform()["admin"]["listen"].rpartition(":")[2]
    for name in ("operations.md", "tour-admin.md"):
        text = (REPO / "docs" / name).read_text(encoding="utf-8")
        urls = re.findall(r"BSP_ADMIN_URL=https?://[^:\s]+:(\d+)", text)
        assert urls and set(urls) == {port}, (name, urls)
        first_client = min(text.find(c) for c in ("\nbsp status", "\nbsp reload") if c in text)
        # the clients find the engine by $BSP_ADMIN_URL or, without it, by the deployment file's admin.listen:
        # the first command a page shows says which (set the variable before it, or name admin.listen on it)
        first_line = text[first_client:text.find("\n", first_client + 1)]
        assert text.find("BSP_ADMIN_URL=") < first_client or "admin.listen" in first_line, \
            f"{name}: set BSP_ADMIN_URL before bsp status/reload, or say the client reads admin.listen: {first_line!r}"


def test_no_page_stops_the_engine_with_pidof() -> None:
    # `bsp` is a Python console script: its process is `python ... bsp run`, which pidof does not find
    assert [p.name for p in PAGES if "pidof bsp" in p.read_text(encoding="utf-8")] == []
