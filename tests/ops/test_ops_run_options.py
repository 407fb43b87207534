"""`bsp run` refuses bad keys, a negative grace, an admin port out of range and unwritable ledger
side files up front, in one line, without a traceback; it warns when records are not tamper-protected.

Real subprocesses, real files; engines listen on 127.0.0.1 (port 0, or 17520-17529)."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.ledger_store import SCHEMA_VERSION
from opskit import ANSWERED_ECHO, ECHO, REPO

NO_AUDIT_KEY = ("warning: no audit key (BSP_AUDIT_KEY / BSP_AUDIT_KEY_FILE, or ledger.audit_key in the deployment "
                "file): ledger records are not "
                "tamper-protected; bsp audit verify will report them unprotected")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    env.update(extra)
    return env


def bsp_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            ledger: Path | None = None) -> subprocess.CompletedProcess:
    route = tmp_path / "r.route"
    if not route.exists():
        route.write_text(ANSWERED_ECHO % "x")
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", str(route),
                           "--ledger", str(ledger or tmp_path / "l.duckdb"), *args],
                          cwd=str(REPO), env=env or clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def one_error(p: subprocess.CompletedProcess, code: int, want: str) -> None:
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert p.stderr.splitlines() == [f"error: {want}"], p.stderr


@pytest.mark.parametrize("var,value,want", [
    ("BSP_AUDIT_KEY", "notbase64!!", "BSP_AUDIT_KEY: the audit key is not base64"),
    ("BSP_AUDIT_KEY", "YWJj", "BSP_AUDIT_KEY: the audit key is 3 bytes; use at least 32 random bytes"),
    ("BSP_AUDIT_KEY_FILE", "/nonexist/audit.key", "BSP_AUDIT_KEY_FILE=/nonexist/audit.key: cannot read the audit "
                                                  "key file: No such file or directory"),
    ("BSP_FIELD_KEYS", "garbage", "BSP_FIELD_KEYS: entry 1 is not <id>:<base64>"),
    ("BSP_FIELD_KEYS_FILE", "/nonexist/keys.json", "BSP_FIELD_KEYS_FILE=/nonexist/keys.json: cannot read the key "
                                                   "file: No such file or directory"),
])
def test_an_unusable_key_is_a_usage_error(tmp_path: Path, var: str, value: str, want: str) -> None:
    p = bsp_run(tmp_path, env=clean_env(**{var: value}))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith(f"error: {want}"), p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert value not in p.stderr or var.endswith("_FILE")          # a key is never printed


def _serve_and_stop(tmp_path: Path, env: dict[str, str], *ledger: str, cwd: Path = REPO) -> str:
    """``bsp run`` of an echo route (``--ledger tmp_path/l.duckdb`` unless ``ledger`` gives the options)
    until it serves, then SIGTERM; its standard error."""
    (tmp_path / "r.route").write_text(ECHO % "x")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "r.route"),
                             *(ledger or ("--ledger", str(tmp_path / "l.duckdb")))], cwd=str(cwd), env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    lines = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("bsp: serving"):
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


def test_no_audit_key_is_a_start_up_warning(tmp_path: Path) -> None:
    assert NO_AUDIT_KEY in _serve_and_stop(tmp_path, clean_env())
    key = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "keyed").mkdir()
    out = _serve_and_stop(tmp_path / "keyed", clean_env(BSP_AUDIT_KEY=key))
    assert "no audit key" not in out and key not in out


@pytest.mark.parametrize("options", [("--ledger", "rel/l.duckdb"), ("--grace", "5")])
def test_the_ledger_path_is_printed_absolute(tmp_path: Path, options: tuple[str, ...]) -> None:
    # operators copy it into commands they run from another folder: absolute, given relative or by default
    (tmp_path / "rel").mkdir()
    out = _serve_and_stop(tmp_path, clean_env(), *options, cwd=tmp_path)
    want = tmp_path / ("rel/l.duckdb" if "--ledger" in options else "var/bsp.duckdb")
    assert f", ledger {want} (schema {SCHEMA_VERSION}, sync journal);" in out, out   # the schema: upgrade day
    assert want.is_file()


def test_run_help_names_the_key_variables_and_the_deployment_file() -> None:
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--help"], cwd=str(REPO), env=clean_env(
        COLUMNS="200"), capture_output=True, text=True, timeout=60)
    text = " ".join(p.stdout.split())
    for want in ("BSP_AUDIT_KEY or BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS or BSP_FIELD_KEYS_FILE",
                 "platform.yaml admin.token", "$BSP_ENV", "deployment file's ledger:"):
        assert want in text, want


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_negative_grace_is_refused_up_front(tmp_path: Path, value: str) -> None:
    one_error(bsp_run(tmp_path, "--grace", value), 2,
              f"--grace {value}: expected the seconds a drain waits for in-flight exchanges, 0 or more "
              f"(e.g. --grace 10)")


def test_an_admin_port_out_of_range_is_refused(tmp_path: Path) -> None:
    one_error(bsp_run(tmp_path, "--admin", "127.0.0.1:99999", env=clean_env(BSP_ADMIN_TOKEN="t" * 32)), 2,
              "--admin: admin listen address '127.0.0.1:99999': port 99999 out of range 1-65535 "
              "(e.g. 127.0.0.1:7080)")
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "platform.yaml").write_text('routes: [r.route]\nadmin:\n  listen: "127.0.0.1:99999"\n')
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "platform.yaml")], cwd=str(REPO),
                       env=clean_env(BSP_ADMIN_TOKEN="t" * 32), capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().endswith('platform.yaml:3:11: admin.listen: port 99999 out of range 1-65535 '
                                     '(e.g. "127.0.0.1:7080")'), p.stderr


def test_an_admin_certificate_without_its_key_says_so(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not read\n")
    one_error(bsp_run(tmp_path, "--admin", "127.0.0.1:17520", "--admin-cert", str(tmp_path / "cert.pem"),
                      env=clean_env(BSP_ADMIN_TOKEN="t" * 32)), 2,
              f"--admin-cert {tmp_path / 'cert.pem'} needs --admin-key FILE (the private key of that certificate)")


def test_ledger_side_files_in_the_way_are_one_line(tmp_path: Path) -> None:
    ledger = tmp_path / "var" / "j.duckdb"
    ledger.parent.mkdir()
    Path(str(ledger) + ".journal").write_text("")          # a file where the journal folder goes
    p = bsp_run(tmp_path, ledger=ledger)
    one_error(p, 1, f"{ledger}.journal: is not a folder: bsp writes the ledger's write-ahead journal (a folder) "
                    f"there; move it out of the way (bsp makes it), or give the engine another ledger (--ledger, "
                    f"or `ledger:` in the deployment file)")
    Path(str(ledger) + ".journal").unlink()
    Path(str(ledger) + ".txn").mkdir()                      # a folder where the transaction log goes
    one_error(bsp_run(tmp_path, ledger=ledger), 1,
              f"{ledger}.txn: is a folder: bsp writes the ledger's transaction log (a file) there; move it out of "
              f"the way (bsp makes it), or give the engine another ledger (--ledger, or `ledger:` in the "
              f"deployment file)")


def _chattr(flag: str, path: Path) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(
        ["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 and shutil.which("chattr") is None, reason="needs chattr (or a non-root user)")
@pytest.mark.parametrize("side,what", [(".journal", "write-ahead journal (a folder)"),
                                       (".txn", "transaction log (a file)")])
def test_unwritable_ledger_side_files_are_one_line(tmp_path: Path, side: str, what: str) -> None:
    ledger = tmp_path / "j.duckdb"
    path = Path(str(ledger) + side)
    if side == ".journal":
        path.mkdir()
    else:
        path.write_bytes(b"")
    if os.geteuid() == 0:
        if not _chattr("+i", path):
            pytest.skip("chattr +i is not supported on this file system (root ignores file modes)")
    else:
        path.chmod(0o500 if side == ".journal" else 0o400)
    try:
        p = bsp_run(tmp_path, ledger=ledger)
    finally:
        if os.geteuid() == 0:
            _chattr("-i", path)
        else:
            path.chmod(0o700)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    [line] = p.stderr.splitlines()
    assert line.startswith(f"error: {path}: ") and f"bsp writes the ledger's {what} there; make it writable " \
        "by the engine's user" in line, line


def _run_deployment(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "platform.yaml")],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("token,want", [("short", "has 5 characters; at least 16 are required"),
                                        ("", "is empty"), ("has a space in it!", "contains spaces or control characters")])
def test_an_unfit_admin_token_of_the_deployment_file_is_one_line(tmp_path: Path, token: str, want: str) -> None:
    # admin.token of platform.yaml is held to the rules a --admin-token-file or $BSP_ADMIN_TOKEN is held to,
    # up front, not with a traceback from inside the running engine
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "platform.yaml").write_text('routes: [r.route]\nledger: l.duckdb\nadmin:\n'
                                            '  listen: "127.0.0.1:0"\n  token: {env: OPS_TEST_TOKEN}\n')
    p = _run_deployment(tmp_path, clean_env(OPS_TEST_TOKEN=token))
    one_error(p, 2, f"admin API: admin token from {tmp_path / 'platform.yaml'}:5:10 ($OPS_TEST_TOKEN) {want}; "
                    "create one with `bsp admin token FILE` or `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`")


def test_a_missing_deployment_file_is_a_usage_error(tmp_path: Path) -> None:
    # as a missing route file or folder: exit 2, the path named
    one_error(_run_deployment(tmp_path, clean_env()), 2, f"no such file or directory: {tmp_path / 'platform.yaml'}")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_ledger_in_a_folder_that_takes_no_files_says_why(tmp_path: Path) -> None:
    """/proc exists, but no file can be made in it: not `/proc: No such file or directory`."""
    one_error(bsp_run(tmp_path, ledger=Path("/proc/x.duckdb")), 1,
              "/proc: files cannot be created in this folder (it exists, but creating one fails with 'No such "
              "file or directory': it is on a proc file system, not a disk): bsp writes the ledger's folder "
              "there; give the engine a ledger on a disk (--ledger, or `ledger:` in the deployment file)")


def test_a_route_that_does_not_compile_is_counted_as_bsp_check_counts_it(tmp_path: Path) -> None:
    """One error and one warning: `bsp run` said `2 problem(s); nothing started`, as if the warning had
    stopped it too; it now counts them as `bsp check` does, and says the warnings do not stop it."""
    route = tmp_path / "r.route"
    route.write_text('format Req = json\nformat Rsp = json\n'
                     'channel front = tcp listen { address = "127.0.0.1:0"  framing = length4 }\n'
                     'route echo {\n    receive from front as Req\n    deal ECHO { ref = msg.id }\n'
                     '    reply Rsp { id = msg.id }\n}\n')
    res = bsp_run(tmp_path)
    assert res.returncode == 1, res
    assert "error[E036]" in res.stderr and "warning[W010]" in res.stderr, res.stderr
    assert res.stderr.rstrip().splitlines()[-1] == ("error: 1 error, 1 warning; nothing started (fix the errors; "
                                                   "warnings alone do not stop it)"), res.stderr
    assert not (tmp_path / "l.duckdb").exists()
