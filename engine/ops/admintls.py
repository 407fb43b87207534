"""The admin API's TLS, renewed by a reload without a restart.

    tls = AdminTLS(context, build, cert=..., key=..., ca=...)   # build() -> a new ssl.SSLContext
    change = tls.prepare(now)        # None: the files are as last read; else a new context, checked
    tls.swap(change)                 # the admin server gives it to the connections it accepts from now on

The admin server reads ``tls.context`` for each connection it accepts (``engine.tls.ContextHolder``):
a swap applies to new connections, those open keep the certificate they were made with, and the
listening socket is never closed.  ``prepare`` reads the certificate, key and CA files again only when
one of them was rewritten (their SHA-256, compared, never shown or kept elsewhere); a change that
cannot be used -- a file missing or unreadable, a key that does not belong to the certificate, a
certificate already expired -- is an ``AdminTLSRefused`` naming the file and what is wrong, and the
context in use stays.  A private key given as an environment variable cannot change while the engine
runs (a certificate renewed with a new key then takes a restart).
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.certexpiry import ADMIN, CertExpiry, expired_certs, expired_text, file_certs
from engine.tls import ContextHolder


class AdminTLSRefused(ValueError):
    """The admin API's rewritten TLS files cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class AdminTLSChange:
    context: ssl.SSLContext
    certs: list[CertExpiry]
    fingerprint: tuple[str, ...]

    def summary(self) -> str:
        own = [e for e in self.certs if e.role == "server"]
        if not own:
            return "new certificate files"
        e = own[0]
        return f"certificate {e.path} (subject {e.subject}, expires {e.date})"


class AdminTLS(ContextHolder):
    def __init__(self, context: ssl.SSLContext, build: Callable[[], ssl.SSLContext], *, cert: Path,
                 key: Path | None = None, ca: Path | None = None) -> None:
        super().__init__(context)
        self._build = build
        self.cert, self.key, self.ca = cert, key, ca
        self._fingerprint = self.fingerprint()

    @property
    def files(self) -> list[Path]:
        """The files a reload reads again (``--watch`` watches them)."""
        return [p for p in (self.cert, self.key, self.ca) if p is not None]

    def fingerprint(self) -> tuple[str, ...]:
        from engine.ops.files import file_digest

        return tuple(file_digest(p) if p is not None else "-" for p in (self.cert, self.key, self.ca))

    def certs(self) -> list[CertExpiry]:
        """The certificates of its files as they are now (for their expiry: engine/certexpiry.py)."""
        return file_certs(ADMIN, "server", self.cert) + file_certs(ADMIN, "ca", self.ca)

    def prepare(self, now: float) -> AdminTLSChange | None:
        """None when no file changed since the context in use was read; else the new context (not yet
        in use).  Raises ``AdminTLSRefused`` when the files cannot be used."""
        fingerprint = self.fingerprint()
        if fingerprint == self._fingerprint:
            return None
        try:
            context = self._build()
        except ValueError as exc:          # OpsConfigError: starts with the place and names the file
            raise AdminTLSRefused(f"{exc}") from None
        certs = self.certs()
        for e in expired_certs(certs, now):
            raise AdminTLSRefused("admin API: " + expired_text(e, "clients would refuse it; write a valid "
                                                                  "certificate and its key over the files, then "
                                                                  "reload"))
        return AdminTLSChange(context, certs, fingerprint)

    def swap(self, change: AdminTLSChange) -> None:
        self.context = change.context
        self._fingerprint = change.fingerprint


# The sources entry of a configuration version that records the admin API's TLS certificates: keyed
# ``<certificate file>#admin-tls`` (not a file: engine/ops/files.py watched_paths, the replay skip it)
ADMIN_TLS_KEY = "#admin-tls"


def tls_record(cert: Path | None, ca: Path | None) -> str | None:
    """What the admin API serves and trusts, for the configuration version (``config_versions``, kept with its
    sources in the ledger): per file (the certificate, the client CA bundle), its path and per certificate its
    subject, issuer, serial, notBefore, notAfter and SHA-256 fingerprint (of the DER).  Never a key: a private key
    in the certificate file is not read.  None without a certificate file; a file that cannot be read is
    recorded as such (the TLS loader refused it already, or a reload will)."""
    if cert is None:
        return None
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    files = []
    for role, path in (("server", cert), ("client_ca", ca)):
        if path is None:
            continue
        entry: dict[str, Any] = {"role": role, "path": str(path)}
        try:
            found = x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            entry["unreadable"] = getattr(exc, "strerror", None) or str(exc)
            files.append(entry)
            continue
        entry["certificates"] = [{
            "subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
            "serial": format(c.serial_number, "x"), "not_before": c.not_valid_before_utc.isoformat(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "sha256": c.fingerprint(hashes.SHA256()).hex(":").upper()} for c in found]
        files.append(entry)
    return json.dumps({"admin_tls": files}, indent=1, sort_keys=True)


def with_admin_tls(program: Any, cert: Path | None, ca: Path | None) -> Any:
    """``program`` whose sources and version also record the admin API's TLS certificates (``tls_record``), so
    that the ledger's configuration versions tell which certificate the admin API served when (a renewal read
    by a reload makes a new version).  Unchanged without admin TLS."""
    import dataclasses

    from dsl.lower import program_version

    text = tls_record(cert, ca)
    if text is None:
        return program
    key = f"{cert}{ADMIN_TLS_KEY}"
    if program.sources.get(key) == text:
        return program
    sources = dict(program.sources)
    sources[key] = text
    return dataclasses.replace(program, sources=sources, version=program_version(sources))


def admin_tls_holder(context: Any, build: Callable[[], ssl.SSLContext], cert: Path | None,
                     key: Path | None, ca: Path | None) -> AdminTLS | None:
    """An ``AdminTLS`` for a context read from these files; None without TLS."""
    if context is None or cert is None:
        return None
    return AdminTLS(context, build, cert=Path(cert), key=Path(key) if key is not None else None,
                    ca=Path(ca) if ca is not None else None)
