"""file watch's done/ and error/ are never a symbolic link: whoever writes the inbox could plant one before the
engine first makes them, and the files run (with their reasons, the file index, the retention's sweeps) would
leave the inbox for the link's target.  A link there stops the channel at start, naming it; one planted while
it runs is never followed (the file stays in the inbox, said in the log)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

from engine.channels import file_keep
from engine.channels.file_folders import LinkedFolder, check_folder
from kit import compile_text, deals, running

from test_channels_file import ROUTE  # noqa: E402  (the pay route: file watch -> file write)


async def wait_for(cond) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


def drop(inbox: Path, name: str, ref: str) -> None:
    (inbox / f".{name}.tmp").write_bytes(b'{"ref": "%s", "amount": 2}\n' % ref.encode())
    os.replace(inbox / f".{name}.tmp", inbox / name)


@pytest.mark.parametrize("folder,option", [("done", "done_dir"), ("error", "error_dir")])
async def test_a_done_or_error_folder_planted_as_a_link_stops_the_channel_at_start(tmp_path: Path, folder: str,
                                                                                   option: str) -> None:
    inbox, outside = tmp_path / "in", tmp_path / "elsewhere"
    inbox.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("theirs")
    os.symlink(outside, inbox / folder)
    (tmp_path / "out").mkdir()
    drop(inbox, "a.jsonl", "A1")
    with pytest.raises(BaseException) as caught:       # the switchboard's nurseries wrap it in groups
        async with running(compile_text(tmp_path, ROUTE % ""), tmp_path / "l.duckdb"):
            pass
    err = caught.value
    while isinstance(err, BaseExceptionGroup):
        err = err.exceptions[0]
    assert isinstance(err, LinkedFolder), repr(err)
    text = str(err)
    assert f"channel inbox: {option} {inbox / folder} is a symbolic link (to {outside})" in text, text
    assert "never followed" in text and "set " + option in text
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]      # nothing moved, written or swept there
    assert (inbox / "a.jsonl").exists()


async def test_a_folder_replaced_by_a_link_while_running_is_not_followed(tmp_path: Path, caplog) -> None:
    inbox, outside = tmp_path / "in", tmp_path / "elsewhere"
    inbox.mkdir()
    outside.mkdir()
    (tmp_path / "out").mkdir()
    async with running(compile_text(tmp_path, ROUTE % ""), tmp_path / "l.duckdb"):
        with caplog.at_level("ERROR", logger="bsp.channel.file"):
            for name in os.listdir(inbox / "done"):
                os.unlink(inbox / "done" / name)
            os.rmdir(inbox / "done")
            os.symlink(outside, inbox / "done")
            drop(inbox, "b.jsonl", "B1")
            await wait_for(lambda: "b.jsonl stays in" in caplog.text)
    assert list(outside.iterdir()) == []
    assert (inbox / "b.jsonl").exists() and deals(tmp_path / "l.duckdb") == []     # not taken: nothing of it ran
    assert f"done_dir {inbox / 'done'} is a symbolic link" in caplog.text


def test_check_folder_makes_a_missing_folder_and_refuses_a_link_or_a_file(tmp_path: Path) -> None:
    check_folder("inbox", "done_dir", tmp_path / "in" / "done")
    assert (tmp_path / "in" / "done").is_dir()
    os.symlink(tmp_path / "in" / "done", tmp_path / "linked")
    with pytest.raises(LinkedFolder, match="channel inbox: error_dir .*linked is a symbolic link"):
        check_folder("inbox", "error_dir", tmp_path / "linked")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(LinkedFolder, match="plain is not a folder"):
        check_folder("inbox", "error_dir", tmp_path / "plain")


def test_a_sweep_never_deletes_through_a_linked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    old = outside / "ledger.csv"
    old.write_text("theirs")
    os.utime(old, (time.time() - 10 * 86400,) * 2)
    os.symlink(outside, tmp_path / "done")
    with pytest.raises(OSError):
        file_keep.sweep(tmp_path / "done", keep=86400)
    assert old.read_text() == "theirs"
