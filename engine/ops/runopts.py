"""``bsp run`` operations options -> logging, the admin API settings and the reload loader.

Kept out of ``engine/commands/run.py`` so that command stays a thin shell:

    scrub = configure_logging(log_format, log_level, log_file, verbose)
    admin = admin_options(listen, token_file, cert, key, client_ca, access_file, deployment)   # or None
                                               # (TLS, access list: engine/ops/runsettings.py)
    scrub.add(admin.token)                     # the token never reaches a log line
    load = loader(paths, deployment_path, env)  # re-reads route folders / platform.yaml on each reload
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from engine import filemodes
from engine.ops.admintls import admin_tls_holder
from engine.ops.logs import SECRET_ENV, Scrubber, setup_logging
from engine.ops.runsettings import OpsConfigError, admin_access, admin_tls
from engine.ops.serve import AdminOptions


def configure_logging(fmt: str, level: str | None, file: Path | None, verbose: bool) -> Scrubber:
    try:
        scrub = setup_logging(level or ("info" if verbose else "warning"), fmt, file)
    except ValueError as exc:
        raise OpsConfigError(str(exc)) from None
    for name in SECRET_ENV:
        scrub.add(os.environ.get(name))
    return scrub


def check_grace(grace: float) -> float:
    import math
    if not (math.isfinite(grace) and grace >= 0):
        raise OpsConfigError(f"--grace {grace:g}: expected the seconds a drain waits for in-flight exchanges, "
                             f"0 or more (e.g. --grace 10)")
    return grace


_FIX = ("make it writable by the engine's user (check its owner and mode, and `lsattr` for the immutable "
        "flag), or give the engine another ledger (--ledger, or `ledger:` in the deployment file)")


def _fs_type(path: Path) -> str:
    """The file system type of ``path`` (``proc``, ``sysfs``, ...) from /proc/self/mounts; "" when unknown."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    target, best, kind = str(path.resolve()), -1, ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > best:
            best, kind = len(mount), parts[2]
    return kind


def check_ledger_files(ledger: Path, sync: str) -> None:
    """The ledger's folder and side files can be written: ``<ledger>.journal/`` (the write-ahead
    journal, unless sync is duckdb) and ``<ledger>.txn`` (the transaction log).  Raises
    ``OpsConfigError`` naming the path, the system's reason and what to do."""
    from engine.journal import journal_dir
    from engine.txn.log import log_path

    def fail(path: Path, what: str, exc: OSError | None, why: str = "") -> OpsConfigError:
        reason = why or (exc.strerror if exc is not None and exc.strerror else str(exc))
        fix = _FIX if not why else ("move it out of the way (bsp makes it), or give the engine another ledger "
                                    "(--ledger, or `ledger:` in the deployment file)")
        return OpsConfigError(f"{path}: {reason}: bsp writes the ledger's {what} there; {fix}")

    def probe(folder: Path, what: str) -> None:
        tmp = folder / f".bsp-write-check-{os.getpid()}"
        try:
            with open(tmp, "wb"):
                pass
            tmp.unlink()
        except FileNotFoundError as exc:
            if not folder.is_dir():
                raise fail(folder, what, exc) from None
            # the folder is there, but the system answers "No such file or directory" for a new file in it
            fs = _fs_type(folder)
            raise OpsConfigError(
                f"{folder}: files cannot be created in this folder (it exists, but creating one fails with "
                f"'{exc.strerror}'{f': it is on a {fs} file system, not a disk' if fs else ''}): bsp writes the "
                f"ledger's {what} there; give the engine a ledger on a disk (--ledger, or `ledger:` in the "
                f"deployment file)") from None
        except OSError as exc:
            raise fail(folder, what, exc) from None

    folder = ledger.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "exists and is not a folder" if isinstance(exc, FileExistsError) else ""
        raise fail(folder, "folder", exc, why) from None
    probe(folder, "folder")
    if sync != "duckdb":
        jdir = journal_dir(ledger)
        if jdir.exists() and not jdir.is_dir():
            raise fail(jdir, "write-ahead journal (a folder)", None, "is not a folder")
        try:
            filemodes.private_dir(jdir)          # 0700, also under umask 022 (deal rows)
        except OSError as exc:
            raise fail(jdir, "write-ahead journal (a folder)", exc) from None
        probe(jdir, "write-ahead journal (a folder)")
    txn = log_path(ledger)
    if txn.is_dir():
        raise fail(txn, "transaction log (a file)", None, "is a folder")
    if txn.exists():
        try:
            with open(txn, "r+b"):
                pass
        except OSError as exc:
            raise fail(txn, "transaction log (a file)", exc) from None


def deployment_secrets(dep: Any, scrub: Scrubber) -> None:
    """Every secret the deployment names, read now so its value can be scrubbed from logs."""
    for ref in getattr(dep, "secrets", {}).values():
        try:
            scrub.add(ref.value())
        except Exception:        # not set yet: nothing to scrub; the component that needs it will say so
            pass


def admin_options(listen: str | None, token_file: Path | None, cert: Path | None, key: Path | None,
                  client_ca: Path | None, access_file: Path | None, dep: Any = None,
                  named: list[str] | None = None) -> AdminOptions | None:
    """The admin API settings, or None when neither ``--admin`` nor ``admin.listen`` asks for it.
    ``named``: ``--admin-named-token NAME:ROLE[,ROLE...]:FILE`` values (replacing admin.tokens)."""
    settings = getattr(dep, "admin", None)
    listen = listen or getattr(settings, "listen", None)
    if not listen:
        if token_file or cert or named:
            raise OpsConfigError("--admin-token-file / --admin-named-token / --admin-cert given without --admin "
                                 "HOST:PORT "
                                 "(or admin.listen in platform.yaml); add --admin 127.0.0.1:7080")
        for what in ("tls", "access"):
            if getattr(settings, "tls_cert" if what == "tls" else "access", None) is not None:
                raise OpsConfigError(f"{settings.places[what]}: admin.{what}: given without admin.listen, so no "
                                     f"admin API is served; add listen: \"127.0.0.1:7080\" under admin: (or "
                                     f"--admin HOST:PORT), or remove admin.{what}")
        return None
    try:
        AdminOptions(listen=listen).host_port()
    except ValueError as exc:
        raise OpsConfigError(f"--admin: {exc}" if getattr(settings, "listen", None) != listen else str(exc)) from None
    token, tokens, _ = read_token_set(token_file, settings, named)
    from engine.ops.admintokens import AdminTokens

    def reread(new_settings: Any) -> tuple[Any, ...]:
        """The set read again by a reload, from the deployment file's admin settings read again (the options
        of bsp run's command line stay as given): engine/ops/admintokens.py."""
        return read_token_set(token_file, new_settings if dep is not None else None, named)[2]
    ctx = admin_tls(cert, key, client_ca, dep)
    access = admin_access(access_file, dep)
    files = ((("server", cert or getattr(settings, "tls_cert", None)),
              ("ca", client_ca or getattr(settings, "client_ca", None))) if ctx is not None else ())
    # a reload builds the context again from the same files when one was rewritten (engine/ops/admintls.py)
    key_file = key if cert is not None else getattr(getattr(settings, "tls_key", None), "file", None)
    tls = admin_tls_holder(ctx, lambda: admin_tls(cert, key, client_ca, dep), dict(files).get("server"),
                           key_file, dict(files).get("ca"))
    opts = AdminOptions(listen=listen, token=token, tokens=tokens, ssl_context=ctx, access=access, tls=tls,
                        token_source=AdminTokens(reread),
                        cert_files=tuple((role, Path(p)) for role, p in files if p is not None))
    try:
        opts.host_port()
    except ValueError as exc:
        raise OpsConfigError(str(exc)) from None
    return opts


def read_token_set(token_file: Path | None, settings: Any, named: list[str] | None) -> tuple[str, tuple[Any, ...], Any]:
    """The admin tokens, read now from their files or variables: ``(token, named tokens, the whole set)``
    (``token`` "" with named tokens only); at start and again at each reload (engine/ops/admintokens.py).
    ``--admin-token-file`` replaces admin.token, ``--admin-named-token`` admin.tokens.  OpsConfigError naming
    the token and its file when one cannot be used."""
    from engine.admin.auth import AdminConfigError, check_token, load_token, token_set
    from engine.deploy import SecretError
    try:
        tokens = named_tokens(named) if named else deployment_tokens(getattr(settings, "tokens", ()))
        file: str | None = None
        if token_file is None and getattr(settings, "token", None) is not None:
            ref = settings.token
            _warn_if_exposed(ref, "admin.token")
            token = check_token(ref.value().strip(), f"from {ref.origin} "
                                f"({'$' + ref.env if ref.env is not None else ref.file})")
            file = str(ref.file) if ref.file is not None else None
        elif token_file is None and tokens:
            token = ""          # named tokens only: $BSP_ADMIN_TOKEN does not add one with every role
        else:
            token = load_token(token_file)
            file = str(token_file) if token_file is not None else None
        whole = token_set(token or None, tokens, file=file)   # each fit, no two alike (names, secrets)
    except SecretError as exc:
        raise OpsConfigError(f"admin API: {exc}; {_token_fix(exc)}") from None
    except (AdminConfigError, Exception) as exc:
        raise OpsConfigError(f"admin API: {exc}") from None
    return token, tokens, whole


def _warn_if_exposed(ref: Any, key: str) -> None:
    """A token file of the deployment file readable by group or others is warned of, as --admin-token-file's
    is (engine/admin/auth.py load_token) and as the ledger's key files are (engine/ops/runsettings.py)."""
    import logging
    import stat

    from engine import filemodes

    path = getattr(ref, "file", None)
    try:
        mode = stat.S_IMODE(Path(path).stat().st_mode) if path is not None else 0
    except OSError:
        return                      # reading it says what is wrong
    if filemodes.exposed(mode):
        logging.getLogger("bsp.admin").warning(
            "%s: %s (%s) is readable by group/others (mode %04o): whoever reads it can use the admin API "
            "with its roles; chmod 600 %s", ref.origin, key, path, mode, path)


def _token_fix(exc: Any) -> str:
    """How to fix an admin token reference that could not be read (``SecretError.ref``)."""
    ref = getattr(exc, "ref", None)
    if ref is not None and ref.env is not None:
        return f"export {ref.env} before bsp run, or write {{file: path}} (a file holding the token) instead"
    path = getattr(ref, "file", None) or "FILE"
    return (f"create it with `bsp admin token {path}` (mode 0600), or fix the path (relative to the "
            f"deployment file)")


def deployment_tokens(entries: Any) -> tuple[Any, ...]:
    """``admin.tokens`` read: each a NamedToken (its secret read now from its file or variable)."""
    from engine.admin.auth import NamedToken

    out = []
    for t in entries:
        _warn_if_exposed(t.ref, f"admin.tokens[{t.name}]")
        where = f"{t.ref.origin}, {'$' + t.ref.env if t.ref.env is not None else t.ref.file}"
        out.append(NamedToken(t.name, t.ref.value().strip(), frozenset(t.roles), where=where,
                              file=str(t.ref.file) if t.ref.file is not None else None))
    return tuple(out)


def named_tokens(values: list[str]) -> tuple[Any, ...]:
    """``--admin-named-token NAME:ROLE[,ROLE...]:FILE`` values as NamedTokens (the file read now)."""
    from engine.admin.auth import AdminConfigError, NamedToken, load_token
    from engine.admin.roles import ROLES

    out = []
    for value in values:
        name, _, rest = value.partition(":")
        roles, _, file = rest.partition(":")
        wanted = [r.strip() for r in roles.split(",") if r.strip()]
        if not name or not wanted or not file:
            raise AdminConfigError(f"--admin-named-token {value!r}: expected NAME:ROLE[,ROLE...]:FILE, e.g. "
                                   f"--admin-named-token prometheus:monitor:/etc/bsp/prometheus.token")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
            raise AdminConfigError(f"--admin-named-token {value!r}: the name {name!r}: use letters, digits and "
                                   f"_.@- (up to 64), starting with a letter or digit, e.g. ops-alice")
        bad = [r for r in wanted if r not in ROLES]
        if bad:
            raise AdminConfigError(f"--admin-named-token {value!r}: unknown role {bad[0]!r}; roles: "
                                   f"{', '.join(ROLES)}")
        try:
            secret = load_token(Path(file), option="--admin-named-token")
        except AdminConfigError as exc:
            raise AdminConfigError(f"--admin-named-token {name}: {exc}") from None
        out.append(NamedToken(name, secret, frozenset(wanted), where=f"--admin-named-token, file {file}", file=file))
    return tuple(out)


def loader(paths: list[Path], deployment: Path | None, env: str | None,
           expand: Callable[[list[Path]], list[Path]]) -> Callable[[], tuple[list[Path], Mapping[str, Any]]]:
    """What a reload compiles: the route files (folders re-scanned) and channel overrides, read again."""
    if deployment is not None:
        def load_dep() -> tuple[list[Path], Mapping[str, Any]]:
            from engine.deploy import load_deployment
            dep = load_deployment(deployment, env=env)
            return list(dep.route_files), dep.channel_overrides
        return load_dep
    return lambda: (expand(paths), {})
