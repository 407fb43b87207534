"""Certificate expiry: an expired certificate on the mainframe link or a partner's mTLS link is a classic
outage, and nothing told the admin one was near.  Now the expiry of every certificate bsp presents or
trusts is read when the configuration is bound (start, reload): a gauge
``bsp_tls_cert_expiry_timestamp_seconds{channel,role,subject}``, a warning in the log within 30 days
(an error once expired), the nearest per channel in ``bsp status``, ``bsp check`` warnings; a channel
whose own certificate has expired is not started; ``bsp reload`` picks up a certificate renewed in
place; the counterpart's certificate (role peer) is noted at each TLS connect.

Real engine (LiveEngine as `bsp run` runs it), real TLS on 127.0.0.1 (port 0 or a free port), certificates
made by engine/certs.py with chosen validity."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509

from engine.certs import new_ca
from engine.commands.check import run_check
from engine.ops.backend import EngineBackend
from engine.tls import client_context
from opskit import ECHO, REPO, free_port, live

TLS_ECHO = ECHO.replace('    framing = length2\n', '    framing = length2\n    cert = "%(cert)s"\n    key = "%(key)s"\n'
                        '    ca = "%(ca)s"\n    client_cert = "optional"\n', 1)


def expiry(path: Path) -> list[tuple[str, float]]:
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    return [(c.subject.rfc4514_string(), c.not_valid_after_utc.timestamp()) for c in certs]


def date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    """A CA (a year), a server certificate for 10 more days, a CA bundle holding that CA and an expired one."""
    d = tmp_path / "pki"
    ca = new_ca("bsp test CA", days=365)
    old = new_ca("old partner CA", days=-2)
    ca_pem, _ = ca.write(d / "ca")
    server, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=10).write(d / "server")
    bundle = d / "bundle.pem"
    bundle.write_bytes(ca.cert_pem + old.cert_pem)
    return {"ca": ca_pem, "server": server, "key": key, "bundle": bundle, "dir": d, "_ca": ca}   # type: ignore[dict-item]


def metric(eng, channel: str, role: str, subject: str) -> float | None:
    return eng.observer.metrics.value("bsp_tls_cert_expiry_timestamp_seconds",
                                      {"channel": channel, "role": role, "subject": subject})


async def handshake_expiry(port: int, ca: Path) -> float:
    """The notAfter of the certificate the engine presents on ``port`` (a real TLS handshake)."""
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=client_context(ca, None, None,
                                                                                              "localhost"))
    await stream.do_handshake()
    import ssl
    t = float(ssl.cert_time_to_seconds(stream.getpeercert()["notAfter"]))
    await trio.aclose_forcefully(stream)
    return t


async def test_expiry_gauge_log_lines_and_status_at_start(tmp_path: Path, certs, caplog) -> None:
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": certs["server"], "key": certs["key"],
                                                           "ca": certs["bundle"]})
    (server_subject, server_after), = expiry(certs["server"])
    (ca_subject, ca_after), (old_subject, old_after) = expiry(certs["bundle"])
    caplog.set_level(logging.WARNING, logger="bsp.certs")
    async with live([route], tmp_path / "l.duckdb") as eng:
        # the gauge: the expiry as a Unix timestamp, per channel, role and subject (each certificate of a bundle)
        assert server_subject == "CN=localhost"
        assert metric(eng, "front", "server", server_subject) == server_after
        assert metric(eng, "front", "ca", ca_subject) == ca_after
        assert metric(eng, "front", "ca", old_subject) == old_after
        text = eng.observer.metrics.render().decode()
        assert 'bsp_tls_cert_expiry_timestamp_seconds{channel="front",role="server",subject="CN=localhost"}' in text
        # the log at bind time: a warning for the server certificate (10 days), an error for the expired CA
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in warnings] == [
            f"channel front: server certificate {certs['server']} (subject CN=localhost) expires on "
            f"{date(server_after)} (in 9 days); renew it, write the new file over the old one (same path), "
            f"then run `bsp reload`"]
        assert [r.getMessage() for r in errors] == [
            f"channel front: CA bundle {certs['bundle']} holds certificate CN=old partner CA, which expired on "
            f"{date(old_after)}: certificates issued by it no longer verify; get the CA's new certificate from "
            f"the counterpart, add it to the bundle (same path), then run `bsp reload`"]
        # bsp status: the nearest expiry per channel, every certificate in full
        doc = await EngineBackend(eng, eng.observer).status()
        near = doc["channels"]["front"]["cert_expiry"]
        assert (near["role"], near["subject"], near["path"]) == ("ca", "CN=old partner CA", str(certs["bundle"]))
        assert near["days_left"] < 0
        assert [(c["channel"], c["role"], c["subject"]) for c in doc["certificates"]] == [
            ("front", "ca", old_subject), ("front", "server", server_subject), ("front", "ca", ca_subject)]
        assert 9.9 <= doc["certificates"][1]["days_left"] <= 10     # cut down to a tenth
        # the daily reminder says it again (and a day later, when 8 days are left)
        caplog.clear()
        assert eng.cert_notices(time.time() + 86400) == 2
        assert "(in 8 days)" in caplog.records[0].getMessage()
        from engine.commands.top import render           # bsp status --table / bsp top: a column
        from rich.console import Console
        console = Console(width=250, record=True)
        console.print(render(doc, None, 0, {}))
        assert f"{date(old_after)[:10]} (EXPIRED, ca)" in console.export_text()


async def test_a_channel_whose_own_certificate_expired_is_not_started(tmp_path: Path, certs) -> None:
    ca = certs["_ca"]
    server, key = ca.issue("localhost", dns=["localhost"], server=True, days=-1).write(certs["dir"] / "expired")
    (subject, after), = expiry(server)
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": server, "key": key, "ca": certs["ca"]})
    env = dict(os.environ, BSP_ADMIN_TOKEN="t" * 32)
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(route), "--ledger",
                        str(tmp_path / "l.duckdb")], cwd=str(REPO), env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert (f"channel front: server certificate {server} (subject CN=localhost) expired on {date(after)}: every "
            f"counterpart refuses it, so the channel is not started; renew it") in p.stderr, p.stderr


async def test_reload_picks_up_a_certificate_renewed_at_the_same_path(tmp_path: Path, certs) -> None:
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": certs["server"], "key": certs["key"],
                                                           "ca": certs["ca"]})
    (_, old_after), = expiry(certs["server"])
    async with live([route], tmp_path / "l.duckdb") as eng:
        port = eng.current.channels["front"].port
        assert await handshake_expiry(port, certs["ca"]) == old_after
        # the admin renews the certificate: new files at the same paths; the route file is unchanged
        certs["_ca"].issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True,
                           days=400).write(certs["dir"] / "server")
        (_, new_after), = expiry(certs["server"])
        assert new_after > old_after + 300 * 86400
        dry = await eng.reload(dry_run=True)
        assert dry.ok and "front" in dry.plan["channels"]["changed"], dry
        result = await eng.reload()
        assert result.ok, result
        assert result.plan["why"]["channels"]["front"].startswith("certificate files changed (cert, key)")
        with trio.fail_after(10):
            while True:               # new connections get the new certificate (the socket stays)
                try:
                    seen = await handshake_expiry(eng.current.channels["front"].port, certs["ca"])
                except OSError:
                    await trio.sleep(0.02)
                    continue
                if seen == new_after:
                    break
                await trio.sleep(0.02)
        assert metric(eng, "front", "server", "CN=localhost") == new_after
        doc = await EngineBackend(eng, eng.observer).status()
        assert doc["channels"]["front"]["cert_expiry"]["days_left"] > 300


CALL_TLS = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel back_in = tcp listen {
    address = "127.0.0.1:%(port)d"
    framing = length4
    cert = "%(cert)s"
    key = "%(key)s"
}
channel back = tcp connect {
    address = "127.0.0.1:%(port)d"
    framing = length4
    ca = "%(ca)s"
    server_name = "localhost"
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref }
}
route partner {
    receive from back_in as Req
    deal PARTNER { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


async def test_the_counterparts_certificate_is_noted_at_connect(tmp_path: Path, certs, caplog) -> None:
    route = tmp_path / "r.route"
    route.write_text(CALL_TLS % {"port": free_port(), "cert": certs["server"], "key": certs["key"],
                                 "ca": certs["ca"]})
    (_, after), = expiry(certs["server"])
    caplog.set_level(logging.WARNING)
    async with live([route], tmp_path / "l.duckdb") as eng:
        with trio.fail_after(10):        # the pool connects at start, and again after any failure
            while metric(eng, "back", "peer", "CN=localhost") is None:
                await trio.sleep(0.02)
        assert metric(eng, "back", "peer", "CN=localhost") == after
        peer = f"127.0.0.1:{eng.current.channels['back'].port}"
        said = [r.getMessage() for r in caplog.records if "counterpart's certificate" in r.getMessage()]
        assert said == [f"channel back: the counterpart's certificate at {peer} (subject CN=localhost) expires "
                        f"on {date(after)} (in 9 days): ask the counterpart to renew it before then"]
        doc = await EngineBackend(eng, eng.observer).status()
        assert doc["channels"]["back"]["cert_expiry"]["role"] == "peer"
        assert ("back", "peer") in [(c["channel"], c["role"]) for c in doc["certificates"]]


def test_check_warns_of_certificates_expiring_and_fails_on_an_expired_own(tmp_path: Path, certs, capsys) -> None:
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": certs["server"], "key": certs["key"],
                                                           "ca": certs["ca"]})
    (_, after), = expiry(certs["server"])
    assert run_check([route], explain=False, as_json=False) == 0
    out = capsys.readouterr().out
    assert (f"warning: channel front: server certificate {certs['server']} (subject CN=localhost) expires on "
            f"{date(after)} (in 9 days); renew it") in out
    # a deployment file whose uat environment points the channel at an expired certificate: an error
    server, key = certs["_ca"].issue("localhost", server=True, days=-3).write(certs["dir"] / "old")
    (tmp_path / "platform.yaml").write_text(
        f"version: 1\nroutes: [r.route]\nenvironments:\n  uat:\n    channels:\n      front:\n"
        f"        cert: {server}\n        key: {key}\n")
    assert run_check([tmp_path / "platform.yaml"], explain=False, as_json=False) == 1
    out = capsys.readouterr().out
    assert f"error: channel front: server certificate {server} (subject CN=localhost) expired on" in out
    assert "warning: channel front: server certificate" in out          # the base settings' one


def test_checks_summary_counts_the_certificate_lines_it_printed(tmp_path: Path, certs, capsys) -> None:
    """The summary under a certificate warning said "0 errors, 0 warnings" (and under an expired own
    certificate, with exit 1, "0 errors"): it counted the route files' diagnostics only."""
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": certs["server"], "key": certs["key"],
                                                           "ca": certs["ca"]})
    def said(out: str, level: str) -> int:      # the lines printed: a certificate's, a diagnostic's
        return sum(1 for ln in out.splitlines() if ln.startswith(f"{level}: ") or f": {level}[" in ln)

    assert run_check([route], explain=False, as_json=False) == 0
    out = capsys.readouterr().out
    assert "warning: channel front: server certificate" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"0 errors, {said(out, 'warning')} warnings; 1 file compiled"), out
    server, key = certs["_ca"].issue("localhost", server=True, days=-3).write(certs["dir"] / "old")
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": server, "key": key, "ca": certs["ca"]})
    assert run_check([route], explain=False, as_json=False) == 1
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert said(out, "error") == 1 and last.startswith("1 error, "), out


async def test_the_admin_apis_certificates_are_in_the_gauge_and_status(nursery, tmp_path: Path, certs) -> None:
    from functools import partial

    from engine.ops.serve import AdminOptions, OpsOptions, run_live
    from engine.registry import default_registry
    from engine.tls import server_context
    from opskit import compile_file
    route = tmp_path / "r.route"
    route.write_text(ECHO % "x")
    box: list = []
    ready = trio.Event()
    admin = AdminOptions(listen="127.0.0.1:0", token="a" * 32,
                         ssl_context=server_context(certs["server"], certs["key"], None, "none"),
                         cert_files=(("server", certs["server"]),))
    registry = default_registry()
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0,
                               ops=OpsOptions(admin=admin, hooks=[lambda e: (box.append(e), ready.set())])))
    with trio.fail_after(10):
        await ready.wait()
    eng = box[0]
    (_, after), = expiry(certs["server"])
    assert metric(eng, "admin API", "server", "CN=localhost") == after
    doc = await EngineBackend(eng, eng.observer).status()
    assert [(c["channel"], c["role"]) for c in doc["certificates"]] == [("admin API", "server")]
    # `bsp status --table` / `bsp top` show it too: the admin API has no row in the channels table, so its
    # certificate nearing expiry was in the JSON only
    from test_ops_degraded import _table
    table = _table({**doc, "ready": True})
    assert f"admin API: certificate expires {date(after)[:10]} (9d, server) ({certs['server']})" in table, table
    eng.drain()
