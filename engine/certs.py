"""Development and test certificates (``cryptography``): a CA, servers, clients.

Not for production: keys are written unencrypted.  Keys are ECDSA P-256
(fast to generate, accepted by every TLS 1.2+ peer).

    ca = new_ca("bsp dev CA")
    server = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
    client = ca.issue("MAINFRAME01", emails=["ops@bank.example"], client=True)
    server.write(dir / "server")        # server.pem + server.key

``write_dev_set(directory)`` writes the whole set that ``bsp certs dev DIR`` makes.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _validity(days: int | dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter) for a certificate valid ``days`` more days (or a ``timedelta`` more: a
    certificate that expires a few seconds after an engine started with it, for tests); ``days`` <= 0
    makes one that has already expired (valid for the 30 days before; for tests of expiry warnings)."""
    now = _now()
    after = now + (days if isinstance(days, dt.timedelta) else dt.timedelta(days=days))
    return min(now - dt.timedelta(minutes=5), after - dt.timedelta(days=30)), after


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, stem: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` and ``<stem>.key`` (mode 0600); returns both paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = stem.with_name(stem.name + ".pem"), stem.with_name(stem.name + ".key")
        cert_path.write_bytes(self.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key_pem)
        return cert_path, key_path


@dataclass(frozen=True)
class CA(Issued):
    """A certificate authority able to issue leaf certificates."""

    def issue(
        self,
        common_name: str,
        *,
        dns: list[str] | tuple[str, ...] = (),
        ips: list[str] | tuple[str, ...] = (),
        emails: list[str] | tuple[str, ...] = (),
        uris: list[str] | tuple[str, ...] = (),
        organization: str | None = None,
        server: bool = False,
        client: bool = False,
        days: int | dt.timedelta = 90,
    ) -> Issued:
        """A leaf certificate signed by this CA, valid ``days`` more days (a ``timedelta``: that much
        longer; <= 0: already expired);
        ``server``/``client`` set the extended key usage."""
        if not (server or client):
            raise ValueError(f"certificate {common_name!r}: say server=True and/or client=True")
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.RFC822Name(e) for e in emails]
        sans += [x509.UniformResourceIdentifier(u) for u in uris]
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        before, after = _validity(days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(before)
            .not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)


def new_ca(common_name: str = "bsp dev CA", *, days: int = 365) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    before, after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(cert, key)


@dataclass(frozen=True)
class DevSet:
    """Paths written by ``write_dev_set``."""

    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def write_dev_set(
    directory: str | os.PathLike[str],
    *,
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    client_cn: str = "bsp-dev-client",
    days: int = 90,
) -> DevSet:
    """Write ca.pem/ca.key, server.pem/server.key and client.pem/client.key into ``directory``.

    ``server_names`` become the server's SANs (IP literals as IP SANs, the rest
    as DNS names); its CN is the first name.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dns, ips = [], []
    for name in server_names:
        try:
            ipaddress.ip_address(name)
            ips.append(name)
        except ValueError:
            dns.append(name)
    ca = new_ca("bsp dev CA", days=max(days, 1))
    server = ca.issue(server_names[0] if server_names else "localhost", dns=dns, ips=ips, server=True, days=days)
    client = ca.issue(client_cn, client=True, days=days)
    ca_cert, ca_key = ca.write(directory / "ca")
    s_cert, s_key = server.write(directory / "server")
    c_cert, c_key = client.write(directory / "client")
    return DevSet(directory, ca_cert, ca_key, s_cert, s_key, c_cert, c_key)
