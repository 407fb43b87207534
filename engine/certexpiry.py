"""When the TLS certificates bsp presents and trusts expire: read once when a configuration is bound.

    entries = program_certs(program, overrides)        # CertExpiry per certificate in every cert / ca file
    refused = expired_own(entries, now, channels)       # own certificates already expired: the channel cannot work
    for level, text in notices(entries, now): log.log(level, text)

Roles: ``server`` (the ``cert`` of a listening channel, or of the admin API), ``client`` (the ``cert``
of a calling channel: mutual TLS), ``ca`` (each certificate of a ``ca`` / ``client_ca`` bundle), ``peer``
(the certificate a counterpart presented in the last TLS handshake of a calling channel).  A chain
file gives one entry per certificate.  Files are read with ``cryptography``'s x509 when the
configuration is bound (start, reload), never per connection; a file that cannot be read gives no
entry (the TLS loader reports it).

``WARN_DAYS``: a certificate expiring within that many days is logged as a warning when it is
bound and again every ``REMIND_EVERY`` seconds while the engine runs; an expired one as an error.
"""
from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

WARN_DAYS = 30               # days before expiry from which a certificate is warned about
REMIND_EVERY = 86400.0       # seconds between two reminders while the engine runs (once a day)
ADMIN = "admin API"          # the ``channel`` label of the admin API's certificates
OWN = ("server", "client")   # roles of certificates bsp presents itself
TLS_OPTIONS = (("cert", None), ("ca", "ca"))   # channel options naming a certificate file, and its role


@dataclass(frozen=True)
class CertExpiry:
    channel: str          # channel name, or ADMIN
    role: str             # server, client, ca, peer
    path: str             # the file (peer: the address dialled)
    subject: str          # RFC 4514, e.g. CN=localhost,O=Bank
    not_after: float      # Unix time (UTC)

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.not_after, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / 86400.0

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"role": self.role, "subject": self.subject, "path": self.path,
                "not_after": datetime.fromtimestamp(self.not_after, timezone.utc).isoformat(),
                # cut down to a tenth, as the log ("in 4 days") and the table ("4d") cut to the day: 4.99 days
                # read 5.0 beside "in 4 days", and a certificate expired a minute ago read 0.0, not below 0
                "days_left": math.floor(self.days_left(now) * 10) / 10}


def read_certs(path: str | Path) -> list[tuple[str, float]]:
    """(subject, notAfter as Unix time) of every PEM certificate in ``path``; [] when it cannot be read."""
    from cryptography import x509

    from formats.versioned import read_bytes      # in the engine's bind: the configuration version's text
    try:
        data = read_bytes(path)
        certs = x509.load_pem_x509_certificates(data)
    except (OSError, ValueError):
        return []
    return [(c.subject.rfc4514_string(), c.not_valid_after_utc.timestamp()) for c in certs]


RENEWED = "renewed on disk, reload to serve it"
_DISK: dict[str, tuple[tuple[int, int, int], list[tuple[str, float]]]] = {}     # path -> (stat, its certificates)


def _disk_certs(path: str) -> list[tuple[str, float]] | None:
    """The certificates the file holds now (read from disk, never the configuration version's text); None when
    it cannot be read.  Read again only when the file's inode, size or mtime changed (``bsp top`` asks often)."""
    import os

    from formats.versioned import versioned
    try:
        st = os.stat(path)
    except OSError:
        _DISK.pop(path, None)
        return None
    sig = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _DISK.get(path)
    if cached is None or cached[0] != sig:
        with versioned(None):             # the file as it is now, whatever block the caller is in
            cached = (sig, read_certs(path))
        _DISK[path] = cached
    return cached[1] or None


def on_disk(entries: Iterable[CertExpiry]) -> dict[CertExpiry, CertExpiry | None]:
    """The certificates served (read when bound: start, reload) whose file now holds another one at their place
    in it: each -> the one on disk (None: the file cannot be read now, or holds fewer certificates).  A
    certificate renewed on disk and not yet reloaded is served with its old expiry until ``bsp reload``; the
    counterparts see the old one, so ``bsp status`` shows both (engine/ops/backend.py).  Peer certificates
    (what a counterpart presented) have no file: never in it."""
    groups: dict[tuple[str, str, str], list[CertExpiry]] = {}
    for e in entries:
        if e.role != "peer":
            groups.setdefault((e.channel, e.role, e.path), []).append(e)
    out: dict[CertExpiry, CertExpiry | None] = {}
    for (_, _, path), served in groups.items():
        disk = _disk_certs(path)
        for i, e in enumerate(served):
            now = disk[i] if disk is not None and i < len(disk) else None
            if now is None:
                out[e] = None
            elif now != (e.subject, e.not_after):
                out[e] = CertExpiry(e.channel, e.role, e.path, *now)
    return out


def served_dict(e: CertExpiry, now: float, disk: Mapping[CertExpiry, CertExpiry | None]) -> dict[str, Any]:
    """``e.as_dict(now)``, and when its file holds another certificate now (``on_disk``): ``on_disk`` (that one's
    subject, not_after, days_left; null when the file cannot be read) and ``note`` saying what to do."""
    out = e.as_dict(now)
    if e not in disk:
        return out
    new = disk[e]
    if new is None:
        out["on_disk"] = None
        out["note"] = ("the file cannot be read now (moved, emptied or not PEM): the certificate read at the last "
                       "start or reload is served until then; a reload would fail on it")
        return out
    d = new.as_dict(now)
    out["on_disk"] = {k: d[k] for k in ("subject", "not_after", "days_left")}
    out["note"] = (f"{RENEWED}: the file now holds {new.subject}, expiring {new.date}; the one served expires "
                   f"{e.date} (bsp reload)")
    return out


def file_certs(channel: str, role: str, path: str | Path | None) -> list[CertExpiry]:
    if path is None:
        return []
    return [CertExpiry(channel, role, str(path), subject, t) for subject, t in read_certs(path)]


def _own_role(kind: str) -> str:
    return "server" if kind.endswith("listen") else "client"


def program_certs(program: Any, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[CertExpiry]:
    """Every certificate in the ``cert`` and ``ca`` files of the program's channels, the overrides
    (with absolute paths: ``engine.ops.overrides.resolve_paths``) applied."""
    out: list[CertExpiry] = []
    for name, decl in program.channels.items():
        options = {**decl.options, **dict((overrides or {}).get(name) or {})}
        for option, role in TLS_OPTIONS:
            value = options.get(option)
            if isinstance(value, str) and value:
                out += file_certs(name, role or _own_role(decl.kind), value)
    return out


def peer_cert(channel: str, address: str, peercert: Mapping[str, Any] | None) -> CertExpiry | None:
    """The counterpart's certificate from ``SSLObject.getpeercert()`` (verified: a dict), or None."""
    if not peercert or "notAfter" not in peercert:
        return None
    try:
        not_after = float(ssl.cert_time_to_seconds(peercert["notAfter"]))
    except ValueError:
        return None
    subject = ",".join(f"{_SHORT.get(k, k)}={v}" for rdn in reversed(peercert.get("subject", ())) for k, v in rdn)
    return CertExpiry(channel, "peer", address, subject, not_after)


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "localityName": "L", "stateOrProvinceName": "ST", "domainComponent": "DC"}


def expired_certs(entries: Iterable[CertExpiry], now: float,
                  channels: Iterable[str] | None = None) -> list[CertExpiry]:
    """The certificates bsp presents itself (server, client) that have expired by ``now`` (on ``channels``
    only, when given): the one test of "our own certificate has expired" (start, reload, the admin API's
    renewal, a channel's renewal, ``bsp status``)."""
    wanted = set(channels) if channels is not None else None
    return [e for e in entries if e.role in OWN and e.not_after <= now and (wanted is None or e.channel in wanted)]


def expired_text(e: CertExpiry, then: str) -> str:
    """``server certificate FILE (subject S) expired on DATE: THEN``."""
    return f"{_what(e)} {e.path} (subject {e.subject}) expired on {e.date}: {then}"


def expired_own(entries: Iterable[CertExpiry], now: float, channels: Iterable[str] | None = None) -> list[str]:
    """One line per certificate bsp would present that has already expired (on ``channels`` only, when
    given): such a channel cannot work (every peer refuses it), so it is not started."""
    return [f"channel {e.channel}: " + expired_text(e, "every counterpart refuses it, so the channel is not "
                                                       "started; renew it (a new certificate and key from your "
                                                       "CA, at the same path), then start again (or `bsp reload`)")
            for e in expired_certs(entries, now, channels)]


def expired_running(entries: Iterable[CertExpiry], now: float) -> list[str]:
    """One line per certificate bsp presents that has expired since it was bound (it was valid at start
    or at the reload that read it: an expired one is not bound): the engine is ``degraded`` in
    ``bsp status`` (engine/ops/backend.py) while the channel goes on (its counterparts refuse the handshake)."""
    return [f"{_who(e)}: " + expired_text(e, "counterparts refuse the TLS handshake; the channel keeps running; "
                                             "renew it, write the new file over the old one (same path), then "
                                             "run `bsp reload`")
            for e in sorted(expired_certs(entries, now), key=lambda e: (e.not_after, e.channel))]


def next_own_expiry(entries: Iterable[CertExpiry], now: float) -> float | None:
    """When the next certificate bsp presents expires (Unix time), None when none is still valid."""
    return min((e.not_after for e in entries if e.role in OWN and e.not_after > now), default=None)


def _what(e: CertExpiry) -> str:
    return {"server": "server certificate", "client": "client certificate (mutual TLS)",
            "ca": "CA bundle", "peer": "the counterpart's certificate"}[e.role]


def _who(e: CertExpiry) -> str:
    return "the admin API" if e.channel == ADMIN else f"channel {e.channel}"


def notice(e: CertExpiry, now: float, warn_days: float = WARN_DAYS) -> tuple[int, str] | None:
    """(log level, line) for one certificate expired or expiring within ``warn_days``; None otherwise."""
    days = e.days_left(now)
    if days > warn_days:
        return None
    fix = "renew it, write the new file over the old one (same path), then run `bsp reload`"
    if e.role == "ca":
        head = f"{_who(e)}: CA bundle {e.path} holds certificate {e.subject}"
        fix = ("get the CA's new certificate from the counterpart, add it to the bundle (same path), then run "
               "`bsp reload`" if e.channel != ADMIN else
               "add the CA's new certificate to the bundle (same path), then run `bsp reload`")
        if days <= 0:
            return logging.ERROR, (f"{head}, which expired on {e.date}: certificates issued by it no longer "
                                   f"verify; {fix}")
        return logging.WARNING, f"{head}, which expires on {e.date} (in {_days(days)}); {fix}"
    if e.role == "peer":
        head = f"{_who(e)}: the counterpart's certificate at {e.path} (subject {e.subject})"
        if days <= 0:
            return logging.ERROR, f"{head} expired on {e.date}: ask the counterpart to renew it"
        return logging.WARNING, (f"{head} expires on {e.date} (in {_days(days)}): ask the counterpart to "
                                 f"renew it before then")
    head = f"{_who(e)}: {_what(e)} {e.path} (subject {e.subject})"
    if days <= 0:
        return logging.ERROR, f"{head} expired on {e.date}: counterparts refuse it; {fix}"
    return logging.WARNING, f"{head} expires on {e.date} (in {_days(days)}); {fix}"


def _days(days: float) -> str:
    if days < 1:
        h = int(max(days * 24, 0))
        return f"{h} hour{'s' if h != 1 else ''}" if h else "less than an hour"
    n = int(days)
    return f"{n} day{'s' if n != 1 else ''}"


def noted_peer(channel: str, address: str, peercert: Mapping[str, Any] | None, known: CertExpiry | None,
               logger: logging.Logger) -> CertExpiry | None:
    """The counterpart's certificate as a connection presented it (``getpeercert()``), when it is not the one
    ``known`` already; logged once on ``logger`` when it expires within WARN_DAYS (then in the engine's
    daily reminder). None: no certificate, or the same one."""
    import time
    entry = peer_cert(channel, address, peercert)
    if entry is None or entry == known:
        return None
    said = notice(entry, time.time())
    if said is not None:
        logger.log(said[0], "%s", said[1])
    return entry


def notices(entries: Iterable[CertExpiry], now: float, warn_days: float = WARN_DAYS) -> list[tuple[int, str]]:
    return [n for n in (notice(e, now, warn_days) for e in entries) if n is not None]


def nearest(entries: Iterable[CertExpiry]) -> dict[str, CertExpiry]:
    """channel -> its certificate (any role) expiring first."""
    out: dict[str, CertExpiry] = {}
    for e in entries:
        if e.channel not in out or e.not_after < out[e.channel].not_after:
            out[e.channel] = e
    return out


def log_notices(log: logging.Logger, entries: Iterable[CertExpiry], now: float,
                warn_days: float = WARN_DAYS) -> int:
    """Log every notice; returns how many."""
    lines = notices(entries, now, warn_days)
    for level, text in lines:
        log.log(level, "%s", text)
    return len(lines)
