"""`bsp sim traffic` and `bsp sim counterparts` over TLS and mutual TLS, against a real `bsp run`.

A deployment file puts claims_payout's channels under mutual TLS: the insurer's `http listen` requires a
client certificate, the engine calls its mainframe and clearing (`tcp connect`) with `ca`, `cert` and `key`.
Until 2026-11-27 neither simulator spoke TLS: `bsp sim counterparts` served plain TCP to the engine's TLS
handshakes (every claim answered 91, no hint why) and `bsp sim traffic` could only refuse the TLS channel.
Now `bsp sim counterparts --tls-cert/--tls-key/--tls-ca` stands in for the counterparts (the engine's
handshakes succeed: good claims are committed, 00) and `bsp sim traffic --tls-ca/--tls-cert/--tls-key`
drives the insurer's channel; a simulator not given TLS for a channel that speaks it says which channel,
where its TLS is set and what to add.  Certificates from `bsp certs dev` (engine/certs.py), ports 0, every
wait bounded.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.certs import new_ca, write_dev_set
from engine.cli import app
from engine.sim.services.catalog import ROUTES_DIR
from tests.services.test_bill_traffic_tls import certs as bill_certs_fixture, engine as bill_engine_fixture
from tests.services.test_sim_cli import AT, BSP, WAIT, _stop, _wait


@pytest.fixture
def bill_certs(certs: Path) -> Path:
    return certs


@pytest.fixture
def bill_engine(engine):           # the bill payment route, its mainframe channel on mutual TLS
    return engine


certs = bill_certs_fixture           # the fixtures those two use, by the names they ask for
engine = bill_engine_fixture

DEPLOYMENT = """version: 1
routes:
  - {routes}/*.route
ledger: ledger.duckdb
channels:
  clm_insurer:   {{address: "127.0.0.1:0", cert: {d}/server.pem, key: {d}/server.key, ca: {d}/ca.pem, client_cert: required}}
  clm_mainframe: {{address: "{mainframe}", ca: {d}/ca.pem, cert: {d}/client.pem, key: {d}/client.key}}
  clm_clearing:  {{address: "{clearing}", ca: {d}/ca.pem, cert: {d}/client.pem, key: {d}/client.key}}
  clm_results:   {{dir: "{results}"}}
  clm_voids:     {{dir: "{results}"}}
"""

FREE = ["--listen", "clm_mainframe=127.0.0.1:0", "--listen", "clm_clearing=127.0.0.1:0"]


def _deployment(tmp_path: Path, mainframe: str = "127.0.0.1:1", clearing: str = "127.0.0.1:2") -> Path:
    (tmp_path / "results").mkdir(exist_ok=True)
    platform = tmp_path / "platform.yaml"
    platform.write_text(DEPLOYMENT.format(routes=ROUTES_DIR / "claims_payout", d=tmp_path / "certs",
                                          mainframe=mainframe, clearing=clearing, results=tmp_path / "results"))
    return platform


def test_traffic_over_mutual_tls_to_an_engine_calling_tls_counterparts(tmp_path: Path) -> None:
    certs = write_dev_set(tmp_path / "certs")
    platform = _deployment(tmp_path)
    ready = tmp_path / "ready.json"
    sim_out, run_err = tmp_path / "sim.txt", tmp_path / "run.txt"
    with sim_out.open("w") as so:
        sims = subprocess.Popen([BSP, "sim", "counterparts", "claims_payout", "--config", str(platform),
                                 "--listen", "clm_mainframe=127.0.0.1:0", "--listen", "clm_clearing=127.0.0.1:0",
                                 "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                                 "--tls-ca", str(certs.ca), "--ready-file", str(ready)],
                                cwd=tmp_path, stdout=so, stderr=subprocess.STDOUT)
    engine = None
    try:
        _wait("bsp sim counterparts", ready.exists, sims, sim_out)
        where = json.loads(ready.read_text())
        _deployment(tmp_path, where["clm_mainframe"], where["clm_clearing"])
        with run_err.open("w") as se:
            engine = subprocess.Popen([BSP, "run", str(platform), "--at", AT], cwd=tmp_path, stdout=se,
                                      stderr=subprocess.STDOUT)
        _wait("bsp run", lambda: "bsp: serving" in run_err.read_text(), engine, run_err)
        banner = run_err.read_text()
        port = banner.split("channel clm_insurer: ")[1].split("\n")[0].split(":")[-1].split()[0]
        to = f"127.0.0.1:{port}"
        mtls = ["--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert),
                "--tls-key", str(certs.client_key)]

        good = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--count", "12", "--mix", "good",
                                        "--to", to, "--at", AT, *mtls], catch_exceptions=False)
        assert good.exit_code == 0, good.output
        assert "by code: 00 12" in good.stdout, good.output     # committed: the TLS counterparts answered

        # an engine certificate from a CA the traffic does not trust: refused at the handshake, saying what to fix
        other = new_ca("another CA", days=30)
        other_pem, _ = other.write(tmp_path / "other-ca")
        r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--count", "1", "--to", to, "--at", AT,
                                     "--tls-ca", str(other_pem), "--tls-cert", str(certs.client_cert),
                                     "--tls-key", str(certs.client_key)], catch_exceptions=False)
        assert r.exit_code == 1, r.output
        assert f"TLS handshake with the engine at {to} failed: CERTIFICATE_VERIFY_FAILED" in r.stderr, r.stderr
        assert "`--tls-ca` must hold the CA that issued" in r.stderr and "Traceback" not in r.output
    finally:
        engine_rc = _stop(engine) if engine is not None else None
        sims_rc = _stop(sims)
    assert engine_rc == 0, run_err.read_text()
    assert sims_rc == 0, sim_out.read_text()
    text = sim_out.read_text()
    assert f"clm_mainframe listening on {where['clm_mainframe']}" in text and "; mutual TLS)" in text, text
    answered = {line.split(":")[0]: line for line in text.splitlines() if ": answered " in line}
    assert "TLS handshake" not in answered["clm_mainframe"], text
    assert int(answered["clm_clearing"].split("answered ")[1].split()[0]) >= 12, text


def test_simulators_without_tls_for_a_channel_that_speaks_it_name_the_channel_and_the_option(tmp_path: Path) -> None:
    certs = write_dev_set(tmp_path / "certs")
    platform = _deployment(tmp_path)
    # a subprocess with a bound: before the TLS options, this served plain TCP until a signal
    r = subprocess.run([BSP, "sim", "counterparts", "claims_payout", "--config", str(platform), *FREE],
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{platform}:7:" in r.stderr and "channel clm_mainframe speaks mutual TLS" in r.stderr, r.stderr
    assert "add --tls-cert SERVER.pem --tls-key SERVER.key" in r.stderr and "--tls-ca CA.pem" in r.stderr

    # --tls-ca requires a client certificate: a channel without `cert` has none to give
    plain_client = platform.read_text().replace(f", cert: {tmp_path}/certs/client.pem, key: {tmp_path}/certs/client.key", "")
    platform.write_text(plain_client)
    r = CliRunner().invoke(app, ["sim", "counterparts", "claims_payout", "--config", str(platform), *FREE, "--tls-cert",
                                 str(certs.server_cert), "--tls-key", str(certs.server_key), "--tls-ca",
                                 str(certs.ca)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "channel clm_mainframe presents no client certificate" in r.stderr and "drop --tls-ca" in r.stderr

    # TLS options for channels that are all plain (the shipped routes)
    r = CliRunner().invoke(app, ["sim", "counterparts", "claims_payout", *FREE, "--tls-cert", str(certs.server_cert),
                                 "--tls-key", str(certs.server_key)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "none of the channels these services call speaks TLS" in r.stderr, r.stderr

    r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--config", str(platform), "--count", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert f"{platform}:6:" in r.stderr and "channel clm_insurer speaks mutual TLS" in r.stderr, r.stderr
    assert "add --tls-ca CA.pem" in r.stderr and "--tls-cert CLIENT.pem --tls-key CLIENT.key" in r.stderr
    r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--config", str(platform), "--count", "1",
                                 "--tls-ca", str(certs.ca)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "channel clm_insurer requires a client certificate" in r.stderr, r.stderr
    r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--count", "1", "--tls-ca", str(certs.ca)],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "channel clm_insurer does not speak TLS (no `cert`)" in r.stderr, r.stderr
    assert "claims_payout.route:48:" in r.stderr and "drop them" in r.stderr


def test_traffic_over_mutual_tls_to_a_tcp_listen_channel(bill_engine, bill_certs: Path) -> None:
    """bill_payment's mainframe channel (`tcp listen`, framed) with client_cert required: `bsp sim traffic
    --tls-ca/--tls-cert/--tls-key` gets every request answered as the simulator expects; the CA alone (no
    client certificate: TLS 1.3 refuses it after the handshake) is exit 1 naming the options to add."""
    port, _biller, _stats = bill_engine
    to = f"127.0.0.1:{port}"
    ca, cert, key = (str(bill_certs / n) for n in ("ca.pem", "client.pem", "client.key"))
    r = CliRunner().invoke(app, ["sim", "traffic", "bill_payment", "--count", "20", "--mix", "unknown_biller",
                                 "--to", to, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "20 replies" in r.stdout and "every reply code was the one the simulator expects" in r.stdout, r.output

    r = CliRunner().invoke(app, ["sim", "traffic", "bill_payment", "--count", "2", "--mix", "unknown_biller",
                                 "--to", to, "--tls-ca", ca], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert f"TLS handshake with the engine at {to} failed" in r.stderr, r.stderr
    assert "--tls-cert and --tls-key" in r.stderr and "Traceback" not in r.output, r.stderr

    # --to skips the configuration's check: plain TCP to the TLS port gets no reply, and a note says why
    r = CliRunner().invoke(app, ["sim", "traffic", "bill_payment", "--count", "2", "--mix", "unknown_biller",
                                 "--to", to], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert f"note: the engine at {to} speaks TLS" in r.stderr and "give --tls-ca CA.pem" in r.stderr, r.stderr
