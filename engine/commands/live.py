"""``--live`` for the ledger's listing commands (``bsp deals``, ``bsp dead list``).

A running engine holds its DuckDB ledger file locked (one writer process, no
readers beside it).  ``--live`` asks that engine instead, through its admin API
(``GET /deals``, ``GET /dead-letters``), with the same filters; the rows come
back as the local query gives them (``datetime`` times, ``Decimal`` amounts),
so the same table or JSON lines are printed.  Where the API is and its token:
as for ``bsp status`` (``--url`` / ``$BSP_ADMIN_URL``, ``--token-file`` /
``$BSP_ADMIN_TOKEN_FILE`` / ``$BSP_ADMIN_TOKEN``, ``--ca`` / ``--cert`` / ``--key`` or
``$BSP_ADMIN_CA`` / ``$BSP_ADMIN_CERT`` / ``$BSP_ADMIN_KEY``).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import typer

from engine.defaults import ADMIN_HOST as DEFAULT_HOST, ADMIN_PORT as DEFAULT_PORT

PANEL = "Live (a running engine's admin API)"
LIVE_OPT = typer.Option(False, "--live", help="Ask the running engine through its admin API instead of reading "
                        "the ledger file (which the engine holds locked).", rich_help_panel=PANEL)
URL_OPT = typer.Option(f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", "--url", envvar="BSP_ADMIN_URL",
                       help="With --live: the admin API.", rich_help_panel=PANEL)
TOKEN_FILE_OPT = typer.Option(None, "--token-file", envvar="BSP_ADMIN_TOKEN_FILE",
                              help="With --live: the admin token file (else $BSP_ADMIN_TOKEN).", rich_help_panel=PANEL)
CA_OPT = typer.Option(None, "--ca", envvar="BSP_ADMIN_CA", help="With --live: CA bundle for an https admin URL.", rich_help_panel=PANEL)
CERT_OPT = typer.Option(None, "--cert", envvar="BSP_ADMIN_CERT", help="With --live: client certificate (mutual TLS).", rich_help_panel=PANEL)
KEY_OPT = typer.Option(None, "--key", envvar="BSP_ADMIN_KEY", help="With --live: client certificate key.", rich_help_panel=PANEL)


def lock_hint(exc: Exception) -> None:
    """After a ledger error: say that --live reads a ledger a running engine holds."""
    if "locked by another process" in str(exc):
        typer.echo("hint: add --live to ask the running engine through its admin API "
                   "(--url / $BSP_ADMIN_URL, --token-file / $BSP_ADMIN_TOKEN)", err=True)


def typed(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the admin API sent it (JSON) -> as the local query gives it: times ``datetime``
    (also in steps, events and config), the amount ``Decimal``."""
    for k in ("received_at", "finished_at", "at", "retried_at", "started_at", "loaded_at"):
        if isinstance(row.get(k), str):
            row[k] = datetime.fromisoformat(row[k])
    if row.get("amount") is not None:
        row["amount"] = Decimal(str(row["amount"]))
    for k in ("steps", "events", "calls"):
        for item in row.get(k) or ():
            typed(item)
    if isinstance(row.get("config"), dict):
        typed(row["config"])
    return row


def fetch_one(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
              key: Optional[Path], path: str) -> dict[str, Any] | None:
    """``GET path`` for one object: None on 404; exit 2 on 400 (a bad id), 1 on another problem."""
    from engine.commands.admin import _call, _client, _problem

    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "GET", path)
        if r.status_code == 404 and "no " in r.text:
            return None
        if r.status_code == 400:
            typer.echo(f"error: {r.json().get('detail', r.text)}", err=True)
            raise typer.Exit(2)
        if r.status_code != 200:
            raise _problem(r)
        return typed(r.json())


def fetch(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path], key: Optional[Path],
          path: str, field: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """``GET path`` with ``params`` (None dropped, times as ISO 8601, at most the API's limit);
    the list under ``field``, times back to ``datetime`` and amounts to ``Decimal``.  Exits 1 when
    the engine cannot be reached or answers with a problem, 2 without a token."""
    from engine.admin.endpoints import MAX_LIMIT
    from engine.commands.admin import _call, _client, _problem

    query = {k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in params.items() if v is not None}
    if limit == 0 or limit > MAX_LIMIT:
        typer.echo(f"note: the admin API returns at most {MAX_LIMIT:,} rows; narrow with --since / --until",
                   err=True)
    query["limit"] = str(min(limit or MAX_LIMIT, MAX_LIMIT))
    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "GET", path, params=query)
        if r.status_code != 200:
            raise _problem(r)
        rows: list[dict[str, Any]] = r.json()[field]
    return [typed(row) for row in rows]
