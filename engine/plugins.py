"""Loading third-party kinds from the ``bsp.plugins`` entry-point group (docs/plugins.md).

Each entry point names a callable ``register(registry)``.  It is called with a
staging registry: the kinds it registers are checked (category, name, build,
option specs and their defaults, no clash with a built-in or another plugin's
kind) and added all together, or none of them.  A plugin that cannot be
imported, names a missing object, raises, or registers a bad kind is left out
with one ``PluginProblem`` naming the distribution, the entry point, the kind
and the fix; bsp's own kinds and the other plugins load as before.
"""
from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Iterable, Iterator

from formats.component import OPTION_TYPES, ComponentSpec, OptionSpec

GROUP = "bsp.plugins"
CATEGORIES = ("channel", "format", "step")
_WORD = r"[a-z_][a-z0-9_]*"
# how a kind is written in a route file: a channel kind is one or two words (`udp listen`,
# registered as "udp.listen"); a format or step kind is one word
_NAME = {"channel": re.compile(rf"^{_WORD}(\.{_WORD})?$"), "format": re.compile(rf"^{_WORD}$"),
         "step": re.compile(rf"^{_WORD}$")}
# words the route language reads itself: a step kind with one of these names could never be written
_STEP_WORDS = frozenset({"receive", "decode", "let", "validate", "deal", "call", "reply", "on", "test",
                         "given", "expect", "use", "format", "channel", "table", "route", "when", "else"})


@dataclass(frozen=True)
class PluginProblem:
    """Why one plugin (one entry point) was left out."""

    plugin: str      # "bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register)"
    problem: str     # what went wrong, naming the kind and the place when known
    fix: str

    def __str__(self) -> str:
        return f"plugin {self.plugin} not loaded: {self.problem}; fix: {self.fix}"


class _Refused(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    who = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "(unknown distribution)"
    return f"{who} (entry point {ep.name} = {ep.value})"


def load_entry_points(registry: Any, eps: Iterable[EntryPoint] | None = None) -> list[PluginProblem]:
    """Call every entry point's ``register`` against ``registry``; one problem per plugin left out."""
    problems: list[PluginProblem] = []
    found = entry_points(group=GROUP) if eps is None else eps
    # a fixed order (distribution, entry point): when two plugins claim one kind, the same one is refused
    # whatever order they were installed in
    for ep in sorted(found, key=lambda e: (_dist_name(e).lower(), e.name)):
        who = describe(ep)
        try:
            specs = _staged(ep, registry, who)
        except _Refused as r:
            problems.append(PluginProblem(who, r.problem, r.fix))
            continue
        for spec in specs:
            registry.register(spec)
            registry.origins[(spec.category, spec.name)] = f"plugin {who}"
    return problems


def _staged(ep: EntryPoint, registry: Any, who: str) -> list[ComponentSpec]:
    module = ep.value.partition(":")[0].strip()
    try:
        register = ep.load()
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise _Refused(f"its module {module} is not installed",
                           f"reinstall the plugin (pip install {_dist_name(ep)}) or correct the entry "
                           f"point's module") from None
        raise _Refused(f"importing {module} failed: {_text(exc)}",
                       f"install what it needs (pip install {exc.name})") from None
    except AttributeError as exc:
        raise _Refused(f"{ep.value} names nothing in {module}: {exc}",
                       f"make the entry point name the module's register function "
                       f"(`{module}:register`)") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's own bug at import
        raise _Refused(f"importing {module} raised {_text(exc)}",
                       f"fix the module (python -c 'import {module}' shows the traceback) or uninstall "
                       f"{_dist_name(ep)}") from None
    if not callable(register):
        raise _Refused(f"{ep.value} is not a function register(registry) but {_a(type(register).__name__)}",
                       "make the entry point name a function that takes the registry and calls "
                       "registry.register(COMPONENT) for each kind")
    staging = _Staging(registry)
    try:
        register(staging)
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's own bug in register()
        raise _Refused(f"its register() raised {_text(exc)}",
                       f"fix the plugin or uninstall {_dist_name(ep)}") from None
    if not staging.specs:
        raise _Refused("its register() registered no kind",
                       "call registry.register(COMPONENT) for each kind the plugin provides")
    return staging.specs


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "the plugin"


_OURS = tuple(str(Path(__file__).resolve().parents[1] / d) + os.sep for d in ("engine", "formats", "dsl"))


def _text(exc: BaseException) -> str:
    """``RuntimeError: boom (at bsp_x/mod.py:12)``: the exception and the plugin's deepest frame in it
    (not bsp's nor importlib's: an OptionSpec refusing its type points at the plugin's line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_OURS + ("<",)) and "importlib" not in f.filename
              and f.filename != __file__]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class _Staging:
    """What a plugin's ``register`` is handed: reads see the registry plus the plugin's own kinds;
    ``register`` checks each kind and keeps it until the plugin has registered them all."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self.specs: list[ComponentSpec] = []

    def register(self, spec: ComponentSpec, *, replace: bool = False) -> ComponentSpec:
        kind = f"{getattr(spec, 'category', '?')} kind {getattr(spec, 'name', '?')!r}"
        problems = spec_problems(spec)
        if problems:
            raise _Refused(f"{kind}: " + "; ".join(p for p, _ in problems), problems[0][1])
        key = (spec.category, spec.name)
        if self._registry.get(*key) is not None:
            owner = self._registry.origin(*key) if hasattr(self._registry, "origin") else None
            what = f"registered by {owner}" if owner else "built into bsp"
            other = ("or uninstall one of the two plugins" if owner else
                     "and use it in your route files (bsp's own kind stays what its name means)")
            raise _Refused(f"{kind} is already {what}" + (" (replace=True does not replace it)" if replace else ""),
                           f"give the kind a name of its own (e.g. a prefix: '{_prefixed(spec)}'), {other}; "
                           f"no plugin can replace or hide another kind")
        if any((s.category, s.name) == key for s in self.specs):
            raise _Refused(f"{kind} is registered twice", "register each kind once")
        self.specs.append(spec)
        return spec

    def register_module(self, module_name: str) -> None:
        """Register the ``COMPONENT`` (or ``COMPONENTS``) of a module, as bsp's own modules are."""
        import importlib
        mod = importlib.import_module(module_name)
        specs = getattr(mod, "COMPONENTS", None) or (getattr(mod, "COMPONENT", None),)
        for spec in specs:
            self.register(spec)

    def get(self, category: str, name: str) -> ComponentSpec | None:
        return next((s for s in self.specs if (s.category, s.name) == (category, name)), None) \
            or self._registry.get(category, name)

    def names(self, category: str) -> list[str]:
        return sorted(set(self._registry.names(category)) | {s.name for s in self.specs if s.category == category})

    def walk(self) -> Iterator[ComponentSpec]:
        yield from self._registry.walk()
        yield from self.specs


def _prefixed(spec: ComponentSpec) -> str:
    return f"my_{spec.name}" if spec.category != "channel" or "." in spec.name else f"my.{spec.name}"


def spec_problems(spec: Any) -> list[tuple[str, str]]:
    """(problem, fix) of each thing wrong with a component spec a plugin registers."""
    if not isinstance(spec, ComponentSpec):
        return [(f"registered a {type(spec).__name__}, not a formats.component.ComponentSpec",
                 "register ComponentSpec(category=..., name=..., doc=..., options=..., build=...)")]
    out: list[tuple[str, str]] = []
    if spec.category not in CATEGORIES:
        return [(f"category {spec.category!r} is not one of {', '.join(CATEGORIES)}",
                 "set category to channel, format or step")]
    if not isinstance(spec.name, str) or not _NAME[spec.category].match(spec.name):
        shape = ("one or two lower-case words joined by a dot (written `udp listen` in a route)"
                 if spec.category == "channel" else "one lower-case word (letters, digits, _)")
        out.append((f"name {spec.name!r} is not {shape}", f"rename the kind: {shape}"))
    elif spec.category == "step" and spec.name in _STEP_WORDS:
        out.append((f"name {spec.name!r} is a word of the route language",
                    f"rename the step kind; these are taken: {', '.join(sorted(_STEP_WORDS))}"))
    if not callable(spec.build):
        out.append(("has no build function", _BUILD[spec.category]))
    seen: set[str] = set()
    for opt in spec.options:
        if not isinstance(opt, OptionSpec):
            out.append((f"option {opt!r} is not a formats.component.OptionSpec",
                        "write OptionSpec(name, type, doc, default=...)"))
            continue
        if opt.name in seen:
            out.append((f"option {opt.name!r} is declared twice", "declare each option once"))
        seen.add(opt.name)
        bad = default_problem(opt)
        if bad:
            out.append((f"option {opt.name!r}: {bad}", f"give option {opt.name!r} a default of its type "
                        f"({opt.type}) or none (default=None)"))
    if spec.positional is not None and spec.positional not in seen:
        out.append((f"positional names {spec.positional!r}, which is not one of its options",
                    "set positional to the name of one of its options, or None"))
    return out


_BUILD = {
    "channel": "give it build(decl) returning the channel object (docs/plugins.md#a-channel)",
    "format": "give it build(decl) returning a codec with decode(bytes) and encode(values) (docs/plugins.md#a-format)",
    "step": "give it build(step, ctx, route) returning a step runner (docs/plugins.md#a-step)",
}

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "path": (str,), "ident": (str,), "format": (str,), "channel": (str,), "table": (str,),
    "int": (int,), "decimal": (Decimal, int), "bool": (bool,), "duration": (Decimal, int, str),
    "list": (tuple, list),
}


def default_problem(opt: OptionSpec) -> str | None:
    """Why an option's default cannot be the value a route file would give (None when it can)."""
    d = opt.default
    if d is None or opt.type in ("any", "expr"):
        return None
    if opt.type not in OPTION_TYPES:      # OptionSpec refuses these itself
        return f"unknown type {opt.type!r}"
    if isinstance(d, float):
        return (f"default {d!r} is a float; a {opt.type} option's default is "
                + ("a Decimal (Decimal(\"1.50\")): money is never a float" if opt.type in ("decimal", "duration")
                   else "of its own type"))
    if isinstance(d, bool) and opt.type != "bool":
        return f"default {d!r} is a bool, not {_a(opt.type)}"
    if not isinstance(d, _TYPES[opt.type]):
        return f"default {d!r} is {_a(type(d).__name__)}, not {_a(opt.type)}"
    if opt.type == "duration" and isinstance(d, str):
        from dsl.parser import duration_seconds
        try:
            duration_seconds(d.strip())
        except (ValueError, ArithmeticError):
            return f"default {d!r} is not a duration such as \"30s\" or \"200ms\""
    if opt.choices is not None and isinstance(d, str) and d not in opt.choices:
        return f"default {d!r} is not one of its choices ({', '.join(opt.choices)})"
    return None
