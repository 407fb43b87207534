"""What ``bsp run`` takes from the deployment file beyond routes and ledger: the ledger's keys, the
admin API's TLS and access list, and recording -- each merged with its command-line option or
environment variable by one rule: the command line wins over the file, the file over the
environment variables (as ``--admin-token-file`` > ``admin.token`` > ``$BSP_ADMIN_TOKEN``).

    keys = run_keys(dep)                  # RunKeys(audit_key, keyring, warnings, values)
    ctx, where = admin_tls(cert, key, client_ca, dep)       # ssl context or None
    rules = admin_access(access_file, dep)                  # AccessList or None
    path, mask, origin = record_settings(record, mask, dep)

Every problem is an ``OpsConfigError`` whose message starts with the place
(``platform.yaml:12:10: ledger.audit_key: ...``, or the option) and never holds a key.
"""
from __future__ import annotations

import base64
import os
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from engine import filemodes



class OpsConfigError(ValueError):
    """A bad operations option; the message names the option and how to fix it."""


AUDIT_VARS = ("BSP_AUDIT_KEY_FILE", "BSP_AUDIT_KEY")
FIELD_VARS = ("BSP_FIELD_KEYS_FILE", "BSP_FIELD_KEYS")
NO_AUDIT_KEY = ("no audit key (BSP_AUDIT_KEY / BSP_AUDIT_KEY_FILE, or ledger.audit_key in the deployment file): "
                "ledger records are not tamper-protected; bsp audit verify will report them unprotected")


@dataclass
class RunKeys:
    audit_key: bytes | None = None
    keyring: Any = None                                   # engine.fieldcrypt.Keyring | None
    warnings: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)       # the keys' texts, to scrub from the logs


def _read(ref: Any, key: str, command: str = "bsp run") -> str:
    """The referenced text; a reference that cannot be read is an OpsConfigError naming it."""
    from engine.deploy import SecretError
    try:
        return ref.value()
    except SecretError as exc:
        fix = (f"export {ref.env} before {command}" if ref.env is not None else
               "create the file, or fix the path (relative to the deployment file)")
        raise OpsConfigError(f"{str(exc).replace(f'secret {ref.name!r}', key, 1)}; {fix}") from None


def _source(ref: Any) -> str:
    return f"${ref.env}" if ref.env is not None else str(ref.file)


def _parse(parse: Callable[[str, str], Any], text: str, ref: Any, key: str) -> Any:
    """``parse(text, source)``, its error prefixed with the place and key of the reference."""
    from engine import fieldcrypt
    from engine.audit import AuditError
    try:
        return parse(text, _source(ref))
    except (AuditError, fieldcrypt.KeyringError) as exc:
        raise OpsConfigError(f"{ref.origin}: {key}: {exc}") from None


def _ignored(ref: Any, names: tuple[str, ...], key: str) -> list[str]:
    """A warning for each variable set but not used because the deployment file names the key."""
    return [f"{name} is set but not used: {ref.origin}: {key} gives the key (the deployment file wins "
            f"over the environment variables; unset {name} or remove {key})"
            for name in names if os.environ.get(name) and name != ref.env]


def run_keys(dep: Any = None, *, audit: bool = True, fields: bool = True, command: str = "bsp run") -> RunKeys:
    """The audit key and the field keyring ``bsp run`` writes with: the deployment file's
    ``ledger.audit_key`` / ``ledger.field_keys``, else BSP_AUDIT_KEY(_FILE) / BSP_FIELD_KEYS(_FILE).
    The operator commands (``bsp audit verify --deployment FILE``...) ask for the key they need only
    (``audit`` / ``fields``), and name themselves (``command``) in the fix of an unset variable."""
    from engine import fieldcrypt
    from engine.audit import AuditError, audit_key_from_text, load_audit_key, ring_of
    keys = RunKeys()
    audit_ref = getattr(dep, "audit_key", None)
    field_ref = getattr(dep, "field_keys", None)
    try:
        if not audit:
            pass
        elif audit_ref is not None:
            text = _read(audit_ref, "ledger.audit_key", command)
            keys.values.append(text)
            keys.audit_key = _parse(audit_key_from_text, text, audit_ref, "ledger.audit_key")
            for member in keys.audit_key.ring:          # the current key and the older ones of its ring
                member.source = f"{audit_ref.origin}: ledger.audit_key ({_source(audit_ref)})"
            keys.warnings += _ignored(audit_ref, AUDIT_VARS, "ledger.audit_key")
        else:
            keys.audit_key = load_audit_key()
        if not fields:
            pass
        elif field_ref is not None:
            text = _read(field_ref, "ledger.field_keys", command)
            keys.values.append(text)
            parse: Callable[[str, str], Any] = (fieldcrypt.keyring_from_list if field_ref.env is not None
                                                else fieldcrypt.keyring_from_json)
            keys.keyring = replace(_parse(parse, text, field_ref, "ledger.field_keys"),
                                   source=f"{field_ref.origin}: ledger.field_keys ({_source(field_ref)})")
            keys.warnings += _ignored(field_ref, FIELD_VARS, "ledger.field_keys")
        else:
            keys.keyring = fieldcrypt.load_keyring()
    except (AuditError, fieldcrypt.KeyringError) as exc:
        raise OpsConfigError(str(exc)) from None
    if audit and keys.audit_key is None:
        keys.warnings.append(NO_AUDIT_KEY)
    # every key as base64 too, wherever it came from (a variable's file, a text with a line break): scrubbed
    # from every log line by bsp run (docs/security.md, secrets)
    given = [bytes(k) for k in ring_of(keys.audit_key)]     # the audit keyring's older keys too
    given += list(keys.keyring.keys.values()) if keys.keyring is not None else []
    keys.values += [base64.b64encode(k).decode() for k in given]
    keys.values += [v.strip() for v in keys.values if v.strip() != v]
    for used, ref, var, key in ((keys.audit_key, audit_ref, "BSP_AUDIT_KEY_FILE", "ledger.audit_key"),
                                (keys.keyring, field_ref, "BSP_FIELD_KEYS_FILE", "ledger.field_keys")):
        if used is None:
            continue
        path = getattr(ref, "file", None) if ref is not None else os.environ.get(var)
        if path:
            where = f"{ref.origin}: {key} ({path})" if ref is not None else f"{var}={path}"
            keys.warnings += _exposed(Path(path), where, key)
    return keys


def _exposed(path: Path, where: str, key: str) -> list[str]:
    """A warning when a key file is readable or writable by group or others (as for the admin token file)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return []
    if not filemodes.exposed(mode):
        return []
    who = ("whoever reads it can decrypt every classified field of the ledger" if key == "ledger.field_keys" else
           "whoever reads it can re-seal a rewritten ledger so that bsp audit verify passes")
    return [f"{where} is readable by group/others (mode {mode:04o}): {who}; chmod 600 {path}"]


_TLS_ROLES = {"certificate": "cert", "private key": "key", "CA bundle": "client_ca"}


def admin_tls(cert: Path | None, key: Path | None, client_ca: Path | None, dep: Any = None) -> Any:
    """The admin API's server ``ssl.SSLContext``, or None for plain HTTP.  ``--admin-cert`` /
    ``--admin-key`` replace the file's ``admin.tls`` cert and key (a pair); ``--admin-client-ca``
    replaces its ``client_ca`` (which applies to the command line's certificate too: mutual TLS the
    file asks for stays on)."""
    from engine.tls import TLSConfigError, server_context
    settings = getattr(dep, "admin", None)
    if cert is None and key is None and getattr(settings, "tls_cert", None) is not None:
        return _file_tls(settings, client_ca)
    if cert is not None and key is None:
        raise OpsConfigError(f"--admin-cert {cert} needs --admin-key FILE (the private key of that certificate)")
    if cert is None:
        if key or client_ca:
            raise OpsConfigError("--admin-key / --admin-client-ca need --admin-cert (the admin server's "
                                 "certificate), or admin.tls in the deployment file")
        return None
    ca = client_ca or getattr(settings, "client_ca", None)      # the file's mutual TLS stays on
    try:
        return server_context(cert, key, ca, "required" if ca else "none")
    except TLSConfigError as exc:
        if client_ca is None and ca is not None:
            raise OpsConfigError(f"{settings.places['tls.client_ca']}: admin.tls.client_ca: {exc}") from None
        raise OpsConfigError(f"admin API TLS: {exc}") from None


def _file_tls(settings: Any, cli_ca: Path | None) -> Any:
    from engine.tls import TLSConfigError, server_context
    ca = cli_ca or settings.client_ca
    ref = settings.tls_key
    with tempfile.TemporaryDirectory(prefix="bsp-admin-key-") as tmp:
        if ref.env is not None:         # the PEM text in a variable: OpenSSL loads keys from files only
            key_path = Path(tmp) / "admin.key"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(_read(ref, "admin.tls.key") + "\n")
        else:
            key_path = ref.file
        try:
            return server_context(settings.tls_cert, key_path, ca, "required" if ca else "none")
        except TLSConfigError as exc:
            sub = _TLS_ROLES.get(exc.role or "", "cert")
            text = str(exc).replace(str(key_path), f"${ref.env}") if ref.env is not None else str(exc)
            for side, name in (("server tls cert", "cert"), ("server tls key", "key"), ("server tls ca", "client_ca")):
                text = text.replace(side, f"admin.tls.{name}")
            if sub == "client_ca" and cli_ca is not None:
                raise OpsConfigError(f"--admin-client-ca {cli_ca}: {text}") from None
            raise OpsConfigError(f"{settings.places.get('tls.' + sub, settings.places.get('tls', ''))}: {text}") from None


def admin_access(access_file: Path | None, dep: Any = None) -> Any:
    """The admin access list: ``--admin-access FILE``, else the file's ``admin.access`` (rules, or a
    file of rules); None: everyone with the token (and the client certificate, under mutual TLS)."""
    from engine.access import AccessList, AccessListError
    settings = getattr(dep, "admin", None)
    given = access_file if access_file is not None else getattr(settings, "access", None)
    if given is None:
        return None
    where = f"--admin-access {access_file}" if access_file is not None else \
        f"{settings.places.get('access', '')}: admin.access"
    try:
        if isinstance(given, list):
            return AccessList.parse(given)
        try:
            text = Path(given).read_text()
        except OSError as exc:
            raise OpsConfigError(f"{where}: cannot read {given}: {exc.strerror}; fix the path (relative to the "
                                 f"deployment file) or write the rules as a list") from None
        return AccessList.parse([ln.strip() for ln in text.splitlines()
                                 if ln.strip() and not ln.lstrip().startswith("#")])
    except AccessListError as exc:
        raise OpsConfigError(f"{where}: {exc}") from None


def record_settings(record: Path | None, mask: bool | None, dep: Any = None) -> tuple[Path | None, bool, str]:
    """(capture file or None, mask, where the file came from: "--record" or "platform.yaml:L:C: record.path").
    ``--record`` replaces ``record.path``; ``--mask`` / ``--no-mask`` replace ``record.mask``.  Masking is the
    default: a capture holds classified fields (pan, secret, personal) in clear only when ``--no-mask`` or
    ``record.mask: false`` says so (and ``clear_reason`` gives why)."""
    rec = getattr(dep, "record", None)
    if mask is None:
        mask = not (rec is not None and rec.mask is False)
    if record is not None:
        return record, mask, "--record"
    if rec is not None and rec.path is not None:
        return rec.capture_path(), mask, f"{rec.place}: {rec.key}"
    return None, mask, "--record"


MAX_CLEAR_REASON = 500


def clear_reason(mask: bool, given: str | None, cli_mask: bool | None, dep: Any = None) -> str | None:
    """Why a capture is recorded in clear: ``--clear-reason``, else ``record.clear_reason`` of the deployment
    file; None when it is masked.  ``OpsConfigError`` when it is in clear without a reason (PCI DSS: clear
    card numbers, track data or PIN blocks on a tester's disk must be a recorded choice), or a reason is given
    to a masked capture."""
    rec = getattr(dep, "record", None)
    if mask:
        if given is not None:
            raise OpsConfigError("--clear-reason goes with --no-mask (a capture recorded in clear); the capture is "
                                 "masked, so drop --clear-reason, or add --no-mask if it must hold clear values")
        return None
    reason = given if given is not None else getattr(rec, "clear_reason", None)
    where = "--no-mask" if cli_mask is False else f"{getattr(rec, 'place', '') or 'platform.yaml'}: record.mask: false"
    if reason is None or not str(reason).strip():
        fix = ("--clear-reason \"TEXT\"" if cli_mask is False else
               "record.clear_reason: \"TEXT\" beside it (or --clear-reason \"TEXT\")")
        raise OpsConfigError(f"{where} records card numbers, track data, PIN blocks and other classified fields in "
                             f"clear (a PCI DSS finding on a tester's disk): say why (a ticket, the test environment) "
                             f"with {fix}; it is written into the capture's header.  Or drop it: captures are "
                             f"masked by default, and a masked capture replays as well")
    reason = str(reason).strip()
    if len(reason) > MAX_CLEAR_REASON or not reason.isprintable():
        raise OpsConfigError(f"--clear-reason: expected 1 to {MAX_CLEAR_REASON} printable characters on one line "
                             f"(a ticket reference and a few words), got {len(reason)} character(s)")
    return reason
