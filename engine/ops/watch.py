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

Under four eyes for config.reload (``operators.four_eyes``) neither switches: the files are compiled (a dry
run) and a request for their version is recorded, which another operator approves through the admin API
(``request_reload``); the running configuration stays meanwhile.
"""
from __future__ import annotations

import logging
from contextlib import aclosing
from pathlib import Path
from typing import Any, Sequence

import trio

from engine.ops.files import secret_files, watched_paths

log = logging.getLogger("bsp.reload")


async def triggered_reload(engine: Any, metrics: Any, source: str, files: Sequence[str] = ()) -> Any:
    """A reload the host asked for (``source``: signal, watch; ``files``: the files that changed).  Under four
    eyes for config.reload (``operators.four_eyes``) nothing is switched to: ``request_reload``."""
    from engine.four_eyes import policy_of

    policy = policy_of(getattr(engine, "four_eyes", None))
    if policy is not None and policy.covers("config.reload"):
        return await request_reload(engine, policy, source, files)
    result = await engine.reload(dry_run=False, source=source)
    if metrics is not None:
        metrics.reload_done(result.ok, source)
    return result          # engine.reload logged it: "reloaded: version A -> B (generation N) (signal)"


HOW = {"signal": "SIGHUP", "watch": "a file change (bsp run --watch)"}


async def request_reload(engine: Any, policy: Any, source: str, files: Sequence[str] = ()) -> Any:
    """Four eyes on config.reload: a ``--watch`` change or SIGHUP does not switch.  The files are compiled (a
    dry run, as ``POST /reload`` under four eyes does) and, when they compile to another version than the one
    running, a request for that version is recorded (``approval requested``, by the trigger: ``SIGHUP`` or
    ``file change``) that another operator approves through the admin API; the running configuration stays, one
    log line names the files, the version and the request.  Returns the dry run's result."""
    from engine.four_eyes import Refused, record_request, utc_now

    what = HOW.get(source, source)
    named = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "") if files else "the configuration's files"
    dry = await engine.reload(dry_run=True, source=source)
    if not dry.ok:          # engine.reload logged why; nothing to approve
        log.error("four eyes: %s (%s): the files do not compile; nothing reloaded nor requested, the running "
                  "configuration %s stays", what, named, dry.previous_version)
        return dry
    if dry.version == dry.previous_version:
        log.warning("four eyes: %s (%s): the files compile to the running version %s; nothing to reload, nothing "
                    "requested", what, named, dry.version)
        return dry
    import socket

    from engine.deal import new_deal_id

    by = "SIGHUP" if source == "signal" else "file change"
    params = {"version": dry.version, "previous_version": dry.previous_version, "plan": dict(dry.plan),
              **({"files": list(files[:20])} if files else {})}
    try:
        req = await engine.ledger.with_store(record_request, "config.reload", new_deal_id(), params, by, source,
                                             policy.expire, now=getattr(policy, "now", None) or utc_now,
                                             host=socket.gethostname())
    except Refused as exc:
        log.error("four eyes: %s (%s) compiled to version %s, NOT reloaded: config.reload needs a second "
                  "operator's approval and no request was recorded: %s; the running configuration %s stays",
                  what, named, dry.version, exc, dry.previous_version)
        return dry
    except Exception as exc:  # noqa: BLE001 - the ledger cannot write: said, the running configuration stays
        log.error("four eyes: %s (%s) compiled to version %s, NOT reloaded: the request could not be recorded in "
                  "the ledger (%s); the running configuration %s stays; ask through the admin API (`bsp reload`)",
                  what, named, dry.version, exc, dry.previous_version)
        return dry
    log.warning("four eyes: %s (%s) compiled to version %s, NOT reloaded: config.reload needs a second operator: "
                "request %s recorded, expires %s; the running configuration %s stays until an operator approves it "
                "(`bsp approvals approve %s --live --reason TEXT`)", what, named, dry.version, req["id"],
                req["expires_at"], dry.previous_version, req["id"])
    return dry


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
                await triggered_reload(engine, metrics, "watch", hits)
                files, route_dirs, dirs = _targets(engine)
                if dirs != watching:
                    stop.set()
        if dirs == watching:
            return
