"""`bsp sim counterparts` and `bsp sim traffic` against a real `bsp run`, as a tester runs them.

claims_payout's routes call a mainframe and a clearing; without them `bsp run routes/claims_payout/`
answers 91 to every good claim.  Here `bsp sim counterparts claims_payout` serves both (on free ports:
--listen ...=127.0.0.1:0, written to --ready-file), a deployment file points the engine's channels at
them, `bsp run` serves the insurer's HTTP channel on a free port, and `bsp sim traffic` posts claims:
the good ones are committed (00, not 91), the default mix gets exactly the codes the simulator expects.
Every wait is bounded.

The engine and the traffic run on a clock started at AT (`bsp run --at`, `bsp sim traffic --at`): the claims
are booked on `value_date(now(), "15:30", target2, ...)`, and target2.csv lists given years only (2026-2028),
so on the wall clock every claim would fail (96) from the first day of a year it does not list.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import app
from engine.sim.iso_host import DECLINED_AMOUNTS
from engine.sim.services.card_payments import card_host
from engine.sim.services.catalog import ROUTES_DIR
from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for

BSP = str(Path(sys.executable).parent / "bsp")
AT = "2026-11-25T09:00:00Z"      # a Wednesday, 10:00 in Berlin: before the 15:30 cut-off, on a TARGET2 day
WAIT = 60.0          # seconds: a bound on each wait (the machine may be busy), not a timed assertion

DEPLOYMENT = """
version: 1
routes:
  - {routes}/*.route
ledger: ledger.duckdb
channels:
  clm_insurer:   {{address: "127.0.0.1:0"}}
  clm_mainframe: {{address: "{mainframe}"}}
  clm_clearing:  {{address: "{clearing}"}}
  clm_results:   {{dir: "{results}"}}
  clm_voids:     {{dir: "{results}"}}
"""


def _wait(what: str, ready: "callable", proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + WAIT
    while not ready():
        assert proc.poll() is None, f"{what} exited early:\n{log.read_text()}"
        assert time.monotonic() < end, f"{what} not ready within {WAIT:g}s:\n{log.read_text()}"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_sim_counterparts_and_traffic_with_bsp_run(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    sim_out, run_err = tmp_path / "sim.txt", tmp_path / "run.txt"
    with sim_out.open("w") as so:
        sims = subprocess.Popen([BSP, "sim", "counterparts", "claims_payout", "--listen", "clm_mainframe=127.0.0.1:0",
                                 "--listen", "clm_clearing=127.0.0.1:0", "--ready-file", str(ready)],
                                cwd=tmp_path, stdout=so, stderr=subprocess.STDOUT)
    engine = None
    try:
        _wait("bsp sim counterparts", ready.exists, sims, sim_out)
        where = json.loads(ready.read_text())
        assert set(where) == {"clm_mainframe", "clm_clearing"}
        (tmp_path / "results").mkdir()
        (tmp_path / "platform.yaml").write_text(DEPLOYMENT.format(
            routes=ROUTES_DIR / "claims_payout", mainframe=where["clm_mainframe"], clearing=where["clm_clearing"],
            results=tmp_path / "results"))
        with run_err.open("w") as se:
            engine = subprocess.Popen([BSP, "run", "platform.yaml", "--at", AT], cwd=tmp_path, stdout=se, stderr=subprocess.STDOUT)
        _wait("bsp run", lambda: "bsp: serving" in run_err.read_text(), engine, run_err)
        banner = run_err.read_text()
        port = banner.split("channel clm_insurer: ")[1].split("\n")[0].split(":")[-1].split()[0]
        to = f"127.0.0.1:{port}"

        good = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--count", "24", "--mix", "good",
                                        "--to", to, "--at", AT], catch_exceptions=False)
        assert good.exit_code == 0, good.output
        assert "by code: 00 24" in good.stdout, good.output
        assert " 91 " not in good.stdout and not good.stdout.rstrip().endswith(" 91")   # no code 91 (a port may hold "91")

        mixed = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--count", "40", "--to", to,
                                         "--mix", "good=6,rejected=2,failing=2,duplicate=1", "--seed", "3",
                                          "--at", AT],
                                   catch_exceptions=False)
        assert mixed.exit_code == 0, mixed.output
        assert "every reply code was the one the simulator expects" in mixed.stdout, mixed.output
        assert "answered with their original's reply bytes" in mixed.stdout, mixed.output
        assert "05 " in mixed.stdout and "00 " in mixed.stdout
    finally:
        engine_rc = _stop(engine) if engine is not None else None
        sims_rc = _stop(sims)
    assert engine_rc == 0, run_err.read_text()
    stopped = run_err.read_text().split("bsp: stopped; ")[1]
    assert int(stopped.split(" committed")[0].split()[-1]) >= 24, stopped
    assert sims_rc == 0, sim_out.read_text()
    text = sim_out.read_text()
    assert f"clm_mainframe listening on {where['clm_mainframe']}" in text
    assert "clm_mainframe: answered" in text and "counterpart simulators stopped" in text


def test_sim_traffic_without_counterparts_says_what_to_start(tmp_path: Path) -> None:
    """No engine on the address: exit 1 and what to start, not a traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]            # nothing listens there once closed
    r = CliRunner().invoke(app, ["sim", "traffic", "card_payments", "--count", "2", "--to", f"127.0.0.1:{free}"],
                           catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert "cannot reach the engine at 127.0.0.1:" in r.stderr and "bsp run routes/card_payments/" in r.stderr


def test_sim_usage_errors_name_the_fix(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["sim", "counterparts", "claim_payout"], catch_exceptions=False)
    assert r.exit_code == 2 and "no service 'claim_payout'; known: bill_payment" in r.stderr
    r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--mix", "good,malformed"],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "'malformed' is not a kind of claims_payout's requests" in r.stderr
    r = CliRunner().invoke(app, ["sim", "counterparts", "claims_payout", "--listen", "clm_insurer=127.0.0.1:0"],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "--listen clm_insurer: not a channel these services call" in r.stderr


def test_sim_with_a_configuration_that_does_not_run_the_service_says_so(tmp_path: Path, monkeypatch) -> None:
    """`--config routes/platform.yaml` (bill payment only) for claims_payout: exit 2 naming what the file lacks
    and the fix, for both commands; it was a traceback (`BindError: no format named 'ClaimDebit'`) for one
    and an exception group for the other."""
    monkeypatch.setenv("BSP_ADMIN_TOKEN", "t" * 32)
    platform = str(ROUTES_DIR / "platform.yaml")
    r = CliRunner().invoke(app, ["sim", "counterparts", "claims_payout", "--config", platform, "--env", "uat"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert ("claims_payout: its routes use channel clm_mainframe, channel clm_clearing, format ClaimDebit"
            in r.stderr), r.stderr
    assert f"which {platform} does not declare" in r.stderr and "--config routes/claims_payout/" in r.stderr
    r = CliRunner().invoke(app, ["sim", "traffic", "claims_payout", "--config", platform, "--count", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "claims_payout: its routes use channel clm_insurer, format ClaimSettlement" in r.stderr, r.stderr


def test_sim_traffic_to_a_channel_that_speaks_tls_says_so(tmp_path: Path) -> None:
    """A deployment file putting the inbound channel under (mutual) TLS: `bsp sim traffic --config` sent plain
    TCP, every request went unanswered (the engine refused the handshake) and the note asked whether the engine
    ran on that address. Now exit 2 at once, naming the override's line, and what speaks TLS."""
    from engine.certs import new_ca

    ca = new_ca("sim test CA", days=30)
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", ips=["127.0.0.1"], server=True, days=30).write(tmp_path / "server")
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        f"version: 1\nroutes:\n  - {ROUTES_DIR / 'bill_payment' / 'bill_payment.route'}\n"
        f"  - {ROUTES_DIR / 'card_payments' / 'card_payments.route'}\nchannels:\n"
        f"  mainframe: {{cert: {cert}, key: {key}, ca: {ca_pem}, client_cert: required}}\n"
        f"  cp_mainframe: {{cert: {cert}, key: {key}}}\n")
    r = CliRunner().invoke(app, ["sim", "traffic", "bill_payment", "--config", str(platform), "--count", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert f"{platform}:6:" in r.stderr and "channel mainframe speaks mutual TLS" in r.stderr, r.stderr
    assert "add --tls-ca CA.pem" in r.stderr and "--tls-cert CLIENT.pem --tls-key CLIENT.key" in r.stderr, r.stderr
    r = CliRunner().invoke(app, ["sim", "traffic", "card_payments", "--config", str(platform), "--count", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert f"{platform}:7:" in r.stderr and "channel cp_mainframe speaks TLS (cert" in r.stderr, r.stderr
    assert "add --tls-ca CA.pem" in r.stderr and "--tls-cert" not in r.stderr, r.stderr


def _iso_0200(amount: str, stan: str) -> dict[str, str]:
    return {"t": "0200", "2": "6228480000000001", "3": "000000", "4": amount, "7": "1127050000", "11": stan,
            "37": f"CP{stan}0001", "41": "ATM00001", "49": "156"}


def test_standalone_iso_host_declines_as_the_demos_card_host(tmp_path: Path) -> None:
    """`python -m engine.sim.iso_host` answers the card payments simulator's 666.00 as the demo's card host
    does (05): one list of declined amounts for both."""
    port_file = tmp_path / "port"
    log = tmp_path / "host.txt"
    with log.open("w") as out:
        host = subprocess.Popen([sys.executable, "-m", "engine.sim.iso_host", "--port", "0", "--port-file",
                                 str(port_file)], stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        _wait("iso host", lambda: port_file.exists() and port_file.read_text().strip() != "", host, log)
        codec = codec_for("iso8583_1987_ascii", validate=False)
        framer, reader = LengthPrefixFramer(2), LengthPrefixFramer(2)
        reqs = [_iso_0200(DECLINED_AMOUNTS[0], "000001"), _iso_0200("000000012345", "000002")]
        got: list[bytes] = []
        with socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=WAIT) as s:
            s.sendall(b"".join(framer.frame(codec.encode(r)) for r in reqs))
            while len(got) < 2:
                data = s.recv(65536)
                assert data, "the iso host closed the connection"
                got += reader.feed(data)
    finally:
        _stop(host)
    demo = card_host()
    assert [codec.decode(g)["39"] for g in got] == [demo.answer(r)["39"] for r in reqs] == ["05", "00"]


def test_sim_counterparts_address_in_use_names_the_channel_and_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(app, ["sim", "counterparts", "claims_payout", "--listen",
                                     f"clm_mainframe=127.0.0.1:{port}", "--listen", "clm_clearing=127.0.0.1:0"],
                               catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert f"cannot listen on 127.0.0.1:{port} for claims_payout's channel clm_mainframe" in r.stderr
    assert "--listen clm_mainframe=HOST:PORT" in r.stderr


def test_sim_traffic_count_over_what_the_references_hold_is_a_usage_error() -> None:
    """card_payments' references are DE 37 (12 characters): 9,999 requests a run.  --count 20000 was a
    traceback (ValueError inside the nursery) after the first 9,999 were sent; it is exit 2 before anything is
    sent, naming the option, the service and the most it takes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = CliRunner().invoke(app, ["sim", "traffic", "card_payments", "--count", "20000", "--to", f"127.0.0.1:{free}"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "--count 20000" in r.stderr and "card_payments" in r.stderr and "at most 9999" in r.stderr, r.stderr
    assert "Traceback" not in r.output
