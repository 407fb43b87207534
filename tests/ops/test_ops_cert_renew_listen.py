"""A listening channel's certificate renewed at the same path: `bsp reload` used to rebind the channel (a
new listener on the same port once the old one closed), which left the port closed for a few milliseconds:
a client connecting in a loop during the reload saw connects refused (up to ~200 in 3 ms) and, now and
then, a connection reset (it was waiting in the old socket's accept queue); every open connection was
retired too.  Now a change to the `cert` / `ca` files alone gives the channel a new TLS context: the
listening socket and the open connections stay, the connections accepted from then on get the new
certificate.  Files that cannot be used, or a certificate already expired, refuse the reload.

Real engine (LiveEngine as `bsp run` runs it), real TLS on 127.0.0.1 (a free port: the same address before
and after), certificates made by engine/certs.py."""
from __future__ import annotations

import errno
import json
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509

from engine.certs import new_ca
from engine.tls import client_context
from opskit import ECHO, free_port, live

TCP = ECHO.replace('    framing = length2\n', '    framing = length2\n    cert = "%(cert)s"\n    key = "%(key)s"\n', 1) \
    .replace('"127.0.0.1:0"', '"127.0.0.1:%(port)d"').replace('tag = "%s"', 'tag = "x"')

HTTP = """
format Req = json
channel front = http listen {
    address = "127.0.0.1:%(port)d"
    path = "/echo"
    cert = "%(cert)s"
    key = "%(key)s"
}
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


@pytest.fixture
def pki(tmp_path: Path) -> dict:
    d = tmp_path / "pki"
    ca = new_ca("bsp test CA", days=365)
    ca_pem, _ = ca.write(d / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=10).write(d / "server")
    return {"ca": ca, "ca_pem": ca_pem, "cert": cert, "key": key, "dir": d}


def not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()


def peer_not_after(stream: trio.SSLStream) -> float:
    return float(ssl.cert_time_to_seconds(stream.getpeercert()["notAfter"]))


async def connect(port: int, ca: Path) -> trio.SSLStream:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port,
                                                 ssl_context=client_context(ca, None, None, "localhost"))
    await stream.do_handshake()
    return stream


async def read_exactly(stream: trio.SSLStream, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


async def tcp_echo(stream: trio.SSLStream, ref: str) -> dict:
    body = json.dumps({"ref": ref}).encode()
    await stream.send_all(struct.pack(">H", len(body)) + body)
    buf = bytearray()
    with trio.fail_after(10):
        (n,) = struct.unpack(">H", await read_exactly(stream, 2, buf))
        return json.loads(await read_exactly(stream, n, buf))


async def http_echo(stream: trio.SSLStream, ref: str) -> tuple[dict, str]:
    """One request on a kept-alive connection: (the body, the Connection header)."""
    body = json.dumps({"ref": ref}).encode()
    await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    buf = bytearray()
    with trio.fail_after(10):
        while b"\r\n\r\n" not in buf:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise EOFError("connection closed before the reply's headers")
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.decode().partition(":") for line in head.split(b"\r\n")[1:])}
        return json.loads(await read_exactly(stream, int(headers["content-length"]), bytearray(rest))), \
            headers.get("connection", "")


class Dialer:
    """A client connecting (TCP, then the TLS handshake) in a loop from a thread, as a mainframe or a
    partner does while the reload runs; counts what failed."""

    def __init__(self, port: int, ca: Path) -> None:
        self.port, self.ctx = port, ssl.create_default_context(cafile=str(ca))
        self.ok, self.failed = 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError as exc:
                self.failed.append("refused" if exc.errno == errno.ECONNREFUSED else repr(exc))
                continue
            try:
                with self.ctx.wrap_socket(raw, server_hostname="localhost"):
                    self.ok += 1
            except OSError as exc:
                self.failed.append(repr(exc))
            finally:
                raw.close()


@pytest.mark.parametrize("kind", ["tcp", "http"])
async def test_a_certificate_renewed_in_place_keeps_the_socket_and_open_connections(tmp_path: Path, pki,
                                                                                    kind: str) -> None:
    port = free_port()
    route = tmp_path / "r.route"
    route.write_text((TCP if kind == "tcp" else HTTP) % {"port": port, "cert": pki["cert"], "key": pki["key"]})
    old_after = not_after(pki["cert"])
    async with live([route], tmp_path / "l.duckdb") as eng:
        channel = eng.current.channels["front"]
        before = await connect(port, pki["ca_pem"])
        assert peer_not_after(before) == old_after
        if kind == "tcp":
            assert (await tcp_echo(before, "A1"))["ref"] == "A1"
        else:
            assert (await http_echo(before, "A1"))[0] == {"ref": "A1"}
        dialer = Dialer(port, pki["ca_pem"])
        dialer.thread.start()
        await trio.sleep(0.2)
        # the admin renews the certificate: new files at the same paths; the route file is unchanged
        pki["ca"].issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True,
                        days=400).write(pki["dir"] / "server")
        new_after = not_after(pki["cert"])
        dry = await eng.reload(dry_run=True)
        assert dry.ok and dry.plan["channels"]["changed"] == ["front"], dry
        result = await eng.reload()
        await trio.sleep(0.2)
        dialer.stop.set()
        await trio.to_thread.run_sync(dialer.thread.join)
        assert result.ok, result
        assert result.plan["why"]["channels"]["front"] == (
            "certificate files changed (cert, key): new connections get them; the socket and open connections are kept")
        # the port never closed: not one connect refused or reset while the reload ran
        assert dialer.failed == [] and dialer.ok > 0, (dialer.failed[:5], len(dialer.failed), dialer.ok)
        assert eng.current.channels["front"] is channel
        # the connection opened before the reload is still served, with the certificate it was made with
        assert peer_not_after(before) == old_after
        if kind == "tcp":
            assert (await tcp_echo(before, "A2"))["ref"] == "A2"
        else:
            assert await http_echo(before, "A2") == ({"ref": "A2"}, "")        # not retired: no Connection: close
        # a new connection gets the new certificate
        after = await connect(port, pki["ca_pem"])
        assert peer_not_after(after) == new_after
        if kind == "tcp":
            assert (await tcp_echo(after, "B1"))["ref"] == "B1"
        else:
            assert (await http_echo(after, "B1"))[0] == {"ref": "B1"}
        for s in (before, after):
            await trio.aclose_forcefully(s)


async def test_renewed_files_that_cannot_be_used_refuse_the_reload(tmp_path: Path, pki) -> None:
    port = free_port()
    route = tmp_path / "r.route"
    route.write_text(TCP % {"port": port, "cert": pki["cert"], "key": pki["key"]})
    old_after = not_after(pki["cert"])
    async with live([route], tmp_path / "l.duckdb") as eng:
        # a certificate written over the old one, its key not yet: the key does not belong to it
        renewed = pki["ca"].issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=400)
        pki["cert"].write_bytes(renewed.cert_pem)
        for dry_run in (True, False):
            result = await eng.reload(dry_run=dry_run)
            assert not result.ok
            assert result.diagnostics == [
                f"error: channel front: server tls key: private key {str(pki['key'])!r} does not belong to "
                f"certificate {str(pki['cert'])!r} (hint: use the key file generated together with this "
                f"certificate); the channel keeps serving the certificate it has"], result.diagnostics
        stream = await connect(port, pki["ca_pem"])
        assert peer_not_after(stream) == old_after
        assert (await tcp_echo(stream, "A1"))["ref"] == "A1"
        await trio.aclose_forcefully(stream)
        # a certificate (and its key) that has already expired
        expired = pki["ca"].issue("localhost", dns=["localhost"], server=True, days=-1)
        expired.write(pki["dir"] / "server")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after(pki["cert"])))
        result = await eng.reload()
        assert not result.ok
        assert result.diagnostics == [
            f"error: channel front: server certificate {pki['cert']} (subject CN=localhost) expired on {when}: "
            f"counterparts would refuse it; the channel keeps serving the certificate it has; write a valid "
            f"certificate and its key over the files, then reload"], result.diagnostics
        stream = await connect(port, pki["ca_pem"])
        assert peer_not_after(stream) == old_after
        await trio.aclose_forcefully(stream)


def reissue_same_key(pki: dict, days: int) -> None:
    """The server certificate issued again for ``days`` with the key it has (a renewal from the same CSR):
    only the certificate file is rewritten."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    old = x509.load_pem_x509_certificate(pki["cert"].read_bytes())
    key = serialization.load_pem_private_key(pki["key"].read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki["ca"].cert_pem)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
               .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    pki["cert"].write_bytes(builder.sign(pki["ca"].key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


async def test_a_certificate_of_a_deployment_override_renewed_with_its_key_is_served_after_the_reload(
        tmp_path: Path, pki) -> None:
    """The deployment file's `channels: {front: {cert: tls/server.pem, key: tls/server.key}}` (paths relative to
    it, as docs/deployment.md writes them), the certificate renewed with the same key: the reload compared the
    relative paths with the configuration's files (kept by absolute path), saw nothing changed, kept the
    channel with its old TLS context, and said `channels kept: front` while `bsp status` showed the new expiry:
    the old certificate went on being served until it expired."""
    from engine.deploy import ChannelOverrides

    port = free_port()
    route = tmp_path / "r.route"
    route.write_text(ECHO.replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"').replace('tag = "%s"', 'tag = "x"'))
    rel = {o: str(pki[o].relative_to(tmp_path)) for o in ("cert", "key")}
    overrides = ChannelOverrides({"front": dict(rel)}, base=tmp_path, source="platform.yaml")
    old_after = not_after(pki["cert"])
    async with live([route], tmp_path / "l.duckdb", overrides=overrides) as eng:
        before = await connect(port, pki["ca_pem"])
        assert peer_not_after(before) == old_after
        reissue_same_key(pki, 400)
        new_after = not_after(pki["cert"])
        assert new_after > old_after
        result = await eng.reload()
        assert result.ok, result
        assert result.plan["channels"]["changed"] == ["front"], result.plan
        assert result.plan["why"]["channels"]["front"].startswith("certificate files changed (cert): "), result.plan
        after = await connect(port, pki["ca_pem"])
        assert peer_not_after(after) == new_after             # the renewed certificate is served
        assert (await tcp_echo(after, "B1"))["ref"] == "B1"
        for stream in (before, after):
            await trio.aclose_forcefully(stream)
