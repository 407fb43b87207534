"""The reload plan: a pure diff of two Programs (no I/O, no trio).

    plan = plan_reload(old_program, new_program, overrides)
    plan.as_dict()   # {"channels": {"added": [...], "changed": [...], "kept": [...], "removed": [...]},
                     #  "routes": {...}, "formats": {...}, "tables": {...}, "why": {"channels": {name: reason}}}
    plan.rebind      # channels that need a new socket / connection (kind or options changed)
    plan.renew_tls   # listening channels whose certificate files alone changed: a new TLS context, same socket

Declarations compare without their source positions, so moving a route down
a file changes nothing.  A format or table whose file changed (same
declaration, different copybook or CSV) is "changed": the programs compared
carry those files in ``sources`` (``engine.ops.files.with_referenced_files``).
A route is changed when its declaration or a format it uses changed.  A
channel whose ``on error reply`` alone changed is "changed" but keeps its
socket (it is not in ``rebind``).  A ``tcp listen`` or ``http listen`` channel whose options are the
same but whose ``cert`` or ``ca`` file was rewritten (a certificate renewed at the same path) keeps its
socket too: it is in ``renew_tls``, its new connections get a TLS context read from the new files and
those open keep theirs (a new socket would leave the port closed for a few milliseconds: connects
refused, connections waiting to be accepted reset).  Any other change to a listening channel on the same
address gives a new channel object, which takes over the old one's listening socket (``HANDS_OVER``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

KINDS = ("channels", "routes", "formats", "tables")
CHANGES = ("added", "changed", "kept", "removed")


@dataclass
class ReloadPlan:
    old_version: str | None
    new_version: str
    diff: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    why: dict[str, dict[str, str]] = field(default_factory=dict)
    rebind: list[str] = field(default_factory=list)
    renew_tls: list[str] = field(default_factory=list)

    def names(self, kind: str, change: str) -> list[str]:
        return self.diff.get(kind, {}).get(change, [])

    @property
    def identical(self) -> bool:
        return all(not self.names(k, c) for k in KINDS for c in ("added", "changed", "removed"))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: {c: list(self.names(k, c)) for c in CHANGES} for k in KINDS}
        out["why"] = {k: dict(v) for k, v in self.why.items() if v}
        return out

    def lines(self) -> list[str]:
        """Human-readable plan, one line per non-empty (kind, change), reasons indented below."""
        out = []
        for kind in KINDS:
            for change in CHANGES:
                names = self.names(kind, change)
                if names:
                    out.append(f"{kind} {change}: {', '.join(names)}")
                    if change == "changed":
                        for n in names:
                            reason = self.why.get(kind, {}).get(n)
                            if reason:
                                out.append(f"    {n}: {reason}")
        return out


def _file_texts(program: Any, decl_paths: Iterable[str]) -> tuple[Any, ...]:
    src = program.sources
    return tuple(src.get(p) for p in sorted(decl_paths))


def _paths(options: Any) -> list[str]:
    from engine.ops.files import _paths_in
    return list(_paths_in(options))


# channel kinds that can take a new TLS context for the connections they accept from now on
# (``read_tls`` / ``renew_tls``), and the options naming the certificate files read into it (the key, a
# secret, is neither versioned nor compared: a renewed key comes with a renewed certificate)
TLS_RENEWABLE = ("tcp.listen", "http.listen")
TLS_FILE_OPTIONS = ("cert", "ca")


def _tls_only(kind: str, options: Mapping[str, Any], changed: list[str]) -> bool:
    """Only certificate files of a channel that can renew its TLS context changed."""
    tls_files = {options.get(o) for o in TLS_FILE_OPTIONS}
    return kind in TLS_RENEWABLE and bool(changed) and all(p in tls_files for p in changed)


# channel kinds that have no socket: a replaced one finishes what it runs (a file watch its file, on the
# configuration it began with; engine/ops/generation.py HandlerRef.holding)
WITHOUT_SOCKET = ("file.watch", "file.write", "timer", "memory")


# listening channel kinds whose new object adopts the old one's listening socket on the same address
# (engine/channels/listen_handoff.py; port 0 asks for a new free port each time)
HANDS_OVER = ("tcp.listen", "http.listen")


def _keeps_listening_socket(a: Any, b: Any) -> bool:
    address = b.options.get("address")
    return (b.kind in HANDS_OVER and a.kind == b.kind and isinstance(address, str)
            and address == a.options.get("address") and not address.endswith(":0"))


def _with_overrides(decl: Any, overrides: Mapping[str, Mapping[str, Any]], base: Any = None,
                    *programs: Any) -> Any:
    """``decl`` with its deployment-file overrides; a relative file path of theirs (``cert: tls/server.pem``,
    taken from the deployment file's folder ``base``) as the absolute path ``programs`` keep that file's text
    under, so that a certificate renewed there is compared as the route files' are (compared as written, it
    never changed: a renewal keeping its key was not served)."""
    extra = overrides.get(decl.name)
    if not extra:
        return decl
    if base is not None:
        from engine.ops.overrides import _absolute
        known = [p.sources for p in programs if p is not None]

        def absolute(value: Any) -> Any:
            if isinstance(value, str) and value and not value.startswith("/"):
                path = _absolute(value, base)
                if any(path in sources for sources in known):
                    return path
            return value

        extra = {k: absolute(v) for k, v in extra.items()}
    return dataclasses.replace(decl, options={**decl.options, **extra})


def _option_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _route_formats(route: Any) -> set[str]:
    names = {route.format} if route.format else set()
    for step in tuple(route.steps) + tuple(route.on_error):
        for key in ("format", "reply_format"):
            v = step.options.get(key)
            if isinstance(v, str):
                names.add(v)
    return names


def plan_reload(old: Any | None, new: Any, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                old_overrides: Mapping[str, Mapping[str, Any]] | None = None,
                secrets: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None) -> ReloadPlan:
    """What changes when ``new`` replaces ``old`` (``old`` None: everything is added).

    ``overrides``: the channel overrides ``new`` will be bound with; ``old_overrides``: those
    ``old`` runs with (the deployment file as it was read last time), so that an override added,
    changed or removed in the deployment file changes its channel.  ``secrets``: the digests of the
    secret files (``engine.ops.files.secret_digests``) as ``old`` was bound with them and as they are
    now: a channel or format whose key, token or password file was rewritten is changed (the file
    is named by its option, never shown), though the version, which covers no secret, stays."""
    overrides = overrides or {}
    old_overrides = old_overrides or {}
    # the deployment file's folder, relative override paths are taken from (the running generation keeps
    # its overrides as plain dicts: the file's, read again now, knows it)
    base = getattr(overrides, "base", None) or getattr(old_overrides, "base", None)
    plan = ReloadPlan(old.version if old is not None else None, new.version)
    old_secrets, new_secrets = secrets if secrets is not None else ({}, {})

    def secret_changed(kind: str, name: str) -> list[str]:
        """The options of ``name`` naming a secret file whose content changed (compared when both are known)."""
        if secrets is None:
            return []
        a, b = old_secrets.get(kind, {}).get(name, {}), new_secrets.get(kind, {}).get(name, {})
        return sorted(o for o in set(a) & set(b) if a[o] != b[o])

    def table(kind: str, old_items: Mapping[str, Any], new_items: Mapping[str, Any],
              reason: Any) -> None:
        d = {c: [] for c in CHANGES}
        why: dict[str, str] = {}
        for name in new_items:
            if name not in old_items:
                d["added"].append(name)
                continue
            r = reason(name, old_items[name], new_items[name])
            if r:
                d["changed"].append(name)
                why[name] = r
            else:
                d["kept"].append(name)
        d["removed"] = [n for n in old_items if n not in new_items]
        plan.diff[kind] = d
        plan.why[kind] = why

    old_formats = old.formats if old is not None else {}
    old_tables = old.tables if old is not None else {}
    old_channels = old.channels if old is not None else {}
    old_routes = {r.name: r for r in old.routes} if old is not None else {}

    def format_reason(name: str, a: Any, b: Any) -> str:
        if a != b:
            return "declaration changed" + (f" ({', '.join(_option_diff(a.options, b.options))})"
                                             if a.kind == b.kind and a.options != b.options else "")
        if _file_texts(old, _paths(a.options)) != _file_texts(new, _paths(b.options)):
            return "a file it reads changed"
        secret = secret_changed("formats", name)
        if secret:
            return f"secret file changed ({', '.join(secret)}): read again"
        return ""

    table("formats", old_formats, new.formats, format_reason)

    def table_reason(name: str, a: Any, b: Any) -> str:
        if a != b:
            return "declaration changed"
        if _file_texts(old, [a.path]) != _file_texts(new, [b.path]):
            return f"{b.path} changed"
        return ""

    table("tables", old_tables, new.tables, table_reason)

    def channel_reason(name: str, a: Any, b: Any) -> str:
        a, b = (_with_overrides(a, old_overrides, base, old, new), _with_overrides(b, overrides, base, old, new))
        if a.kind != b.kind:
            plan.rebind.append(name)
            return f"kind {a.kind} -> {b.kind}: new socket, the old one drains"
        secret = secret_changed("channels", name) if a.options == b.options else []
        if a.options == b.options and old is not None:
            changed = [p for p in sorted(set(_paths(b.options))) if old.sources.get(p) != new.sources.get(p)]
            # a TLS key rewritten (with its certificate, or alone): read again into a new TLS context too
            if set(secret) <= {"key"} and (_tls_only(b.kind, b.options, changed)
                                           or (secret and not changed and b.kind in TLS_RENEWABLE)):
                plan.renew_tls.append(name)
                files = ", ".join([o for o in TLS_FILE_OPTIONS if b.options.get(o) in changed] + secret)
                what = "certificate files" if changed else "key file"
                return (f"{what} changed ({files}): new connections get them; the socket and open "
                        f"connections are kept")
        files_changed = _file_texts(old, _paths(a.options)) != _file_texts(new, _paths(b.options))
        if a.options != b.options or files_changed or secret:
            plan.rebind.append(name)
            if a.options != b.options or files_changed:
                what = f"options changed ({', '.join(_option_diff(a.options, b.options) or ['a file it reads'])})"
            else:          # named by its option only: a secret's path and content are not shown
                what = f"secret file changed ({', '.join(secret)}): a new channel reads it"
            if _keeps_listening_socket(a, b):
                return f"{what}: the listening socket is handed over to the new channel, the old one drains"
            if b.kind in WITHOUT_SOCKET:      # a folder watched or written, a timer: no socket to speak of
                return f"{what}: a new channel takes over, the old one finishes what it is running"
            return f"{what}: new socket, the old one drains"
        if a.error_reply != b.error_reply:
            return "on error reply changed (socket and connections kept)"
        return ""

    table("channels", old_channels, new.channels, channel_reason)
    changed_formats = set(plan.names("formats", "changed"))

    def route_reason(name: str, a: Any, b: Any) -> str:
        if a != b:
            if dataclasses.replace(a, response_code=b.response_code) == b:     # its channel's error reply changed
                return (f"response-code field changed ({a.response_code or 'none'} -> {b.response_code or 'none'}: "
                        f"the on error reply of channel {b.channel})")
            return "declaration changed"
        uses = sorted(_route_formats(b) & changed_formats)
        if uses:
            return f"uses changed format(s) {', '.join(uses)}"
        return ""

    table("routes", old_routes, {r.name: r for r in new.routes}, route_reason)
    return plan
