"""`bsp run platform.yaml` takes the whole production deployment from the file: the admin API's TLS and
access list, the ledger's audit key and field keyring, recording with masking; the command line still
wins over the file, the file over the environment variables; a bad value is one error line at its place.

Real `bsp run` subprocesses, real certificates, ledger and capture files; 127.0.0.1, port 0."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from engine.certs import new_ca
from engine.replay.capture import Capture
from engine.tls import client_context
from formats.framing import LengthPrefixFramer
from opskit import REPO, rows

TOKEN = "deploy-admin-token-" + "z" * 24
PAN = "4111111111111111"

ROUTE = """
format Req = fixed {
    ref    string(8)
    card   string(16) pan
    note   string(16)
}
format Rsp = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Rsp { ref = msg.ref  code = "00" }
}
"""

PLATFORM = """
routes: [pay.route]
ledger:
  path: var/ledger.duckdb
  audit_key: {file: keys/audit.key}
  field_keys: {file: keys/field-keys.json}
admin:
  listen: "127.0.0.1:0"
  token: {env: TEST_ADMIN_TOKEN}
  tls:
    cert: tls/server.pem
    key: {file: tls/server.key}
    client_ca: tls/ca.pem
  access: ["cn:OPS-CONSOLE"]
record:
  path: "var/cap-{started}.duckdb"
  mask: true
"""


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BSP_", "TEST_"))}
    env.update(TEST_ADMIN_TOKEN=TOKEN, **extra)
    return env


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A deployment folder: route, platform.yaml, keys and certificates (paths relative to the file)."""
    (tmp_path / "pay.route").write_text(ROUTE)
    (tmp_path / "platform.yaml").write_text(PLATFORM.lstrip())
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "audit.key").write_text(b64key() + "\n")
    (keys / "field-keys.json").write_text(json.dumps({"current": "k1", "keys": {"k1": b64key()}}))
    for f in keys.iterdir():
        f.chmod(0o600)          # as docs/security.md says; a key file others can read is warned about
    ca = new_ca("deploy test CA")
    (tmp_path / "tls").mkdir()
    ca.write(tmp_path / "tls" / "ca")
    ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "tls" / "server")
    ca.issue("OPS-CONSOLE", client=True).write(tmp_path / "tls" / "console")
    ca.issue("SOMEONE-ELSE", client=True).write(tmp_path / "tls" / "other")
    return tmp_path


class Engine:
    """`bsp run ARGS` in ``cwd``; ``start()`` waits for the serving line, ``stop()`` sends SIGTERM."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.err = cwd / f"stderr-{time.monotonic_ns()}.txt"
        with self.err.open("w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", *args], cwd=str(cwd),
                                         env=env or clean_env(), stdout=subprocess.DEVNULL, stderr=fh,
                                         stdin=subprocess.DEVNULL)

    def start(self) -> str:
        deadline = time.monotonic() + 60                       # a hang guard: start-up takes seconds under load
        while time.monotonic() < deadline:
            text = self.err.read_text()
            if "bsp: serving" in text:
                return text
            assert self.proc.poll() is None, f"bsp run exited early:\n{text}"
            time.sleep(0.05)
        raise AssertionError(f"bsp run did not start:\n{self.err.read_text()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        text = self.err.read_text()
        assert self.proc.returncode == 0, text
        return text


def ports(text: str) -> tuple[int, str]:
    front = int(text.split("channel front: listen 127.0.0.1:")[1].split()[0])
    # the banner's line (a certificate expiry warning above it may say "the admin API: server certificate")
    return front, text.split("\nadmin API: ")[1].split()[0]


def pay(port: int, n: int) -> None:
    async def go() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        await stream.send_all(b"".join(tx.frame(f"R{i:07d}{PAN}{'note':<16}".encode()) for i in range(n)))
        replies: list[bytes] = []
        with trio.fail_after(60):
            while len(replies) < n:
                data = await stream.receive_some(65536)
                assert data
                replies.extend(rx.feed(data))
        assert [orjson.loads(r)["code"] for r in replies] == ["00"] * n
        await stream.aclose()
    trio.run(go)


def status(admin: str, site: Path, client: str | None, ca: str = "ca", *, body: bool = False) -> Any:
    tls = site / "tls"
    ctx = client_context(ca=tls / f"{ca}.pem", cert=tls / f"{client}.pem" if client else None,
                         key=tls / f"{client}.key" if client else None)
    with httpx.Client(verify=ctx, timeout=60) as c:          # not httpx's 5 s: a loaded machine is slow
        r = c.get(f"{admin}/status", headers={"authorization": f"Bearer {TOKEN}"})
        return r.json() if body else r.status_code


def audit_verify(site: Path, key_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "audit", "verify", "--ledger",
                           str(site / "var" / "ledger.duckdb")], cwd=str(REPO),
                          env=clean_env(BSP_AUDIT_KEY_FILE=str(key_file)), capture_output=True, text=True,
                          timeout=60)


def test_the_deployment_file_configures_tls_access_keys_and_recording(site: Path) -> None:
    text = (site / "platform.yaml").read_text()
    (site / "platform.yaml").write_text(text.replace("  field_keys: {file: keys/field-keys.json}\n",
                                                     "  field_keys: {file: keys/field-keys.json}\n"
                                                     "  reversal_alert_after: 3\n", 1))
    eng = Engine(site, "platform.yaml")
    try:
        text = eng.start()
        front, admin = ports(text)
        assert admin.startswith("https://127.0.0.1:"), admin        # pasteable into BSP_ADMIN_URL
        assert "deployment platform.yaml, environment (base settings: no --env)" in text, text
        assert "channel front: listen 127.0.0.1:" in text and "(plain TCP)" in text, text
        pay(front, 3)
        assert status(admin, site, "console") == 200               # admin.tls + admin.access from the file
        body = status(admin, site, "console", body=True)
        assert (body["deployment"], body["environment"]) == ("platform.yaml", None)
        tls = site / "tls"                                          # the admin client's TLS from the environment
        p = subprocess.run([sys.executable, "-m", "engine.cli", "status"], cwd=str(REPO), capture_output=True,
                           text=True, timeout=60,
                           env=clean_env(BSP_ADMIN_URL=admin, BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_CA=str(tls / "ca.pem"),
                                         BSP_ADMIN_CERT=str(tls / "console.pem"),
                                         BSP_ADMIN_KEY=str(tls / "console.key")))
        assert p.returncode == 0 and json.loads(p.stdout)["config_version"], p.stderr
        assert status(admin, site, "console", body=True)["reversals"]["alert_after"] == 3   # ledger.reversal_alert_after
        assert status(admin, site, "other") == 403                 # a certificate the access list refuses
        with pytest.raises(httpx.TransportError):                  # mutual TLS: no certificate, no session
            status(admin, site, None)
    finally:
        out = eng.stop()
    assert "no audit key" not in out and "recording channel(s) front to" in out

    # the ledger's rows are chained with the file's audit key: verify passes with it, fails with another
    good = audit_verify(site, site / "keys" / "audit.key")
    assert good.returncode == 0 and "audit chain intact" in good.stdout, good.stderr
    (site / "other.key").write_text(b64key())
    (site / "other.key").chmod(0o600)
    assert audit_verify(site, site / "other.key").returncode == 1

    # the field keyring of the file encrypted the card number in the ledger (not just masked)
    stored = [r[0] for r in rows(site / "var" / "ledger.duckdb", "SELECT request FROM deals")]
    assert len(stored) == 3 and all("enc:v1:k1:" in r and PAN not in r for r in stored), stored

    # the capture was written where record.path says ({started} replaced), masked
    captures = sorted((site / "var").glob("cap-*.duckdb"))
    assert len(captures) == 1 and "{started}" not in captures[0].name
    cap = Capture(captures[0])
    assert cap.masked
    raws = [f.raw for f in cap.frames if f.raw is not None]
    assert len(raws) == 6 and not any(PAN.encode() in r for r in raws)


def test_the_command_line_wins_over_the_file(site: Path) -> None:
    other = new_ca("another CA")
    other.write(site / "tls" / "other-ca")
    other.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(site / "tls" / "cli-server")
    eng = Engine(site, "platform.yaml", "--record", "explicit.duckdb", "--no-mask", "--clear-reason", "TEST-1 test lab",
                 "--admin-cert", "tls/cli-server.pem", "--admin-key", "tls/cli-server.key",
                 env=clean_env(BSP_AUDIT_KEY=b64key()))
    try:
        text = eng.start()
        front, admin = ports(text)
        pay(front, 2)
        # the command line's certificate (another CA); client_ca and the access list still from the file
        assert status(admin, site, "console", ca="other-ca") == 200
        assert status(admin, site, "other", ca="other-ca") == 403
    finally:
        out = eng.stop()
    # the file's audit key wins over BSP_AUDIT_KEY, and bsp run says the variable is not used
    assert "warning: BSP_AUDIT_KEY is set but not used: platform.yaml:4:14: ledger.audit_key gives the key" in out
    assert audit_verify(site, site / "keys" / "audit.key").returncode == 0
    assert not list((site / "var").glob("cap-*.duckdb"))               # --record replaced record.path
    raws = [f.raw for f in Capture(site / "explicit.duckdb").frames if f.raw is not None]
    assert any(PAN.encode() in r for r in raws)                         # --no-mask replaced record.mask
    assert Capture(site / "explicit.duckdb").info["clear_reason"] == "TEST-1 test lab"


def test_keys_and_the_tls_key_from_environment_variables(site: Path) -> None:
    text = (site / "platform.yaml").read_text()
    text = text.replace("{file: keys/audit.key}", "{env: TEST_AUDIT_KEY}")
    text = text.replace("{file: keys/field-keys.json}", "{env: TEST_FIELD_KEYS}")
    text = text.replace("key: {file: tls/server.key}", "key: {env: TEST_ADMIN_TLS_KEY}")
    text = text.replace('record:\n  path: "var/cap-{started}.duckdb"\n  mask: true\n', "record: false\n")
    (site / "platform.yaml").write_text(text)
    key = b64key()
    env = clean_env(TEST_AUDIT_KEY=key, TEST_FIELD_KEYS=f"k7:{b64key()},k1:{b64key()}",
                    TEST_ADMIN_TLS_KEY=(site / "tls" / "server.key").read_text())
    eng = Engine(site, "platform.yaml", env=env)
    try:
        front, admin = ports(eng.start())
        pay(front, 1)
        assert status(admin, site, "console") == 200
    finally:
        out = eng.stop()
    assert "no audit key" not in out and "recording" not in out
    (site / "env.key").write_text(key)
    (site / "env.key").chmod(0o600)
    assert audit_verify(site, site / "env.key").returncode == 0
    [stored] = [r[0] for r in rows(site / "var" / "ledger.duckdb", "SELECT request FROM deals")]
    assert "enc:v1:k7:" in stored and PAN not in stored


def run_once(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", "platform.yaml", *args], cwd=str(site),
                          env=env or clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def edit(site: Path, old: str, new: str) -> None:
    text = (site / "platform.yaml").read_text()
    assert old in text
    (site / "platform.yaml").write_text(text.replace(old, new))


@pytest.mark.parametrize("change, code, want", [
    (lambda s: (s / "keys" / "audit.key").write_text("YWJj\n"), 2,
     "platform.yaml:4:14: ledger.audit_key: {site}/keys/audit.key: the audit key is 3 bytes; use at least "
     "32 random bytes"),
    (lambda s: (s / "keys" / "audit.key").unlink(), 2,
     "platform.yaml:4:14: ledger.audit_key: cannot read {site}/keys/audit.key: No such file or directory; "
     "create the file, or fix the path (relative to the deployment file)"),
    (lambda s: (s / "keys" / "field-keys.json").write_text('{"current": "k1"'), 2,
     "platform.yaml:5:15: ledger.field_keys: {site}/keys/field-keys.json:1:17: not JSON"),
    (lambda s: (s / "keys" / "field-keys.json").write_text('{"current": "k2", "keys": {"k1": "%s"}}' % b64key()), 2,
     "platform.yaml:5:15: ledger.field_keys: {site}/keys/field-keys.json: field keyring: current key id 'k2' "
     "is not among the keys (k1)"),
    (lambda s: edit(s, "{file: keys/field-keys.json}", "{env: TEST_NOT_SET}"), 2,
     "platform.yaml:5:15: ledger.field_keys: environment variable TEST_NOT_SET is not set; export "
     "TEST_NOT_SET before bsp run"),
    (lambda s: edit(s, "cert: tls/server.pem", "cert: tls/missing.pem"), 2,
     "platform.yaml:10:11: admin.tls.cert: certificate file '{site}/tls/missing.pem' does not exist"),
    (lambda s: edit(s, "key: {file: tls/server.key}", "key: {file: tls/console.key}"), 2,
     "platform.yaml:11:10: admin.tls.key: private key '{site}/tls/console.key' does not belong to certificate "
     "'{site}/tls/server.pem'"),
    (lambda s: edit(s, '  listen: "127.0.0.1:0"\n', ""), 2,
     "platform.yaml:8:3: admin.tls: given without admin.listen, so no admin API is served"),
    (lambda s: edit(s, '["cn:OPS-CONSOLE"]', '["cn:OPS-CONSOLE", "dns:x"]'), 1,
     "platform.yaml:13:30: admin.access[1]: access list entry 2 ('dns:x'): unknown kind 'dns'"),
    (lambda s: edit(s, '["cn:OPS-CONSOLE"]', "ops-access.txt"), 2,
     "platform.yaml:13:11: admin.access: cannot read {site}/ops-access.txt: No such file or directory"),
    (lambda s: edit(s, '"var/cap-{started}.duckdb"', "pay.route"), 2,
     "platform.yaml:15:9: record.path: {site}/pay.route: a file is already there; move it away, or put "
     "{{started}} in the name"),
    (lambda s: edit(s, "mask: true", "mask: on please"), 1,
     "platform.yaml:16:9: record.mask: expected true or false, got a string 'on please'"),
    (lambda s: edit(s, "audit_key: {file: keys/audit.key}", "audit_key: %s" % b64key()), 1,
     "platform.yaml:4:14: ledger.audit_key: inline audit key values are refused"),
])
def test_a_bad_setting_is_one_error_line_at_its_place(site: Path, change, code: int, want: str) -> None:
    change(site)
    p = run_once(site)
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + want.format(site=site)), p.stderr
    assert TOKEN not in p.stderr and "BEGIN" not in p.stderr


def test_a_file_named_key_on_the_command_line_still_wins(site: Path) -> None:
    """--admin-access replaces admin.access, --admin-client-ca replaces admin.tls.client_ca."""
    (site / "cli-access.txt").write_text("# the command line's list\ncn:SOMEONE-ELSE\n")
    eng = Engine(site, "platform.yaml", "--admin-access", "cli-access.txt")
    try:
        _, admin = ports(eng.start())
        assert status(admin, site, "other") == 200 and status(admin, site, "console") == 403
    finally:
        eng.stop()


def bsp(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=str(cwd), env=env or clean_env(),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_operator_commands_take_the_ledger_and_keys_from_the_deployment_file(site: Path) -> None:
    """bsp audit verify / deals show --reveal --deployment platform.yaml: the ledger, audit key and keyring
    bsp run used, no BSP_* variable set; from another folder too (paths relative to the file)."""
    edit(site, 'record:\n  path: "var/cap-{started}.duckdb"\n  mask: true\n', "record: false\n")
    eng = Engine(site, "platform.yaml")
    try:
        front, _ = ports(eng.start())
        pay(front, 2)
    finally:
        eng.stop()
    dep = str(site / "platform.yaml")
    ok = bsp(REPO, "audit", "verify", "--deployment", dep)
    assert ok.returncode == 0 and f"{site}/var/ledger.duckdb: audit chain intact" in ok.stdout, ok.stderr
    assert ok.stderr == ""
    deal_id = rows(site / "var" / "ledger.duckdb", "SELECT deal_id FROM deals")[0][0]
    shown = bsp(REPO, "deals", "show", deal_id, "--reveal", "--deployment", dep)
    assert shown.returncode == 0 and PAN in shown.stdout, shown.stderr
    masked = bsp(REPO, "deals", "show", deal_id, "--deployment", dep)
    assert masked.returncode == 0 and PAN not in masked.stdout, masked.stderr

    # without the file (and no variable) there is no key: the errors say where to give it
    bare = bsp(site, "audit", "verify", "--ledger", "var/ledger.duckdb")
    assert bare.returncode == 2 and "--deployment platform.yaml" in bare.stderr, bare.stderr
    bare = bsp(site, "deals", "show", deal_id, "--reveal", "--ledger", "var/ledger.duckdb")
    assert bare.returncode == 2 and "--deployment platform.yaml" in bare.stderr, bare.stderr

    # --ledger wins over the file's ledger:
    other = bsp(site, "audit", "verify", "--deployment", "platform.yaml", "--ledger", "elsewhere.duckdb")
    assert other.returncode == 2 and "error: elsewhere.duckdb: no ledger file here" in other.stderr, other.stderr

    # the file wins over the variables, and says so
    env = clean_env(BSP_AUDIT_KEY=b64key())
    won = bsp(site, "audit", "verify", "--deployment", "platform.yaml", env=env)
    assert won.returncode == 0, won.stderr
    assert ("warning: BSP_AUDIT_KEY is set but not used: platform.yaml:4:14: ledger.audit_key gives the key"
            in won.stderr)

    # --env: the environment's ledger.audit_key replaces the base one (here another key: a break)
    (site / "keys" / "prod.key").write_text(b64key() + "\n")
    (site / "keys" / "prod.key").chmod(0o600)
    with (site / "platform.yaml").open("a") as fh:
        fh.write("environments:\n  prod:\n    ledger:\n      audit_key: {file: keys/prod.key}\n")
    assert bsp(site, "audit", "verify", "--deployment", "platform.yaml").returncode == 0
    prod = bsp(site, "audit", "verify", "--deployment", "platform.yaml", "--env", "prod")
    assert prod.returncode == 1 and ("the audit key (platform.yaml:" in prod.stderr
                                     and "is not the key this ledger's chain was sealed with" in prod.stderr), prod.stderr

    # a wrong key in the file: the chain does not verify
    (site / "keys" / "audit.key").write_text(b64key() + "\n")
    bad = bsp(site, "audit", "verify", "--deployment", "platform.yaml")
    assert bad.returncode == 1 and "is not the key this ledger's chain was sealed with" in bad.stderr, bad.stderr


@pytest.mark.parametrize("args, change, want", [
    (["audit", "verify"], lambda s: (s / "keys" / "audit.key").write_text("YWJj\n"),
     "error: platform.yaml:4:14: ledger.audit_key: {site}/keys/audit.key: the audit key is 3 bytes; use at least "
     "32 random bytes"),
    (["deals", "show", "0123abcd", "--reveal"],
     lambda s: edit(s, "{file: keys/field-keys.json}", "{env: TEST_NOT_SET}"),
     "error: platform.yaml:5:15: ledger.field_keys: environment variable TEST_NOT_SET is not set; export "
     "TEST_NOT_SET before bsp deals show"),
    (["dead", "show", "0" * 32, "--reveal"], lambda s: (s / "keys" / "field-keys.json").write_text('{"current": "k1"'),
     "error: platform.yaml:5:15: ledger.field_keys: {site}/keys/field-keys.json:1:17: not JSON"),
    (["audit", "verify", "--env", "uat"], lambda s: None,
     "error: platform.yaml:1:1: environments: environment 'uat' (from --env) is not defined here"),
])
def test_a_bad_key_setting_is_one_error_line_for_the_operator_commands(site: Path, args, change, want) -> None:
    change(site)
    p = bsp(site, *args, "--deployment", "platform.yaml")
    assert p.returncode in (1, 2) and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(want.format(site=site)), p.stderr
