"""Clients of a running engine's admin API: ``bsp status``, ``bsp reload``, ``bsp admin token``.

Where the API is: ``--url`` or ``$BSP_ADMIN_URL``, else the deployment file's ``admin.listen`` (``--deployment
FILE``, else ./platform.yaml), else http://127.0.0.1:7080 (engine/commands/admin_url.py).
The token: ``--token-file`` / ``$BSP_ADMIN_TOKEN_FILE``, else ``$BSP_ADMIN_TOKEN``.
For an https URL: ``--ca`` (the admin server's CA), ``--cert``/``--key`` for mutual TLS; or
``$BSP_ADMIN_CA``, ``$BSP_ADMIN_CERT``, ``$BSP_ADMIN_KEY``.

Exit codes: 0 ok, 1 the engine answered with a problem (or could not be
reached), 2 usage error (no token, bad files).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from engine.commands.admin_url import DEPLOYMENT_ADMIN_OPT, source_of, url_option
from engine.commands.ledger_keys import ENV_OPT
from engine.defaults import ADMIN_PORT as DEFAULT_PORT, ADMIN_TOKEN_ENV as TOKEN_ENV

if TYPE_CHECKING:
    import httpx

URL_OPTION = url_option(help="The engine's admin API.")
TOKEN_FILE_OPTION = typer.Option(None, "--token-file", envvar="BSP_ADMIN_TOKEN_FILE",
                                 help=f"File holding the admin token (else ${TOKEN_ENV}).")
CA_OPTION = typer.Option(None, "--ca", envvar="BSP_ADMIN_CA", help="CA bundle for an https admin URL.")
CERT_OPTION = typer.Option(None, "--cert", envvar="BSP_ADMIN_CERT", help="Client certificate (mutual TLS).")
KEY_OPTION = typer.Option(None, "--key", envvar="BSP_ADMIN_KEY", help="Client certificate key (mutual TLS).")
TIMEOUT = 30.0


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _client(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
            key: Optional[Path]) -> httpx.Client:
    import httpx                        # here, not at the top: `bsp --help` does not pay for it

    from engine.admin.auth import AdminConfigError, load_token
    from engine.tls import TLSConfigError, client_context

    if not url.startswith(("http://", "https://")):
        raise _fail(f"--url {url}: give the scheme, e.g. --url http://{url} (or --url https://{url} for an "
                    f"engine serving its admin API with --admin-cert)", 2)
    bad_port = _bad_port(url)
    if bad_port:
        raise _fail(f"--url {url}: {bad_port} (the port of the engine's admin API, e.g. --url "
                    f"http://127.0.0.1:{DEFAULT_PORT}; --url or $BSP_ADMIN_URL)", 2)
    try:
        token = load_token(token_file, option="--token-file or $BSP_ADMIN_TOKEN_FILE")
    except AdminConfigError as exc:
        raise _fail(str(exc), 2) from None
    verify: Any = True
    if url.startswith("https:"):
        try:
            verify = client_context(ca=ca, cert=cert, key=key)
        except TLSConfigError as exc:
            raise _fail(str(exc), 2) from None
    elif cert or ca:
        raise _fail(f"--ca/--cert (or $BSP_ADMIN_CA/$BSP_ADMIN_CERT) apply to an https URL; {url} is plain "
                    f"http (give the https URL, or unset those variables)", 2)
    client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, verify=verify,
                          timeout=TIMEOUT)
    client._bsp_cert = cert         # type: ignore[attr-defined]   (for _transport_problem)
    client._bsp_ca = ca             # type: ignore[attr-defined]
    return client


def _bad_port(url: str) -> str:
    """What is wrong with the URL's port ("" when nothing): not a number, or out of range 1-65535."""
    from urllib.parse import urlsplit
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:
        return ""                       # no port (the scheme's default), or a bare IPv6 address
    if not port.isdigit():
        return f"port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {int(port)} out of range 1-65535"
    return ""


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    import httpx

    try:
        return client.request(method, path, **kw)
    except httpx.TransportError as exc:
        raise _fail(_transport_problem(client, exc), 1) from None


def _transport_problem(client: httpx.Client, exc: httpx.TransportError) -> str:
    """What a failed connection most likely means, and what to do."""
    import httpx

    url = str(client.base_url).rstrip("/")
    hung_up = isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError))
    if hung_up and url.startswith("http://"):
        return (f"the admin API at {url} closed the connection without an answer: the engine probably speaks "
                f"HTTPS (it was started with --admin-cert); use --url {url.replace('http://', 'https://', 1)} "
                f"with --ca (the CA of its certificate)")
    if hung_up and url.startswith("https://") and getattr(client, "_bsp_cert", None) is None:
        return (f"the admin API at {url} closed the TLS connection without an answer: the engine requires a "
                f"client certificate (mutual TLS, --admin-client-ca); give --cert FILE --key FILE")
    text = str(exc).rstrip(".")
    if url.startswith("https://") and "WRONG_VERSION_NUMBER" in text:
        return (f"the admin API at {url} answered in plain HTTP, not TLS: the engine serves its admin API without "
                f"a certificate (no --admin-cert, no admin.tls); use --url {url.replace('https://', 'http://', 1)} "
                f"(`bsp run` prints it: `admin API: http://...`)")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        why = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip() or text
        ca = getattr(client, "_bsp_ca", None)
        if "Hostname mismatch" in text or "IP address mismatch" in text:
            fix = ("the certificate is for another name: use in --url a name or address the engine's "
                   "admin certificate (admin.tls.cert) carries")
        elif ca is not None:
            fix = (f"--ca {ca} does not hold the CA that issued the engine's admin certificate "
                   f"(admin.tls.cert); give that CA")
        else:
            fix = ("give --ca FILE, the CA that issued the engine's admin certificate (admin.tls.cert; "
                   "`bsp certs dev` writes it as ca.pem)")
        return f"the admin API at {url} answered, but its certificate is not trusted here: {why}; {fix}"
    where = source_of(url)
    return (f"cannot reach the admin API at {url}{f' ({where})' if where else ''}: {text}. Is the engine running "
            f"with its admin API on this address? Give its address with --url / $BSP_ADMIN_URL, or the deployment "
            f"file it runs with (--deployment platform.yaml: its admin.listen)")


def _problem(r: httpx.Response) -> typer.Exit:
    try:
        doc = r.json()
        detail = doc.get("detail") or r.text
    except ValueError:
        doc, detail = {}, r.text
    url = str(r.request.url.copy_with(path="/", query=None)).rstrip("/") if r.request is not None else ""
    if r.status_code == 400 and str(detail).startswith("this port speaks HTTPS") and url.startswith("http://"):
        # the engine's server answers plain HTTP on its TLS port so (engine/http/server.py): say what to run
        typer.echo(f"error: the admin API at {url} speaks HTTPS (the engine was started with --admin-cert); use "
                   f"--url {url.replace('http://', 'https://', 1)} with --ca (the CA of its certificate)", err=True)
        return typer.Exit(1)
    typer.echo(f"error: {r.status_code} {doc.get('title', r.reason_phrase)}: {detail}", err=True)
    for line in doc.get("diagnostics", []) or []:
        typer.echo(line, err=True)
    for line in doc.get("warnings", []) or []:
        typer.echo(f"warning: {line}", err=True)
    return typer.Exit(1)


def status(deployment: Optional[Path] = DEPLOYMENT_ADMIN_OPT, env: Optional[str] = ENV_OPT,
           url: str = URL_OPTION, token_file: Optional[Path] = TOKEN_FILE_OPTION, ca: Optional[Path] = CA_OPTION,
           cert: Optional[Path] = CERT_OPTION, key: Optional[Path] = KEY_OPTION,
           table: bool = typer.Option(False, "--table", help="Tables for people instead of JSON.")) -> None:
    """Show a running engine's status (JSON, or --table) and whether it is ready.

    Exit 0 ok; 1 the engine answered with a problem or cannot be reached; 2 usage error (no token, bad files).
    """
    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "GET", "/status")
        if r.status_code != 200:
            raise _problem(r)
        doc = r.json()
        ready = _call(client, "GET", "/ready")
        doc["ready"] = ready.status_code == 200
        if ready.status_code == 503:
            doc["not_ready_reason"] = ready.json().get("reason")
    if table:
        from engine.commands.top import console, render
        console().print(render(doc, None, 0, {}))
        typer.echo(("ready, DEGRADED (see the lines above)" if doc.get("state") == "degraded" else "ready")
                   if doc["ready"] else f"NOT READY: {doc.get('not_ready_reason')}")
        return
    typer.echo(json.dumps(doc, indent=2, sort_keys=True))


def reload(dry_run: bool = typer.Option(False, "--dry-run", help="Compile and show the plan; change nothing."),
           deployment: Optional[Path] = DEPLOYMENT_ADMIN_OPT, env: Optional[str] = ENV_OPT,
           url: str = URL_OPTION, token_file: Optional[Path] = TOKEN_FILE_OPTION, ca: Optional[Path] = CA_OPTION,
           cert: Optional[Path] = CERT_OPTION, key: Optional[Path] = KEY_OPTION) -> None:
    """Ask a running engine to recompile its route files and switch to them (exit 1 if they do not compile).

    Prints the reload plan: channels, routes, formats and tables added, changed, kept and removed.
    Exit 0 switched (or, with --dry-run, would switch); 1 the new files have errors (shown with
    file:line:col; the running configuration stays) or the engine cannot be reached; 2 usage error.
    """
    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "POST", "/reload", params={"dry_run": "1"} if dry_run else None)
    if r.status_code != 200:
        raise _problem(r)
    doc = r.json()
    verb = "would switch" if doc["dry_run"] else "switched"
    typer.echo(f"reload ok: {verb} from {doc.get('previous_version')} to {doc.get('version')}")
    for line in plan_lines(doc.get("plan") or {}):
        typer.echo(f"  {line}")
    for line in doc.get("warnings") or []:
        typer.echo(f"warning: {line}", err=True)


PLAN_KINDS = ("channels", "routes", "formats", "tables")
PLAN_CHANGES = ("added", "changed", "kept", "removed")


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """The reload plan as lines: ``routes changed: a, b`` with each change's reason below it."""
    why = plan.get("why") or {}
    kinds = [k for k in PLAN_KINDS if k in plan] + sorted(k for k in plan if k not in PLAN_KINDS and k != "why")
    out = []
    for kind in kinds:
        changes = plan.get(kind)
        if not isinstance(changes, dict):
            continue
        order = [c for c in PLAN_CHANGES if c in changes] + sorted(c for c in changes if c not in PLAN_CHANGES)
        for change in order:
            names = changes.get(change) or []
            if names:
                out.append(f"{kind} {change}: {', '.join(names)}")
                for name in names if change == "changed" else ():
                    reason = (why.get(kind) or {}).get(name)
                    if reason:
                        out.append(f"    {name}: {reason}")
    return out


admin_app = typer.Typer(name="admin", help="Admin API helpers.", no_args_is_help=True)


@admin_app.command("token")
def token(path: Path = typer.Argument(..., help="File to write (mode 0600)."),
          force: bool = typer.Option(False, "--force", help="Replace an existing file.")) -> None:
    """Write a new random admin API token to PATH.

    Exit 0 written; 2 PATH exists (add --force to replace it), or its folder does not exist or
    cannot be written.
    """
    if path.exists() and not force:
        raise _fail(f"{path} exists; pass --force to replace the token", 2)
    from engine.admin.auth import write_token

    if not path.parent.is_dir():
        raise _fail(f"{path}: the folder {path.parent} does not exist; make it first (mkdir -p {path.parent} "
                    f"&& chmod 700 {path.parent}) or give another path", 2)
    try:
        write_token(path)
    except OSError as exc:
        raise _fail(f"{path}: cannot write the token: {exc.strerror or exc}", 2) from None
    typer.echo(f"wrote a new admin token to {path}; give it to the engine, as a named token with its roles "
               f"(admin.tokens: - {{name: NAME, file: {path}, roles: [monitor, ...]}}, or --admin-named-token "
               f"NAME:ROLE[,ROLE...]:{path}) or as the one token with every role (admin.token: {{file: {path}}}, "
               f"or --admin-token-file), and to its clients (--token-file or $BSP_ADMIN_TOKEN_FILE)")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("reload")(reload)
    app.add_typer(admin_app, name="admin")
    from engine.commands.top import register as register_top   # `bsp top` reads the same admin API
    register_top(app)


__all__ = ["register", "status", "reload", "token", "plan_lines"]
