"""The messages of ``engine/deploy.py``: a jsonschema error of the deployment file -> the key path to
point at and one line saying what is wrong and how to fix it (an example of the expected form).

    kp, message, at_key = schema_message(err)      # ("admin", "listen"), "admin.listen: ...", False
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable

import jsonschema

KeyPath = tuple[str | int, ...]


def dotted(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _yaml_type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)


_SECRET_HELP = ("write {env: NAME} (read from an environment variable) or {file: path} "
                "(read from a file, relative to this deployment file)")


# the secret references other than secrets.NAME: what they hold, and an example of the reference
_SECRET_KINDS = {
    "token": ("token", ""),
    "key": ("private key", "key: {file: tls/admin.key}"),
    "audit_key": ("audit key", "audit_key: {file: keys/audit.key}"),
    "field_keys": ("field keyring", "field_keys: {file: keys/field-keys.json}"),
}


def schema_message(err: jsonschema.ValidationError) -> tuple[KeyPath, str, bool]:
    """(key path to point at, message, point at the key rather than its value)."""
    path: KeyPath = tuple(err.absolute_path)
    where = dotted(path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    is_secret = schema.get("description", "").startswith("{env: NAME}")
    v = err.validator
    if is_secret and v == "type":
        what, example = _SECRET_KINDS.get(path[-1] if path and path[:1] != ("secrets",) else "", ("secret", ""))
        return path, (f"{where}: inline {what} values are refused (a deployment file is no place for "
                      f"secrets); {_SECRET_HELP}" + (f", e.g. {example}" if example else "")), False
    if is_secret and v in ("minProperties", "maxProperties"):
        return path, f"{where}: a secret reference names exactly one source; {_SECRET_HELP}", False
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed]
        key = extras[0] if extras else ""
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        if len(path) >= 2 and path[-2] == "tokens" and key in ("token", "secret", "value"):
            return path + (key,), (f"{dotted(path + (key,))}: inline token values are refused (a deployment file "
                                   f"is no place for secrets); write file: path (relative to this deployment file) "
                                   f"or env: NAME, e.g. {{name: prometheus, file: secrets/prometheus.token, "
                                   f"roles: [monitor]}}"), True
        msg = f"{dotted(path + (key,))}: unknown key {key!r}"
        msg += f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
        if is_secret:
            msg += f" ({_SECRET_HELP})"
        return path + (key,), msg, True
    if v == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        why = {"routes": " (the list of route files to run)",
               "cert": " (the admin API's certificate, e.g. cert: tls/admin.crt)",
               "key": " (the certificate's private key, e.g. key: {file: tls/admin.key})"}
        return path, f"{where}: missing required key {missing[0]!r}" + why.get(missing[0], ""), False
    if path[-2:] == ("calendars", "warn_days") and v in ("type", "minimum"):
        return path, (f"{where}: expected a whole number of days, 0 or more, got {_yaml_type(err.instance)} "
                      f"{err.instance!r}; write how many days before a business-day calendar runs out bsp warns "
                      f"(e.g. calendars: {{warn_days: 90}}; 60 when not set)"), False
    if v == "type":
        wants = [err.validator_value] if isinstance(err.validator_value, str) else list(err.validator_value)
        want = " or ".join({"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
                            "boolean": "true or false"}.get(w, w) for w in wants)
        hint = _type_hint(path, wants, err.instance)
        return path, (f"{where}: expected {want}, got {_yaml_type(err.instance)} {err.instance!r}"
                      + (f"; {hint}" if hint else "")), False
    if v == "not" and path[-1:] == ("record",):
        return path, (f"{where}: true names no capture file; write record: {{path: "
                      f"\"../var/capture-{{started}}.duckdb\", mask: true}} (or record: false for none)"), False
    if v == "minItems":
        return path, f"{where}: the list is empty; give at least one route file, directory or glob", False
    if v == "pattern" and path[-1:] == ("listen",):
        return path, f"{where}: {err.instance!r} is not host:port (e.g. \"127.0.0.1:7080\")", False
    if v == "pattern" and path[-1:] == ("key_retention",):
        return path, (f"{where}: {err.instance!r} is not a duration; write a number with d, h, m or s, or "
                      f"forever (e.g. key_retention: 35d)"), False
    if v == "pattern" and path[-1:] == ("txn_backlog_bytes",):
        return path, (f"{where}: {err.instance!r} is not a size; write bytes, or a number with KiB, MiB or GiB "
                      f"(e.g. txn_backlog_bytes: 64MiB)"), False
    if v == "pattern" and path[-1:] == ("cutoff",):
        return path, (f"{where}: {err.instance!r} is not a time of day; write HH:MM, 24-hour, in quotes (e.g. "
                      f"cutoff: \"17:00\"): the local time the business day ends"), False
    if v == "pattern" and path[-1:] == ("env",):
        return path, (f"{where}: {err.instance!r} is not an environment variable name; use letters, digits "
                      f"and _, not starting with a digit (e.g. {{env: BSP_BILLER_KEY}})"), False
    if v == "pattern":
        return path, f"{where}: {err.instance!r} does not match {err.validator_value}", False
    if v == "enum" and len(path) >= 2 and path[-2] == "four_eyes":
        known = [str(o) for o in err.validator_value]
        hint = difflib.get_close_matches(str(err.instance), known, n=1)
        return path, (f"{where}: unknown action {err.instance!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                      + f"; the actions under dual control are: {', '.join(known)} (docs/security.md#four-eyes)"), False
    if v == "uniqueItems" and path[-1:] == ("four_eyes",):
        return path, f"{where}: an action is listed twice; name each once", False
    if v == "pattern" and path[-1:] == ("four_eyes_expire",):
        return path, (f"{where}: {err.instance!r} is not a duration; write a number with d, h, m or s (e.g. "
                      f"four_eyes_expire: 8h)"), False
    if v == "enum":
        options = ", ".join(str(o) for o in err.validator_value)
        return path, f"{where}: expected one of {options}, got {err.instance!r}", False
    if v == "propertyNames":
        return path, f"{where}: {err.message}", True
    if v == "const":
        return path, f"{where}: expected {err.validator_value!r}, got {err.instance!r}", False
    if v == "minLength":
        return path, f"{where}: must not be empty", False
    return path, f"{where}: {err.message}", False


def _type_hint(path: KeyPath, wants: list[str], value: Any) -> str:
    """How to write a value of the wrong YAML type, with an example of the expected form."""
    key = path[-1] if path else ""
    if "array" in wants and key == "access":
        return 'write the rules as a list, e.g. access: ["cn:OPS-CONSOLE", "ip:10.0.0.0/8"], or a file name'
    if "object" in wants and key == "tls":
        return "e.g. tls: {cert: tls/admin.crt, key: {file: tls/admin.key}, client_ca: tls/ca.crt}"
    if "string" in wants and isinstance(value, (int, float, bool)) and not isinstance(value, dict):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key == "listen":
            return f'write host:port in quotes, e.g. listen: "127.0.0.1:{text}"'
        if key == "cutoff" and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            # YAML 1.1 reads 17:00 unquoted as a sexagesimal number (17 * 60 + 0)
            hh, mm = divmod(value, 60)
            return f'write the time in quotes, e.g. cutoff: "{hh:02d}:{mm:02d}" (YAML reads {hh}:{mm:02d} unquoted as the number {value})'
        return f'quote the value: {key}: "{text}"'
    if wants == ["array"] and isinstance(value, str):
        return f"write a list, e.g. {key}: [{value}]"
    if "object" in wants:
        if path[:1] == ("admin",) or path[-1:] == ("admin",):
            return 'e.g. admin: {listen: "127.0.0.1:7080", token: {file: admin.token}}'
        if path[-2:-1] == ("channels",):
            return f'write the channel\'s options as a mapping, e.g. {key}: {{address: "127.0.0.1:7101"}}'
        if path[-1:] == ("channels",):
            return 'e.g. channels: {mainframe: {address: "127.0.0.1:7101"}}'
        if path[-2:-1] == ("environments",):
            return f"e.g. {key}: {{ledger: var/bsp-{key}.duckdb}}"
        if path[-1:] == ("ledger",):
            return "write the file, e.g. ledger: var/bsp.duckdb, or {path: var/bsp.duckdb, sync: journal}"
        if path[-1:] == ("record",):
            return 'e.g. record: {path: "../var/capture-{started}.duckdb", mask: true}, or record: false'
    if wants == ["boolean"] and path[-1:] == ("mask",):
        return "write mask: true or mask: false"
    if len(path) >= 3 and path[-3:-2] == ("channels",):
        return "a channel option is a string, number, true/false or a list, e.g. timeout: 3s"
    return ""
