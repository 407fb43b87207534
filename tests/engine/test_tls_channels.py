"""TLS and mutual TLS on tcp listen / tcp connect, the access list, failed handshakes, openssl interop."""
from __future__ import annotations

import logging
import shutil
import ssl

import pytest
import trio

from conftest_tls import PKI, pki  # noqa: F401  (fixture)
from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.channels.options import ChannelConfigError
from engine.channels.tcp_listen import TcpListener
from engine.tls import client_context
from formats.framing import LengthPrefixFramer


class Upper:
    async def handle(self, conn, frames):
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return None


def tls_opts(p: PKI, **kw) -> dict:
    return {"address": "127.0.0.1:0", "framing": "length2", "cert": str(p.server_cert),
            "key": str(p.server_key), "ca": str(p.ca), "client_cert": "required", **kw}


async def listen(nursery, **opts) -> TcpListener:
    lst = TcpListener("mainframe", opts)
    await nursery.start(lst.serve, Upper())
    return lst


async def tls_client(port: int, ctx: ssl.SSLContext) -> trio.SSLStream:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    await stream.do_handshake()
    return stream


async def roundtrip(stream: trio.abc.Stream, payload: bytes) -> bytes | None:
    """Send one frame, read one answer (None: closed without one); the stream is closed after."""
    f = LengthPrefixFramer(2)
    try:
        await stream.send_all(f.frame(payload))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return None
            got = f.feed(data)
            if got:
                return got[0]
    except trio.BrokenResourceError:
        return None
    finally:
        await trio.aclose_forcefully(stream)


async def test_mutual_tls_listen_and_connect(nursery, pki: PKI) -> None:
    lst = await listen(nursery, **tls_opts(pki, allow=["cn:MAINFRAME01", "ip:127.0.0.0/8"]))
    ch = MuxConnector("out", {"address": f"127.0.0.1:{lst.port}", "framing": "length2", "ca": str(pki.ca),
                              "cert": str(pki.client_cert), "key": str(pki.client_key),
                              "server_name": "localhost", "pool": 2})
    await nursery.start(ch.run)
    got = await ch.request_many([b"hello", b"tls"])
    assert got == [b"HELLO", b"TLS"]
    assert lst.gate.admitted >= 1 and lst.gate.refused == 0
    assert ch.pool.conns and all(isinstance(c.stream, trio.SSLStream) for c in ch.pool.conns)
    version = ch.pool.conns[0].stream.version()
    assert version in ("TLSv1.2", "TLSv1.3")


async def test_access_list_refuses_other_certificate_and_keeps_serving(nursery, pki: PKI, caplog) -> None:
    lst = await listen(nursery, **tls_opts(pki, allow=["cn:MAINFRAME01"]))
    intruder = client_context(pki.ca, pki.intruder_cert, pki.intruder_key, "localhost")
    with caplog.at_level(logging.WARNING, "bsp.channel.tls"):
        s = await tls_client(lst.port, intruder)
        assert await roundtrip(s, b"let me in") is None        # closed without an answer
    assert lst.gate.refused == 1
    assert "refused by the access list: client certificate (cn INTRUDER; dns intruder.example) " \
           "matches none of cn:MAINFRAME01" in caplog.text
    good = await tls_client(lst.port, client_context(pki.ca, pki.client_cert, pki.client_key, "localhost"))
    assert await roundtrip(good, b"ok") == b"OK"


async def test_source_address_rule_refuses_plain_tcp_peer(nursery) -> None:
    lst = await listen(nursery, address="127.0.0.1:0", framing="length2", allow=["ip:10.0.0.0/8"])
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    assert await roundtrip(s, b"x") is None
    assert lst.gate.refused == 1 and "127.0.0.1" in lst.gate.last_refusal
    assert "source address 127.0.0.1 matches none of ip:10.0.0.0/8" in lst.gate.last_refusal


@pytest.mark.parametrize("who", ["stranger", "no_cert", "plain_tcp"])
async def test_failed_handshake_is_logged_counted_and_closed(nursery, pki: PKI, caplog, who: str) -> None:
    lst = await listen(nursery, **tls_opts(pki))
    with caplog.at_level(logging.WARNING, "bsp.channel.tls"):
        if who == "plain_tcp":
            s = await trio.open_tcp_stream("127.0.0.1", lst.port)
            assert await roundtrip(s, b"plain") is None
        else:
            ctx = (client_context(pki.ca, pki.stranger_cert, pki.stranger_key, "localhost") if who == "stranger"
                   else client_context(pki.ca, server_hostname="localhost"))
            try:
                s = await tls_client(lst.port, ctx)
            except trio.BrokenResourceError:
                pass                            # TLS 1.2: refused in the handshake
            else:                               # TLS 1.3: the server's verdict arrives after it
                assert await roundtrip(s, b"x") is None
        with trio.fail_after(30):               # a hang guard: the server counts the failed handshake soon
            while lst.gate.tls_failures < 1:
                await trio.sleep(0.01)
    assert "TLS handshake with 127.0.0.1" in caplog.text
    # the engine keeps serving everyone else
    good = await tls_client(lst.port, client_context(pki.ca, pki.client_cert, pki.client_key, "localhost"))
    assert await roundtrip(good, b"still here") == b"STILL HERE"


async def test_connect_side_refuses_server_of_unknown_ca(nursery, pki: PKI) -> None:
    lst = await listen(nursery, address="127.0.0.1:0", framing="length2", cert=str(pki.server_cert),
                       key=str(pki.server_key))
    ch = MuxConnector("out", {"address": f"127.0.0.1:{lst.port}", "framing": "length2",
                              "ca": str(pki.stranger_ca), "server_name": "localhost", "timeout": 2})
    await nursery.start(ch.run)
    (r,) = await ch.request_many([b"x"])
    assert isinstance(r, ChannelError) and r.kind == "unreachable"
    assert "TLS handshake with 127.0.0.1" in str(r) and "CERTIFICATE_VERIFY_FAILED" in str(r)
    assert ch.pool.tls_failures >= 1


def test_tls_option_errors_name_the_fix(pki: PKI) -> None:
    with pytest.raises(ChannelConfigError, match="need `cert`"):
        TcpListener("m", {"address": "127.0.0.1:0", "ca": str(pki.ca)})
    with pytest.raises(ChannelConfigError, match="certificate rules but no client certificate"):
        TcpListener("m", {"address": "127.0.0.1:0", "allow": ["cn:X"]})
    with pytest.raises(ChannelConfigError, match="does not exist"):
        TcpListener("m", {"address": "127.0.0.1:0", "cert": "/nonexistent.pem", "key": str(pki.server_key)})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is not installed")
async def test_interop_with_openssl_s_client(nursery, pki: PKI) -> None:
    lst = await listen(nursery, **tls_opts(pki, allow=["cn:MAINFRAME01"], idle_timeout=1))
    frame = LengthPrefixFramer(2).frame(b"from openssl")
    proc = await trio.run_process(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{lst.port}", "-CAfile", str(pki.ca),
         "-cert", str(pki.client_cert), "-key", str(pki.client_key), "-servername", "localhost",
         "-verify_return_error", "-quiet", "-ign_eof"],
        stdin=frame, capture_stdout=True, capture_stderr=True, check=False)
    assert LengthPrefixFramer(2).feed(proc.stdout) == [b"FROM OPENSSL"], proc.stderr
    # and s_client without a client certificate is turned away
    proc = await trio.run_process(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{lst.port}", "-CAfile", str(pki.ca),
         "-servername", "localhost", "-quiet", "-ign_eof"],
        stdin=frame, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.stdout == b""
    assert lst.gate.tls_failures >= 1


def test_docs_tls_examples_compile_and_bind(tmp_path, pki: PKI) -> None:
    """docs/channels.md `route-tls` blocks, with the certificates they name written beside them."""
    import re

    from engine.registry import default_registry
    from kit import REPO, compile_text

    certs = tmp_path / "certs"
    certs.mkdir()
    for src, dst in ((pki.server_cert, "server.pem"), (pki.server_key, "server.key"), (pki.ca, "ca.pem"),
                     (pki.client_cert, "client.pem"), (pki.client_key, "client.key")):
        (certs / dst).write_bytes(src.read_bytes())
    blocks = re.findall(r"```route-tls\n(.*?)```", (REPO / "docs" / "channels.md").read_text(), re.S)
    assert blocks
    reg = default_registry()
    for i, block in enumerate(blocks):
        prog = compile_text(tmp_path, block, name=f"tls{i}.route")
        for decl in prog.channels.values():
            ch = reg.get("channel", decl.kind).build(decl)      # the TLS contexts load
            assert getattr(ch, "gate", None) is not None or getattr(ch, "ssl_context", None) is not None


async def test_expired_client_certificate_is_named_as_expired_not_as_another_ca(nursery, tmp_path, caplog) -> None:
    """A client certificate of the right CA that has expired: the log says so, and does not send the
    operator after the CA bundle ("does not chain to `ca`")."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from engine.certs import Issued, new_ca

    ca = new_ca("expiry test CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    server_cert, server_key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(
        tmp_path / "server")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    old = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MAINFRAME01")]))
           .issuer_name(ca.cert.subject).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(days=60)).not_valid_after(now - dt.timedelta(days=1))
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .sign(ca.key, hashes.SHA256()))
    client_cert, client_key = Issued(old, key).write(tmp_path / "expired")
    lst = await listen(nursery, address="127.0.0.1:0", framing="length2", cert=str(server_cert),
                       key=str(server_key), ca=str(ca_pem), client_cert="required")
    with caplog.at_level(logging.WARNING, "bsp.channel.tls"):
        try:
            s = await tls_client(lst.port, client_context(ca_pem, client_cert, client_key, "localhost"))
        except trio.BrokenResourceError:
            pass
        else:
            assert await roundtrip(s, b"x") is None
        with trio.fail_after(30):               # a hang guard: the server counts the failed handshake soon
            while lst.gate.tls_failures < 1:
                await trio.sleep(0.01)
    assert "certificate has expired" in caplog.text and "must renew it" in caplog.text, caplog.text
    assert "does not chain" not in caplog.text


async def test_a_client_that_drops_its_tls_connection_is_logged_with_a_reason(nursery, pki: PKI, caplog) -> None:
    """A mainframe that closes its socket without ending the TLS session (no close_notify) used to be
    logged as `receive failed: ` with nothing after it: the admin could not tell what happened."""
    caplog.set_level(logging.INFO, logger="bsp.channel")
    lst = await listen(nursery, **tls_opts(pki))
    s = await tls_client(lst.port, client_context(pki.ca, pki.client_cert, pki.client_key, "localhost"))
    f = LengthPrefixFramer(2)
    await s.send_all(f.frame(b"hi"))
    got: list[bytes] = []
    while not got:
        got = f.feed(await s.receive_some(65536))
    assert got == [b"HI"]
    await s.transport_stream.aclose()                  # the TCP socket closed under the TLS session
    with trio.fail_after(5):
        while not [r for r in caplog.records if "receive failed" in r.getMessage()]:
            await trio.sleep(0.01)
    (line,) = [r.getMessage() for r in caplog.records if "receive failed" in r.getMessage()]
    assert line.endswith("receive failed: UNEXPECTED_EOF_WHILE_READING: the client closed the connection "
                         "without ending the TLS session (no close_notify; harmless once it has its replies)"), line
