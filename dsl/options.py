"""Option values checked against a component's ``OptionSpec``.

Two sources: a format's flat atom list (``copybook "X.cpy" encoding cp037``),
grouped here with the kind's spec, and a channel's ``key = value`` lines.
Every problem becomes a diagnostic; values come out as IR literals
(str / int / Decimal / bool, durations as Decimal seconds, paths absolute).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from dsl import ast as A
from dsl.diagnostics import ERROR, Diagnostic, closest, did_you_mean
from dsl.ir import Pos
from dsl.path_hint import path_help

Report = Callable[[Diagnostic], None]

_NOT_LITERAL = object()


def literal_of(expr: A.Expr) -> tuple[Any, str] | None:
    """(value, type) of a literal expression, or None when it is not one.
    A bare name is an ``ident``; a list of literals is a ``list``."""
    if isinstance(expr, A.Lit):
        return expr.value, expr.type
    if isinstance(expr, A.Name):
        return expr.name, "ident"
    if isinstance(expr, A.ListExpr):
        items = []
        for it in expr.items:
            lit = literal_of(it)
            if lit is None:
                return None
            items.append(lit[0])
        return tuple(items), "list"
    return None


def _describe(typ: str) -> str:
    return {"string": "a quoted string", "int": "a whole number", "decimal": "a number",
            "bool": "true or false", "duration": "a duration such as 3s or 200ms",
            "ident": "a bare word", "path": "a quoted file path", "list": "a list [a, b]",
            "format": "the name of a format", "channel": "the name of a channel",
            "table": "the name of a table", "expr": "an expression", "any": "a value"}.get(typ, typ)


def convert(opt, value: Any, vtype: str, pos: Pos, base_dir: Path, report: Report,
            owner: str) -> Any:
    """Check one literal against an OptionSpec; returns the IR value (or _NOT_LITERAL on error)."""
    want = opt.type

    def bad(extra: str = "") -> Any:
        shown = f'"{value}"' if vtype == "string" else str(value)
        report(Diagnostic("E045", ERROR,
                          f"option `{opt.name}` of {owner} expects {_describe(want)}, got {shown}{extra}",
                          pos, f"{opt.name}: {opt.doc}" if opt.doc else None))
        return _NOT_LITERAL

    if want == "any":
        return value
    if want == "string":
        if vtype not in ("string",):
            return bad()
    elif want == "int":
        if vtype != "int":
            return bad()
    elif want == "decimal":
        if vtype == "int":
            value = Decimal(value)
        elif vtype != "decimal":
            return bad()
    elif want == "bool":
        if vtype == "ident" and value in ("true", "false"):
            value = value == "true"
        elif vtype != "bool":
            return bad()
    elif want == "duration":
        if vtype != "duration":
            return bad(" (write a unit: ms, s, m, h or d)" if vtype in ("int", "decimal") else "")
    elif want == "ident":
        if vtype not in ("ident", "string"):
            return bad()
    elif want in ("format", "channel", "table"):
        if vtype not in ("ident",):
            return bad()
    elif want == "path":
        if opt.choices is not None and vtype in ("ident", "string") and value in opt.choices:
            return value          # a built-in name the component resolves itself
        if vtype != "string":
            return bad()
        p = Path(value)
        if not p.is_absolute():
            p = (base_dir / p)
        p = Path(str(p.resolve()))
        if not p.exists() and not getattr(opt, "secret", False):    # a key file may exist only where it runs
            if opt.name == "dir" or opt.name.endswith("_dir"):          # a folder: nothing creates it
                report(Diagnostic("E047", ERROR, f"folder not found: \"{value}\" (looked for {p})", pos,
                                  f"paths are relative to the file that declares them; bsp does not create "
                                  f"the folder: make it (mkdir -p {p}) or correct the path"))
            else:
                report(Diagnostic("E047", ERROR, f"file not found: \"{value}\" (looked for {p})", pos,
                                  path_help(base_dir, value)))
            return _NOT_LITERAL
        return str(p)
    elif want == "list":
        if vtype != "list":
            return bad()
    if opt.choices is not None and isinstance(value, str) and value not in opt.choices:
        report(Diagnostic("E046", ERROR,
                          f"option `{opt.name}` of {owner} must be one of {', '.join(opt.choices)}; got `{value}`",
                          pos, did_you_mean(value, opt.choices)))
        return _NOT_LITERAL
    return value


def group_atoms(spec, atoms: tuple[A.Atom, ...], base_dir: Path, report: Report,
                owner: str, at: Pos, suggested: set[str] | None = None) -> tuple[dict[str, Any], dict[str, Pos]]:
    """A format's flat atoms -> {option: value}.  A word equal to an option
    name starts ``option value``; the first leftover atom fills ``spec.positional``.
    ``suggested`` collects the options an unknown word's E043 names first (see ``best_guess``)."""
    out: dict[str, Any] = {}
    where: dict[str, Pos] = {}
    names = spec.option_names
    i = 0
    while i < len(atoms):
        atom = atoms[i]
        if atom.type == "word" and atom.value in names:
            opt = spec.option(atom.value)
            if i + 1 >= len(atoms):
                report(Diagnostic("E045", ERROR, f"option `{opt.name}` of {owner} needs a value",
                                  atom.pos, f"write `{opt.name} VALUE` ({_describe(opt.type)})"))
                i += 1
                continue
            val = atoms[i + 1]
            _put(opt, val, out, where, base_dir, report, owner, atom.pos)
            i += 2
            continue
        if spec.positional and spec.positional not in out and spec.positional not in where:
            opt = spec.option(spec.positional)
            if opt is not None:
                _put(opt, atom, out, where, base_dir, report, owner, atom.pos)
                i += 1
                continue
        if atom.type == "word":
            help_ = did_you_mean(atom.value, names)
            if suggested is not None:
                suggested.update(best_guess(atom.value, names))
            msg = f"unknown option `{atom.value}` for {owner}"
            code = "E043"
        else:
            help_ = None
            msg = f"unexpected value `{atom.value}` ({_describe(atom.type)}) in {owner}: it follows no option name"
            code = "E048"
        if help_ is None:
            help_ = ("options: " + ", ".join(names)) if names else f"{owner} takes no options"
        report(Diagnostic(code, ERROR, msg, atom.pos, help_))
        i += 1
        if code == "E043" and i < len(atoms) and not (atoms[i].type == "word" and atoms[i].value in names):
            i += 1      # the unknown option's value: not a second error ("follows no option name")
    return out, where


def _put(opt, atom: A.Atom, out: dict, where: dict, base_dir: Path, report: Report, owner: str,
         pos: Pos) -> None:
    if opt.name in where:
        report(Diagnostic("E049", ERROR, f"option `{opt.name}` given twice in {owner}", pos,
                          f"first given at {where[opt.name]}"))
        return
    where[opt.name] = pos
    vtype = "ident" if atom.type == "word" else atom.type
    v = convert(opt, atom.value, vtype, atom.pos, base_dir, report, owner)
    if v is not _NOT_LITERAL:
        out[opt.name] = v


def best_guess(word: str, names) -> tuple[str, ...]:
    """The option an unknown option's did-you-mean names first (``adress`` -> ``address``), or ()."""
    close = closest(word, names)
    return (close[0],) if close else ()


def finish_options(spec, out: dict[str, Any], where: dict[str, Pos], report: Report, owner: str,
                   at: Pos, suggested: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Required options present; defaults filled in.  A missing required option that an E043's
    did-you-mean already names (``suggested``: ``adress`` for ``address``) is not reported again."""
    for opt in spec.options:
        if opt.name in where:
            continue
        if opt.required and opt.name not in suggested:
            report(Diagnostic("E044", ERROR, f"{owner} needs option `{opt.name}`", at,
                              f"{opt.name}: {opt.doc}" if opt.doc else None))
        elif opt.default is not None:
            out[opt.name] = _default(opt)
    return out


def _default(opt) -> Any:
    """Defaults go into the IR in IR form: a duration written as "30s" becomes Decimal seconds."""
    d = opt.default
    if opt.type == "duration" and isinstance(d, str):
        from dsl.parser import duration_seconds
        try:
            return duration_seconds(d.strip())
        except (ValueError, ArithmeticError):
            return d
    if opt.type == "duration" and isinstance(d, (int, float)) and not isinstance(d, bool):
        return Decimal(str(d))
    return d


NOT_LITERAL = _NOT_LITERAL
