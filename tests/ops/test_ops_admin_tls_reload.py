"""The admin API's certificate renewed at the same path is taken by a reload, without a restart: new
connections get the new certificate, a connection kept open goes on with the old one, the listening
socket stays; a renewal that cannot be used (key not matching, expired) refuses the reload, naming the
file, and the admin API keeps the certificate it has.  Real platform.yaml, certificates, ledger and
loopback mutual TLS (port 0)."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import AsyncIterator

import h11
import pytest
import trio
from cryptography import x509

from engine.certs import new_ca
from engine.commands.run import _expand
from engine.deploy import load_deployment
from engine.ops import runopts
from engine.ops.serve import OpsOptions, run_live
from engine.ops.watch import _targets
from engine.registry import default_registry
from engine.tls import client_context
from opskit import ECHO, compile_file

TOKEN = "tls-reload-token-" + "r" * 20


class Conn:
    """One kept-alive HTTPS connection to the admin API (h11 over a trio SSLStream)."""

    def __init__(self, stream: trio.SSLStream) -> None:
        self.stream = stream
        self.h = h11.Connection(h11.CLIENT)

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.stream.getpeercert(binary_form=True))

    async def call(self, method: str, target: str) -> tuple[int, dict]:
        out = self.h.send(h11.Request(method=method, target=target, headers=[
            ("host", "127.0.0.1"), ("authorization", f"Bearer {TOKEN}"), ("content-length", "0")]))
        await self.stream.send_all(out + self.h.send(h11.EndOfMessage()))
        status, body = 0, b""
        with trio.fail_after(10):
            while True:
                event = self.h.next_event()
                if event is h11.NEED_DATA:
                    self.h.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.h.start_next_cycle()
                    return status, json.loads(body)


@pytest.fixture
async def opened() -> AsyncIterator[list[trio.SSLStream]]:
    streams: list[trio.SSLStream] = []
    yield streams
    for stream in streams:
        await trio.aclose_forcefully(stream)


async def connect(port: int, ctx, opened: list[trio.SSLStream]) -> Conn:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    opened.append(stream)
    await stream.do_handshake()
    return Conn(stream)


async def test_a_reload_renews_the_admin_apis_certificate_for_new_connections(nursery, tmp_path: Path, opened) -> None:
    tls = tmp_path / "tls"
    ca = new_ca("ops test CA")
    ca_pem, _ = ca.write(tls / "ca")
    first = ca.issue("localhost", ips=["127.0.0.1"], server=True, days=20)
    cert, key = first.write(tls / "admin")
    ccert, ckey = ca.issue("OPS-CONSOLE", client=True).write(tmp_path / "client")
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    (tmp_path / "admin.token").chmod(0o600)
    (tmp_path / "r.route").write_text(ECHO % "x")
    yaml = tmp_path / "platform.yaml"
    yaml.write_text("version: 1\nroutes: [r.route]\nledger:\n  path: l.duckdb\nadmin:\n"
                    "  listen: \"127.0.0.1:0\"\n  token: {file: admin.token}\n"
                    "  tls: {cert: tls/admin.pem, key: {file: tls/admin.key}, client_ca: tls/ca.pem}\n")
    dep = load_deployment(yaml)
    opts = runopts.admin_options(None, None, None, None, None, None, dep)
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    nursery.start_soon(partial(
        run_live, compile_file(tmp_path / "r.route", registry), registry, ledger_path=tmp_path / "l.duckdb",
        load=runopts.loader([yaml], yaml, None, _expand), overrides=dep.channel_overrides, grace=2.0,
        ops=OpsOptions(admin=opts, hooks=[lambda e: (box.append(e), ready.set())])))
    with trio.fail_after(10):
        await ready.wait()
    eng = box[0]
    port = eng.admin_port
    ctx = client_context(ca=ca_pem, cert=ccert, key=ckey)
    metrics = eng.observer.metrics

    def expiry() -> float | None:
        return metrics.value("bsp_tls_cert_expiry_timestamp_seconds",
                             {"channel": "admin API", "role": "server", "subject": "CN=localhost"})

    kept = await connect(port, ctx, opened)
    assert kept.cert.serial_number == first.cert.serial_number
    assert (await kept.call("GET", "/status"))[0] == 200
    assert expiry() == first.cert.not_valid_after_utc.timestamp()

    # renewed at the same paths (a new key, serial and expiry), reloaded through the kept connection itself
    renewed = ca.issue("localhost", ips=["127.0.0.1"], server=True, days=90)
    renewed.write(tls / "admin")
    status, doc = await kept.call("POST", "/reload")
    assert status == 200, doc
    fresh = await connect(port, ctx, opened)
    assert fresh.cert.serial_number == renewed.cert.serial_number
    assert "warnings" not in doc, doc                      # no "rewritten ... until the next restart" any more
    assert doc["plan"]["admin API"] == {"changed": ["tls"]}, doc["plan"]
    assert fresh.cert.not_valid_after_utc == renewed.cert.not_valid_after_utc
    assert (await fresh.call("GET", "/status"))[0] == 200
    status, doc = await kept.call("GET", "/status")          # the kept connection goes on, with its certificate
    assert status == 200 and kept.cert.serial_number == first.cert.serial_number
    assert expiry() == renewed.cert.not_valid_after_utc.timestamp()
    assert [c["not_after"] for c in doc["certificates"] if c["role"] == "server"] == \
        [renewed.cert.not_valid_after_utc.isoformat()]

    # a bad renewal: a certificate whose key was not written (the key file is the previous one's)
    other = ca.issue("localhost", ips=["127.0.0.1"], server=True, days=120)
    cert.write_bytes(other.cert_pem)
    status, doc = await fresh.call("POST", "/reload")
    assert status == 422, doc
    assert doc["diagnostics"] == [
        f"error: {yaml}:8:35: admin.tls.key: private key '{key}' does not belong to certificate '{cert}' "
        f"(hint: use the key file generated together with this certificate); the admin API keeps serving the "
        f"certificate it has"], doc
    assert (await connect(port, ctx, opened)).cert.serial_number == renewed.cert.serial_number
    assert expiry() == renewed.cert.not_valid_after_utc.timestamp()

    # an expired one (with its key) is refused as well
    ca.issue("localhost", ips=["127.0.0.1"], server=True, days=-1).write(tls / "admin")
    status, doc = await fresh.call("POST", "/reload")
    assert status == 422 and "admin API: server certificate" in doc["diagnostics"][0], doc
    assert "expired on" in doc["diagnostics"][0] and str(cert) in doc["diagnostics"][0], doc
    assert (await connect(port, ctx, opened)).cert.serial_number == renewed.cert.serial_number

    # a key file gone (moved away before the new one was written)
    key.unlink()
    status, doc = await fresh.call("POST", "/reload")
    assert status == 422 and f"admin.tls.key: private key file '{key}' does not exist" in doc["diagnostics"][0], doc
    assert (await connect(port, ctx, opened)).cert.serial_number == renewed.cert.serial_number

    # fixed: the next reload takes it; the connections opened before still answer
    third = ca.issue("localhost", ips=["127.0.0.1"], server=True, days=200)
    third.write(tls / "admin")
    status, doc = await fresh.call("POST", "/reload?dry_run=1")      # a dry run says so, changes nothing
    assert status == 200 and doc["plan"]["admin API"] == {"changed": ["tls"]}, doc
    assert (await connect(port, ctx, opened)).cert.serial_number == renewed.cert.serial_number
    status, doc = await fresh.call("POST", "/reload")
    assert status == 200, doc
    assert (await connect(port, ctx, opened)).cert.serial_number == third.cert.serial_number
    assert (await kept.call("GET", "/health"))[0] == 200 and (await fresh.call("GET", "/health"))[0] == 200
    # --watch reloads when the admin API's files change, too
    assert {cert.resolve(), key.resolve(), ca_pem.resolve()} <= _targets(eng)[0]
    eng.drain()
