"""A channel's TLS `cert` and `ca` files are served as the configuration's version holds them, not read
again by OpenSSL when the context is built: a file rewritten between the version's computation and the
bind (a deploy job renewing a certificate while `bsp run`, or a reload, loads) is taken by the next reload,
under its own version.  Before, `ssl` read the files from disk at the context's build: the engine served a
certificate (or trusted a CA) that the version recorded in the ledger does not hold.

A certificate and a key both rewritten meanwhile (a new key pair) cannot be served as the version holds
them (the key is a secret, never versioned): the bind is refused naming the certificate file.

Real engine (LiveEngine as `bsp run` serves it), real TLS handshakes on 127.0.0.1, certificates made with
`cryptography` (engine/certs.py), a real DuckDB ledger."""
from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from engine.certs import CA, Issued, new_ca
from engine.tls import client_context
from opskit import ECHO, recorded_sources, rows

TLS_ECHO = ECHO.replace('    framing = length2\n', '    framing = length2\n%(tls)s', 1).replace('tag = "%s"', 'tag = "x"')


def reissued(ca: CA, leaf: Issued, common_name: str) -> bytes:
    """``leaf``'s key under a new certificate (another subject): a renewal that keeps the key."""
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.cert.subject).public_key(leaf.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def versioned_program(route: Path):
    from dsl.load import compile_paths
    from engine.ops.files import with_referenced_files
    from engine.registry import default_registry

    registry = default_registry()
    return registry, with_referenced_files(compile_paths([route], registry).program)


async def serve(registry, program, route: Path, ledger_path: Path, talk) -> None:
    from engine.ledger import open_ledger
    from engine.metrics import Metrics
    from engine.ops.live import LiveEngine
    from engine.ops.observe import Observer

    async with open_ledger(ledger_path) as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([route], {}), observer=Observer(Metrics()), grace=5.0)
        async with trio.open_nursery() as n:
            await n.start(eng.run, program, None)
            assert eng.version == program.version
            await talk(eng)
            eng.drain()


async def handshake(port: int, ctx) -> trio.SSLStream:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    with trio.fail_after(10):
        await stream.do_handshake()
    return stream


def cn(stream: trio.SSLStream) -> str:
    return dict(x[0] for x in stream.getpeercert()["subject"])["commonName"]


async def echo(stream: trio.SSLStream, ref: str) -> dict:
    body = json.dumps({"ref": ref}).encode()
    await stream.send_all(struct.pack(">H", len(body)) + body)
    buf = bytearray()
    with trio.fail_after(10):
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            chunk = await stream.receive_some(65536)
            assert chunk, "closed before the reply"
            buf += chunk
    return json.loads(bytes(buf[2:]))


def kept_sources(ledger: Path, version: str) -> dict:
    return recorded_sources(ledger)[version]


async def test_a_certificate_rewritten_before_the_bind_is_not_the_one_served_under_that_version(tmp_path: Path) -> None:
    """The version is computed over server.pem (CN localhost); a renewed certificate (same key, CN renewed)
    is written over it before the engine binds.  The handshakes under that version get the certificate its
    sources hold; the next reload serves the renewed one, under its own version (the socket stays)."""
    ca = new_ca("versioned CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    leaf = ca.issue("localhost", dns=["localhost"], server=True)
    cert, key = leaf.write(tmp_path / "server")
    route = tmp_path / "echo.route"
    route.write_text(TLS_ECHO % {"tls": f'    cert = "{cert}"\n    key = "{key}"\n'})
    registry, program = versioned_program(route)
    assert program.sources[str(cert)] == leaf.cert_pem.decode()
    cert.write_bytes(reissued(ca, leaf, "renewed"))                 # rewritten meanwhile
    ctx = client_context(ca_pem, None, None, "localhost")
    seen: dict[str, object] = {}

    async def talk(eng) -> None:
        port = eng.channels["front"].port
        s = await handshake(port, ctx)
        seen["first"], seen["reply"] = cn(s), await echo(s, "T1")
        await s.aclose()
        result = await eng.reload()
        assert result.ok and result.plan["channels"]["changed"] == ["front"], result
        s = await handshake(port, ctx)
        seen["second"] = cn(s)
        await s.aclose()
        seen["v2"] = eng.version

    await serve(registry, program, route, tmp_path / "l.duckdb", talk)
    assert seen["first"] == "localhost", seen          # the version's certificate, not the file rewritten
    assert seen["reply"] == {"ref": "T1", "tag": "x"}
    assert seen["second"] == "renewed", seen             # taken by the next reload
    assert seen["v2"] != program.version
    # the ledger's record of that version holds the certificate the handshakes got
    assert kept_sources(tmp_path / "l.duckdb", program.version)[str(cert)] == leaf.cert_pem.decode()


async def test_a_ca_rewritten_before_the_bind_is_not_the_one_trusted_under_that_version(tmp_path: Path) -> None:
    """Mutual TLS: the version holds clients-ca.pem (the bank's CA); another CA is written over it before the
    bind.  Under that version a client of the bank's CA is admitted and one of the other CA refused."""
    bank, other = new_ca("bank clients CA"), new_ca("other CA")
    server_ca = new_ca("server CA")
    server_ca_pem, _ = server_ca.write(tmp_path / "server-ca")
    cert, key = server_ca.issue("localhost", dns=["localhost"], server=True).write(tmp_path / "server")
    clients_ca, _ = bank.write(tmp_path / "clients-ca")
    good = bank.issue("MAINFRAME01", client=True).write(tmp_path / "good")
    stranger = other.issue("MAINFRAME01", client=True).write(tmp_path / "stranger")
    route = tmp_path / "echo.route"
    route.write_text(TLS_ECHO % {"tls": f'    cert = "{cert}"\n    key = "{key}"\n    ca = "{clients_ca}"\n'
                                        f'    client_cert = "required"\n'})
    registry, program = versioned_program(route)
    clients_ca.write_bytes(other.cert_pem)                            # rewritten meanwhile
    seen: dict[str, object] = {}

    async def talk(eng) -> None:
        port = eng.channels["front"].port
        s = await handshake(port, client_context(server_ca_pem, *good, "localhost"))
        seen["good"] = await echo(s, "G1")
        await s.aclose()
        s = await handshake(port, client_context(server_ca_pem, *stranger, "localhost"))
        try:
            with trio.fail_after(10):
                seen["stranger"] = await echo(s, "S1")
        except (trio.BrokenResourceError, AssertionError):
            seen["stranger"] = None                      # refused: the server closed the session
        await trio.aclose_forcefully(s)

    await serve(registry, program, route, tmp_path / "l.duckdb", talk)
    assert seen["good"] == {"ref": "G1", "tag": "x"}, seen     # trusted: the version's CA
    assert seen["stranger"] is None, seen                      # the CA written meanwhile is not trusted
    deals = [r for (r,) in rows(tmp_path / "l.duckdb", "SELECT reference FROM deals")]
    assert deals == ["G1"]


async def test_a_certificate_renewed_twice_during_a_reload_serves_the_version_read(tmp_path: Path) -> None:
    """The renewal path (a certificate rewritten at the same path: a new context, the same socket) reads the
    files as the generation's version holds them: a certificate written once more after the version was
    read is not the one the new context serves."""
    from engine.ops.channeltls import read_renewed

    ca = new_ca("versioned CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    leaf = ca.issue("localhost", dns=["localhost"], server=True)
    cert, key = leaf.write(tmp_path / "server")
    route = tmp_path / "echo.route"
    route.write_text(TLS_ECHO % {"tls": f'    cert = "{cert}"\n    key = "{key}"\n'})
    registry, program = versioned_program(route)
    ctx = client_context(ca_pem, None, None, "localhost")
    seen: dict[str, object] = {}

    async def talk(eng) -> None:
        cert.write_bytes(reissued(ca, leaf, "later"))        # after the version in force was read
        contexts = await read_renewed(eng.current, ["front"])
        eng.current.channels["front"].renew_tls(contexts["front"])
        s = await handshake(eng.channels["front"].port, ctx)
        seen["cn"] = cn(s)
        await s.aclose()

    await serve(registry, program, route, tmp_path / "l.duckdb", talk)
    assert seen["cn"] == "localhost", seen


async def test_a_certificate_and_key_rewritten_before_the_bind_refuse_it_naming_the_file(tmp_path: Path) -> None:
    """A new key pair written over cert and key meanwhile: the version's certificate and the key on disk
    (a secret: never versioned) do not match.  The bind is refused naming the certificate file and saying
    to reload again; nothing is served with a configuration the version does not hold."""
    from engine.ops.generation import build_generation
    from engine.runtime.binder import BindError

    ca = new_ca("versioned CA")
    cert, key = ca.issue("localhost", dns=["localhost"], server=True).write(tmp_path / "server")
    route = tmp_path / "echo.route"
    route.write_text(TLS_ECHO % {"tls": f'    cert = "{cert}"\n    key = "{key}"\n'})
    registry, program = versioned_program(route)
    ca.issue("localhost", dns=["localhost"], server=True).write(tmp_path / "server")      # a new pair
    with pytest.raises(BindError) as info:
        build_generation(1, program, registry, ledger=None)
    text = str(info.value)
    assert f"certificate file '{cert}' changed after the configuration was read" in text, text
    assert "reload again" in text and "echo.route:" in text, text


def test_a_certificate_file_holding_its_key_rewritten_before_the_bind_refuses_it_naming_the_file(tmp_path: Path) -> None:
    """One PEM holding the certificate and its key (no `key` option): the version keeps it without the key,
    so the bind reads the file; rewritten meanwhile (a new pair), it no longer is what the version holds,
    and the bind is refused naming it, instead of serving a certificate the version does not hold."""
    from engine.ops.generation import build_generation
    from engine.runtime.binder import BindError

    ca = new_ca("versioned CA")
    both = tmp_path / "server-with-key.pem"
    first = ca.issue("localhost", dns=["localhost"], server=True)
    both.write_bytes(first.cert_pem + first.key_pem)
    route = tmp_path / "echo.route"
    route.write_text(TLS_ECHO % {"tls": f'    cert = "{both}"\n'})
    registry, program = versioned_program(route)
    assert "(a private key: not kept)" in program.sources[str(both)]
    assert "PRIVATE KEY" not in program.sources[str(both)].replace("(a private key: not kept)", "")
    build_generation(1, program, registry, ledger=None)                 # the same file: bound
    second = ca.issue("renewed", dns=["localhost"], server=True)
    both.write_bytes(second.cert_pem + second.key_pem)                   # rewritten meanwhile
    with pytest.raises(BindError) as info:
        build_generation(1, program, registry, ledger=None)
    text = str(info.value)
    assert f"certificate file '{both}' changed after the configuration was read" in text, text
    assert "reload again" in text and "BEGIN" not in text, text
