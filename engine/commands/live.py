"""``--live`` for the ledger's listing commands (``bsp deals``, ``bsp dead list``).

A running engine holds its DuckDB ledger file locked (one writer process, no
readers beside it).  ``--live`` asks that engine instead, through its admin API
(``GET /deals``, ``GET /dead-letters``), with the same filters, page by page (the
API's ``cursor``: ``--limit 0`` lists them all); the rows come
back as the local query gives them (``datetime`` times, ``Decimal`` amounts),
so the same table or JSON lines are printed.  Where the API is and its token:
as for ``bsp status`` (``--url`` / ``$BSP_ADMIN_URL``, else ``--deployment``'s or ./platform.yaml's
``admin.listen``: engine/commands/admin_url.py; ``--token-file`` /
``$BSP_ADMIN_TOKEN_FILE`` / ``$BSP_ADMIN_TOKEN``, ``--ca`` / ``--cert`` / ``--key`` or
``$BSP_ADMIN_CA`` / ``$BSP_ADMIN_CERT`` / ``$BSP_ADMIN_KEY``).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from engine.exact_json import api_json
from engine.commands.admin_url import url_option

PANEL = "Live (a running engine's admin API)"
LIVE_OPT = typer.Option(False, "--live", help="Ask the running engine through its admin API instead of reading "
                        "the ledger file (which the engine holds locked).", rich_help_panel=PANEL)
URL_OPT = url_option(help="With --live: the admin API.", rich_help_panel=PANEL)
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
    for k in ("config", "resolution"):
        if isinstance(row.get(k), dict):
            typed(row[k])
    for letter in row.get("dead_letters") or ():      # a deal's letters (engine/deal_letters.py)
        typed(letter)
        for r in letter.get("retries") or ():        # its status events: the time of the change (the detail's
            if isinstance(r.get("at"), str):         # retried_at stays as stored, as the local query gives it)
                r["at"] = datetime.fromisoformat(r["at"])
    return row


def fetch_one(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
              key: Optional[Path], path: str, missing: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``GET path`` for one object: None on 404 (its problem body put in ``missing``: e.g. ``archived``, where
    ``bsp ledger archive`` moved it, engine.archive_lookup); exit 2 on 400 (a bad id), 1 on another problem."""
    from engine.commands.admin import _call, _client, _problem

    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "GET", path)
        if r.status_code == 404 and "no " in r.text:
            if missing is not None:
                try:
                    body = r.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    missing.update(body)
            return None
        if r.status_code == 400:
            typer.echo(f"error: {r.json().get('detail', r.text)}", err=True)
            raise typer.Exit(2)
        if r.status_code != 200:
            raise _problem(r)
        return typed(api_json(r.text))


def post_reveal(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
                key: Optional[Path], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST path`` (``/deals/{id}/reveals``, ``/dead-letters/{id}/reveals``): the running engine records a
    ``--reveal`` in its audit trail (engine/reveal_log.py) before this command shows anything in clear.  Not
    recorded (an engine older than this bsp, a token without the role, a problem): one ``error:`` line, exit
    2, nothing revealed.  Under four eyes (deal.reveal) the engine answers 202 with a request: returned with
    ``pending``; ``body["four_eyes"]`` (no keyring here): ``{"why": "not_under_four_eyes"}`` when it is not."""
    from engine.commands.admin import _call, _client, _problem

    with _client(url, token_file, ca, cert, key) as client:
        r = _call(client, "POST", path, json=body)
        if r.status_code == 200:
            return dict(r.json())
        if r.status_code == 202:        # four eyes (deal.reveal): a request recorded, nothing to show yet
            return {**dict(r.json()), "pending": True}
        if r.status_code == 409 and body.get("four_eyes") and "not_under_four_eyes" in r.text:
            return {"why": "not_under_four_eyes"}
        if r.status_code == 404 and "no " not in r.text:
            typer.echo(f"error: {url} has no POST {path.rsplit('/', 2)[0].rsplit('/', 1)[0]}/{{id}}/reveals (an engine "
                       f"older than this bsp?): a --reveal is recorded in the audit trail before anything is shown "
                       f"(PCI DSS 10.2), and this engine cannot record it; nothing was revealed. Upgrade the engine, "
                       f"or stop it and reveal on its ledger file", err=True)
            raise typer.Exit(2)
        _problem(r)
        typer.echo("error: the engine did not record the reveal in its audit trail (PCI DSS 10.2), so nothing was "
                   "revealed", err=True)
        raise typer.Exit(2)


PAGE = 1000       # rows asked per request: the admin API's most (engine.admin.endpoints.MAX_LIMIT)


def fetch(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path], key: Optional[Path],
          path: str, field: str, params: dict[str, Any], limit: int, *, streamed: bool = False) -> Iterator[dict[str, Any]]:
    """The rows of ``GET path`` with ``params`` (None dropped, times as ISO 8601), newest first: ``limit``
    of them, 0 for all, paged through the API ``PAGE`` at a time with its ``cursor`` (each page's ``next``),
    so ``--limit 0`` lists every match, not the first 1,000; the list under ``field``, times back to
    ``datetime`` and amounts to ``Decimal``, yielded page by page (JSON lines stream in bounded memory).
    A listing of more than one page shows its progress on a terminal (standard error; unless ``streamed``
    rows go to the same terminal as they come).  Exits 1 when the engine cannot be reached or answers
    with a problem, 2 without a token."""
    from engine.admin.endpoints import MAX_LIMIT
    from engine.commands.admin import _call, _client, _problem

    query = {k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in params.items() if v is not None}
    page = max(1, min(PAGE, MAX_LIMIT))
    left = limit or None                   # None: all
    shown = _Progress(field.replace("_", " "), url,
                      on=sys.stderr.isatty() and not (streamed and sys.stdout.isatty()))
    with _client(url, token_file, ca, cert, key) as client, shown:
        cursor: str | None = None
        while left is None or left > 0:
            ask = dict(query, limit=str(page if left is None else min(page, left)))
            if cursor is not None:
                ask["cursor"] = cursor
            r = _call(client, "GET", path, params=ask)
            if r.status_code != 200:
                raise _problem(r)
            body = api_json(r.text)         # numbers as stored (1.50, 1e400), not floats
            rows: list[dict[str, Any]] = body[field]
            if left is not None:
                left -= len(rows)
            cursor = body.get("next")
            if cursor is not None or shown.count:
                shown.add(len(rows))
            for row in rows:
                yield typed(row)
            if cursor is None or not rows:
                return


class _Progress:
    """``N deals fetched from URL`` on a terminal (standard error, gone once the listing ends) while a
    listing of more than one page is fetched; nothing elsewhere."""

    def __init__(self, what: str, url: str, on: bool) -> None:
        self.what, self.url, self.on = what, url, on
        self.count = 0
        self._bar: Any = None
        self._task: Any = None

    def add(self, n: int) -> None:
        self.count += n
        if not self.on:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True,
                                 redirect_stdout=False, redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task("")
        self._bar.update(self._task, description=f"{self.count:,} {self.what} fetched from {self.url}, page by page")

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
