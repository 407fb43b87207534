"""TLS faults seen from the calling side (tcp connect / MUX) and crossed protocols: each gives one error
naming the channel and what to fix, not OpenSSL's bare text."""
from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import logging

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest_tls import PKI, pki  # noqa: F401  (fixture)
from engine.certs import CA, Issued, new_ca
from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.channels.tcp_listen import TcpListener

_N = itertools.count()


def server_cert(ca: CA, tmp_path, *, days_from: int, days_to: int) -> tuple[str, str]:
    """A server certificate for localhost / 127.0.0.1 valid from ``days_from`` to ``days_to`` days from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days_from))
            .not_valid_after(now + dt.timedelta(days=days_to))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    c, k = Issued(cert, key).write(tmp_path / f"server{next(_N)}")
    return str(c), str(k)


class Upper:
    async def handle(self, conn, frames):
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return None


async def listen(nursery, **opts) -> TcpListener:
    lst = TcpListener("mainframe", {"address": "127.0.0.1:0", "framing": "length2", **opts})
    await nursery.start(lst.serve, Upper())
    return lst


async def call(nursery, port: int, **opts) -> ChannelError | bytes:
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length2", "timeout": 2,
                                 "connect_timeout": 1, **opts})
    await nursery.start(ch.run)
    with trio.fail_after(10):
        (r,) = await ch.request_many([b"x"])
    return r


@pytest.mark.parametrize("case, fix", [
    ("expired", "the counterpart's certificate has expired: the counterpart must renew it"),
    ("not_yet_valid", "the counterpart's certificate is not valid yet: check its notBefore and both clocks"),
    ("wrong_host", "set server_name to a name it carries"),
    ("untrusted", "`ca` must hold the CA that issued the counterpart's certificate"),
])
async def test_a_bad_server_certificate_gives_one_error_naming_channel_and_fix(nursery, pki: PKI, tmp_path,
                                                                             case: str, fix: str) -> None:
    ca = new_ca("faults CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = {
        "expired": lambda: server_cert(ca, tmp_path, days_from=-60, days_to=-1),
        "not_yet_valid": lambda: server_cert(ca, tmp_path, days_from=5, days_to=60),
        "wrong_host": lambda: server_cert(ca, tmp_path, days_from=-1, days_to=30),
        "untrusted": lambda: (str(pki.server_cert), str(pki.server_key)),
    }[case]()
    lst = await listen(nursery, cert=cert, key=key)
    r = await call(nursery, lst.port, ca=str(ca_pem), server_name="bank.example" if case == "wrong_host" else "localhost")
    assert isinstance(r, ChannelError) and r.kind == "unreachable", r
    text = str(r)
    assert text.startswith(f"channel issuer: TLS handshake with 127.0.0.1:{lst.port} failed: CERTIFICATE_VERIFY_FAILED")
    assert fix in text, text
    assert "_ssl.c" not in text


async def test_mutual_tls_without_our_client_certificate_says_to_set_cert_and_key(nursery, pki: PKI, caplog) -> None:
    """The server refuses after the TLS 1.3 handshake; the calling side used to report
    `lost (receive failed: )`, with nothing after the colon."""
    lst = await listen(nursery, cert=str(pki.server_cert), key=str(pki.server_key), ca=str(pki.ca),
                       client_cert="required")
    with caplog.at_level(logging.WARNING):
        r = await call(nursery, lst.port, ca=str(pki.ca), server_name="localhost")
    assert isinstance(r, ChannelError) and r.kind in ("lost", "unreachable"), r
    assert "receive failed: )" not in str(r)
    assert "it may require a client certificate: set cert and key on this channel" in str(r), r
    assert "the client sent no certificate, and client_cert = required" in caplog.text      # the server's side


async def test_a_client_certificate_the_server_refuses_is_named_on_both_sides(nursery, pki: PKI, caplog) -> None:
    lst = await listen(nursery, cert=str(pki.server_cert), key=str(pki.server_key), ca=str(pki.ca),
                       client_cert="required")
    with caplog.at_level(logging.WARNING):
        r = await call(nursery, lst.port, ca=str(pki.ca), server_name="localhost",
                       cert=str(pki.stranger_cert), key=str(pki.stranger_key))
    assert isinstance(r, ChannelError)
    assert "it may refuse our client certificate (cert)" in str(r), r
    assert "does not chain to `ca`" in caplog.text


async def test_a_server_whose_certificate_the_client_refuses_is_told_why(nursery, pki: PKI, caplog) -> None:
    """The listener side of a refused server certificate: a hint instead of a bare UNEXPECTED_EOF."""
    lst = await listen(nursery, cert=str(pki.server_cert), key=str(pki.server_key))
    with caplog.at_level(logging.WARNING, "bsp.channel.tls"):
        await call(nursery, lst.port, ca=str(pki.stranger_ca), server_name="localhost")
        with trio.fail_after(5):
            while lst.gate.tls_failures < 1:
                await trio.sleep(0.01)
    assert "it probably refused our certificate" in caplog.text, caplog.text


async def test_tls_client_against_a_plain_listener_is_named_on_both_sides(nursery, pki: PKI, caplog) -> None:
    lst = await listen(nursery)
    with caplog.at_level(logging.WARNING):
        r = await call(nursery, lst.port, ca=str(pki.ca), server_name="localhost")
        with trio.fail_after(5):
            while "the peer speaks TLS" not in caplog.text:
                await trio.sleep(0.01)
    assert isinstance(r, ChannelError) and r.kind == "unreachable"
    assert "does the counterpart speak TLS on this port?" in caplog.text
    assert "channel mainframe: connection" in caplog.text and "give the channel cert and key" in caplog.text


def test_an_http_call_names_its_own_options_in_a_tls_hint():
    """io_reason follows httpx's cause chain to the TLS error; the hint speaks http call's options."""
    import ssl

    import httpx

    from engine.channels.base import io_reason
    from engine.tls import HTTP_TLS_WORDS

    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.reason = "WRONG_VERSION_NUMBER"
    err = httpx.ConnectError("")
    err.__cause__ = tls
    assert io_reason(err, words=HTTP_TLS_WORDS) == ("WRONG_VERSION_NUMBER (the counterpart does not speak TLS on "
                                                    "this port: plain TCP? use an http:// url, or fix url)")
    assert io_reason(err).endswith("plain TCP? drop ca / tls, or fix address)")
    assert io_reason(httpx.ReadError("")) == "ReadError"
