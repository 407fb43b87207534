"""The component registry: every channel, format and step kind the engine knows.

A registry is an object, not a module global: the checker and the engine are
handed one, tests build their own, and ``clone``/``without`` give variants.
``walk`` yields every component; ``docs/components.md`` is generated from it.
Third-party kinds arrive through the ``bsp.plugins`` entry-point group: each
entry point names a callable ``register(registry)`` (``engine/plugins.py`` loads
them; a broken one is left out with a ``PluginProblem``, never the built-ins).
"""
from __future__ import annotations

import importlib
import logging
from typing import Any, Iterator

from formats.component import ComponentSpec

CATEGORIES = ("channel", "format", "step")

# Built-in component modules; each exposes COMPONENT (or COMPONENTS).
BUILTIN_MODULES: tuple[str, ...] = (
    # channels
    "engine.channels.tcp_listen",
    "engine.channels.tcp_connect",
    "engine.channels.memory",
    "engine.channels.http_listen",
    "engine.channels.http_call",
    "engine.channels.file_watch",
    "engine.channels.file_write",
    "engine.channels.nats_publish",
    "engine.channels.nats_consume",
    "engine.channels.timer",
    # steps
    "engine.steps.decode",
    "engine.steps.let",
    "engine.steps.validate",
    "engine.steps.deal",
    "engine.steps.call",
    "engine.steps.reply",
    "engine.steps.limit",
    "engine.steps.continuity",
    "engine.steps.screen",
    "engine.steps.record",
    # formats
    "formats.fixed",
    "formats.json_codec",
    "formats.csv_codec",
    "formats.xml_codec",
    "formats.iso8583.component",
    "formats.copybook.component",
    "formats.swift.component",
    "formats.iso20022.component",
)


class RegistryError(ValueError):
    pass


class Registry:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], ComponentSpec] = {}
        # (category, name) -> "plugin DIST VERSION (entry point NAME = VALUE)" of a plugin's kind
        self.origins: dict[tuple[str, str], str] = {}
        self.problems: list[Any] = []       # engine.plugins.PluginProblem of each plugin left out

    def origin(self, category: str, name: str) -> str | None:
        """Which plugin registered this kind (None: built in, or registered by a test)."""
        return self.origins.get((category, name))

    def register(self, spec: ComponentSpec, *, replace: bool = False) -> ComponentSpec:
        if spec.category not in CATEGORIES:
            raise RegistryError(f"component {spec.name!r}: category {spec.category!r} is not one of {CATEGORIES}")
        key = (spec.category, spec.name)
        if key in self._items and not replace:
            raise RegistryError(f"{spec.category} kind {spec.name!r} is already registered")
        self._items[key] = spec
        return spec

    def get(self, category: str, name: str) -> ComponentSpec | None:
        return self._items.get((category, name))

    def names(self, category: str) -> list[str]:
        return sorted(n for (c, n) in self._items if c == category)

    def walk(self) -> Iterator[ComponentSpec]:
        for key in sorted(self._items):
            yield self._items[key]

    def clone(self) -> "Registry":
        new = Registry()
        new._items = dict(self._items)
        new.origins = dict(self.origins)
        new.problems = list(self.problems)
        return new

    def without(self, category: str, name: str) -> "Registry":
        new = self.clone()
        new._items.pop((category, name), None)
        new.origins.pop((category, name), None)
        return new

    def register_module(self, module_name: str) -> None:
        mod = importlib.import_module(module_name)
        specs = getattr(mod, "COMPONENTS", None) or (getattr(mod, "COMPONENT"),)
        for spec in specs:
            self.register(spec)


def load_plugins(registry: Registry) -> list[Any]:
    """Register every ``bsp.plugins`` entry point's kinds; returns (and keeps in
    ``registry.problems``) one ``PluginProblem`` per plugin left out, each logged once."""
    from engine.plugins import load_entry_points

    problems = load_entry_points(registry)
    registry.problems.extend(problems)
    for p in problems:
        _warn_once(str(p))
    return problems


_TOLD: set[str] = set()


def _warn_once(text: str) -> None:
    """A plugin problem is logged once per process, however many registries are built."""
    if text not in _TOLD:
        _TOLD.add(text)
        logging.getLogger("bsp.plugins").warning("%s", text)


def default_registry(*, plugins: bool = True) -> Registry:
    reg = Registry()
    for mod in BUILTIN_MODULES:
        try:
            reg.register_module(mod)
        except ModuleNotFoundError as exc:  # a format module still being written
            if exc.name != mod:
                raise
    if plugins:
        load_plugins(reg)
    return reg
