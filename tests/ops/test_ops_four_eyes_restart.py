"""Four eyes across a crash: an approved action the engine was cut in (SIGKILL while it ran) is not left
"approved" and never run twice.  A real `bsp run platform.yaml` whose `operators.four_eyes` lists deal.release
holds two deals (a screening hit); alice asks to release both.  Bob approves the first: its release runs and its
call reaches the counterpart, which does not answer; the engine is killed there.  The second's approval was
recorded and the engine stopped before its action began (its `approval granted` written on the ledger file by
the same function the engine calls, the engine down).  Started again over the same ledger, both requests are
listed `interrupted` (on the ledger file and live); approved again, the first is closed void (its own record: the
hold released, its request claimed and run: not run twice, the counterpart sees no second call) and the second
runs once (its hold still held); a third approval is refused; `bsp audit verify` finds the chain intact.

Real processes, real sockets, a real DuckDB ledger."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from formats.framing import LengthPrefixFramer
from opskit import REPO, free_port
from test_ops_four_eyes_cli import PLATFORM, SECRETS, bsp
from test_ops_screen_hold import AUDIT_KEY, LIST, ROUTE, Counterpart, ask


class Stalling(Counterpart):
    """Answers OK, but never answers a request whose ref is ``stall`` (``arrived`` is set when it comes)."""

    stall = "H1"

    def __init__(self) -> None:
        self.arrived = threading.Event()
        super().__init__()

    def _conn(self, conn: socket.socket) -> None:
        rx, tx = LengthPrefixFramer(4), LengthPrefixFramer(4)
        with conn:
            while data := conn.recv(65536):
                for frame in rx.feed(data):
                    ref = orjson.loads(frame)["ref"]
                    self.refs.append(ref)
                    if ref == self.stall:
                        self.arrived.set()
                        continue
                    conn.sendall(tx.frame(orjson.dumps({"ref": ref, "status": "OK"})))


def start(work: Path) -> subprocess.Popen:
    log = work / "engine.log"
    seen = len(log.read_text()) if log.exists() else 0
    env = {**os.environ, "BSP_AUDIT_KEY": AUDIT_KEY}
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(work / "platform.yaml")],
                                cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 60          # a guard against a hung start, not a timing assertion
    while "serving" not in log.read_text()[seen:]:
        assert proc.poll() is None and time.monotonic() < deadline, f"bsp run did not serve: {log.read_text()}"
        time.sleep(0.05)
    return proc


def _states(rows: str) -> dict[str, str]:
    return {r["id"]: r["state"] for r in map(orjson.loads, rows.splitlines())}


def test_an_approval_cut_by_a_crash_is_interrupted_and_never_runs_twice(tmp_path: Path) -> None:
    import base64

    from engine.four_eyes import decide
    from engine.ledger_store import LedgerStore

    back = Stalling()
    front, admin = free_port(), free_port()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    (tmp_path / "pay.route").write_text(ROUTE % (front, back.port))
    for name, secret in SECRETS.items():
        (tmp_path / f"{name}.token").write_text(secret)
        (tmp_path / f"{name}.token").chmod(0o600)
    (tmp_path / "platform.yaml").write_text(PLATFORM.replace("[deal.release, dead.retry]", "[deal.release]") % admin)
    ledger = tmp_path / "l.duckdb"
    proc = start(tmp_path)
    try:
        assert ask(front, "H1", "Viktor Alexandrovich Kurganov")["code"] == "09"
        assert ask(front, "H2", "Viktor Kurganoff")["code"] == "09"
        r = bsp("alice", admin, "deals", "--held", "--live", "--json")
        held = {d["reference"]: d["deal_id"] for d in map(orjson.loads, r.stdout.splitlines())}
        req = {}
        for ref in ("H1", "H2"):
            r = bsp("alice", admin, "deals", "resolve", held[ref], "--live", "--outcome", "release", "--note",
                    "false positive: other date of birth")
            assert r.returncode == 0 and "NOT done yet" in r.stdout, r.stdout + r.stderr
        r = bsp("bob", admin, "approvals", "list", "--live", "--json")
        req = {held_ref: row["id"] for row in map(orjson.loads, r.stdout.splitlines())
               for held_ref, did in held.items() if row["target"] == did}
        assert set(req) == {"H1", "H2"}, r.stdout
        # bob approves H1: its release runs, its call reaches the counterpart (no answer): the engine is killed
        env = {**os.environ, "BSP_ADMIN_URL": f"http://127.0.0.1:{admin}", "BSP_ADMIN_TOKEN": SECRETS["bob"]}
        approving = subprocess.Popen([sys.executable, "-m", "engine.cli", "approvals", "approve", req["H1"], "--live",
                                      "--reason", "checked the DOB"], cwd=str(REPO), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert back.arrived.wait(60), "the released request never reached the counterpart"
        r = bsp("alice", admin, "approvals", "list", "--live", "--all", "--json")
        assert _states(r.stdout)[req["H1"]] == "running", r.stdout        # carried out now, by this engine
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    approving.communicate(timeout=60)
    assert approving.returncode != 0                 # its engine died under it
    assert back.refs == ["H1"], back.refs
    # H2: approved and cut before its action began (the engine's own first step, the engine down)
    store = LedgerStore.open(ledger, base64.b64decode(AUDIT_KEY))
    try:
        decide(store, req["H2"], True, "bob", "admin API", "checked the DOB", token="bob")
    finally:
        store.close()
    r = bsp(None, admin, "approvals", "list", "--ledger", str(ledger), "--json")
    assert _states(r.stdout) == {req["H1"]: "interrupted", req["H2"]: "interrupted"}, r.stdout + r.stderr
    r = bsp(None, admin, "approvals", "list", "--ledger", str(ledger))
    assert r.stdout.count("interrupted") == 2, r.stdout
    proc = start(tmp_path)
    try:
        r = bsp("bob", admin, "approvals", "list", "--live", "--json")
        assert _states(r.stdout) == {req["H1"]: "interrupted", req["H2"]: "interrupted"}, r.stdout + r.stderr
        calls = list(back.refs)
        assert calls == ["H1"], calls                    # the restart ran nothing of its own
        # H1 again: its own record says its release ran: closed void, not run twice
        r = bsp("bob", admin, "approvals", "approve", req["H1"], "--live", "--reason", "after the crash")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "the interrupted release took effect or may have; not run twice" in r.stderr, r.stderr
        assert "approval void" in r.stderr, r.stderr
        assert back.refs == calls, back.refs
        # H2 again: its hold is still held: it runs, once
        r = bsp("bob", admin, "approvals", "approve", req["H2"], "--live", "--reason", "after the crash")
        assert r.returncode == 0 and "carried out: committed (deal " in r.stdout, r.stdout + r.stderr
        assert back.refs == [*calls, "H2"], back.refs
        r = bsp("bob", admin, "approvals", "approve", req["H2"], "--live", "--reason", "once more")
        assert r.returncode == 1 and "is already approved by bob" in r.stderr, r.stderr
        assert back.refs == [*calls, "H2"], back.refs
        r = bsp("alice", admin, "approvals", "list", "--live", "--all", "--json")
        assert _states(r.stdout) == {req["H1"]: "void", req["H2"]: "approved"}, r.stdout
        r = bsp("bob", admin, "deals", "show", held["H2"], "--live", "--json")
        events = [e for e in orjson.loads(r.stdout)["events"] if e["to_state"].startswith("approval")]
        assert [e["to_state"] for e in events] == ["approval requested", "approval granted", "approval granted",
                                                   "approval done"], events
        assert events[2]["detail"]["again"] is True and events[2]["detail"]["interrupted"]["approved_by"] == "bob"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    r = bsp(None, admin, "audit", "verify", "--ledger", str(ledger))
    assert r.returncode == 0, r.stdout + r.stderr
