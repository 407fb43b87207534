"""A certificate bsp presents that expires while the engine runs (it was valid when bound): it used to be
an error line in the log at the next daily reminder (up to a day later), and `bsp status` said `ready`.
Now the error is logged the moment it expires, `bsp status` says `degraded` with a reason naming the
channel, the file and the date, `GET /ready` stays 200 (the engine's other channels work; see
docs/operations.md) while `GET /ready?strict=1` answers 503, and the channel keeps listening.

Real engine (LiveEngine as `bsp run` runs it), real TLS on 127.0.0.1 (port 0), a certificate made by
engine/certs.py to expire a few seconds after the engine started."""
from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import struct
import time
from pathlib import Path

import trio
from cryptography import x509

from engine.certs import new_ca
from engine.ops.backend import EngineBackend
from engine.tls import client_context
from opskit import ECHO, live

TLS_ECHO = ECHO.replace('    framing = length2\n', '    framing = length2\n    cert = "%(cert)s"\n    key = "%(key)s"\n', 1) \
    .replace('tag = "%s"', 'tag = "x"')
LIFE = 3.0          # seconds the certificate is valid after it is made


def date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


async def echo(port: int, context: ssl.SSLContext, ref: str) -> dict:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context)
    try:
        body = json.dumps({"ref": ref}).encode()
        await stream.send_all(struct.pack(">H", len(body)) + body)
        buf = b""
        with trio.fail_after(10):
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                chunk = await stream.receive_some(65536)
                assert chunk, "connection closed before the reply"
                buf += chunk
        return json.loads(buf[2:])
    finally:
        await trio.aclose_forcefully(stream)


async def test_an_own_certificate_expiring_while_running_degrades_the_engine(tmp_path: Path, caplog) -> None:
    ca = new_ca("bsp test CA", days=365)
    ca_pem, _ = ca.write(tmp_path / "pki" / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True,
                         days=dt.timedelta(seconds=LIFE)).write(tmp_path / "pki" / "server")
    after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc.timestamp()
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO % {"cert": cert, "key": key})
    caplog.set_level(logging.WARNING, logger="bsp.certs")
    verifying = client_context(ca_pem, None, None, "localhost")
    async with live([route], tmp_path / "l.duckdb") as eng:
        backend = EngineBackend(eng, eng.observer)
        port = eng.current.channels["front"].port
        assert time.time() < after, "the certificate expired before the engine started: make LIFE longer"
        doc = await backend.status()
        assert doc["state"] == "ready", doc["reasons"]
        assert (await echo(port, verifying, "A1"))["ref"] == "A1"
        # it expires while the engine runs: the error line comes at that moment, not at the daily reminder
        with trio.fail_after(LIFE + 10):
            while not [r for r in caplog.records if r.levelno == logging.ERROR]:
                await trio.sleep(0.05)
        line = (f"channel front: server certificate {cert} (subject CN=localhost) expired on {date(after)}")
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            f"{line}: counterparts refuse it; renew it, write the new file over the old one (same path), then "
            f"run `bsp reload`"]
        assert time.time() >= after
        doc = await backend.status()
        assert doc["state"] == "degraded"
        assert doc["reasons"] == [
            f"{line}: counterparts refuse the TLS handshake; the channel keeps running; renew it, write the new "
            f"file over the old one (same path), then run `bsp reload`"]
        from engine.commands.top import render           # bsp status --table / bsp top: the head line
        from rich.console import Console
        console = Console(width=250, record=True)
        console.print(render(doc, None, 0, {}))
        text = console.export_text()
        assert "DEGRADED (1 certificate expired)" in text and f"degraded: {line}" in text, text
        # readiness: the engine's other channels work, so it stays in rotation unless asked strictly
        assert (await backend.ready()).ready
        strict = await backend.ready(strict=True)
        assert not strict.ready and strict.reason == "strict: " + doc["reasons"][0]
        # the channel keeps listening: a verifying peer refuses the certificate, one that does not is served
        try:
            await echo(port, verifying, "A2")
        except trio.BrokenResourceError as exc:
            assert "certificate has expired" in str(exc.__cause__), exc.__cause__
        else:
            raise AssertionError("a verifying client accepted an expired certificate")
        lenient = client_context(None, None, None, None)
        lenient.check_hostname = False
        lenient.verify_mode = ssl.CERT_NONE
        assert (await echo(port, lenient, "A3"))["ref"] == "A3"
        assert eng.current.channels["front"].port == port
        # and the daily reminder, a day on, says it again
        caplog.clear()
        assert eng.cert_notices(time.time() + 86400) == 1
        assert caplog.records[0].levelno == logging.ERROR and caplog.records[0].getMessage().startswith(line)
