"""A running engine's ledger, copied through its admin API (``POST /ledger/snapshot``).

``bsp ledger snapshot --live --out FILE`` writes it to a file; ``--live`` on ``bsp report``,
``bsp reconcile`` and ``bsp audit verify`` takes one into a private temporary folder, runs on it and
removes it (``live_ledger``).  Where the API is and its token: as for every ``--live`` command
(engine/commands/live.py).

    with live_ledger(url, token_file, ca, cert, key, "bsp report") as (path, snap):
        build_report(..., path, ...)         # snap.describe(): which engine, when the copy was taken

The file is written owner-only (0600) under a temporary name beside the target, and only put in place
once every byte the engine announced has arrived: an interrupted transfer leaves no file that looks
whole (nor replaces an existing one).
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

import typer

READ_TIMEOUT = 600.0      # the engine copies the ledger before the first byte: a large ledger takes a while


@dataclass
class LiveSnapshot:
    url: str
    taken_at: datetime | None
    deals: int | None
    chain_seq: int | None
    size: int

    def describe(self) -> str:
        when = self.taken_at.isoformat(timespec="seconds").replace("+00:00", "Z") if self.taken_at else "?"
        deals = f", {self.deals:,} deals" if self.deals is not None else ""
        return f"a snapshot of the ledger of the engine at {self.url}, taken {when}{deals}"


def _int(text: Optional[str]) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def download(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
             key: Optional[Path], out: Path, *, force: bool = False, progress_every: float = 5.0) -> LiveSnapshot:
    """Ask the engine for a snapshot and write it to ``out`` (0600).  Exits 2 when ``out`` exists without
    ``force`` or its folder is missing, 1 when the engine cannot be reached, answers with a problem or the
    transfer breaks off (nothing is left at ``out`` then)."""
    import httpx

    from engine.commands.admin import _client, _problem, _transport_problem
    from engine.progress import work_progress

    if out.exists() and not force:
        typer.echo(f"error: --out {out}: the file exists; give another path, or add --force to replace it",
                   err=True)
        raise typer.Exit(2)
    if not out.parent.is_dir():
        typer.echo(f"error: --out {out}: the folder {out.parent} does not exist; create it or choose another path",
                   err=True)
        raise typer.Exit(2)
    part = out.parent / f".{out.name}.part-{secrets.token_hex(6)}"
    with _client(url, token_file, ca, cert, key) as client:
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            typer.echo(f"error: --out {out}: cannot write in {out.parent}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        try:
            with os.fdopen(fd, "wb") as f:
                timeout = httpx.Timeout(client.timeout.connect or 30.0, read=READ_TIMEOUT)
                with client.stream("POST", "/ledger/snapshot", timeout=timeout) as r:
                    if r.status_code != 200:
                        r.read()
                        raise _problem(r)
                    total = _int(r.headers.get("content-length"))
                    got = 0
                    with work_progress("ledger snapshot", "bytes", progress_every) as progress:
                        for chunk in r.iter_bytes(1 << 20):
                            f.write(chunk)
                            got += len(chunk)
                            if progress is not None and total:
                                progress(got, total)
                    if total is not None and got != total:
                        typer.echo(f"error: the snapshot from {url} broke off at byte {got:,} of {total:,}; "
                                   f"nothing was written to {out}; ask again", err=True)
                        raise typer.Exit(1)
                    f.flush()
                    os.fsync(f.fileno())
            if force:
                os.replace(part, out)
            else:
                try:
                    os.link(part, out)          # never replaces a file made meanwhile
                except FileExistsError:
                    typer.echo(f"error: --out {out}: the file appeared meanwhile; give another path, or add "
                               f"--force to replace it", err=True)
                    raise typer.Exit(2) from None
                os.unlink(part)
        except httpx.TransportError as exc:
            typer.echo(f"error: {_transport_problem(client, exc)}; nothing was written to {out}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            typer.echo(f"error: --out {out}: cannot write the snapshot: {exc.strerror or exc}; nothing was "
                       f"written", err=True)
            raise typer.Exit(1) from None
        finally:
            try:
                part.unlink()
            except FileNotFoundError:
                pass
        taken = r.headers.get("x-bsp-snapshot-taken-at")
        return LiveSnapshot(url=url, taken_at=datetime.fromisoformat(taken) if taken else None,
                            deals=_int(r.headers.get("x-bsp-snapshot-deals")),
                            chain_seq=_int(r.headers.get("x-bsp-snapshot-chain-seq")), size=got)


@contextmanager
def live_ledger(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
                key: Optional[Path], command: str) -> Iterator[tuple[Path, LiveSnapshot]]:
    """A snapshot of the running engine's ledger in a private temporary folder (0700), removed afterwards;
    says on standard error which engine it comes from and when it was taken."""
    folder = Path(tempfile.mkdtemp(prefix="bsp-snapshot-"))
    try:
        path = folder / "ledger.duckdb"
        snap = download(url, token_file, ca, cert, key, path)
        typer.echo(f"{command}: on {snap.describe()}", err=True)
        yield path, snap
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["LiveSnapshot", "download", "live_ledger"]
