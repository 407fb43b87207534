"""TLS contexts on a system without anonymous memory files (no ``os.memfd_create`` or no /proc/self/fd: macOS,
some containers).  engine/tls.py then hands OpenSSL the certificate and CA bytes the configuration version
read through private temporary files (mode 0600) that are removed once loaded, and never writes a private key
to a temporary file: bytes holding one are loaded from their own file.  The handshakes are real (trio, TLS
1.2+, 127.0.0.1), the certificates made with `cryptography` (engine/certs.py)."""
from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

import pytest
import trio

import engine.tls as tls
from engine.certs import new_ca


@pytest.fixture
def no_memfd(tmp_path: Path, monkeypatch) -> Path:
    """The system has no memfd: engine/tls.py's probe says so; temporary files go to a folder of the test's."""
    monkeypatch.setattr(tls, "_memfd", lambda: None)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    return temp


def files(tmp_path: Path, *, key_in_cert: bool = False) -> dict[str, Path]:
    ca = new_ca("fallback CA")
    server = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
    client = ca.issue("front end", client=True)
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = {"ca": tmp_path / "ca.pem"}
    out["ca"].write_bytes(ca.cert_pem)
    out["cert"], out["key"] = server.write(tmp_path / "server")
    out["client_cert"], out["client_key"] = client.write(tmp_path / "client")
    if key_in_cert:                                # one PEM file holding the certificate and its key
        out["cert"].write_bytes(server.cert_pem + server.key_pem)
        out["key"] = None
    return out


async def handshake(server_ctx, client_ctx) -> str:
    """One mutual-TLS handshake over loopback; the client's common name as the server saw it."""
    seen: list[str] = []

    async def serve(stream: trio.SocketStream) -> None:
        s = trio.SSLStream(stream, server_ctx, server_side=True)
        await s.do_handshake()
        seen.extend(tls.peer_identity(s.getpeercert())["cn"])
        await s.send_all(b"ok")
        await s.aclose()

    async with trio.open_nursery() as n:
        (listener,) = await n.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=client_ctx)
        with trio.fail_after(10):
            assert await stream.receive_some(10) == b"ok"
        await stream.aclose()
        n.cancel_scope.cancel()
    return seen[0]


@pytest.mark.parametrize("key_in_cert", [False, True], ids=["key file", "key in the certificate file"])
async def test_mutual_tls_works_without_memfd_and_leaves_no_temporary_file(tmp_path, no_memfd, key_in_cert) -> None:
    f = files(tmp_path, key_in_cert=key_in_cert)
    server_ctx = tls.server_context(f["cert"], f["key"], f["ca"], "required")
    client_ctx = tls.client_context(f["ca"], f["client_cert"], f["client_key"])
    assert await handshake(server_ctx, client_ctx) == "front end"
    assert list(no_memfd.iterdir()) == []          # every temporary file removed once OpenSSL read it


def test_without_memfd_no_private_key_is_written_to_a_temporary_file(tmp_path, no_memfd, monkeypatch) -> None:
    # the temporary files are kept (their removal switched off) to look at what was written to them: the
    # certificate and the CA went through them, 0600; a private key never did, on its own or inside a
    # certificate file, though the context was built (OpenSSL read it from its own file)
    monkeypatch.setattr(tls.os, "unlink", lambda name: None)
    for key_in_cert in (False, True):
        f = files(tmp_path / str(key_in_cert), key_in_cert=key_in_cert)
        tls.server_context(f["cert"], f["key"], f["ca"], "required")
        tls.client_context(f["ca"], f["client_cert"], f["client_key"])
    written = sorted(no_memfd.iterdir())
    # the key file case: the server's and the client's certificate and the CA for each side (4); the server's
    # certificate holding its key: that file is loaded from itself, so only the CA twice and the client's
    # certificate (3). 7 files, none holding a private key
    assert len(written) == 7, written
    for p in written:
        assert b"PRIVATE KEY" not in p.read_bytes(), p
        assert b"CERTIFICATE" in p.read_bytes(), p
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
