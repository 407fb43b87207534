"""A deal held by a screening survives a SIGKILL of the engine: a real `bsp run` holds a hit (answered 09, nothing
sent), is killed, started again; the held deal is listed with its hit (`bsp deals --held --live`), released
through the admin API (`bsp deals resolve ID --outcome release --live`): the route's call goes out once and a
second release is refused; a reject keeps the other refused.  Offline, `bsp deals --held --all` then tells both
decisions.  Real processes, real sockets, a real DuckDB ledger."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from formats.framing import LengthPrefixFramer
from opskit import REPO, free_port

TOKEN = "hold-test-token-" + "h" * 24
AUDIT_KEY = __import__("base64").b64encode(bytes(range(32))).decode()     # the chain is keyed: verified at the end
LIST = "entry_id,source,name,aliases,ids\nSYN-1,UN,Viktor Alexandrovich Kurganov,Viktor Kurganoff,\n"
ROUTE = """
format Req = json classify ["name:personal"]
format Rsp = json
table sanctions = csv "list.csv" key entry_id
channel front = tcp listen {
    address = "127.0.0.1:%d"
    framing = length2
    on error reply Rsp { ref = msg.ref  code = error.code  text = error.text }
}
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 10.00  currency = "USD"  key = msg.ref }
    screen party { name = msg.name  list = sanctions  on_hit = "hold"  code = "09" }
    call post = back as Rsp { ref = msg.ref } expect post.status == "OK"
    reply Rsp { ref = msg.ref  code = "00" }
}
"""


class Counterpart:
    """A blocking length4 JSON server in a thread: answers OK and notes each request's ref."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.refs: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        rx, tx = LengthPrefixFramer(4), LengthPrefixFramer(4)
        with conn:
            while data := conn.recv(65536):
                for frame in rx.feed(data):
                    self.refs.append(orjson.loads(frame)["ref"])
                    conn.sendall(tx.frame(b'{"status":"OK"}'))


def ask(port: int, ref: str, name: str) -> dict:
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(tx.frame(orjson.dumps({"ref": ref, "name": name})))
        got: list[bytes] = []
        while not got:
            got.extend(rx.feed(s.recv(65536)))
    return orjson.loads(got[0])


def start(work: Path, admin: int) -> subprocess.Popen:
    log = work / "engine.log"
    seen = log.read_text() if log.exists() else ""
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_AUDIT_KEY": AUDIT_KEY}
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(work / "pay.route"), "--ledger",
                                 str(work / "l.duckdb"), "--ledger-sync", "journal", "--admin", f"127.0.0.1:{admin}"],
                                cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 60          # a guard against a hung start, not a timing assertion
    while "serving" not in log.read_text()[len(seen):]:
        assert proc.poll() is None and time.monotonic() < deadline, f"bsp run did not serve: {log.read_text()}"
        time.sleep(0.05)
    return proc


def bsp(admin: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": f"http://127.0.0.1:{admin}", "COLUMNS": "250",
           "BSP_AUDIT_KEY": AUDIT_KEY}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(REPO))


def test_a_held_deal_survives_a_sigkill_and_is_released_once_after_the_restart(tmp_path: Path) -> None:
    back = Counterpart()
    front, admin = free_port(), free_port()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    (tmp_path / "pay.route").write_text(ROUTE % (front, back.port))
    proc = start(tmp_path, admin)
    try:
        assert ask(front, "H1", "Viktor Alexandrovich Kurganov")["code"] == "09"
        assert ask(front, "H2", "Viktor Kurganoff")["code"] == "09"
        assert ask(front, "C1", "Zhang Wei")["code"] == "00"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert back.refs == ["C1"]
        proc = start(tmp_path, admin)
        r = bsp(admin, "deals", "--held", "--live", "--json")
        assert r.returncode == 0, r.stderr
        held = {d["reference"]: d for d in map(orjson.loads, r.stdout.splitlines())}
        assert sorted(held) == ["H1", "H2"]
        assert held["H1"]["hits"] == [{"step": "party", "list": "UN", "entry": "SYN-1", "on": "name",
                                       "score": "1.000", "threshold": "0.90"}]
        h1, h2 = held["H1"]["deal_id"], held["H2"]["deal_id"]
        r = bsp(admin, "deals", "resolve", h1, "--live", "--outcome", "release", "--note",
                "false positive: other date of birth, ticket CMP-7", "--by", "ann")
        assert r.returncode == 0 and f"deal {h1} released by admin (stated by ann)" in r.stdout, r.stderr
        assert "its request ran as deal" in r.stdout and ": committed (deal" in r.stdout, r.stdout
        assert back.refs == ["C1", "H1"]                        # the rest of the route ran, once
        r = bsp(admin, "deals", "resolve", h1, "--live", "--outcome", "release", "--note", "again")
        assert r.returncode == 1 and "is already released by admin" in r.stderr, r.stderr
        r = bsp(admin, "deals", "resolve", h2, "--live", "--outcome", "reject", "--note", "true match")
        assert r.returncode == 0 and f"deal {h2} rejected by admin" in r.stdout, r.stderr
        r = bsp(admin, "dead", "retry", h2, "--live")
        assert back.refs == ["C1", "H1"]                        # a rejected hold is never run
        r = bsp(admin, "deals", "--held", "--live", "--json")
        assert r.returncode == 0 and r.stdout.strip() == "", r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    r = bsp(admin, "deals", "--held", "--all", "--ledger", str(tmp_path / "l.duckdb"))
    assert r.returncode == 0, r.stderr
    assert "release by admin" in r.stdout and "reject by admin" in r.stdout, r.stdout
    assert back.refs == ["C1", "H1"]
    r = bsp(admin, "audit", "verify", "--ledger", str(tmp_path / "l.duckdb"))   # the decisions are in the chain
    assert r.returncode == 0, r.stdout + r.stderr


def test_offline_release_runs_the_request_with_the_deployment_and_reject_closes_it(tmp_path: Path) -> None:
    """On the ledger file (no engine running): `bsp deals resolve --outcome release --deployment platform.yaml`
    runs the held request in the bsp process against the counterpart, once; without --deployment a release is
    refused with how to give it; reject needs only the ledger.  `bsp dead retry` never runs a held deal's letter."""
    back = Counterpart()
    front, admin = free_port(), free_port()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    (tmp_path / "pay.route").write_text(ROUTE % (front, back.port))
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [pay.route]\nledger:\n  path: l.duckdb\n")
    proc = start(tmp_path, admin)
    try:
        assert ask(front, "H1", "Viktor Alexandrovich Kurganov")["code"] == "09"
        assert ask(front, "H2", "Viktor Kurganoff")["code"] == "09"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    ledger = str(tmp_path / "l.duckdb")
    r = bsp(admin, "deals", "--held", "--ledger", ledger, "--json")
    ids = {d["reference"]: d["deal_id"] for d in map(orjson.loads, r.stdout.splitlines())}
    assert sorted(ids) == ["H1", "H2"], r.stderr
    r = bsp(admin, "dead", "retry", ids["H1"], "--ledger", ledger, "--routes", str(tmp_path / "pay.route"))
    assert r.returncode != 0 and "held for a compliance officer" in (r.stdout + r.stderr), r.stdout + r.stderr
    r = bsp(admin, "deals", "resolve", ids["H1"], "--outcome", "release", "--note", "n", "--ledger", ledger)
    assert r.returncode == 2 and "--deployment" in r.stderr, r.stderr
    assert back.refs == []
    r = bsp(admin, "deals", "resolve", ids["H1"], "--outcome", "release", "--note", "false positive, CMP-9",
            "--by", "ann", "--deployment", str(tmp_path / "platform.yaml"))
    assert r.returncode == 0 and f"deal {ids['H1']} released by ann" in r.stdout, r.stdout + r.stderr
    assert "committed (deal" in r.stdout and "hit party: UN SYN-1 on name, score 1.000" in r.stdout, r.stdout
    assert back.refs == ["H1"]
    r = bsp(admin, "deals", "resolve", ids["H1"], "--outcome", "release", "--note", "again", "--deployment",
            str(tmp_path / "platform.yaml"))
    assert r.returncode == 1 and "already released by ann" in r.stderr, r.stderr
    r = bsp(admin, "deals", "resolve", ids["H2"], "--outcome", "reject", "--note", "true match", "--by", "bob",
            "--ledger", ledger)
    assert r.returncode == 0 and f"deal {ids['H2']} rejected by bob" in r.stdout, r.stderr
    assert back.refs == ["H1"]
    r = bsp(admin, "audit", "verify", "--ledger", ledger)
    assert r.returncode == 0, r.stdout + r.stderr


class HoldingCounterpart(Counterpart):
    """Notes each request's ref; answers none until ``answer`` is set (the engine is killed meanwhile)."""

    def __init__(self) -> None:
        import threading

        self.answer = threading.Event()
        super().__init__()

    def _conn(self, conn: socket.socket) -> None:
        rx, tx = LengthPrefixFramer(4), LengthPrefixFramer(4)
        with conn:
            while data := conn.recv(65536):
                for frame in rx.feed(data):
                    self.refs.append(orjson.loads(frame)["ref"])
                    if not self.answer.is_set():
                        continue
                    conn.sendall(tx.frame(b'{"status":"OK"}'))


def test_a_release_cut_by_a_sigkill_is_not_run_again_and_leaves_the_deal_in_doubt(tmp_path: Path) -> None:
    # the released request's call is at the counterpart when the engine is killed: after the restart the deal
    # of the release is resolved as any deal in flight at a crash (flagged, 96), a second release is refused,
    # and the counterpart never gets the request twice
    back = HoldingCounterpart()
    front, admin = free_port(), free_port()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    (tmp_path / "pay.route").write_text(ROUTE % (front, back.port))
    proc = start(tmp_path, admin)
    release = None
    try:
        assert ask(front, "H1", "Viktor Alexandrovich Kurganov")["code"] == "09"
        r = bsp(admin, "deals", "--held", "--live", "--json")
        (held,) = [orjson.loads(line) for line in r.stdout.splitlines()]
        env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": f"http://127.0.0.1:{admin}",
               "BSP_AUDIT_KEY": AUDIT_KEY}
        release = subprocess.Popen([sys.executable, "-m", "engine.cli", "deals", "resolve", held["deal_id"], "--live",
                                    "--outcome", "release", "--note", "false positive"], cwd=str(REPO), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60          # a guard against a hang, not a timing assertion
        while back.refs != ["H1"]:
            assert time.monotonic() < deadline and release.poll() is None, (back.refs, release.poll())
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)          # the release's call is at the counterpart, unanswered
        proc.wait(timeout=30)
        release.communicate(timeout=120)
        back.answer.set()
        proc = start(tmp_path, admin)
        r = bsp(admin, "deals", "resolve", held["deal_id"], "--live", "--outcome", "release", "--note", "again")
        assert r.returncode == 1 and "already released" in r.stderr, (r.stdout, r.stderr)
        assert back.refs == ["H1"]                # never sent twice
    finally:
        if release is not None and release.poll() is None:
            release.kill()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    r = bsp(admin, "deals", "--ledger", str(tmp_path / "l.duckdb"), "--json")
    rows = [orjson.loads(line) for line in r.stdout.splitlines()]
    ran = [d for d in rows if d["deal_id"] != held["deal_id"] and d.get("reference") == "H1"]
    assert len(ran) == 1 and ran[0]["status"] == "failed" and ran[0]["response_code"] == "96", rows
    r = bsp(admin, "audit", "verify", "--ledger", str(tmp_path / "l.duckdb"))
    assert r.returncode == 0, r.stdout + r.stderr
