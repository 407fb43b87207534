"""Reload triggers other than the admin API: SIGHUP and watching the configuration's files.

    nursery.start_soon(reload_on_sighup, engine, metrics, signals)      # signals: a trio signal receiver
    nursery.start_soon(watch_and_reload, engine, metrics, 0.3)

``watch_and_reload`` watches the folders of every file the running
configuration is made of (route files, included files, copybooks, specs,
tables, certificates; ``engine.ops.files.watched_paths``), the deployment file
itself (platform.yaml: its ``routes:``, channel overrides and admin tokens), the secret files
its channels and formats read (keys, token and password files, named in a route file or in the deployment
file's channel overrides; ``engine.ops.files.secret_files``), the admin API's certificate, key and CA files
and token files, plus any new ``*.route`` file in the route folders.  Changes are debounced (editors save
by writing a temporary file and renaming it, which shows as several events):
one reload runs once the files have been quiet for ``debounce`` seconds.
After each reload the watched set is recomputed (a new ``use`` adds a file).
"""
from __future__ import annotations

import logging
from contextlib import aclosing
from pathlib import Path
from typing import Any

import trio

from engine.ops.files import secret_files, watched_paths

log = logging.getLogger("bsp.reload")


async def triggered_reload(engine: Any, metrics: Any, source: str) -> Any:
    result = await engine.reload(dry_run=False, source=source)
    if metrics is not None:
        metrics.reload_done(result.ok, source)
    return result          # engine.reload logged it: "reloaded: version A -> B (generation N) (signal)"


async def reload_on_sighup(engine: Any, metrics: Any, hup: Any) -> None:
    """``hup``: an async iterator of signal numbers (SIGHUP only)."""
    async for _ in hup:
        log.warning("SIGHUP: reloading the configuration")
        await triggered_reload(engine, metrics, "signal")


def _secret_targets(engine: Any) -> set[Path]:
    """The secret files the running configuration reads (channel and format options naming a key, token or
    password file, the deployment file's overrides included) and the admin API's token files: a reload
    reads them again, so a key rotated in place reloads as SIGHUP would.  Their content is never read here."""
    from engine.ops.overrides import resolve_paths
    gen = engine.current
    given = getattr(engine, "overrides", None) or gen.overrides      # the deployment's: it knows its folder
    try:
        overrides = resolve_paths(given, gen.program, engine.registry)
    except Exception:          # overrides that do not check: the generation was bound with them as given
        overrides = gen.overrides
    out = secret_files(gen.program, overrides)
    tokens = getattr(engine, "admin_tokens", None)
    auth = getattr(tokens, "auth", None)
    out |= {Path(t.file) for t in (getattr(auth, "tokens", None) or ()) if getattr(t, "file", None)}
    return out


def _deployment_file(engine: Any) -> Path | None:
    """The deployment file (platform.yaml) the engine runs from, None when it was given route files."""
    overrides = getattr(engine, "overrides", None)
    source, base = getattr(overrides, "source", ""), getattr(overrides, "base", None)
    if not source:
        return None
    return Path(base) / source if base is not None else Path(source)


def _targets(engine: Any) -> tuple[set[Path], set[Path], set[Path]]:
    files = {p.resolve() for p in watched_paths(engine.current.program)}
    files |= {p.resolve() for p in _secret_targets(engine)}
    deployment = _deployment_file(engine)
    if deployment is not None:         # its routes:, channel overrides and admin tokens are read again by a reload
        files.add(deployment.resolve())
    tls = getattr(engine, "admin_tls", None)          # the admin API's certificate, key and CA: a reload renews them
    files |= {p.resolve() for p in (tls.files if tls is not None else ())}
    try:
        roots, _ = engine.load()
        files |= {Path(p).resolve() for p in roots}
    except Exception:      # a bad deployment file: the reload will say so; keep watching what we know
        pass
    route_dirs = {p.parent for p in files if p.suffix == ".route"}
    dirs = {p.parent for p in files if p.parent.exists()}
    return files, route_dirs, dirs


def _relevant(changes: set[tuple[Any, str]], files: set[Path], route_dirs: set[Path]) -> list[str]:
    hits = []
    for _, raw in changes:
        p = Path(raw).resolve()
        if p in files or (p.suffix == ".route" and p.parent in route_dirs):
            hits.append(str(p))
    return sorted(set(hits))


async def watch_and_reload(engine: Any, metrics: Any, debounce: float = 0.3, *,
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Reload whenever a file of the configuration changes; ``task_status.started()`` once watching.

    One watcher runs over the folders; after a reload the set of files is
    recomputed, and the watcher is replaced only when the folders changed.
    """
    from watchfiles import awatch

    started = False
    files, route_dirs, dirs = _targets(engine)
    while not engine.draining:
        stop = trio.Event()
        watching = dirs
        log.info("watching %d file(s) in %d folder(s) for changes", len(files), len(dirs))
        watcher = awatch(*sorted(dirs), stop_event=stop, debounce=int(debounce * 1000), step=50,
                         yield_on_timeout=True, rust_timeout=200, recursive=False)
        async with aclosing(watcher):
            async for changes in watcher:
                if not started:
                    started = True
                    task_status.started()
                if engine.draining:
                    stop.set()
                    continue
                hits = _relevant(changes, files, route_dirs)
                if not hits:
                    continue
                log.warning("files changed (%s): reloading",
                            ", ".join(hits[:5]) + (" ..." if len(hits) > 5 else ""))
                await triggered_reload(engine, metrics, "watch")
                files, route_dirs, dirs = _targets(engine)
                if dirs != watching:
                    stop.set()
        if dirs == watching:
            return
