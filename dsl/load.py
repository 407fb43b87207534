"""Entry point: route files -> ``CompileResult(program, diagnostics)``.

``compile_paths`` reads the given files and everything they ``use`` (each
file once; an include cycle is reported with its chain), parses, checks and,
when no diagnostic is an error, lowers to a ``dsl.ir.Program``.  Declarations
keep source order: an included file's declarations take the place of its
``use`` line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from dsl import ast as A
from dsl.calendars import WARN_DAYS
from dsl.checker import Checker
from dsl.diagnostics import ERROR, Diagnostic, did_you_mean
from dsl.escapes import misread
from dsl.ir import Pos, Program
from dsl.lower import lower
from dsl.parser import ParseFailure, parse


@dataclass
class CompileResult:
    program: Program | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.program is not None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


class _Loader:
    def __init__(self, overrides: dict[str, str], step_kinds: frozenset[str]) -> None:
        self.overrides = overrides
        self.step_kinds = step_kinds
        self.sources: dict[str, str] = {}
        self.decls: list[A.Decl] = []
        self.diags: list[Diagnostic] = []
        self.escapes: list = []                 # the files' unknown escapes (dsl.escapes, E111)
        self.done: set[str] = set()
        self.included: set[str] = set()         # files some `use` names (their formats are for routes)

    def load(self, path: Path, chain: tuple[str, ...], at: Pos | None) -> None:
        key = str(path)
        if key in chain:
            loop = list(chain[chain.index(key):]) + [key]
            root = os.path.dirname(loop[0])
            cycle = " -> ".join(os.path.relpath(p, root) for p in loop)
            self.diags.append(Diagnostic("E011", ERROR, f"include cycle: {cycle}", at,
                                         "remove one of the `use` lines in the cycle"))
            return
        if key in self.done:
            return
        self.done.add(key)
        if at is not None and key not in self.overrides and (path.is_dir() or path.suffix != ".route"):
            self.diags.append(_not_a_route(path, at))
            return
        try:
            text = self.overrides[key] if key in self.overrides else path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.diags.append(Diagnostic("E010", ERROR, f"{_why(e)}: {path}", at,
                                         _use_help(path, at) if at else None))
            return
        # a byte-order mark (Windows editors write one) is not part of the text;
        # dropping it here keeps line 1's columns as the editor shows them
        text = text.removeprefix("\ufeff")
        self.sources[key] = text
        try:
            module = parse(text, key, self.step_kinds)
        except ParseFailure as f:
            self.diags.append(f.diagnostic)
            return
        self.escapes.extend(module.escapes)
        for d in module.decls:
            if isinstance(d, A.UseDecl):
                target = Path(d.path)
                if not target.is_absolute():
                    target = path.parent / target
                self.included.add(str(target.resolve()))
                self.load(target.resolve(), chain + (key,), d.pos)
            else:
                self.decls.append(d)


def _why(e: Exception) -> str:
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, UnicodeDecodeError):
        return f"cannot read file: it is not UTF-8 text (byte {e.start})"
    if isinstance(e, IsADirectoryError):
        return "cannot read file: it is a folder"
    if isinstance(e, PermissionError):
        return "cannot read file: permission denied"
    return f"cannot read file: {e.strerror or e}" if isinstance(e, OSError) else f"cannot read file: {e}"


def _use_help(path: Path, at: Pos) -> str:
    """Help for a `use` whose file cannot be read: the route files beside the one it names."""
    base = "`use` paths are relative to the file that has the `use` line"
    folder = path.parent
    if not folder.is_dir():
        return f"{base}; there is no folder {folder}"
    try:
        names = sorted(p.name for p in folder.iterdir()
                       if p.suffix == ".route" and p != path and str(p) != at.file)   # not the file using it
    except OSError:
        return base
    close = did_you_mean(path.name, names)
    if close:
        return f"{close} ({base})"
    return base


def _not_a_route(path: Path, at: Pos) -> Diagnostic:
    """E012: ``use`` includes route text only (a data file has its own declaration)."""
    if path.is_dir():
        return Diagnostic("E012", ERROR, f"`use` takes a .route file, not a folder: {path}", at,
                          'name the file, e.g. `use "common/mainframe.route"`')
    help_ = {".csv": 'a CSV file is read with `table NAME = csv "FILE.csv" key COLUMN`',
             ".json": "a JSON schema is named in its format: `format NAME = json schema \"FILE.json\"`",
             ".cpy": 'a copybook is named in its format: `format NAME = copybook "FILE.cpy"`',
             ".xsd": 'an XSD is named in its format: `format NAME = iso20022 MESSAGE xsd "FILE.xsd"`'}
    return Diagnostic("E012", ERROR, f"`use` takes a .route file: {path.name} is not one", at,
                      help_.get(path.suffix.lower(), "`use` includes another route file (its name ends in .route); "
                                "data files are named by the `format` or `table` that reads them"))


def compile_paths(paths: Iterable[str | Path], registry: Any, *,
                  sources: Mapping[str | Path, str] | None = None,
                  calendar_warn_days: int | None = WARN_DAYS) -> CompileResult:
    """Compile the route files ``paths`` (and the files they ``use``).  ``sources``: texts to compile
    in place of reading some of these files, by path; such a file need not exist (its path places its
    diagnostics and resolves its relative references), e.g. a generated test compiled with the route
    files it tests (``bsp replay --answers``, engine/replay/script.py).  ``calendar_warn_days``: W020 for a
    business-day calendar that runs out within so many days of today (None: never)."""
    given = {str(Path(k).resolve()): text for k, text in (sources or {}).items()}
    return _compile(paths, registry, given, calendar_warn_days)


def _compile(paths: Iterable[str | Path], registry: Any, overrides: dict[str, str],
             calendar_warn_days: int | None = WARN_DAYS) -> CompileResult:
    loader = _Loader(overrides, frozenset(registry.names("step")))
    for p in paths:
        loader.load(Path(p).resolve(), (), None)
    diags = list(loader.diags)
    checker = Checker(registry, calendar_warn_days)
    checker.included = frozenset(loader.included)
    if not any(d.is_error for d in diags):
        res = checker.check(loader.decls)
        diags.extend(checker.diags)
    else:
        # A file that does not parse leaves its declarations unknown: checking the
        # rest would report every use of them, so only the load/parse errors are shown.
        res = None
    if loader.escapes:
        # E111 whether or not the checker ran; what was said about a string it misread goes
        diags = [d for d in diags if not misread(d, loader.escapes)]
        diags.extend(f.diagnostic for f in loader.escapes)
    program = None
    if res is not None and not any(d.is_error for d in diags):
        program = lower(loader.decls, res, loader.sources)
    diags.sort(key=_order)
    return CompileResult(program, diags, dict(loader.sources))


def compile_source(text: str, registry: Any, path: str | Path = "memory.route") -> CompileResult:
    """Compile ``text`` as if read from ``path`` (which need not exist;
    relative file references resolve against its folder)."""
    return _compile([Path(path)], registry, {str(Path(path).resolve()): text})


def _order(d: Diagnostic):
    p = d.pos
    return (p.file if p else "", p.line if p else 0, p.col if p else 0, d.severity != ERROR)
