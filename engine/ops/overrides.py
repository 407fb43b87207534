"""Channel overrides of a deployment file, checked against the program and the channel kinds' options.

    problems = check_overrides(overrides, program, registry)   # [] when every override is usable
    raise OverrideError(problems)                              # a BindError, one line per problem

Each problem names the override's place in the deployment file (``platform.yaml:LINE:COL:
channels.biller.timeout: ...``) when ``overrides`` is an ``engine.deploy.ChannelOverrides``: an
override for a channel no route file declares, an option the channel's kind does not have, or a
value the option cannot take, or a file path that names no file.  ``bsp run`` refuses to start on
any of them, and a reload keeps the running configuration.

    overrides = resolve_paths(overrides, program, registry)    # what the channels are built with

A relative file path in an override (``cert``, ``ca``, a folder ...) is taken from the deployment
file's folder (``ChannelOverrides.base``), as a route file's own paths are from the route file's
folder, whatever folder ``bsp run`` starts in.
"""
from __future__ import annotations

import difflib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from engine.runtime.binder import BindError

COMMON_OPTIONS = ("record",)       # every channel kind takes these (dsl.checker.COMMON_CHANNEL_OPTIONS)


class OverrideError(BindError):
    """Unusable channel overrides; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _hint(word: str, names: Any, what: str) -> str:
    names = sorted(names)
    close = difflib.get_close_matches(word, names, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"{what}: {', '.join(names)}" if names else f"there are no {what}"


def _value_problem(channel: str, opt: Any, value: Any) -> str | None:
    """Why ``value`` (as YAML gave it) cannot be option ``opt`` of a channel, or None."""
    from engine.channels.options import ChannelConfigError, parse_address, seconds

    t = opt.type
    if opt.name == "address":
        try:
            parse_address(channel, value)
        except ChannelConfigError as exc:
            return str(exc).removeprefix(f"channel {channel}: option address: ")
        return None
    if t == "duration":
        if isinstance(value, bool):
            return f"expected a duration such as 3s or 200ms, got {value!r}"
        try:
            seconds(value, 0.0)
        except ChannelConfigError as exc:
            return str(exc)
        return None
    if t == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected a whole number, got {value!r}"
    if t == "bool" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    if t == "decimal":
        if isinstance(value, bool):
            return f"expected a number, got {value!r}"
        try:
            Decimal(str(value))
        except InvalidOperation:
            return f"expected a number, got {value!r}"
        return None
    if t in ("string", "path", "ident", "format", "channel", "table") and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    if t == "list" and not isinstance(value, list):
        return f"expected a list [a, b], got {value!r}"
    if opt.choices is not None and isinstance(value, str) and value not in opt.choices \
            and t != "path":
        return f"expected one of {', '.join(opt.choices)}, got {value!r}" + (
            f"; did you mean {difflib.get_close_matches(value, opt.choices, n=1)[0]!r}?"
            if difflib.get_close_matches(value, opt.choices, n=1) else "")
    return None


def _is_file_path(opt: Any, value: Any) -> bool:
    """A file path option given a path (not one of the built-in names some path options take)."""
    return (opt is not None and opt.type == "path" and isinstance(value, str)
            and not (opt.choices is not None and value in opt.choices))


def _absolute(value: str, base: Any) -> str:
    p = Path(value)
    return value if p.is_absolute() or base is None else str((Path(base) / p).resolve())


def resolve_paths(overrides: Mapping[str, Mapping[str, Any]] | None, program: Any,
                  registry: Any) -> dict[str, dict[str, Any]]:
    """The overrides as plain dicts, each relative file path made absolute against the deployment
    file's folder (``overrides.base``; none for a plain mapping: the paths stay as given)."""
    base = getattr(overrides, "base", None)
    out = {name: dict(opts or {}) for name, opts in (overrides or {}).items()}
    for name, opts in out.items():
        decl = program.channels.get(name)
        spec = registry.get("channel", decl.kind) if decl is not None else None
        if spec is None:
            continue
        for key, value in opts.items():
            if _is_file_path(spec.option(key), value):
                opts[key] = _absolute(value, base)
    return out


def check_overrides(overrides: Mapping[str, Mapping[str, Any]] | None, program: Any, registry: Any) -> list[str]:
    """Every problem of ``overrides`` against ``program``'s channels, one line each."""
    place = getattr(overrides, "place", None)

    def at(channel: str, option: str | None = None, *, at_key: bool = False) -> str:
        if place is None:
            return f"channels.{channel}" + (f".{option}" if option else "")
        where, key = place(channel, option, at_key=at_key)
        return f"{where}: {key}"

    problems: list[str] = []
    for name, opts in (overrides or {}).items():
        decl = program.channels.get(name)
        if decl is None:
            problems.append(f"{at(name, at_key=True)}: unknown channel {name!r}; "
                            f"{_hint(name, program.channels, 'declared channels')} "
                            f"(an override names a channel of the route files; fix the name or remove it)")
            continue
        spec = registry.get("channel", decl.kind)
        if spec is None:
            continue                    # the binder says the kind is unknown
        kind = decl.kind.replace(".", " ")
        names = set(spec.option_names) | set(COMMON_OPTIONS)
        for key, value in (opts or {}).items():
            opt = spec.option(key)
            if opt is None and key not in COMMON_OPTIONS:
                problems.append(f"{at(name, key, at_key=True)}: unknown option {key!r} for channel {name} "
                                f"({kind}); {_hint(key, names, 'its options')}")
                continue
            if opt is None:
                why = None if isinstance(value, bool) else f"expected true or false, got {value!r}"
            else:
                why = _value_problem(name, opt, value)
                if why is None and _is_file_path(opt, value) and not getattr(opt, "secret", False):
                    found = Path(_absolute(value, getattr(overrides, "base", None)))
                    if not found.exists():
                        why = (f"file not found: {value!r} (looked for {found}); a relative path in the "
                               f"deployment file is taken from its folder")
            if why:
                problems.append(f"{at(name, key)}: channel {name} ({kind}): {why}")
    return problems
