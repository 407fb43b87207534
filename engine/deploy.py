"""The deployment file (``platform.yaml``): what ``bsp run`` runs, and where.

    dep = load_deployment("routes/platform.yaml", env="uat")
    dep.route_files          # [Path, ...] absolute, sorted
    dep.ledger_path          # Path
    dep.ledger_sync          # "journal" | "duckdb" | "none" | None (not set: bsp run uses journal)
    dep.admin                # AdminSettings(listen, token, tls_cert, tls_key, client_ca, access)
    dep.audit_key            # SecretRef | None (ledger.audit_key); dep.field_keys likewise
    dep.record               # RecordSettings(path, mask) | None; record: false gives None
    dep.business_day         # BusinessDaySettings(tz, cutoff) | None: bsp report / reconcile's defaults
    dep.calendar_warn_days   # calendars: {warn_days: N} | None (not set: WARN_DAYS, dsl/calendar_window.py)
    dep.four_eyes            # operators: {four_eyes: [...], four_eyes_expire: 8h}: engine.four_eyes.Policy
    dep.secrets["biller_key"].value()   # read from the env var / file now
    dep.channel_overrides    # {"mainframe": {"address": "127.0.0.1:7101"}}
    dep.where("channels", "mainframe")  # "routes/platform.yaml:14:5" for your own errors

The file is checked against ``engine/schemas/platform.schema.json``.  Every
problem is reported as ``error: file:line:col: key: message`` (with how to fix
it where that is known: quote the value, an example of the form; the messages are in
``engine/deploy_messages.py``), all at once (``DeploymentError.problems``).  The YAML is composed to a node tree so
each jsonschema error's ``absolute_path`` maps back to the line it came from.
Secrets are references only ({env: NAME} or {file: path}); inline values are
refused.  See ``docs/deployment.md``.
"""
from __future__ import annotations

import copy
import difflib
import glob
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from engine.defaults import DEFAULT_LEDGER   # the same default as engine.ledger, relative to the cwd
from engine.deploy_businessday import BusinessDaySettings, business_day_settings
from engine.deploy_messages import dotted, schema_message

ENV_VARIABLE = "BSP_ENV"

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"error: {self.file}:{self.line}:{self.col}: {self.message}"


class DeploymentError(ValueError):
    """A bad deployment file.  ``str()`` is one ``error: file:line:col: key: message`` line per problem
    (the same form as the channel-override errors of ``bsp check`` and ``bsp run``)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretError(RuntimeError):
    """A secret could not be read at use time; names the secret and where it was declared (``ref``: the
    reference, for callers that add how to fix it)."""

    def __init__(self, message: str, ref: "SecretRef | None" = None) -> None:
        super().__init__(message)
        self.ref = ref


@dataclass(frozen=True)
class SecretRef:
    """A secret by reference; ``value()`` reads it when called, never at load time."""

    name: str
    env: str | None = None
    file: Path | None = None
    origin: str = ""          # file:line:col of its declaration

    def value(self) -> str:
        if self.env is not None:
            from formats.secret_env import mark
            mark(self.env)                      # a route's env() never reads it (dsl.functions.f_env)
            v = os.environ.get(self.env)
            if v is None:
                raise SecretError(f"{self.origin}: secret {self.name!r}: environment variable {self.env} is not set",
                                  ref=self)
            return v
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"{self.origin}: secret {self.name!r}: cannot read {self.file}: {exc.strerror}",
                              ref=self) from None

    def __repr__(self) -> str:   # never the value
        src = f"env={self.env!r}" if self.env is not None else f"file={str(self.file)!r}"
        return f"SecretRef({self.name!r}, {src})"


class ChannelOverrides(dict):
    """``{channel: {option: value}}`` that also knows where each was written: ``place(channel,
    option=None)`` -> (``file:line:col``, dotted key path) of the override (the environment's when it
    gives that option, else the base ``channels:``); an option None: the channel's key itself."""

    def __init__(self, data: Any = (), place: Any = None, settings: Any = None, source: str = "",
                 base: Path | None = None, env: str | None = None) -> None:
        super().__init__(data)
        self.env = env                # the environment chosen (--env / BSP_ENV), None: the base settings
        self.place = place
        self.settings: dict[str, Any] = dict(settings or {})   # what a reload cannot change (ledger, admin)
        self.source = source                                   # the deployment file's name
        self.base = base              # the deployment file's folder: relative file paths are taken from there
        self.admin: Any = None        # its AdminSettings: a reload reads the admin tokens again from them


KEY_FILE_SUFFIX = " (its file)"    # restart_settings: the fingerprint of the file a setting names


def _fingerprint(path: str | Path) -> str | None:
    import hashlib
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


@dataclass(frozen=True)
class AdminToken:
    """``admin.tokens[i]``: a named token by reference, with its roles (engine/admin/roles.py)."""

    name: str
    ref: SecretRef
    roles: tuple[str, ...]


@dataclass(frozen=True)
class AdminSettings:
    listen: str | None = None
    token: SecretRef | None = None
    tokens: tuple[AdminToken, ...] = ()   # admin.tokens: named ones, each with its roles
    tls_cert: Path | None = None          # admin.tls.cert (absolute)
    tls_key: SecretRef | None = None      # admin.tls.key: {file: PEM} or {env: NAME holding the PEM text}
    client_ca: Path | None = None         # admin.tls.client_ca: require client certificates (mutual TLS)
    access: list[str] | Path | None = None   # admin.access: the rules, or the file holding them
    places: dict[str, str] = field(default_factory=dict, compare=False)   # "tls", "access" -> file:line:col


@dataclass(frozen=True)
class RecordSettings:
    """``record: {path, mask, clear_reason}``: ``path`` absolute, ``{started}`` not yet replaced (``capture_path``)."""

    path: Path | None = None
    mask: bool | None = None     # None: not set (masked: the default)
    clear_reason: str | None = None   # why mask: false (written into the capture's header)
    place: str = ""              # file:line:col of record.path (else of record)
    key: str = "record.path"     # its dotted key path

    def capture_path(self, started: Any = None) -> Path | None:
        """``path`` with ``{started}`` replaced by the start time (UTC, ``20260301T090000Z``)."""
        if self.path is None:
            return None
        from datetime import datetime, timezone
        stamp = (started or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        return Path(str(self.path).replace("{started}", stamp))


@dataclass
class Deployment:
    path: Path
    env: str | None
    route_files: list[Path]
    ledger_path: Path
    admin: AdminSettings
    secrets: dict[str, SecretRef]
    channel_overrides: dict[str, dict[str, Any]]
    ledger_sync: str | None = None         # ledger: {sync: journal | duckdb | none}; None: not set
    environments: tuple[str, ...] = ()     # every environment the file defines (``env`` is one of them)
    key_retention: str | None = None       # ledger: {key_retention: 35d | forever}; None: not set
    reversal_alert_after: int | None = None  # ledger: {reversal_alert_after: 5}; None: not set
    txn_backlog_entries: int | None = None   # ledger: {txn_backlog_entries: 20000}; None: not set
    txn_backlog_bytes: int | None = None     # ledger: {txn_backlog_bytes: 64MiB} as bytes; None: not set
    audit_key: SecretRef | None = None     # ledger: {audit_key: {file: ...}}; None: BSP_AUDIT_KEY(_FILE)
    field_keys: SecretRef | None = None    # ledger: {field_keys: {file: ...}}; None: BSP_FIELD_KEYS(_FILE)
    record: RecordSettings | None = None   # record: {path, mask}; None: not set (or record: false)
    business_day: BusinessDaySettings | None = None   # business_day: {tz, cutoff}; None: not set
    calendar_warn_days: int | None = None   # calendars: {warn_days: 60}; None: not set (engine/calexpiry.py)
    four_eyes: Any = None                  # operators: engine.four_eyes.Policy; None: not set (no dual control)
    _marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict, repr=False)
    _override_origin: dict[str, KeyPath] = field(default_factory=dict, repr=False)
    _keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.channel_overrides = ChannelOverrides(self.channel_overrides, self.override_place,
                                                  self.restart_settings(), self.path.name,
                                                  self.path.resolve().parent, self.env)
        self.channel_overrides.admin = self.admin

    def restart_settings(self) -> dict[str, Any]:
        """The settings ``bsp run`` reads once, at start (a reload cannot change them); secrets as
        their references, never their values."""
        return {"ledger": str(self.ledger_path), "ledger.sync": self.ledger_sync,
                "ledger.key_retention": self.key_retention,
                "ledger.reversal_alert_after": self.reversal_alert_after,
                "ledger.txn_backlog_entries": self.txn_backlog_entries,
                "ledger.txn_backlog_bytes": self.txn_backlog_bytes,
                "ledger.audit_key": repr(self.audit_key), "ledger.field_keys": repr(self.field_keys),
                "admin.listen": self.admin.listen,     # admin.token(s): a reload reads them again (ops/admintokens.py)
                "admin.tls": (str(self.admin.tls_cert), repr(self.admin.tls_key), str(self.admin.client_ca))
                if self.admin.tls_cert else None,
                "admin.access": (str(self.admin.access) if isinstance(self.admin.access, Path)
                                 else self.admin.access),
                "record": (str(self.record.path), self.record.mask) if self.record else None,
                # the day `limit` totals with per = "day" start again (engine/ops/serve.py, engine/totals.py)
                "business_day": (self.business_day.tz, self.business_day.cutoff) if self.business_day else None,
                # days before a calendar runs out from which the engine warns (engine/calexpiry.py)
                "calendars.warn_days": self.calendar_warn_days,
                # the operator actions under dual control (engine/four_eyes.py): read once, at start
                "operators": (tuple(self.four_eyes.actions), self.four_eyes.expire) if self.four_eyes else None,
                **self._key_files()}

    def _key_files(self) -> dict[str, str | None]:
        """A fingerprint of each file holding a key read once at start, so that a reload finds one
        rewritten in place (a keyring rotated) and warns that it takes a restart.  Only compared, never
        shown: a truncated SHA-256 of the file, or None when it cannot be read.  The admin API's TLS
        files and token files are not among them: a reload reads them again (engine/ops/admintls.py,
        engine/ops/admintokens.py)."""
        def ref_file(ref: SecretRef | None, variable: str) -> str | None:
            if ref is not None:
                return str(ref.file) if ref.file is not None else None
            return os.environ.get(variable) or None      # no key in the file: bsp run reads this variable's
        files = {"ledger.audit_key": ref_file(self.audit_key, "BSP_AUDIT_KEY_FILE"),
                 "ledger.field_keys": ref_file(self.field_keys, "BSP_FIELD_KEYS_FILE")}
        return {key + KEY_FILE_SUFFIX: _fingerprint(path) for key, path in files.items() if path}

    def where(self, *key_path: str | int) -> str:
        """``file:line:col`` of a key path in the deployment file (its nearest existing parent)."""
        kp: KeyPath = tuple(key_path)
        while kp and kp not in self._marks:
            kp = kp[:-1]
        line, col = self._marks.get(kp, (1, 1))
        return f"{self.path}:{line}:{col}"

    def channel_origin(self, channel: str) -> str:
        """Where the override of ``channel`` was written (the environment's, if it has one)."""
        return self.where(*self._override_origin.get(channel, ("channels", channel)))

    def override_place(self, channel: str, option: str | None = None, *, at_key: bool = False) -> tuple[str, str]:
        """(``file:line:col``, key path) of the override of ``option`` of ``channel`` (None: of the
        channel's name; ``at_key``: the option's name rather than its value), for messages about it."""
        candidates: list[KeyPath] = []
        if self.env is not None:
            candidates.append(("environments", self.env, "channels", channel))
        candidates.append(("channels", channel))
        for base in candidates:
            kp = base + ((option,) if option is not None else ())
            if kp in self._keys:
                line, col = self._keys[kp] if option is None or at_key else self._marks.get(kp, self._keys[kp])
                return f"{self.path}:{line}:{col}", dotted(kp)
        return self.channel_origin(channel), dotted(candidates[-1] + ((option,) if option else ()))


# ------------------------------------------------------------------ YAML with marks

@lru_cache(maxsize=1)
def platform_schema() -> dict[str, Any]:
    text = resources.files("engine").joinpath("schemas/platform.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _index(node: yaml.Node, path: KeyPath, marks: dict[KeyPath, tuple[int, int]],
           keys: dict[KeyPath, tuple[int, int]], dups: list[tuple[KeyPath, yaml.Node, int]]) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for knode, vnode in node.value:
            key = knode.value
            if key in seen:
                dups.append((path + (key,), knode, seen[key]))
            seen.setdefault(key, knode.start_mark.line + 1)
            keys[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            _index(vnode, path + (key,), marks, keys, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), marks, keys, dups)


# ------------------------------------------------------------------ loading

def _read(path: Path) -> tuple[Any, dict[KeyPath, tuple[int, int]], dict[KeyPath, tuple[int, int]], list[Problem]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeploymentError([Problem(name, 1, 1, "no such deployment file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeploymentError([Problem(name, 1, 1, f"cannot read the deployment file: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(p for p in (exc.context, exc.problem) if p)
        opened = exc.context_mark
        if exc.context and opened is not None and mark is not None and opened.line != mark.line:
            # where the parser gave up is often lines after the mistake: a `{` or `[` not closed, a comma
            # missing, on the line the mapping or list began (before, that line was not named)
            msg += (f" (the {exc.context.removeprefix('while parsing a ').removeprefix('while scanning a ')} began "
                    f"at line {opened.line + 1}, column {opened.column + 1}: is a closing bracket or a comma "
                    f"missing there?)")
        raise DeploymentError([Problem(name, line, col, f"not valid YAML: {msg}")]) from None
    if node is None:
        raise DeploymentError([Problem(name, 1, 1, "the deployment file is empty; it needs at least `routes:`")])
    marks: dict[KeyPath, tuple[int, int]] = {}
    keys: dict[KeyPath, tuple[int, int]] = {}
    dups: list[tuple[KeyPath, yaml.Node, int]] = []
    _index(node, (), marks, keys, dups)
    problems = [Problem(name, k.start_mark.line + 1, k.start_mark.column + 1,
                        f"{dotted(p)}: duplicate key {p[-1]!r} (first written on line {first})")
                for p, k, first in dups]
    return data, marks, keys, problems


def _resolve_routes(items: list[str], base: Path, at: Any) -> tuple[list[Path], list[Problem]]:
    files: set[Path] = set()
    problems: list[Problem] = []
    for i, item in enumerate(items):
        target = base / item
        if glob.has_magic(item):
            found = [Path(p) for p in glob.glob(str(target), recursive=True) if Path(p).is_file()]
        elif target.is_dir():
            found = sorted(target.rglob("*.route"))
        elif target.is_file():
            found = [target]
        else:
            problems.append(at(("routes", i), f"routes[{i}]: {item!r}: no such file or directory (looked in {base})"))
            continue
        if not found:
            problems.append(at(("routes", i), f"routes[{i}]: {item!r} matches no route file (looked in {base})"))
        files.update(p.resolve() for p in found)
    return sorted(files), problems


def load_deployment(path: str | Path, env: str | None = None) -> Deployment:
    """Load and check a deployment file.  ``env`` (or ``$BSP_ENV``) selects an environment.

    Raises ``DeploymentError`` listing every problem as ``file:line:col: message``.
    """
    path = Path(path)
    name = str(path)
    data, marks, keys, problems = _read(path)

    def at(kp: KeyPath, message: str, *, key: bool = False) -> Problem:
        line, col = (keys.get(kp) if key else None) or marks.get(kp) or (1, 1)
        while (line, col) == (1, 1) and kp and kp not in marks:
            kp = kp[:-1]
            line, col = marks.get(kp, (1, 1))
        return Problem(name, line, col, message)

    validator = jsonschema.Draft202012Validator(platform_schema())
    for err in validator.iter_errors(data):
        kp, msg, on_key = schema_message(err)
        problems.append(at(kp, msg, key=on_key))
    if problems:
        problems.sort(key=lambda p: (p.line, p.col))
        raise DeploymentError(problems)

    base = path.resolve().parent
    route_files, problems = _resolve_routes(data["routes"], base, at)

    env_source = "--env"
    if env is None:
        env = os.environ.get(ENV_VARIABLE) or None
        env_source = f"${ENV_VARIABLE}"
    environments: dict[str, Any] = data.get("environments") or {}
    env_data: dict[str, Any] = {}
    if env is not None:
        if env not in environments:
            known = ", ".join(sorted(environments)) or "none are defined"
            hint = ([e for e in environments if e.lower() == env.lower()]
                    or difflib.get_close_matches(env, list(environments), n=1)
                    or difflib.get_close_matches(env.lower(), [e.lower() for e in environments], n=1))
            hint = [next(e for e in environments if e.lower() == hint[0].lower())] if hint else hint
            problems.append(at(("environments",), (
                f"environments: environment {env!r} (from {env_source}) is not defined here; "
                + (f"did you mean {hint[0]!r}? " if hint else "") + f"defined: {known}"), key=True))
        else:
            env_data = environments[env] or {}

    def place(kp: KeyPath, *, key: bool = False) -> str:
        line, col = (keys if key else marks).get(kp, (1, 1))
        return f"{name}:{line}:{col}"

    def chosen(section: str, key: str) -> KeyPath:
        """Where ``section.key`` comes from: the environment's when it gives it, else the base."""
        env_section = env_data.get(section)
        if isinstance(env_section, dict) and key in env_section:
            return ("environments", str(env), section, key)
        return (section, key)

    ledger_path, ledger_sync, key_retention, ledger_merged = _ledger_settings(
        data.get("ledger"), env_data.get("ledger"), base)
    ledger_keys = {k: _secret_ref(f"ledger.{k}", ledger_merged[k], base, place(chosen("ledger", k)))
                   for k in ("audit_key", "field_keys") if k in ledger_merged}

    secrets = {
        sname: _secret_ref(sname, ref, base, f"{name}:{marks[('secrets', sname)][0]}:{marks[('secrets', sname)][1]}")
        for sname, ref in (data.get("secrets") or {}).items()
    }
    admin_data = {**(data.get("admin") or {}), **(env_data.get("admin") or {})}
    token = None
    tokens: list[AdminToken] = []
    tokens_kp = chosen("admin", "tokens")
    names: dict[str, int] = {}
    for i, entry in enumerate(admin_data.get("tokens") or []):
        kp = tokens_kp + (i,)
        has = [k for k in ("file", "env") if k in entry]
        if len(has) != 1:
            problems.append(at(kp, f"{dotted(kp)}: {'both file and env' if has else 'neither file nor env'} given; "
                                   f"name the token's source, exactly one: file: path (relative to this file) or "
                                   f"env: NAME, e.g. {{name: prometheus, file: secrets/prometheus.token, roles: "
                                   f"[monitor]}}", key=not has))
            continue
        if entry["name"] in names:
            problems.append(at(kp + ("name",), f"{dotted(kp + ('name',))}: the name {entry['name']!r} is taken by "
                                               f"{dotted(tokens_kp + (names[entry['name']],))}; give each token "
                                               f"its own name"))
            continue
        names[entry["name"]] = i
        tokens.append(AdminToken(entry["name"], _secret_ref(f"admin.tokens[{entry['name']}]", entry, base,
                                                            place(kp)), tuple(entry["roles"])))
    if "token" in admin_data and "admin" in names:
        kp = tokens_kp + (names["admin"], "name")
        problems.append(at(kp, f"{dotted(kp)}: the name 'admin' is the one admin.token goes by (a token with "
                               f"every role); name this one otherwise, or drop admin.token"))
    if "token" in admin_data:
        tpath = ("environments", env, "admin", "token") if "token" in (env_data.get("admin") or {}) else ("admin", "token")
        line, col = marks[tpath]
        token = _secret_ref("admin.token", admin_data["token"], base, f"{name}:{line}:{col}")
    tls = admin_data.get("tls")
    access = admin_data.get("access")
    places = {"tls": place(chosen("admin", "tls"), key=True), "access": place(chosen("admin", "access"))}
    places.update({f"tls.{k}": place(chosen("admin", "tls") + (k,)) for k in ("cert", "key", "client_ca")})
    if isinstance(access, list):
        from engine.access import AccessList, AccessListError
        try:
            AccessList.parse(access)
        except AccessListError as exc:
            kp = chosen("admin", "access") + (exc.index,)
            problems.append(at(kp, f"{dotted(kp)}: {exc}"))
    admin = AdminSettings(
        listen=admin_data.get("listen"), token=token, tokens=tuple(tokens),
        tls_cert=_path(base, tls["cert"]) if tls else None,
        tls_key=_secret_ref("admin.tls.key", tls["key"], base, place(chosen("admin", "tls") + ("key",)))
        if tls else None,
        client_ca=_path(base, tls["client_ca"]) if tls and "client_ca" in tls else None,
        access=_path(base, access) if isinstance(access, str) else access,
        places=places)
    record = _record_settings(data, env_data, env, base, place)
    business_day, day_problems = business_day_settings(data, env_data, env, place)
    problems += [at(kp, message) for kp, message in day_problems]
    for kp in [("admin", "listen")] + [("environments", e, "admin", "listen") for e in environments]:
        listen = _get(data, kp)
        if isinstance(listen, str):
            port = int(listen.rpartition(":")[2])
            if not 0 <= port <= 65535:
                problems.append(at(kp, f"{dotted(kp)}: port {port} out of range 1-65535 "
                                       f"(e.g. \"127.0.0.1:7080\")"))

    overrides: dict[str, dict[str, Any]] = copy.deepcopy(data.get("channels") or {})
    origin: dict[str, KeyPath] = {ch: ("channels", ch) for ch in overrides}
    for ch, opts in (env_data.get("channels") or {}).items():
        overrides.setdefault(ch, {}).update(copy.deepcopy(opts))
        origin[ch] = ("environments", str(env), "channels", ch)

    if problems:
        raise DeploymentError(problems)
    return Deployment(path=path, env=env, route_files=route_files, ledger_path=ledger_path, admin=admin,
                      secrets=secrets, channel_overrides=overrides, ledger_sync=ledger_sync,
                      key_retention=key_retention, environments=tuple(sorted(environments)),
                      reversal_alert_after=ledger_merged.get("reversal_alert_after"),
                      txn_backlog_entries=ledger_merged.get("txn_backlog_entries"),
                      txn_backlog_bytes=(None if ledger_merged.get("txn_backlog_bytes") is None
                                         else _size_bytes(ledger_merged["txn_backlog_bytes"])),
                      audit_key=ledger_keys.get("audit_key"), field_keys=ledger_keys.get("field_keys"),
                      record=record, business_day=business_day,
                      calendar_warn_days={**(data.get("calendars") or {}),
                                          **(env_data.get("calendars") or {})}.get("warn_days"),
                      four_eyes=_four_eyes({**(data.get("operators") or {}), **(env_data.get("operators") or {})}),
                      _marks=marks, _override_origin=origin, _keys=keys)


def _four_eyes(merged: dict[str, Any]) -> Any:
    """``operators:`` as an ``engine.four_eyes.Policy`` (the environment's keys winning), None when not set."""
    if not merged:
        return None
    from engine.four_eyes import DEFAULT_EXPIRE, Policy, parse_expire

    return Policy(tuple(merged.get("four_eyes") or ()), parse_expire(merged.get("four_eyes_expire") or DEFAULT_EXPIRE))


def _get(data: Any, kp: KeyPath) -> Any:
    for k in kp:
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


def _path(base: Path, text: str) -> Path:
    return Path(os.path.normpath(base / text))


def _record_settings(data: dict[str, Any], env_data: dict[str, Any], env: str | None, base: Path,
                     place: Any) -> RecordSettings | None:
    """``record:`` with the environment's keys merged over the base (``record: false`` there: none)."""
    top, mine = data.get("record"), env_data.get("record")
    if mine is False or (top in (None, False) and mine is None):
        return None
    merged = {**(top if isinstance(top, dict) else {}), **(mine or {})}
    env_kp: KeyPath = ("environments", str(env), "record")
    if isinstance(mine, dict) and "path" in mine:
        kp = env_kp + ("path",)
    elif isinstance(top, dict) and "path" in top:
        kp = ("record", "path")
    else:
        kp = env_kp if isinstance(mine, dict) else ("record",)
    return RecordSettings(path=_path(base, merged["path"]) if "path" in merged else None,
                          mask=merged.get("mask"), clear_reason=merged.get("clear_reason"),
                          place=place(kp), key=dotted(kp))


def _ledger_settings(top: Any, env_value: Any, base: Path
                     ) -> tuple[Path, str | None, str | None, dict[str, Any]]:
    """(path, sync, key_retention, every key) from ``ledger:`` (a path, or {path, sync, key_retention,
    audit_key, field_keys}), the environment's keys winning."""
    merged: dict[str, Any] = {}
    for value in (top, env_value):
        if isinstance(value, str):
            merged["path"] = value
        elif isinstance(value, dict):
            merged.update(value)
    path = merged.get("path")
    retention = merged.get("key_retention")
    return ((_path(base, path) if path else DEFAULT_LEDGER), merged.get("sync"),
            None if retention is None else str(retention), merged)


_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _size_bytes(value: int | str) -> int:
    """``ledger.txn_backlog_bytes`` as bytes: an integer, or ``64MiB`` (the schema has checked the form)."""
    if isinstance(value, int):
        return value
    digits = value.rstrip("BKMGi")
    return int(digits) * _UNITS[value[len(digits):]]


def _secret_ref(name: str, ref: dict[str, str], base: Path, origin: str) -> SecretRef:
    if "env" in ref:
        return SecretRef(name=name, env=ref["env"], origin=origin)
    return SecretRef(name=name, file=base / ref["file"], origin=origin)


__all__ = ["load_deployment", "Deployment", "DeploymentError", "Problem", "SecretRef", "SecretError",
           "AdminSettings", "AdminToken", "BusinessDaySettings", "RecordSettings", "platform_schema", "ENV_VARIABLE"]
