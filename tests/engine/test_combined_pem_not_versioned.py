"""A certificate file that also holds its private key (one PEM with both blocks, used with no `key`
option: OpenSSL reads the key from the certificate file) is versioned without the key: the ledger's
configuration versions keep the certificate, never the private key, whether a route file or a
deployment file's channel override names it."""
from __future__ import annotations

import json
from pathlib import Path

from engine.ops.effective import with_deployment
from engine.ops.files import with_referenced_files
from engine.registry import default_registry
from kit import compile_text

CERT = "-----BEGIN CERTIFICATE-----\nMIIBCERTBYTES\n-----END CERTIFICATE-----\n"
KEYS = ["-----BEGIN PRIVATE KEY-----\nPKCS8SECRETBYTES\n-----END PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nRSASECRETBYTES\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nENCSECRETBYTES\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN EC PRIVATE KEY-----\nECSECRETBYTES\n"]          # cut short: still never kept
SECRET_WORDS = ("PKCS8SECRETBYTES", "RSASECRETBYTES", "ENCSECRETBYTES", "ECSECRETBYTES")

ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    cert    = "%s"
}
route r {
    receive from front as J
    reply J { code = "00" }
}
"""


def _combined(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_text(CERT + "".join(KEYS))
    return p


def _no_secret(sources: dict[str, str]) -> None:
    text = json.dumps(sources)
    for word in SECRET_WORDS:
        assert word not in text, word


def test_a_route_files_combined_pem_is_versioned_without_its_key(tmp_path: Path) -> None:
    pem = _combined(tmp_path, "server.pem")
    prog = with_referenced_files(compile_text(tmp_path, ROUTE % pem.name))
    assert "MIIBCERTBYTES" in prog.sources[str(pem)]          # the certificate is still versioned
    _no_secret(prog.sources)


def test_an_overrides_combined_pem_is_versioned_without_its_key(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pem"
    plain.write_text(CERT)
    pem = _combined(tmp_path, "both.pem")
    registry = default_registry()
    prog = with_referenced_files(compile_text(tmp_path, ROUTE % plain.name))
    prog = with_deployment(prog, {"front": {"cert": str(pem)}}, registry)
    assert "MIIBCERTBYTES" in prog.sources[str(pem)]
    _no_secret(prog.sources)
    # a key change alone still gives a new version? no: the key is not versioned, as the `key` option's
    # file is not; but a certificate change is
    pem.write_text(CERT.replace("CERTBYTES", "OTHERCERT") + "".join(KEYS))
    other = with_deployment(with_referenced_files(compile_text(tmp_path, ROUTE % plain.name)),
                            {"front": {"cert": str(pem)}}, registry)
    assert other.version != prog.version


def test_an_override_for_an_undeclared_channel_keeps_no_secret_option(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_text(KEYS[0])
    (tmp_path / "plain.pem").write_text(CERT)
    prog = with_referenced_files(compile_text(tmp_path, ROUTE % "plain.pem"))
    out = with_deployment(prog, {"front": {"idle_timeout": "3s"}, "ghost": {"key": str(key)}},
                          default_registry())
    _no_secret(out.sources)
    assert str(key) not in json.dumps(out.sources)
