"""file watch never follows a symbolic link: whoever can write the inbox (a partner's transfer account) could
otherwise have the engine read any file it can (a key, another partner's file) and run it, its records
echoed into deals, dead letters, error texts and outbound files.  A link is moved to error/ unread."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from engine.channels.file_change import NotAFile, read_unchanged
from kit import compile_text, deals, running

from test_channels_file import ROUTE  # noqa: E402  (the pay route: file watch -> file write)


async def wait_for(cond) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


async def test_a_symbolic_link_in_the_inbox_is_not_followed(tmp_path: Path, caplog) -> None:
    inbox, error, done, out = tmp_path / "in", tmp_path / "in" / "error", tmp_path / "in" / "done", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    secret = tmp_path / "keys" / "elsewhere.jsonl"
    secret.parent.mkdir()
    secret.write_bytes(b'{"ref": "KEYMATERIAL42", "amount": 1}\n')
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE % ""), ledger):
        with caplog.at_level("WARNING", logger="bsp.channel.file"):
            os.symlink(secret, inbox / "steal.jsonl")
            (inbox / ".ok.tmp").write_bytes(b'{"ref": "OK1", "amount": 2}\n')
            os.replace(inbox / ".ok.tmp", inbox / "ok.jsonl")
            await wait_for(lambda: (done / "ok.jsonl").exists() and (error / "steal.jsonl").is_symlink())
    assert [r["reference"] for r in deals(ledger)] == ["OK1"]          # nothing of the link's target ran
    assert all(b"KEYMATERIAL42" not in f.read_bytes() for f in out.iterdir())
    assert secret.read_bytes() == b'{"ref": "KEYMATERIAL42", "amount": 1}\n'     # the target untouched
    reason = (error / "steal.jsonl.reason.txt").read_text()
    assert "is a symbolic link" in reason and "KEYMATERIAL42" not in reason
    assert "steal.jsonl -> error/steal.jsonl" in caplog.text and "KEYMATERIAL42" not in caplog.text


def test_read_unchanged_refuses_a_link_and_what_is_not_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"x")
    os.symlink(target, tmp_path / "l")
    with pytest.raises(NotAFile, match="a symbolic link"):
        read_unchanged(tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    with pytest.raises(NotAFile, match="not a regular file"):
        read_unchanged(tmp_path / "p")
    assert read_unchanged(target)[0] == b"x"
