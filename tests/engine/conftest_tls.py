"""Certificate fixtures for TLS tests (import explicitly: ``from conftest_tls import pki``).

One session-wide set, generated with ``engine.certs`` into a temporary directory:
a CA, a server certificate for localhost/127.0.0.1, two clients of that CA
(MAINFRAME01 and INTRUDER) and a client of an unrelated CA.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.certs import new_ca


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path          # CN MAINFRAME01, SAN email + URI
    client_key: Path
    intruder_cert: Path        # CN INTRUDER, same CA
    intruder_key: Path
    stranger_ca: Path          # an unrelated CA
    stranger_cert: Path        # CN MAINFRAME01 but signed by the unrelated CA
    stranger_key: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = new_ca("bsp test CA")
    other = new_ca("stranger CA")
    ca_pem, _ = ca.write(d / "ca")
    other_pem, _ = other.write(d / "stranger-ca")
    s = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(d / "server")
    c = ca.issue("MAINFRAME01", emails=["ops@bank.example"], uris=["spiffe://bank/mainframe"],
                 client=True).write(d / "client")
    i = ca.issue("INTRUDER", dns=["intruder.example"], client=True).write(d / "intruder")
    x = other.issue("MAINFRAME01", client=True).write(d / "stranger")
    return PKI(d, ca_pem, *s, *c, *i, other_pem, *x)
