"""An engine (or any writer) started with an audit key that is not the one the ledger's chain was sealed with,
or with none for a keyed chain, refuses to start and writes nothing: not the journal's deals waiting to be
loaded, not the configuration version (docs/security.md#the-key, engine/ledger_store.check_audit_key).
An unkeyed ledger given a key for the first time starts its chain there, and says so once.

Real `bsp run` / `bsp dead retry` processes, real DuckDB ledgers and write-ahead journals in tmp_path."""
from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import trio

from engine.audit import load_audit_key
from engine.deal import DeadLetter, DealRecord
from engine.journal import journal_dir, open_journaled_ledger, segments
from engine.ledger import open_ledger
from opskit import ECHO, REPO

KEY = os.urandom(32)
OTHER = os.urandom(32)
T0 = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
KEY_VARS = ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV")


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def record(i: int) -> DealRecord:
    return DealRecord(deal_type="ECHO", route="echo", config_version="v0", channel="front", status="committed",
                      received_at=T0, finished_at=T0 + timedelta(milliseconds=2), reference=f"R{i:03d}",
                      amount=Decimal("1.00"), currency="CNY", request={"ref": f"R{i:03d}"}, response={"code": "00"})


async def make_ledger(path: Path, key: bytes | None, *, journaled: int = 0) -> None:
    """Three deals and a configuration version in DuckDB, and ``journaled`` deals acknowledged in the
    write-ahead journal only (the engine "died" before loading them: the next start loads them)."""
    async with open_ledger(path, audit_key=key, keyring=None) as led:
        await led.record_config("v0", {"a.route": ""})
        for i in range(3):
            await led.commit(record(i))
    if journaled:
        with trio.CancelScope() as crash:
            async with open_journaled_ledger(path, audit_key=key, keyring=None, load_wait=3600,
                                             load_rows=10**6) as led:
                assert await led.commit_many([record(10 + i) for i in range(journaled)]) == [None] * journaled
                crash.cancel()
                await trio.sleep_forever()


def state(path: Path) -> tuple[int, int, str]:
    """(the chain head's seq, deals rows, sha256 of the file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        (seq,) = con.execute("SELECT chain_seq FROM audit_head").fetchall()[0]
        (deals,) = con.execute("SELECT count(*) FROM deals").fetchall()[0]
    finally:
        con.close()
    return seq, deals, hashlib.sha256(path.read_bytes()).hexdigest()


def no_key_material(text: str, path: Path) -> None:
    """Neither key nor any mac of the ledger (its records' or its head's) in ``text``, as hex or base64."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        macs = [bytes(m) for (m,) in con.execute("SELECT mac FROM deals WHERE mac IS NOT NULL UNION ALL "
                                                 "SELECT mac FROM audit_head WHERE mac IS NOT NULL").fetchall()]
    finally:
        con.close()
    for secret in (KEY, OTHER, *macs):
        assert secret.hex() not in text and b64(secret) not in text


def env_with(**keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(keys)
    return env


def bsp(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def serve_and_stop(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str]:
    """`bsp run ARGS` until it serves, then SIGTERM: (exit code, its stderr)."""
    err = tmp_path / f"run-{time.monotonic_ns()}.err"
    with err.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", *args], cwd=str(tmp_path), env=env,
                                stdout=subprocess.DEVNULL, stderr=f, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while "bsp: serving" not in err.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, err.read_text()


def test_a_wrong_or_missing_audit_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    trio.run(lambda: make_ledger(ledger, KEY, journaled=2))
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "audit.key").write_text(b64(KEY) + "\n")
    (tmp_path / "staging.key").write_text(b64(OTHER) + "\n")
    before = state(ledger)
    assert before[1] == 3                                     # 2 more deals wait in the journal
    waiting = [s.path.name for s in segments(journal_dir(ledger))]
    assert waiting
    run = ("run", str(tmp_path / "r.route"), "--ledger", str(ledger))

    # the staging key in production, through the key file
    p = bsp(env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "staging.key")), *run)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert (f"error: {ledger}: the audit key (BSP_AUDIT_KEY_FILE={tmp_path / 'staging.key'}) does not match the "
            f"audit chain this ledger already holds: its head (seq {before[0]}) does not verify with it") in p.stderr
    assert "Start with the key the ledger was written with" in p.stderr
    assert f"`bsp audit verify --ledger {ledger}`" in p.stderr
    assert ("To change the key, keep the old one in the audit keyring and make the new one current: the ledger "
            "is rotated to it (docs/security.md#rotating-the-audit-key)") in p.stderr
    assert state(ledger) == before                            # not a byte changed: no journal loaded, no config
    assert [s.path.name for s in segments(journal_dir(ledger))] == waiting
    no_key_material(p.stdout + p.stderr, ledger)

    # the same through the variable
    p = bsp(env_with(BSP_AUDIT_KEY=b64(OTHER)), *run)
    assert p.returncode == 2 and f"error: {ledger}: the audit key (BSP_AUDIT_KEY) does not match" in p.stderr, \
        p.stderr
    assert state(ledger) == before
    no_key_material(p.stdout + p.stderr, ledger)

    # no key at all for a keyed chain: its new records would be unprotected
    p = bsp(env_with(), *run)
    assert p.returncode == 2, p.stderr
    assert (f"error: {ledger}: the audit chain this ledger already holds is keyed (sealed up to seq {before[0]}) "
            f"and no audit key is given: records written now would be unprotected") in p.stderr
    assert "ledger.audit_key in the deployment file, else BSP_AUDIT_KEY_FILE" in p.stderr
    assert state(ledger) == before
    no_key_material(p.stdout + p.stderr, ledger)

    # the deployment file's key: the message names its place
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [r.route]\nledger:\n  path: l.duckdb\n"
                                            "  audit_key: {file: staging.key}\n")
    p = bsp(env_with(), "run", "platform.yaml", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert (f"the audit key (platform.yaml:5:14: ledger.audit_key ({tmp_path / 'staging.key'})) does not "
            f"match the audit chain") in p.stderr
    assert state(ledger) == before
    no_key_material(p.stdout + p.stderr, ledger)

    # the right key: the engine starts, loads the journal's deals, and the chain verifies
    code, err = serve_and_stop(env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "audit.key")), tmp_path, *run[1:])
    assert code == 0, err
    assert "does not match" not in err and "had no key" not in err
    after = state(ledger)
    assert after[1] == 5 and after[0] > before[0]
    v = bsp(env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "audit.key")), "audit", "verify", "--ledger", str(ledger))
    assert v.returncode == 0, v.stdout + v.stderr


def test_an_unkeyed_ledger_given_a_key_starts_its_chain_there_and_says_so_once(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    trio.run(lambda: make_ledger(ledger, None))
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "audit.key").write_text(b64(KEY))
    before = state(ledger)
    env = env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "audit.key"))
    code, err = serve_and_stop(env, tmp_path, str(tmp_path / "r.route"), "--ledger", str(ledger))
    assert code == 0, err
    assert (f"{ledger}: the ledger's audit chain had no key: the records from seq {before[0] + 1} on are sealed "
            f"with the audit key from BSP_AUDIT_KEY_FILE={tmp_path / 'audit.key'}") in err, err
    assert err.count("had no key") == 1
    no_key_material(err, ledger)
    # the older records are one unprotected span, the rest verifies (exit 3: not all protected)
    v = bsp(env, "audit", "verify", "--ledger", str(ledger))
    assert v.returncode == 3 and f"seq 1..{before[0]}" in v.stdout, v.stdout + v.stderr
    # from now on the chain is keyed: another key is refused, the same one starts without a word
    p = bsp(env_with(BSP_AUDIT_KEY=b64(OTHER)), "run", str(tmp_path / "r.route"), "--ledger", str(ledger))
    assert p.returncode == 2 and "does not match the audit chain this ledger already holds" in p.stderr, p.stderr
    code, err = serve_and_stop(env, tmp_path, str(tmp_path / "r.route"), "--ledger", str(ledger))
    assert code == 0 and "had no key" not in err, err


async def dead_letter_ledger(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=None) as led:
        await led.dead_letter(DeadLetter(route="echo", channel="front", reason="timed out", raw=b'{"ref":"D1"}',
                                         config_version="v0", error_kind="timeout", id="d-1"))


def test_bsp_dead_retry_offline_with_the_wrong_key_is_refused(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    trio.run(dead_letter_ledger, ledger)
    (tmp_path / "r.route").write_text(ECHO % "x")
    before = state(ledger)
    args = ("dead", "retry", "d-1", "--ledger", str(ledger), "--routes", str(tmp_path / "r.route"))
    p = bsp(env_with(BSP_AUDIT_KEY=b64(OTHER)), *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert f"error: {ledger}: the audit key (BSP_AUDIT_KEY) does not match the audit chain" in p.stderr
    assert state(ledger) == before                     # no deal run, no config version, the letter untouched
    no_key_material(p.stdout + p.stderr, ledger)
    p = bsp(env_with(), *args)
    assert p.returncode == 2 and "is keyed (sealed up to seq" in p.stderr, p.stderr
    assert state(ledger) == before


def test_an_audit_key_never_shows_itself() -> None:
    key = load_audit_key({"BSP_AUDIT_KEY": b64(KEY)})
    assert key == KEY and key is not None
    for text in (repr(key), str(key), f"{key}"):
        assert text == "<audit key from BSP_AUDIT_KEY>"


def test_bsp_run_rotates_a_ledger_to_the_current_key_of_a_deployment_keyring(tmp_path: Path) -> None:
    """The admin's rotation (docs/security.md#rotating-the-audit-key) through the real CLI: the deployment file's
    ledger.audit_key names a JSON keyring with the new key current and the old one kept; the start rotates
    once and says so, the next start does not, and verify with the ring (--deployment) is clean."""
    import json

    from engine.audit import fingerprint

    ledger = tmp_path / "l.duckdb"
    trio.run(lambda: make_ledger(ledger, KEY, journaled=1))
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "ring.json").write_text(json.dumps({"current": "a2", "keys": {"a1": b64(KEY), "a2": b64(OTHER)}}))
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [r.route]\nledger:\n  path: l.duckdb\n"
                                            "  audit_key: {file: ring.json}\n")
    before = state(ledger)
    code, err = serve_and_stop(env_with(), tmp_path, "platform.yaml")
    assert code == 0, err
    assert (f"{ledger}: audit key rotated: a1 (fp {fingerprint(KEY)}) -> a2 (fp {fingerprint(OTHER)}) at seq "
            f"{before[0] + 1}") in err, err
    no_key_material(err, ledger)
    assert state(ledger)[1] == 4                       # the journal's deal loaded, sealed with the new key
    code, err = serve_and_stop(env_with(), tmp_path, "platform.yaml")
    assert code == 0 and "audit key rotated" not in err, err
    v = bsp(env_with(), "audit", "verify", "--deployment", "platform.yaml", cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert f"sealed with a1 (fp {fingerprint(KEY)}) from seq 1, a2 (fp {fingerprint(OTHER)}) from seq " in v.stdout
    # the old key alone, as before the rotation: refused by a writer, and verify says which key to add
    (tmp_path / "audit.key").write_text(b64(KEY))
    p = bsp(env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "audit.key")), "run", str(tmp_path / "r.route"),
            "--ledger", str(ledger))
    assert p.returncode == 2 and "does not match the audit chain" in p.stderr, p.stderr
    v = bsp(env_with(BSP_AUDIT_KEY_FILE=str(tmp_path / "audit.key")), "audit", "verify", "--ledger", str(ledger))
    assert v.returncode == 2 and f"cannot verify: add key a2 (fp {fingerprint(OTHER)})" in v.stderr, v.stderr
