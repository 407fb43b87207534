"""Where the admin API of the engine is, for every client of it (``bsp status``, ``bsp reload``, ``bsp top``,
the ``--live`` of ``bsp deals`` / ``bsp dead`` / ``bsp ledger snapshot`` / ...), in the order an admin expects:

1. ``--url URL`` or ``$BSP_ADMIN_URL``;
2. else the deployment file's ``admin.listen`` (``https://`` when it has ``admin.tls``): the file given with
   ``--deployment FILE`` (``--env`` / ``$BSP_ENV`` for its environment), else ``platform.yaml`` in the working
   folder when there is one;
3. else ``http://127.0.0.1:7080`` (``engine.defaults.ADMIN_PORT``), the address the shipped
   ``routes/platform.yaml`` serves.

    URL_OPTION = url_option(help="The engine's admin API.")     # resolved by its callback, before the command runs
    where = source_of(url)      # "platform.yaml admin.listen", for messages ("" when given or defaulted)

A deployment file that cannot be read, or names no usable ``admin.listen`` (none, or port 0), gives the default;
what was tried is kept for the message a failed connection prints (``source_of``).  Nothing heavy is imported
unless a deployment file is read (``bsp --help`` stays light: tests/engine/test_cli_imports.py).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from engine.defaults import ADMIN_HOST, ADMIN_PORT

DEFAULT_URL = f"http://{ADMIN_HOST}:{ADMIN_PORT}"
DEFAULT_DEPLOYMENT = Path("platform.yaml")      # looked for in the working folder
URL_HELP = ("the deployment file's admin.listen (--deployment FILE, else ./platform.yaml), "
            f"else {DEFAULT_URL}")

_SOURCES: dict[str, str] = {}       # url -> where it came from, for messages


def client_host(host: str) -> str:
    """The address a client dials for a server listening on ``host``: a wildcard becomes loopback."""
    host = host.strip()
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host.strip("[]") == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"               # a bare IPv6 address
    return host


def from_deployment(path: Path, env: Optional[str]) -> tuple[Optional[str], str]:
    """(the admin URL the deployment file at ``path`` serves, or None; where it came from or why not)."""
    from engine.deploy import load_deployment

    try:
        dep = load_deployment(path, env)
    except Exception as exc:            # DeploymentError (file:line:col ...), OSError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"{path} could not be read ({first})"
    listen = dep.admin.listen
    if not listen:
        return None, f"{path} has no admin.listen (no admin API is served from it)"
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None, f"{path} admin.listen {listen!r} names no port a client can dial"
    scheme = "https" if dep.admin.tls_cert is not None else "http"
    env_name = f" (environment {dep.env})" if getattr(dep, "env", None) else ""
    return f"{scheme}://{client_host(host)}:{int(port)}", f"{path}{env_name} admin.listen {listen}"


def resolve(url: Optional[str], deployment: Optional[Path], env: Optional[str]) -> str:
    """The admin URL by the rule of this module's docstring."""
    if url:
        return url
    env = env or os.environ.get("BSP_ENV") or None
    tried = ""
    path = deployment if deployment is not None else (DEFAULT_DEPLOYMENT if DEFAULT_DEPLOYMENT.is_file() else None)
    if path is not None:
        found, where = from_deployment(Path(path), env)
        if found is not None:
            _SOURCES[found] = f"from {where}"
            return found
        tried = where
    _SOURCES[DEFAULT_URL] = (f"the default: {tried}" if tried else
                             "the default: no --url, $BSP_ADMIN_URL, --deployment or ./platform.yaml")
    return DEFAULT_URL


def source_of(url: str) -> str:
    """Where ``url`` came from when this module chose it (``from platform.yaml admin.listen ...``), else ""."""
    return _SOURCES.get(url.rstrip("/"), "")


def _callback(ctx: typer.Context, value: Optional[str]) -> str:
    # Click processes the options given on the command line before those left out: a --deployment / --env
    # given is in ctx.params when --url was not given (when --url was given, it wins anyway)
    if value:
        return value
    if any(p.name == "live" for p in ctx.command.params) and not ctx.params.get("live"):
        return DEFAULT_URL          # a command whose --live was not given: no deployment file read for nothing
    deployment = ctx.params.get("deployment")
    return resolve(None, Path(deployment) if deployment is not None else None, ctx.params.get("env"))


def url_option(help: str, **kw: Any) -> Any:
    return typer.Option(None, "--url", envvar="BSP_ADMIN_URL", callback=_callback, show_default=False,
                        help=f"{help} Default: {URL_HELP}.", **kw)


DEPLOYMENT_ADMIN_OPT = typer.Option(None, "--deployment", metavar="FILE",
                                    help="The deployment file (platform.yaml) bsp run serves: the admin API's "
                                         "address from its admin.listen, when no --url / $BSP_ADMIN_URL.")


__all__ = ["DEFAULT_URL", "DEPLOYMENT_ADMIN_OPT", "client_host", "from_deployment", "resolve", "source_of", "url_option"]
