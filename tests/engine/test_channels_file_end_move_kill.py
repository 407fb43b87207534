"""``end_message = true``: a real ``bsp run`` SIGKILLed in the instant between a file's ``ended`` line (its end
message's deal recorded) and the file's move to ``error/``, for a repeat refused unrun (``run_once``) and a file
over ``max_file_bytes``, then started again over the same ledger and inbox: the file is still in the folder, and
its end message is not sent a second time (before 2026-11-28 it was: the restart took the note of a repeat or
of an unread file for an earlier file's, so a second summary line was written and a second end deal recorded).

The kill lands at that instant whatever the machine's timing: the killed engine runs with ``os.replace``
wrapped (in the engine process only, ``KILL_AT_MOVE``) so that it SIGKILLs itself when it is about to move a
file of the inbox to ``error/`` and the last line of the index is that file's ``ended``.  The restarted engine is
a plain ``bsp run``."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]

ROUTE = """
format Pay = csv header false {
    ref     string
    amount  decimal(2)
}

format Summary = csv header false {
    name     string
    status   string
    records  integer
    archived string
}

channel inbox = file watch {
    dir            = "in"
    pattern        = "*.csv"
    record         = "csv"
    max_file_bytes = 60
    end_message    = true
}

channel ends = file write {
    dir  = "out"
    name = "END-{source}"
    mode = "append"
}

route pay {
    receive from inbox as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}

route file_ended {
    receive from inbox when file.end
    call w = ends as Summary {
        name = file.name  status = file.status  records = file.records  archived = file.archived
    } name { source = file.name }
}
"""

# the killed engine: os.replace of an inbox file to error/ right after its `ended` line kills the process
KILL_AT_MOVE = r"""
import os, signal, sys
from pathlib import Path

_replace = os.replace


def replace(src, dst, *args, src_dir_fd=None, dst_dir_fd=None, **kwargs):
    # the watcher renames relative to the folders it opened without following a link (dir fds)
    s = Path(os.readlink(f"/proc/self/fd/{src_dir_fd}")) / src if src_dir_fd is not None else Path(src)
    d = Path(os.readlink(f"/proc/self/fd/{dst_dir_fd}")) / dst if dst_dir_fd is not None else Path(dst)
    index = s.parent / "done" / ".bsp-files"
    if d.parent.name == "error" and d.parent.parent == s.parent and index.exists():
        last = index.read_text().splitlines()[-1].split("\t")
        if last[1] == "ended" and last[2] == s.name:
            os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **kwargs)


os.replace = replace
sys.argv[0] = "bsp"
from engine.cli import main
main()
"""


def _start(work: Path, kill_at_move: bool) -> subprocess.Popen:
    log = work / "engine.log"
    seen = log.read_text() if log.exists() else ""
    how = ["-c", KILL_AT_MOVE] if kill_at_move else ["-m", "engine.cli"]
    with log.open("a") as err:          # a file, not a pipe: an engine that logs much never blocks on it
        proc = subprocess.Popen([sys.executable, *how, "run", str(work / "pay.route"),
                                 "--ledger", str(work / "l.duckdb")],
                                cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60          # a guard against a hung start, not a timing assertion
    while "serving" not in log.read_text()[len(seen):]:
        assert proc.poll() is None and time.monotonic() < deadline, f"bsp run did not serve: {log.read_text()}"
        time.sleep(0.05)
    return proc


def _until(cond, proc: subprocess.Popen, what: str, dies: bool = False) -> None:
    deadline = time.monotonic() + 60          # a guard against a hung engine, not a timing assertion
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}"
        assert dies or proc.poll() is None, f"the engine exited before: {what}"
        time.sleep(0.02)


def _drop(inbox: Path, name: str, body: bytes) -> None:
    (inbox / f".{name}.tmp").write_bytes(body)
    (inbox / f".{name}.tmp").rename(inbox / name)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _index(inbox: Path) -> list[list[str]]:
    return [line.split("\t") for line in _lines(inbox / "done" / ".bsp-files")]


def _end_deals(ledger: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute("SELECT route, status FROM deals WHERE route <> 'pay' ORDER BY received_at").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("case", ["repeat", "too big"])
def test_an_engine_killed_between_ended_and_the_move_sends_the_end_message_once(tmp_path: Path, case: str) -> None:
    work = tmp_path
    (work / "pay.route").write_text(ROUTE)
    inbox, out = work / "in", work / "out"
    inbox.mkdir()
    out.mkdir()
    name = "a.csv" if case == "repeat" else "big.csv"
    body = b"A1,1.50\nA2,3.25\n" if case == "repeat" else b"B1,1.50\n" * 10       # 80 bytes: over 60
    proc = _start(work, kill_at_move=True)
    try:
        if case == "repeat":
            _drop(inbox, name, body)
            _until(lambda: (inbox / "done" / name).exists(), proc, "the file run to done/")
        _drop(inbox, name, body)              # the same bytes again (refused unrun), or a file too big
        _until(lambda: proc.poll() is not None, proc, "the kill at the move to error/", dies=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = _index(inbox)[-1]
    assert last[1:3] == ["ended", name], last             # killed after its end message's deal was recorded
    assert (inbox / name).exists() and not (inbox / "error" / name).exists()     # and before the move
    sent = _lines(out / f"END-{name}")
    assert len(sent) == (2 if case == "repeat" else 1), sent

    proc = _start(work, kill_at_move=False)
    try:
        _until(lambda: (inbox / "error" / name).exists() and not (inbox / name).exists(), proc,
               "the file moved to error/ after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert _lines(out / f"END-{name}") == sent                  # no second end message of the file
    assert _end_deals(work / "l.duckdb") == [("file_ended", "committed")] * len(sent)
    refused = sent[-1].split(",")
    assert refused[:2] == [name, "refused"] and refused[-1] == f"error/{name}"
    assert [p[1] for p in _index(inbox)][-2:] == ["ended", "repeat" if case == "repeat" else "error"]
