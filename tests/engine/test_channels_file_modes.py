"""While a ledger is open the process's umask is owner-only (engine.filemodes: DuckDB makes the ledger and
its .wal with it), but what the file channels make for other users keeps the mode the process's own umask
gives: a `file write` file 0640, the folders bsp makes 0755 (done/, error/), the reason file 0644 (under
umask 022), as before.  A real engine on a real folder and a real ledger."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import trio

from kit import compile_text, running
from test_channels_file import ROUTE, wait_for


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_file_channels_keep_their_modes_while_the_ledger_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        inbox = tmp_path / "in"
        inbox.mkdir()
        (tmp_path / "out").mkdir()
        (inbox / "a.jsonl").write_text('{"ref": "G1", "amount": 1}\n{"ref": "B1", "amount": -1}\n')
        prog = compile_text(tmp_path, ROUTE % "")
        ledger = tmp_path / "l.duckdb"
        async with running(prog, ledger):
            await wait_for(lambda: (inbox / "error" / "a.jsonl.reason.txt").exists()
                           or (inbox / "done" / "a.jsonl").exists(), "the file")
            await wait_for(lambda: any((tmp_path / "out").glob("PAY-*.json")), "the output")
            await trio.sleep(0.1)
            assert mode(ledger) == 0o600
        assert os.umask(0o022) == 0o022            # given back when the ledger closed
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert {mode(f) for f in out.glob("PAY-*.json")} == {0o640}
    assert mode(inbox / "done") == 0o755 and mode(inbox / "error") == 0o755
    assert mode(inbox / "done" / ".bsp-files") == 0o640
    assert mode(inbox / "error" / "a.jsonl.reason.txt") == 0o644
