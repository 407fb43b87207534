"""``bsp dead retry`` by filters: which letters a selection retries and which it leaves, the confirmation, the
progress and the summary (docs/operations.md "Slow or silent counterparts")."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import typer

PROGRESS_EVERY = 100        # a line on standard error every so many letters, on a run longer than that


def retried_before(row: dict[str, Any]) -> bool:
    """A letter a retry already took: status ``retried`` (it went through, or was refused again and left the
    message in its deal's own letter, which waits: ``engine.deadletter.waits_again``), ``retrying`` (a retry
    is running, or its process stopped before recording the outcome), or ``new`` after a retry whose deal
    was refused again (written by a bsp before 2026-11-27, which left it new): that deal has a dead letter
    of its own, the one to retry now (retrying both would run the exchange twice on a route without a deal
    key), or was answered as a duplicate (answered so again).
    A ``new`` letter whose retry made no deal (its channel gone, a key missing) is not: nothing ran."""
    from engine.ledger_query import retry_made_a_deal

    if row.get("status") in ("retried", "retrying"):
        return True
    # the same test as the dead letters waiting count's (engine.ledger_query.WAITING_SQL)
    return row.get("retried_at") is not None and retry_made_a_deal(row.get("retry_outcome"))


@dataclass
class Selection:
    run: list[dict[str, Any]] = field(default_factory=list)        # to retry
    done: list[dict[str, Any]] = field(default_factory=list)       # skipped: retried before (retried_before)
    purged: list[dict[str, Any]] = field(default_factory=list)     # skipped: nothing left to retry


def select(rows: list[dict[str, Any]], *, again: bool) -> Selection:
    """Split the letters a filter matched: oldest first, as they arrived."""
    out = Selection()
    for r in sorted(rows, key=lambda r: (r["at"], r["id"])):
        if r.get("status") == "purged":
            out.purged.append(r)
        elif retried_before(r) and not again:
            out.done.append(r)
        else:
            out.run.append(r)
    return out


def confirm(n: int, where: str) -> None:
    """Ask before retrying more than one letter chosen by filters; never wait on a standard input that is no
    terminal (a script, CI, or none at all: started with standard input closed, ``sys.stdin`` is None): a usage
    error says to add --yes."""
    if sys.stdin is None or not sys.stdin.isatty():
        raise typer.BadParameter(f"these filters select {n} dead letters to retry in {where}; add --yes to retry "
                                 f"them (--dry-run lists them first); standard input is no terminal, so nothing "
                                 f"is asked", param_hint="--yes")
    if not typer.confirm(f"retry {n} dead letters in {where}?", default=False, err=True):
        typer.echo("nothing retried", err=True)
        raise typer.Exit(1)


@dataclass
class Tally:
    """Each letter's line as its retry ends, a progress line on long runs, the summary at the end."""

    total: int
    committed: int = 0
    other_ok: int = 0
    refused: int = 0          # refused again: rejected, failed, duplicate, purged, ...
    skipped: int = 0          # found already retried (or being retried) when claimed
    seen: int = 0
    pending: int = 0          # four eyes: recorded as a request, waiting for a second operator (engine/four_eyes.py)

    def add_pending(self, lid: str, text: str) -> None:
        typer.echo(f"{lid}: {text}")
        self.seen += 1
        self.pending += 1
        sys.stdout.flush()

    def add(self, lid: str, ok: bool, outcome: str, skipped: bool = False) -> None:
        typer.echo(f"{lid}: {'retried' if ok else 'NOT retried'}: {outcome}")
        self.seen += 1
        if ok:
            if outcome.startswith("committed"):
                self.committed += 1
            else:
                self.other_ok += 1
        elif skipped:
            self.skipped += 1
        else:
            self.refused += 1
        if self.total > PROGRESS_EVERY and (self.seen % PROGRESS_EVERY == 0 or self.seen == self.total):
            typer.echo(f"progress: {self.seen:,} of {self.total:,} dead letters done ({self.committed:,} committed, "
                       f"{self.refused:,} refused again, {self.skipped:,} already retried)", err=True)
        sys.stdout.flush()

    def summary(self, sel: Selection | None) -> str:
        before = len(sel.done) if sel else 0
        ok = self.committed + self.other_ok
        line = (f"retried {ok:,} of {self.total:,} dead letter(s): {self.committed:,} committed"
                + (f", {self.other_ok:,} answered ok" if self.other_ok else "")
                + f"; {self.refused:,} refused again; {self.skipped + before:,} skipped because already retried")
        if self.pending:
            line += (f"; {self.pending:,} waiting for a second operator's approval (four eyes: `bsp approvals list "
                     f"--live`)")
        if sel and sel.purged:
            line += f"; {len(sel.purged):,} skipped because purged"
        if before:
            line += " (--dry-run lists them; --again retries them too)"
        return line
