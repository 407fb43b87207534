"""``bsp run``: serve route files until SIGINT/SIGTERM (``bsp demo`` is engine/commands/demo.py)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import trio
import typer

DEFAULT_LEDGER = Path("var/bsp.duckdb")


def compile_or_exit(paths: list[Path], registry: Any) -> Any:
    from dsl.diagnostics import render
    from dsl.load import compile_paths

    missing = [p for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: no such file or directory: {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(2)
    res = compile_paths(paths, registry)
    sources: dict[str, str] = {}
    for d in res.diagnostics:
        f = getattr(d.pos, "file", None)
        if f and f not in sources and Path(f).exists():
            sources[f] = Path(f).read_text(errors="replace")
        typer.echo(render(d, sources), err=True)
    if res.program is None:
        typer.echo(f"error: {len(res.diagnostics)} problem(s); nothing started", err=True)
        raise typer.Exit(1)
    return res.program


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.rglob("*.route")) if p.is_dir() else [p])
    return out


def run(
    paths: list[Path] = typer.Argument(..., help="Route files or folders, or one platform.yaml deployment file."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger file (default var/bsp.duckdb)."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment of the deployment file."),
    grace: float = typer.Option(10.0, "--grace", help="Seconds to finish in-flight exchanges on SIGTERM."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log channel events."),
    record: Optional[Path] = typer.Option(None, "--record", help="Capture every frame to this new file "
                                          "(channels with record = false excepted); see docs/testing.md."),
    mask: bool = typer.Option(False, "--mask", help="With recording: mask classified fields in the capture."),
) -> None:
    """Compile route files and serve them until SIGINT/SIGTERM (then drain and exit 0)."""
    from engine.registry import default_registry
    from engine.runtime.binder import BindError
    from engine.runtime.switchboard import run_program

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, dict[str, Any]] = {}
    ledger_path = ledger
    if len(paths) == 1 and paths[0].suffix in (".yaml", ".yml"):
        from engine.deploy import DeploymentError, load_deployment
        try:
            dep = load_deployment(paths[0], env=env)
        except DeploymentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1)
        route_files = list(dep.route_files)
        overrides = dep.channel_overrides
        ledger_path = ledger_path or dep.ledger_path
    else:
        route_files = _expand(paths)
    registry = default_registry()
    program = compile_or_exit(route_files, registry)
    ledger_path = ledger_path or DEFAULT_LEDGER
    ledger_path.parent.mkdir(parents=True, exist_ok=True)

    def ready(sb: Any) -> None:
        for name, ch in sb.channels.items():
            typer.echo(f"channel {name}: {ch.role} {getattr(ch, 'address', '')}", err=True)
        typer.echo(f"bsp: serving {len(program.routes)} route(s), version {program.version}, "
                   f"ledger {ledger_path}; Ctrl-C or SIGTERM drains and stops", err=True)

    from engine.replay.tap import recording
    try:
        with recording(program, registry, record, mask=mask, echo=lambda t: typer.echo(t, err=True)) as (reg, _):
            sb = trio.run(lambda: run_program(program, reg, ledger_path=ledger_path, overrides=overrides,
                                              grace=grace, ready=ready))
    except BindError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    s = sb.stats
    typer.echo(f"bsp: stopped; {s.total} exchange(s): {s.committed} committed, {s.rejected} rejected, "
               f"{s.failed} failed", err=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
