"""engine.tls / engine.access / engine.certs over real loopback TLS with trio.SSLStream."""
from __future__ import annotations

import os
import shutil
import ssl
import warnings
from functools import partial

import pytest
import trio
import trio.testing

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.access import AccessList, AccessListError
from engine.certs import write_dev_set
from engine.tls import TLSConfigError, client_context, peer_identity, server_context


class EchoServer:
    """Handshakes, checks the access list, echoes one line back with the peer's CN."""

    def __init__(self, access: AccessList | None = None) -> None:
        self.access = access or AccessList()
        self.errors: list[BaseException] = []
        self.peercerts: list[dict] = []

    async def handle(self, stream: trio.SSLStream) -> None:
        try:
            await stream.do_handshake()
            cert = stream.getpeercert()
            self.peercerts.append(cert)
            ok, reason = self.access.check(stream.transport_stream.socket.getpeername(), cert)
            if not ok:
                await stream.send_all(b"DENIED " + reason.encode() + b"\n")
                return
            data = await stream.receive_some(1024)
            cn = ",".join(peer_identity(cert)["cn"]) or "-"
            await stream.send_all(b"OK " + cn.encode() + b" " + data)
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            await trio.aclose_forcefully(stream)


async def start(nursery: trio.Nursery, ctx: ssl.SSLContext, server: EchoServer) -> int:
    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, server.handle, 0, ctx, host="127.0.0.1"))
    return listeners[0].transport_listener.socket.getsockname()[1]


async def talk(port: int, ctx: ssl.SSLContext, payload: bytes = b"hello\n") -> bytes:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    try:
        with trio.fail_after(5):
            await stream.send_all(payload)
            out = b""
            while not out.endswith(b"\n"):
                chunk = await stream.receive_some(1024)
                if not chunk:
                    break
                out += chunk
            return out
    finally:
        await trio.aclose_forcefully(stream)


async def test_handshake_ok_server_only(pki, nursery):
    server = EchoServer()
    port = await start(nursery, server_context(pki.server_cert, pki.server_key), server)
    assert await talk(port, client_context(ca=pki.ca)) == b"OK - hello\n"
    assert server.peercerts == [None]      # no client certificate asked for


async def test_mutual_tls_exposes_client_identity(pki, nursery):
    server = EchoServer()
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await start(nursery, ctx, server)
    client = client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    assert await talk(port, client) == b"OK MAINFRAME01 hello\n"
    ident = peer_identity(server.peercerts[0])
    assert ident["email"] == ["ops@bank.example"] and ident["uri"] == ["spiffe://bank/mainframe"]


async def test_required_client_cert_missing_is_refused(pki, nursery):
    server = EchoServer()
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await start(nursery, ctx, server)
    # TLS 1.3: the client may finish its handshake before the server says no; the
    # refusal then shows on the first read.
    with pytest.raises((trio.BrokenResourceError, ssl.SSLError)):
        out = await talk(port, client_context(ca=pki.ca))
        assert out == b"", out   # a clean EOF without an answer also counts as refused
        raise trio.BrokenResourceError("closed without answer")
    await trio.testing.wait_all_tasks_blocked()
    assert server.errors and "certificate" in str(server.errors[0].__cause__ or server.errors[0]).lower()


async def test_client_cert_from_wrong_ca_is_refused(pki, nursery):
    server = EchoServer()
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await start(nursery, ctx, server)
    client = client_context(ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
    with pytest.raises((trio.BrokenResourceError, ssl.SSLError)):
        out = await talk(port, client)
        raise trio.BrokenResourceError(f"closed without answer: {out!r}")
    await trio.testing.wait_all_tasks_blocked()
    assert server.errors, "the server should have failed the handshake"
    assert "certificate verify failed" in str(server.errors[0].__cause__).lower()


async def test_server_from_wrong_ca_is_refused_by_client(pki, nursery):
    server = EchoServer()
    port = await start(nursery, server_context(pki.server_cert, pki.server_key), server)
    with pytest.raises(trio.BrokenResourceError) as info:
        await talk(port, client_context(ca=pki.stranger_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value.__cause__)


async def test_server_hostname_override_is_verified(pki, nursery):
    server = EchoServer()
    port = await start(nursery, server_context(pki.server_cert, pki.server_key), server)
    # dialled by address, verified as "localhost": fine
    assert (await talk(port, client_context(ca=pki.ca, server_hostname="localhost"))).startswith(b"OK")
    # a name the certificate does not carry: refused
    with pytest.raises(trio.BrokenResourceError) as info:
        await talk(port, client_context(ca=pki.ca, server_hostname="biller.example"))
    assert "biller.example" in str(info.value.__cause__)


async def test_access_list_refuses_wrong_cn(pki, nursery):
    access = AccessList.parse(["cn:MAINFRAME01", "ip:127.0.0.0/8"])
    server = EchoServer(access)
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await start(nursery, ctx, server)
    ok = await talk(port, client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key))
    assert ok == b"OK MAINFRAME01 hello\n"
    denied = await talk(port, client_context(ca=pki.ca, cert=pki.intruder_cert, key=pki.intruder_key))
    assert denied.startswith(b"DENIED client certificate (cn INTRUDER; dns intruder.example) matches none of")


async def test_tls_1_1_is_refused(pki, nursery):
    def old_client() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():       # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        return ctx

    # Control: a deliberately weak server does speak TLS 1.1 with this client here,
    # so the refusal below is our context's doing, not the local OpenSSL's.
    weak = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        weak.minimum_version = ssl.TLSVersion.TLSv1_1
    weak.set_ciphers("DEFAULT:@SECLEVEL=0")
    weak.load_cert_chain(pki.server_cert, pki.server_key)
    weak_port = await start(nursery, weak, EchoServer())
    try:
        await talk(weak_port, old_client())
    except trio.BrokenResourceError:
        pytest.skip("this OpenSSL build cannot speak TLS 1.1 at all; nothing to compare with")

    server = EchoServer()
    port = await start(nursery, server_context(pki.server_cert, pki.server_key), server)
    with pytest.raises(trio.BrokenResourceError):
        await talk(port, old_client())
    await trio.testing.wait_all_tasks_blocked()
    assert "unsupported_protocol" in str(server.errors[0].__cause__).lower()


def test_contexts_enforce_tls12_minimum(pki):
    assert server_context(pki.server_cert, pki.server_key).minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_context(ca=pki.ca).minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_and_bad_files_are_named(pki, tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(TLSConfigError) as info:
        server_context(missing, pki.server_key)
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert info.value.path == str(missing) and "bsp certs dev" in str(info.value)

    with pytest.raises(TLSConfigError) as info:
        server_context(pki.server_cert, pki.server_key, ca=tmp_path / "ca.pem", client_cert="required")
    assert "CA bundle" in str(info.value) and "ca.pem" in str(info.value)

    not_pem = tmp_path / "der.pem"
    not_pem.write_bytes(b"\x30\x82\x01\x0a garbage")
    with pytest.raises(TLSConfigError) as info:
        client_context(ca=not_pem)
    assert str(not_pem) in str(info.value) and "PEM" in str(info.value)

    with pytest.raises(TLSConfigError) as info:       # key of another certificate
        server_context(pki.server_cert, pki.client_key)
    assert "does not belong" in str(info.value) and str(pki.client_key) in str(info.value)

    with pytest.raises(TLSConfigError) as info:
        server_context(pki.server_cert, pki.server_key, client_cert="required")
    assert "needs a CA bundle" in str(info.value)

    with pytest.raises(TLSConfigError) as info:
        server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="yes")
    assert "none, optional, required" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; permissions cannot be tested")
def test_unreadable_key_is_named(pki, tmp_path):
    key = tmp_path / "server.key"
    key.write_bytes(pki.server_key.read_bytes())
    key.chmod(0)
    with pytest.raises(TLSConfigError) as info:
        server_context(pki.server_cert, key)
    assert "cannot be read" in str(info.value) and str(key) in str(info.value)


# ------------------------------------------------------------------ access lists

def test_access_list_rules():
    cert = {"subject": ((("commonName", "MAINFRAME01"),),),
            "subjectAltName": (("DNS", "api.biller.example"), ("email", "Ops@Bank.example"),
                               ("URI", "spiffe://bank/mf"), ("IP Address", "10.0.0.7"))}
    cases = [
        (["cn:MAINFRAME01"], True), (["cn:mainframe01"], False),
        (["san:dns:api.biller.example"], True), (["san:dns:*.biller.example"], True),
        (["san:dns:*.example"], False), (["san:email:ops@bank.example"], True),
        (["san:uri:spiffe://bank/mf"], True), (["san:uri:spiffe://bank/other"], False),
        (["san:ip:10.0.0.7"], True), (["ip:10.0.0.0/8"], True), (["ip:192.168.0.0/16"], False),
        (["ip:10.0.0.0/8", "cn:OTHER"], False), (["ip:192.168.0.0/16", "cn:MAINFRAME01"], False),
        (["ip:192.168.0.0/16", "ip:10.1.2.3", "cn:OTHER", "cn:MAINFRAME01"], True),
        ([], True),
    ]
    for rules, expected in cases:
        allowed, reason = AccessList.parse(rules).check(("10.1.2.3", 5555), cert)
        assert allowed is expected, (rules, reason)


def test_access_list_addresses_ipv6_and_forms():
    acl = AccessList.parse(["ip:::1", "ip:127.0.0.1"])
    assert acl.check(("::1", 80, 0, 0), None)[0]
    assert acl.check("127.0.0.1:9", None)[0]
    assert acl.check(("::ffff:127.0.0.1", 80, 0, 0), None)[0]     # v4-mapped
    assert acl.check("[::1]:8080", None)[0]
    allowed, reason = acl.check(("10.0.0.1", 1), None)
    assert not allowed and "10.0.0.1" in reason and "ip:::1, ip:127.0.0.1" in reason


def test_access_list_needs_a_certificate_for_identity_rules():
    allowed, reason = AccessList.parse(["cn:X"]).check(("127.0.0.1", 1), {})
    assert not allowed and "no verified client certificate" in reason


def test_access_list_parse_errors_name_the_entry():
    for entries, needle in [(["cn:A", "host:x"], "entry 2 ('host:x'): unknown kind 'host'"),
                            (["ip:300.1.1.1/8"], "is not an IPv4/IPv6 address"),
                            (["san:dn:x"], "unknown SAN kind 'dn'"),
                            (["MAINFRAME01"], "missing \"kind:\" prefix"),
                            ("cn:A", "expected a list of strings")]:
        with pytest.raises(AccessListError) as info:
            AccessList.parse(entries)
        assert needle in str(info.value) and "ip:127.0.0.0/8" in str(info.value)


# ------------------------------------------------------------------ openssl interop

async def test_openssl_s_client_interop(pki, nursery, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl binary is not installed")
    dev = write_dev_set(tmp_path / "dev", client_cn="S-CLIENT")
    server = EchoServer(AccessList.parse(["cn:S-CLIENT"]))
    ctx = server_context(dev.server_cert, dev.server_key, ca=dev.ca, client_cert="required")
    port = await start(nursery, ctx, server)

    async def s_client(*extra: str) -> trio.CompletedProcess:
        cmd = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
               "-CAfile", str(dev.ca), "-verify_return_error", "-verify_hostname", "localhost",
               "-quiet", *extra]
        with trio.fail_after(10):
            return await trio.run_process(cmd, stdin=b"ping\n", capture_stdout=True, capture_stderr=True,
                                          check=False)

    done = await s_client("-cert", str(dev.client_cert), "-key", str(dev.client_key))
    assert done.stdout == b"OK S-CLIENT ping\n", done.stderr.decode(errors="replace")

    old = await s_client("-cert", str(dev.client_cert), "-key", str(dev.client_key), "-tls1_1")
    assert old.returncode != 0 and b"OK" not in old.stdout

    anonymous = await s_client()
    assert b"OK" not in anonymous.stdout
