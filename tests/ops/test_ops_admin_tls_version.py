"""The configuration version records the admin API's TLS certificates (engine/ops/admintls.py tls_record): their
SHA-256 fingerprints, subjects, serials and validity, never a key, in the version's sources the ledger keeps
(``config_versions``); a renewal read by a reload makes a new version, so an audit tells which certificate the
admin API served when.  `bsp check platform.yaml` prints the version `bsp run` serves, the certificates included.
Real `bsp run` / `bsp check` / `bsp reload` subprocesses, generated certificates, the ledger file read after."""
from __future__ import annotations

import subprocess
import sys
import json
from pathlib import Path

import duckdb
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from engine.certs import new_ca
from engine.config_sources import all_sources
from test_ops_check_version import ROUTE, check
from test_ops_deploy_settings import TOKEN, Engine, clean_env

PLATFORM = """
routes: [routes/]
ledger:
  path: var/ledger.duckdb
admin:
  listen: "127.0.0.1:0"
  token: {env: TEST_ADMIN_TOKEN}
  tls:
    cert: tls/server.pem
    key: {file: tls/server.key}
"""


def fingerprint(pem: Path) -> str:
    return x509.load_pem_x509_certificate(pem.read_bytes()).fingerprint(hashes.SHA256()).hex(":").upper()


def admin_tls(sources: dict[str, str]) -> dict:
    [key] = [k for k in sources if k.endswith("#admin-tls")]
    return json.loads(sources[key])["admin_tls"]


def test_the_admin_certificate_served_is_in_each_configuration_version(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "echo.route").write_text(ROUTE)
    (tmp_path / "platform.yaml").write_text(PLATFORM.lstrip())
    ca = new_ca("version test CA")
    ca_pem, _ = ca.write(tmp_path / "tls" / "ca")
    pem, _ = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=30).write(
        tmp_path / "tls" / "server")
    first = fingerprint(pem)
    checked, said = check(tmp_path, "platform.yaml")
    assert "and the admin API's TLS certificates (admin.tls)" in said, said
    engine = Engine(tmp_path, "platform.yaml")
    try:
        started = engine.start()
        assert f"version {checked}," in started, started          # bsp check and bsp run agree
        url = started.split("\nadmin API: ")[1].split()[0]
        pem, _ = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=300).write(
            tmp_path / "tls" / "server")                            # renewed on disk, then reloaded
        second = fingerprint(pem)
        r = subprocess.run([sys.executable, "-m", "engine.cli", "reload", "--url", url, "--ca", str(ca_pem)],
                           cwd=str(tmp_path), env=clean_env(BSP_ADMIN_TOKEN=TOKEN), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"switched from {checked} to " in r.stdout, r.stdout
    finally:
        engine.stop()
    con = duckdb.connect(str(tmp_path / "var" / "ledger.duckdb"), read_only=True)
    try:
        versions = all_sources(con)
    finally:
        con.close()
    assert list(versions)[0] == checked and len(versions) == 2, list(versions)
    served = [admin_tls(s) for s in versions.values()]
    assert [f["certificates"][0]["sha256"] for f in (v[0] for v in served)] == [first, second]
    assert served[0][0]["role"] == "server" and served[0][0]["path"] == str(tmp_path / "tls" / "server.pem")
    assert served[0][0]["certificates"][0]["subject"] == "CN=localhost"
    assert not any("PRIVATE KEY" in text for s in versions.values() for text in s.values())   # never a key
