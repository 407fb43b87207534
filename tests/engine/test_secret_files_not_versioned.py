"""Files that hold secrets (a bearer token, a TLS private key, a signing key) are named by the
configuration but never copied into the ledger's configuration versions, and need not exist for
`bsp check`; public files (a certificate, a CA bundle) still are versioned."""
from __future__ import annotations

from pathlib import Path

from engine.ops.files import referenced_files, with_referenced_files
from kit import compile_text

ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    cert    = "tls/server.pem"
    key     = "tls/server.key"
}
channel partner = http call {
    url                = "https://127.0.0.1:8443/pay"
    ca                 = "tls/ca.pem"
    cert               = "tls/client.pem"
    key                = "tls/client.key"
    auth_bearer_file   = "tls/partner.token"
    signature_header   = "X-Signature"
    signature_key_file = "tls/partner.sig"
}
route r {
    receive from front as J
    call p = partner as J reply J { ref = msg.ref }
    reply J { code = "00" }
}
"""

SECRETS = {"server.key": "-----BEGIN PRIVATE KEY-----\nSERVERKEYBYTES\n",
           "client.key": "-----BEGIN PRIVATE KEY-----\nCLIENTKEYBYTES\n",
           "partner.token": "TOKEN-4f1c9e\n", "partner.sig": "SIGNING-SECRET-77\n"}
PUBLIC = {"server.pem": "CERT-SERVER\n", "client.pem": "CERT-CLIENT\n", "ca.pem": "CERT-CA\n"}


def test_secret_files_are_neither_versioned_nor_fingerprinted(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    for name, text in {**SECRETS, **PUBLIC}.items():
        (tls / name).write_text(text)
    prog = compile_text(tmp_path, ROUTE)
    files = referenced_files(prog)
    assert set(files) == {str(tls / n) for n in PUBLIC}
    sources = with_referenced_files(prog).sources
    for name, text in SECRETS.items():
        assert str(tls / name) not in sources
        assert not any(text.strip().splitlines()[-1] in s for s in sources.values()), name
    for name in PUBLIC:
        assert str(tls / name) in sources


def test_secret_files_need_not_exist_for_check(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    for name, text in PUBLIC.items():
        (tls / name).write_text(text)
    prog = compile_text(tmp_path, ROUTE)          # no key, token or signing file: still compiles
    assert prog.channels["partner"].options["signature_key_file"] == str(tls / "partner.sig")
