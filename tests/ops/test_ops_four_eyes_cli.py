"""Four eyes end to end: a real `bsp run platform.yaml` whose `operators.four_eyes` lists deal.release and
dead.retry, its admin API on 127.0.0.1 with a named token per operator.  `bsp deals resolve --outcome release
--live` by alice records a request and runs nothing; alice cannot approve it; bob's `bsp approvals approve --live`
runs the held request once (a second approval is refused); `bsp deals show` tells both operators.  With the engine
stopped, the ledger keeps the policy: a release asked on the ledger file alone (`--ledger`, no deployment file) is
recorded as a request too, an approval there is refused, and `bsp audit verify` finds the chain intact.  A
deployment file naming an unknown action is refused with file:line:col and the key.

Real processes, real sockets, a real DuckDB ledger."""
from __future__ import annotations

import os
import signal
import sys
import time
import subprocess
from pathlib import Path

import orjson
import pytest

from engine.deploy import DeploymentError, load_deployment
from opskit import REPO, free_port
from test_ops_screen_hold import AUDIT_KEY, LIST, ROUTE, Counterpart, ask

SECRETS = {n: f"{n}-four-eyes-token-" + "t" * 24 for n in ("alice", "bob")}
PLATFORM = """version: 1
routes: [pay.route]
ledger: {path: l.duckdb}
admin:
  listen: "127.0.0.1:%d"
  tokens:
    - {name: alice, file: alice.token, roles: [operate, read]}
    - {name: bob, file: bob.token, roles: [operate, read]}
operators:
  four_eyes: [deal.release, dead.retry]
  four_eyes_expire: 1h
"""


def start(work: Path) -> subprocess.Popen:
    log = work / "engine.log"
    env = {**os.environ, "BSP_AUDIT_KEY": AUDIT_KEY}
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(work / "platform.yaml")],
                                cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 60          # a guard against a hung start, not a timing assertion
    while "serving" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, f"bsp run did not serve: {log.read_text()}"
        time.sleep(0.05)
    return proc


def bsp(who: str | None, admin: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BSP_ADMIN_URL": f"http://127.0.0.1:{admin}", "COLUMNS": "250", "BSP_AUDIT_KEY": AUDIT_KEY}
    env.pop("BSP_ADMIN_TOKEN_FILE", None)
    if who is not None:
        env["BSP_ADMIN_TOKEN"] = SECRETS[who]
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(REPO))


def test_a_release_waits_for_a_second_operator_and_runs_once(tmp_path: Path) -> None:
    back = Counterpart()
    front, admin = free_port(), free_port()
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    (tmp_path / "pay.route").write_text(ROUTE % (front, back.port))
    for name, secret in SECRETS.items():
        (tmp_path / f"{name}.token").write_text(secret)
        (tmp_path / f"{name}.token").chmod(0o600)
    (tmp_path / "platform.yaml").write_text(PLATFORM % admin)
    proc = start(tmp_path)
    try:
        assert ask(front, "H1", "Viktor Alexandrovich Kurganov")["code"] == "09"
        assert ask(front, "H2", "Viktor Kurganoff")["code"] == "09"
        r = bsp("alice", admin, "deals", "--held", "--live", "--json")
        assert r.returncode == 0, r.stderr
        held = {d["reference"]: d["deal_id"] for d in map(orjson.loads, r.stdout.splitlines())}
        r = bsp("alice", admin, "deals", "resolve", held["H1"], "--live", "--outcome", "release", "--note",
                "false positive: other date of birth, CMP-7")
        assert r.returncode == 0 and "NOT done yet: four eyes: deal.release of " in r.stdout, r.stdout + r.stderr
        assert back.refs == []                                   # nothing ran
        r = bsp("bob", admin, "approvals", "list", "--live", "--json")
        (req,) = map(orjson.loads, r.stdout.splitlines())
        assert req["by"] == "alice" and req["target"] == held["H1"] and req["state"] == "pending", req
        r = bsp("alice", admin, "approvals", "approve", req["id"], "--live", "--reason", "my own")
        assert r.returncode == 1 and "cannot approve their own request" in r.stderr, r.stderr
        r = bsp("bob", admin, "approvals", "approve", req["id"][:8], "--live", "--reason", "checked the DOB")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "approved by bob" in r.stdout and "carried out: committed (deal " in r.stdout, r.stdout
        assert back.refs == ["H1"]                               # the held request ran, once
        # and where its reply went, as a direct release says it (the sender was answered `held` on its own
        # connection): in bob's answer, in the recorded approval (`bsp approvals list`) and in the held request's `bsp dead show`
        assert "its reply went to no one (the sender was answered `held`" in r.stdout, r.stdout
        r2 = bsp("bob", admin, "approvals", "list", "--live", "--all", "--json")
        (done,) = [q for q in map(orjson.loads, r2.stdout.splitlines()) if q["id"] == req["id"]]
        assert done["run"]["deal"] and done["run"]["reply"]["kept_on"] == done["run"]["deal"], done
        assert done["run"]["reply"]["delivered"] is False and "values" not in done["run"]["reply"], done
        r2 = bsp("bob", admin, "dead", "show", held["H1"], "--live")        # its four-eyes line says it too
        (line,) = [ln for ln in r2.stdout.splitlines() if "deal.release requested by alice" in ln]
        assert f"; its reply went to no one, kept on deal {done['run']['deal']}" in line, r2.stdout
        r = bsp("bob", admin, "approvals", "approve", req["id"], "--live", "--reason", "again")
        assert r.returncode == 1 and "is already approved by bob" in r.stderr, r.stderr
        assert back.refs == ["H1"]
        r = bsp("bob", admin, "deals", "show", held["H1"], "--live", "--json")
        events = {e["to_state"]: e["detail"] for e in orjson.loads(r.stdout)["events"]}
        assert events["approval requested"]["by"] == "alice", events
        assert events["approval granted"]["by"] == "bob", events
        released = events["hold released"]
        assert released["by"] == "alice" and released["approved_by"] == "bob", released
        assert released["four_eyes"] == req["id"], released
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    ledger = str(tmp_path / "l.duckdb")
    # the engine stopped: the ledger remembers the policy; a release asked on the file alone is a request
    r = bsp(None, admin, "deals", "resolve", held["H2"], "--outcome", "release", "--note", "fp", "--by", "carol",
            "--ledger", ledger)
    assert r.returncode == 0 and "NOT done yet: four eyes: deal.release" in r.stdout, r.stdout + r.stderr
    assert back.refs == ["H1"]
    r = bsp(None, admin, "approvals", "list", "--ledger", ledger, "--json")
    (req2,) = map(orjson.loads, r.stdout.splitlines())
    assert req2["via"] == "ledger file" and req2["stated_by"] == "carol" and req2["os_user"], req2
    r = bsp(None, admin, "approvals", "approve", req2["id"], "--reason", "ok")
    assert r.returncode == 2 and "only through the running engine's admin API" in r.stderr, r.stderr
    r = bsp(None, admin, "approvals", "reject", req2["id"], "--reason", "withdrawn", "--ledger", ledger)
    assert r.returncode == 0 and "rejected by" in r.stdout, r.stdout + r.stderr
    r = bsp(None, admin, "audit", "verify", "--ledger", ledger)    # requests and decisions are in the chain
    assert r.returncode == 0, r.stdout + r.stderr
    assert back.refs == ["H1"]


def test_an_unknown_action_is_named_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "pay.route").write_text("")
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [pay.route]\noperators:\n"
                                            "  four_eyes: [dead.retry, deal.relase]\n")
    with pytest.raises(DeploymentError) as err:
        load_deployment(tmp_path / "platform.yaml")
    text = str(err.value)
    assert f"{tmp_path / 'platform.yaml'}:4:" in text, text
    assert "operators.four_eyes[1]: unknown action 'deal.relase'; did you mean 'deal.release'?" in text, text
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [pay.route]\noperators:\n"
                                            "  four_eyes: [dead.retry, deal.release]\n  four_eyes_expire: 8h\n")
    dep = load_deployment(tmp_path / "platform.yaml")
    assert dep.four_eyes.actions == ("dead.retry", "deal.release") and dep.four_eyes.expire == 8 * 3600


def test_ledger_archive_and_dead_reveal_can_be_listed(tmp_path: Path) -> None:
    """ledger.archive and dead.reveal are actions under dual control like the others (engine/archive_approval.py,
    tests/ops/test_ops_four_eyes_archive.py, tests/ops/test_ops_four_eyes_dead_reveal.py)."""
    (tmp_path / "pay.route").write_text("")
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [pay.route]\noperators:\n"
                                            "  four_eyes: [dead.retry, ledger.archive, dead.reveal, config.reload]\n")
    dep = load_deployment(tmp_path / "platform.yaml")
    assert dep.four_eyes.actions == ("dead.retry", "ledger.archive", "dead.reveal", "config.reload")


def test_a_reveal_on_the_ledger_file_under_four_eyes_is_refused(tmp_path: Path) -> None:
    """deal.reveal listed: `bsp deals show --reveal` on the ledger file (the keyring in this shell) shows nothing
    and says to ask the running engine; without --reveal the deal is shown, its sealed fields masked."""
    import base64

    from engine.ledger_store import LedgerStore

    LedgerStore.open(tmp_path / "l.duckdb", None).close()
    (tmp_path / "pay.route").write_text("")
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [pay.route]\nledger: {path: l.duckdb}\n"
                                            "operators:\n  four_eyes: [deal.reveal]\n")
    env = {**os.environ, "BSP_FIELD_KEYS": "k1:" + base64.b64encode(bytes(32)).decode()}
    r = subprocess.run([sys.executable, "-m", "engine.cli", "deals", "show", "0" * 32, "--reveal", "--deployment",
                        str(tmp_path / "platform.yaml")], capture_output=True, text=True, env=env, timeout=120,
                       cwd=str(REPO))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "four eyes: deal.reveal needs a second operator's approval" in r.stderr, r.stderr
    assert "--live --reveal`, then `bsp approvals reveal ID --live`. Nothing was revealed" in r.stderr, r.stderr
