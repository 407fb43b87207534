"""``bsp check PATH... [--env ENV] [--explain] [--json]``: compile route files, print every diagnostic.

A deployment file (``platform.yaml``) among the paths is validated and stands for its route files.
The version printed is the one `bsp run` serves for the same paths: given one deployment file alone,
the route files, the files they name and the deployment's channel overrides for the environment
(``--env``, else ``$BSP_ENV``, else the base settings), computed as `bsp run` computes it
(``engine.ops.effective.with_deployment`` over ``engine.ops.files.with_referenced_files``); given route
files or folders, theirs and the files they name.
Its key, token and certificate files are checked too (``engine/deploy_files.py``): each missing or
unreadable one an error, each exposed key or token file and each unset ``{env: NAME}`` a warning.
Exit codes: 0 no errors (warnings allowed), 1 errors (in a route file or the deployment file), 2 a
path does not exist, or ``--env`` without one deployment file alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List, Optional

import typer

if TYPE_CHECKING:
    from dsl.diagnostics import Diagnostic
    from dsl.load import CompileResult


def _shown(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _display(d: Diagnostic, files: Iterable[str] = ()) -> Diagnostic:
    """``d`` with its place, and the places its message and help name (``declared at FILE:L:C``) in
    ``files``, shown as paths below the working folder, as the command line names them."""
    from dsl.diagnostics import Diagnostic
    from dsl.ir import Pos

    message, help_ = d.message, d.help
    for f in files:
        message = message.replace(f + ":", _shown(f) + ":")
        help_ = help_.replace(f + ":", _shown(f) + ":") if help_ else help_
    p = d.pos
    pos = None if p is None else Pos(_shown(p.file), p.line, p.col, p.end_line, p.end_col)
    return Diagnostic(d.code, d.severity, message, pos, help_)


def _deployments(path: Path, env: str | None = None) -> list | None:
    """The deployment file as `bsp run` reads it, once with its base settings (or ``env``'s: the list is
    that one alone) and once per environment it defines (so that an override under `environments.uat` is
    checked too); None after printing its errors."""
    from engine.deploy import DeploymentError, load_deployment
    try:
        if env is not None:
            return [load_deployment(path, env=env)]
        base = load_deployment(path)
        return [base, *(load_deployment(path, env=env) for env in base.environments)]
    except DeploymentError as exc:
        typer.echo(str(exc), err=True)
        return None


class Served:
    """What `bsp run` of the same paths would serve: ``path`` and ``overrides`` (its ``ChannelOverrides``
    for the environment chosen) when one deployment file is given alone, else None (route files)."""

    def __init__(self, path: Path | None = None, overrides: object = None) -> None:
        self.path = path
        self.overrides = overrides

    def describe(self, program: object, registry: object) -> tuple[str, str]:
        """The configuration version `bsp run` serves and the ledger records with every deal, computed as
        `bsp run` computes it (the route files and every file they name: copybooks, tables, specs; for a
        deployment file, also its channel overrides for the environment and the files they name), and
        what it is a hash of, for the summary line."""
        from engine.ops.effective import with_deployment
        from engine.ops.files import with_referenced_files
        routes = with_referenced_files(program)
        if self.path is None:
            return routes.version, ("the route files and the files they name; `bsp run` of a deployment file "
                                    "also hashes its channel overrides: `bsp check platform.yaml [--env ENV]` "
                                    "prints that one")
        from engine.ops.admintls import with_admin_tls
        admin = getattr(self.overrides, "admin", None)     # the admin API's TLS certificates, as bsp run records
        deployed = with_deployment(routes, self.overrides, registry)
        version = with_admin_tls(deployed, getattr(admin, "tls_cert", None), getattr(admin, "client_ca", None)).version
        tls = " and the admin API's TLS certificates (admin.tls)" if version != deployed.version else ""
        env = getattr(self.overrides, "env", None)
        run = f"bsp run {_shown(str(self.path))}" + (f" --env {env}" if env else "")
        where = f"environment {env}" if env else "the base settings (no --env, $BSP_ENV unset)"
        if deployed.version == routes.version:
            return version, (f"as `{run}` serves it: the route files and the files they name{tls}; the deployment "
                             f"file overrides no channel option for {where}")
        return version, (f"as `{run}` serves it: the route files, the files they name and the deployment "
                         f"file's channel overrides for {where}{tls}")


def _plan(program: object, version: str) -> dict:
    """The compiled plan --explain prints, its ``version`` the one the summary line prints and `bsp run`
    serves (``Served.describe``), not the route files' alone (two versions for one configuration)."""
    plan = program.to_json()            # type: ignore[attr-defined]
    plan["version"] = version
    return plan


def route_files(paths: List[Path]) -> List[Path]:
    """Files as given; a directory stands for every ``*.route`` below it."""
    out: List[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(p.rglob("*.route")))
        else:
            out.append(p)
    return out


def run_check(paths: List[Path], *, explain: bool, as_json: bool, registry=None, env: str | None = None,
              calendars: bool = False, calendar_warn_days: int | None = None) -> int:
    from dsl.diagnostics import render
    from dsl.load import compile_paths      # the compiler (lark, the checker): loaded when a check runs

    missing = [p for p in paths if not p.exists()]
    if missing:
        for p in missing:
            typer.echo(f"error: no such file or directory: {p}", err=True)
        return 2
    if registry is None:
        from engine.registry import default_registry
        registry = default_registry()
    deployments = [p for p in paths if p.is_file() and p.suffix in (".yaml", ".yml")]
    if env is not None and not (len(paths) == 1 and deployments):
        typer.echo(f"error: --env {env}: an environment is chosen in a deployment file; give one deployment "
                   f"file alone (bsp check platform.yaml --env {env}), or drop --env to check route files",
                   err=True)
        return 2
    served = Served()
    files_named: list = []              # the deployment's files and variables that are missing or exposed
    overrides: list = []                # each deployment's channel overrides, base and per environment
    if deployments:                     # a deployment file stands for its route files, as in `bsp run`
        expanded: List[Path] = []
        for p in paths:
            if p not in deployments:
                expanded.append(p)
                continue
            loaded = _deployments(p)
            if loaded is None:
                return 1
            expanded.extend(loaded[0].route_files)
            overrides.extend(d.channel_overrides for d in loaded)
        if len(paths) == 1:             # as `bsp run platform.yaml [--env ENV]` would serve it
            chosen = _deployments(paths[0], env) if env is not None else loaded[:1]
            if chosen is None:
                return 1
            served = Served(paths[0], chosen[0].channel_overrides)
            checked = chosen if env is not None else loaded
        else:
            checked = [d for p in deployments for d in (_deployments(p) or [])]
        from engine.deploy_files import all_file_notes
        files_named = all_file_notes(checked)   # the keys, tokens and certificates it names
        if calendar_warn_days is None and len(paths) == 1:     # W020 as early as the engine would warn
            calendar_warn_days = chosen[0].calendar_warn_days      # calendars.warn_days (None: not set)
        paths = expanded
    file_errors = sum(1 for n in files_named if n.level == "error")
    if not as_json:                     # each with its line, before the route files' diagnostics
        for note in files_named:
            typer.echo(str(note), err=explain)
        if file_errors:
            typer.echo(f"{file_errors} error{'s' if file_errors != 1 else ''} in the files the deployment file "
                       f"names (the route files are checked all the same)", err=explain)
    files = route_files(paths)
    if not files:
        typer.echo("error: no .route files found in " + ", ".join(str(p) for p in paths), err=True)
        return 2
    if calendar_warn_days is None:
        from dsl.calendar_window import WARN_DAYS
        calendar_warn_days = WARN_DAYS
    result: CompileResult = compile_paths(files, registry, calendar_warn_days=calendar_warn_days)
    if result.program is not None and overrides:
        from engine.ops.overrides import check_overrides
        problems = list(dict.fromkeys(line for o in overrides for line in check_overrides(o, result.program,
                                                                                        registry)))
        for line in problems:
            typer.echo(f"error: {line}", err=True)
        if problems and as_json:
            for note in files_named:
                typer.echo(str(note), err=True)
        if problems:
            typer.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''} in the deployment file's "
                       f"channel overrides", err=True)
            return 1
    certs = cert_lines(result.program, overrides, registry) if result.program is not None else []
    cert_errors = sum(1 for level, _ in certs if level == "error")
    if as_json:
        out = {
            "ok": result.program is not None and not cert_errors and not file_errors,
            "errors": len(result.errors),
            "warnings": len(result.warnings),
            "diagnostics": [d.to_json() for d in result.diagnostics],
        }
        if files_named:
            out["deployment_files"] = [{"severity": n.level, "place": n.place, "key": n.key, "message": str(n)}
                                       for n in files_named]
        if certs:
            out["certificates"] = [{"severity": level, "message": text} for level, text in certs]
        if result.program is not None:
            out["version"], out["version_covers"] = served.describe(result.program, registry)
        if explain and result.program is not None:
            out["program"] = _plan(result.program, out["version"])
        if calendars and result.program is not None:
            from engine.calexpiry import engine_today, program_calendars
            today = engine_today()
            out["calendars"] = [c.as_dict(today) for c in program_calendars(result.program)]
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        sources = {_shown(k): v for k, v in result.sources.items()}
        for d in result.diagnostics:
            typer.echo(render(_display(d, result.sources), sources), err=explain)
            typer.echo("", err=explain)
        for level, text in certs:
            typer.echo(f"{level}: {text}", err=explain)
        if calendars and result.program is not None:
            for line in calendar_lines(result.program):
                typer.echo(line, err=explain)
        version, covers = served.describe(result.program, registry) if result.program is not None else ("", "")
        if explain and result.program is not None:
            typer.echo(json.dumps(_plan(result.program, version), indent=2, default=str))
        # with --explain stdout is the plan alone (JSON a tool can read); the summary goes to stderr
        compiled = len(result.sources) or len(files)      # with the files pulled in with `use`
        typer.echo(_summary(result.diagnostics, [level for level, _ in certs] + [n.level for n in files_named])
                   + (f"; {compiled} file{'s' if compiled != 1 else ''} compiled, "
                      f"version {version} ({covers})"
                      if result.program is not None else ""),
                   err=explain)
    return 1 if result.errors or cert_errors or file_errors else 0


def _summary(diagnostics: Iterable[Diagnostic], others: Iterable[str]) -> str:
    """``N errors, M warnings``: the route files' diagnostics with the lines printed beside them (``others``,
    the level of each: a certificate expiring or expired, a file the deployment file names), so that a
    warning printed above is counted, and an exit 1 never follows "0 errors"."""
    diagnostics, others = list(diagnostics), list(others)
    e = sum(1 for d in diagnostics if d.is_error) + others.count("error")
    w = len(diagnostics) + len(others) - e
    return f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"


def calendar_lines(program: object) -> list[str]:
    """``bsp check --calendars``: a note per calendar table the routes use, the years it lists and the day it
    runs out, reckoned from today (the one within --calendar-warn-days is warned all the same: W020)."""
    from engine.calexpiry import engine_today, program_calendars
    today = engine_today()
    spans = program_calendars(program)
    if not spans:
        return ["note: no route uses a business-day calendar"]
    out = []
    for c in sorted(spans, key=lambda c: (c.days_left(today), c.table)):
        left = c.days_left(today)
        when = (f"has run out: it lists no date for {today.year}" if left <= 0 else
                f"runs out on {c.runs_out(today).isoformat()} (in {left} day{'s' if left != 1 else ''})")
        out.append(f"note: calendar {c.table} ({_shown(c.path)}) lists {c.covers_text()}; {when}; used by "
                   f"{', '.join(c.routes)}")
    return out


def cert_lines(program: object, overrides: list, registry: object) -> list[tuple[str, str]]:
    """("warning" | "error", line) for every certificate the channels' ``cert`` / ``ca`` files hold (with
    each deployment's overrides: base and per environment) that expires within WARN_DAYS; an own
    certificate already expired is an error (`bsp run` refuses its channel).  Files that do not exist
    here are skipped (they need not, for a check)."""
    import time

    from engine.certexpiry import expired_own, notice, program_certs
    from engine.ops.overrides import resolve_paths
    now = time.time()
    entries = []
    for o in overrides or [{}]:
        for e in program_certs(program, resolve_paths(o, program, registry)):
            if e not in entries:
                entries.append(e)
    out: list[tuple[str, str]] = []
    for e in entries:
        refused = expired_own([e], now)
        said = notice(e, now)
        if refused:
            out.append(("error", refused[0]))
        elif said is not None:
            out.append(("warning", said[1]))
    return out


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        paths: List[Path] = typer.Argument(..., help="Route files (or folders of *.route files) to compile; a "
                                                     "deployment file (platform.yaml) is validated and stands "
                                                     "for its route files."),
        explain: bool = typer.Option(False, "--explain", help="Print the compiled plan (IR) as JSON on stdout "
                                                             "(diagnostics and the summary go to stderr)."),
        as_json: bool = typer.Option(False, "--json", help="Print diagnostics as JSON instead of text."),
        env: Optional[str] = typer.Option(None, "--env", help="With one deployment file: the environment whose "
                                          "channel overrides the printed version covers, as `bsp run --env` "
                                          "serves it (else $BSP_ENV, else the base settings); every "
                                          "environment's overrides are checked all the same."),
        calendars: bool = typer.Option(False, "--calendars", help="Also list each business-day calendar table the "
                                       "routes use: the years its file lists and the day it runs out, from today "
                                       "(notes; one running out within --calendar-warn-days is warned without it)."),
        calendar_warn_days: Optional[int] = typer.Option(
            None, "--calendar-warn-days", min=0, help="Warn (W020, at the table's file) of a business-day calendar "
            "that runs out within this many days of today: from the first day of a year it does not list every "
            "deal asking about a date fails. Default: the deployment file's calendars.warn_days (as bsp run warns), "
            "else 60. A warning: the exit code does not depend on the day."),
    ) -> None:
        """Compile route files and report every problem (exit 1 on errors, 2 on a missing path).

        The summary's version is the one `bsp run` of the same paths serves, and says what it covers: for
        one deployment file, its channel overrides for the environment (--env) too.

        A deployment file is the pre-flight of a deploy: every key, token and certificate file it names
        that is missing or unreadable is an error, each with its line; a key or token file readable by
        group/others, or an {env: NAME} unset in this shell, a warning. All in one run.

        Each problem names its place (file:line:col), shows the line with a caret under the words, and
        gives a hint; its code (E020, W001, ...) is explained in the error catalogue of
        docs/language.md. Warnings (W...) do not fail the check (exit 0).
        """
        raise typer.Exit(run_check(paths, explain=explain, as_json=as_json, env=env, calendars=calendars,
                                   calendar_warn_days=calendar_warn_days))
