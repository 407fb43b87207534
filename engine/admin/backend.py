"""What the admin API needs from the engine: the ``AdminBackend`` protocol and its values.

The runtime implements ``AdminBackend``; the admin app only calls these
methods, so it can be served against any engine (or a test double of one).
Every method is async (a reload compiles, a deal query reads DuckDB in a
worker thread).  Returned mappings must be JSON-able with ``Decimal`` and
``datetime`` values allowed (rendered as exact strings / ISO 8601).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""                 # why not ready (e.g. "ledger recovery running: 12 deals left")


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of ``reload(dry_run)``.

    ``ok`` False means the new configuration did not compile (or could not be
    started) and the running one was kept; ``diagnostics`` are rendered
    diagnostics (``path:line:col: error[Ennn]: ...``).  ``plan`` names what
    is (or, for a dry run, would be) added, changed, kept and removed, by
    kind: ``{"channels": {"added": [...], ...}, "routes": {...}}``.
    """

    ok: bool
    dry_run: bool
    version: str | None = None               # the new configuration's version
    previous_version: str | None = None
    plan: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Sequence[str] = ()
    refused: str = "files"         # not ok: "files" (the new files have problems), "start" (a channel
                                   # could not start: its port is taken...), "draining" (nothing was read)
    warnings: Sequence[str] = ()   # ok or not: what the reload did not apply (ledger / admin settings)


@dataclass(frozen=True)
class DealQuery:
    """Filters of ``GET /deals``; the names match ``engine.ledger_query.query_deals``."""

    deal_type: str | None = None
    status: str | None = None
    reference: str | None = None
    since: datetime | None = None            # inclusive, aware UTC
    until: datetime | None = None            # exclusive, aware UTC
    limit: int = 50
    flagged: bool = False                    # only deals flagged for an operator (event ``flagged`` or ``reversal flagged``)
                                             # whose flag is open (not resolved: engine.deal_resolve)
    before: tuple[datetime, str] | None = None   # (received_at, deal_id) of a previous page's last row (cursor)
    resolved: bool = False                   # with flagged: the resolved ones too
    currency: str | None = None              # in any case (cny finds CNY)
    party: str | None = None                 # the party column, exactly as stored
    statement_breaks: bool = False           # only deals with an event ``statement break`` (a ``continuity`` step)


@dataclass(frozen=True)
class DeadLetterQuery:
    """Filters of ``GET /dead-letters``; the names match ``engine.ledger_query.query_dead_letters``."""

    channel: str | None = None
    route: str | None = None
    since: datetime | None = None            # inclusive, aware UTC
    limit: int = 50
    until: datetime | None = None            # exclusive, aware UTC
    status: str | None = None                # new, retrying, retried, purged
    reason: str | None = None                # the reason contains this text (any case)
    before: tuple[datetime, str] | None = None   # (at, id) of a previous page's last row (cursor)
    kind: str | None = None                  # the error kind: unreachable, timeout, rejected, ... (DEAD_KINDS)
    open: bool = False                       # only those waiting or held by a retry (ledger_query.OPEN_SQL)
    code: str | None = None                  # the error code (error_code: the code its deal records)


# Optional, used when the backend has it: ``async archived(kind, ident) -> Mapping | None``: where ``bsp ledger
# archive`` moved (or may have moved) the ``deal`` / ``dead letter`` ``ident`` the ledger lacks
# (``engine.archive_lookup.archived_where``), None when no archive can hold it; the 404 names it.
@runtime_checkable
class AdminBackend(Protocol):
    async def status(self) -> Mapping[str, Any]:
        """Engine state: version, configuration version, uptime, channels, routes, ledger, ..."""
        ...

    async def ready(self, strict: bool = False) -> Readiness:
        """Whether the engine accepts traffic (listening, ledger open, recovery finished); ``strict``: and
        every outbound counterpart answers.  ``GET /ready`` passes ``strict`` only when asked."""
        ...

    async def reload(self, dry_run: bool) -> ReloadResult:
        """Recompile the route files; unless ``dry_run``, swap to the new generation when it compiles."""
        ...

    async def deals(self, query: DealQuery) -> Sequence[Mapping[str, Any]]:
        """Deals matching the query, newest first."""
        ...

    async def deal(self, deal_id: str) -> Mapping[str, Any] | None:
        """One deal's whole story (``engine.ledger_query.get_deal``): the id or its first 8+ hex
        digits; None when there is no such deal; ``ValueError`` / ``LookupError`` for an id that is
        too short or matches several."""
        ...

    async def resolve_deal(self, deal_id: str, outcome: str, note: str, by: str,
                           client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Record an operator's resolution of a flagged deal (``engine.deal_resolve``): the ``resolved`` event's
        detail with ``deal_id``, ``at``, ``reversals`` (what became of the deal's queued ISO 8583 reversals:
        engine.txn.safcancel) and ``warnings``; ``client``: ``peer`` and ``client_cert`` as the
        admin app saw them.  None when there is no such deal; ``Refused`` when it is not flagged or already
        resolved; ``ValueError`` / ``LookupError`` as ``deal``."""
        ...

    async def dead_letters(self, query: DeadLetterQuery) -> Sequence[Mapping[str, Any]]:
        """Exchanges no route could take or that failed irrecoverably, newest first."""
        ...

    async def dead_letter(self, letter_id: str) -> Mapping[str, Any] | None:
        """One dead letter (its whole id) with ``raw_base64``: the stored message, base64, as stored
        (encrypted when ``raw_key`` is set), None once purged; None when there is no such dead letter."""
        ...

    async def snapshot_ledger(self) -> Any:
        """A transactionally consistent copy of the ledger in a temporary file (``engine.ledger_snapshot.
        Snapshot``: ``path``, ``size``, ``taken_at``, ``chain_seq``, ``deals``, ``remove()``), every deal
        acknowledged before the call in it.  ``SnapshotNoRoom`` (its ``folder``) when the disk lacks room,
        ``SnapshotError`` when it cannot be made.  The app sends the file, then calls ``remove()``."""
        ...

    async def retry_dead_letter(self, letter_id: str, *, again: bool = False) -> Mapping[str, Any] | None:
        """Re-inject one dead letter through the running configuration and record the outcome:
        ``{"id", "ok", "outcome", "at", "skipped"}``; None when there is no such dead letter.  ``skipped``: not
        run, it was already retried or a retry of it is running (``outcome`` says when and what it produced);
        ``again`` runs it anyway."""
        ...
