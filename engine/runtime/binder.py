"""Everything a Program needs built once before traffic: codecs, tables, compiled code.

Step and channel constructors receive the ``Binder`` (as ``ctx``) and ask it
for what they need; nothing is compiled or built per message.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from engine.runtime.assign import compile_assigns
from engine.runtime.fastpath import fast_expr, flat_assigns
from engine.runtime.plugin_codec import CheckedCodec
from formats.versioned import versioned

Compiled = Callable[[Mapping[str, Any]], Any]


class BindError(ValueError):
    """The program cannot be bound (a kind missing from the registry, a bad option).  Names the place."""


def _where(obj: Any) -> str:
    pos = getattr(obj, "pos", None)
    return f"{pos}: " if pos is not None else ""


def plugin_note(registry: Any, category: str, kind: str) -> str:
    """`` (step kind checksum from plugin bsp-kvtools 0.1.0 (entry point ...))`` for a plugin's kind, else ""."""
    origin = registry.origin(category, kind) if hasattr(registry, "origin") else None
    return f" ({category} kind {kind.replace('.', ' ')} from {origin})" if origin else ""


class Binder:
    def __init__(self, program: Any, registry: Any, *,
                 compile_expr: Callable[[Any], Compiled] | None = None,
                 load_table: Callable[[Any], Any] | None = None) -> None:
        self._compile_assigns: Callable[[Any], Any] | None = None
        if compile_expr is None:
            from dsl.compiler import compile_assigns as _ca, compile_expr as _ce
            compile_expr, self._compile_assigns = _ce, _ca
        if load_table is None and program.tables:
            # as the version holds them: the text read when it was computed, not the file read again
            from dsl.tables import load_versioned
            sources = getattr(program, "sources", None) or {}
            load_table = lambda decl: load_versioned(decl, sources)      # noqa: E731
        self.program = program
        self.registry = registry
        self._compile_expr = compile_expr
        self._load_table = load_table
        self._codecs: dict[str, Any] = {}
        self.tables: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        for name, decl in program.tables.items():
            assert load_table is not None
            try:
                self.tables[name] = load_table(decl)
            except Exception as exc:
                raise BindError(f"{_where(decl)}table {name}: cannot load {decl.path}: {exc}") from exc

    # -- codecs -------------------------------------------------------------
    def codec(self, name: str | None) -> Any:
        if name is None:
            return None
        codec = self._codecs.get(name)
        if codec is not None:
            return codec
        decl = self.program.formats.get(name)
        if decl is None:
            raise BindError(f"no format named {name!r}; declared formats: {', '.join(sorted(self.program.formats))}")
        spec = self.registry.get("format", decl.kind)
        if spec is None or spec.build is None:
            raise BindError(
                f"{_where(decl)}format {name}: no format kind {decl.kind!r} in the registry; "
                f"known kinds: {', '.join(self.registry.names('format'))}")
        try:
            # the files it names (a copybook, a spec, a schema) as the version holds them, not read again
            with versioned(getattr(self.program, "sources", None)):
                codec = spec.build(decl)
        except Exception as exc:
            note = plugin_note(self.registry, "format", decl.kind)
            text = f"{type(exc).__name__}: {exc}" if note else str(exc)
            raise BindError(f"{_where(decl)}format {name}{note}: {text}") from exc
        note = plugin_note(self.registry, "format", decl.kind)
        if note:                 # a plugin's decoder: what it returns is checked (engine/runtime/plugin_codec.py)
            codec = CheckedCodec(codec, note)
        self._codecs[name] = codec
        return codec

    def codec_note(self, name: str | None) -> str:
        """`` (format kind piperec from plugin bsp-x 0.1.0 (entry point ...))`` for a plugin's format, else "":
        what a codec's run-time bug (an exception that is not a ``FormatError``) names besides itself."""
        decl = self.program.formats.get(name) if name else None
        return plugin_note(self.registry, "format", decl.kind) if decl is not None else ""

    # -- channels -----------------------------------------------------------
    def channel(self, name: str) -> Any:
        ch = self.channels.get(name)
        if ch is None:
            raise BindError(f"no channel named {name!r}; declared channels: {', '.join(sorted(self.channels))}")
        return ch

    # -- code ---------------------------------------------------------------
    def expr(self, expr: Any) -> Compiled:
        general = self._compile_expr(expr)
        return fast_expr(expr, general) if self._compile_assigns is not None else general

    def assigns(self, assigns: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        if self._compile_assigns is not None:
            assigns = tuple(assigns)
            return flat_assigns(assigns, self.expr) or self._compile_assigns(assigns)
        return compile_assigns(assigns, self._compile_expr)

    def base_scope(self) -> dict[str, Any]:
        """Names every exchange's scope starts with: the tables."""
        return dict(self.tables)
