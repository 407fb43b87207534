"""The generated parts of docs/cli.md, made by walking the typer app (``engine.cli.app``).

docs/cli.md keeps hand-written prose (what a command is for, its exit codes,
examples) around two generated blocks:

- the command summary table, between ``<!-- BEGIN GENERATED: commands -->``
  and ``<!-- END GENERATED: commands -->``;
- the option reference, between ``<!-- BEGIN GENERATED: options -->`` and
  ``<!-- END GENERATED: options -->``.

Regenerate them after changing a command or option::

    .venv/bin/python tests/docs/cli_reference.py --write

``--check`` exits 1 when docs/cli.md is stale (tests/docs/test_cli_doc.py
does the same check).
"""
from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
CLI_MD = REPO / "docs" / "cli.md"
BLOCKS = ("commands", "options")
GENERATOR = "tests/docs/cli_reference.py --write"


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]          # ("deals", "show")
    click: Any                     # the click command or group
    is_group: bool
    runs: bool                     # does ``bsp <path>`` itself do something (a command, or a group callback)?

    @property
    def name(self) -> str:
        return " ".join(("bsp",) + self.path)

    @property
    def summary(self) -> str:
        return first_paragraph(self.click.help or "")


def root_command() -> Any:
    import typer.main

    from engine.cli import app

    return typer.main.get_command(app)


def walk(cmd: Any | None = None, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command and group below ``bsp``, depth first, in --help order; hidden ones left out."""
    cmd = cmd if cmd is not None else root_command()
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        if getattr(sub, "hidden", False):
            continue
        is_group = getattr(sub, "commands", None) is not None
        runs = not is_group or bool(getattr(sub, "invoke_without_command", False))
        yield Command(path + (name,), sub, is_group, runs)
        if is_group:
            yield from walk(sub, path + (name,))


def visible_params(cmd: Command) -> list[Any]:
    return [p for p in cmd.click.params if not getattr(p, "hidden", False) and p.name != "help"]


def flags(param: Any) -> list[str]:
    """Every spelling of an option (``--header``, ``--no-header``, ``-o``); [] for an argument."""
    if _is_argument(param):
        return []
    return list(param.opts) + list(param.secondary_opts)


def first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def _is_argument(param: Any) -> bool:
    return type(param).__name__.endswith("Argument")


def _annotation(param: Any) -> Any:
    td = getattr(param, "type_descriptor", None)
    return getattr(td, "annotation", None) if td is not None else None


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(innermost type, is a list) for Optional[...], list[...], Annotated[...]."""
    many = False
    for _ in range(5):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if args else str
        elif origin in (list, tuple, set, typing.List):
            many = True
            args = typing.get_args(annotation)
            annotation = args[0] if args else str
        else:
            break
    return annotation, many


_METAVARS = {str: "TEXT", int: "N", float: "NUMBER", Path: "PATH"}


def metavar(param: Any) -> str:
    if getattr(param, "metavar", None) and not _is_argument(param):
        return str(param.metavar)
    annotation = _annotation(param)
    if annotation is None:   # typer before the type descriptors: the click type's name
        name = getattr(getattr(param, "type", None), "name", "text")
        annotation = {"path": Path, "integer": int, "integer range": int, "float": float}.get(name, str)
        if getattr(param, "multiple", False) or param.nargs == -1:
            annotation = list[annotation]   # type: ignore[valid-type]
    base, many = _base_type(annotation)
    if _is_argument(param):
        word = param.name.upper()
        word = f"{word}..." if many or param.nargs == -1 else word
        return word if param.required else f"[{word}]"
    return _METAVARS.get(base, "TEXT")


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False))


def default_text(param: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    d = param.default
    if callable(d):
        return "computed"
    if _is_flag(param) and not param.secondary_opts:
        return "on" if d else "off"
    if d is None or d == () or d == []:
        return "—"
    if isinstance(d, bool):
        return f"`{param.opts[0] if d else param.secondary_opts[0]}`" if param.secondary_opts else str(d)
    return f"`{d}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def option_cell(param: Any) -> str:
    if _is_argument(param):
        return f"`{metavar(param)}`"
    spellings = list(param.opts)
    if _is_flag(param):
        text = " / ".join(f"`{s}`" for s in spellings + list(param.secondary_opts))
    else:
        text = ", ".join(f"`{s} {metavar(param)}`" if s.startswith("--") else f"`{s}`" for s in spellings)
    if getattr(param, "multiple", False):
        text += " (repeat)"
    return text


def meaning_cell(param: Any) -> str:
    text = param.help or ""
    if getattr(param, "envvar", None):
        env = param.envvar if isinstance(param.envvar, str) else ", ".join(param.envvar)
        text += f" Environment: `${env}`."
    return _cell(text)


def usage(cmd: Command) -> str:
    parts = [cmd.name]
    if cmd.is_group and not cmd.runs:
        return f"{cmd.name} COMMAND [OPTIONS] [ARGS]"
    params = visible_params(cmd)
    if any(not _is_argument(p) for p in params):
        parts.append("[OPTIONS]")
    parts += [metavar(p) for p in params if _is_argument(p)]
    if cmd.is_group:
        parts.append("| " + cmd.name + " COMMAND ...")
    return " ".join(parts)


def anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading's text."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def render_commands(commands: list[Command], section_of: dict[str, str]) -> str:
    lines = ["| command | does |", "|---|---|"]
    for c in commands:
        target = section_of.get(c.name)
        name = f"[`{c.name}`](#{anchor(target)})" if target else f"`{c.name}`"
        lines.append(f"| {name} | {_cell(c.summary)} |")
    return "\n".join(lines)


def render_options(commands: list[Command]) -> str:
    out: list[str] = []
    for c in commands:
        params = visible_params(c) if c.runs else []
        out += [f"### `{c.name}` options", "", "```", usage(c), "```", ""]
        help_text = (c.click.help or "").strip()
        out += ["> " + line if line.strip() else ">" for line in help_text.splitlines()]
        out.append("")
        if c.is_group:
            subs = [n for n, s in c.click.commands.items() if not getattr(s, "hidden", False)]
            out += ["Subcommands: " + ", ".join(f"`{c.name} {n}`" for n in subs) + ".", ""]
        if params:
            out += ["| argument / option | default | meaning |", "|---|---|---|"]
            for p in params:
                out.append(f"| {option_cell(p)} | {default_text(p)} | {meaning_cell(p)} |")
            out.append("")
    return "\n".join(out).rstrip()


def hand_sections(text: str) -> dict[str, str]:
    """Command name -> the hand-written heading (outside generated blocks) whose text names it."""
    prose = strip_generated(text)
    found: dict[str, str] = {}
    for m in re.finditer(r"^(#{2,3}) (.+)$", prose, flags=re.M):
        for name in re.findall(r"`(bsp(?: [a-z][\w-]*)+)`", m.group(2)):
            found.setdefault(name, m.group(2))
    return found


def strip_generated(text: str) -> str:
    for block in BLOCKS:
        text = re.sub(_block_re(block), "", text)
    return text


def _block_re(block: str) -> str:
    return rf"(?s)<!-- BEGIN GENERATED: {block}[^>]*-->.*?<!-- END GENERATED: {block} -->"


def regenerate(text: str) -> str:
    """``text`` (docs/cli.md) with both generated blocks rebuilt from the app."""
    commands = list(walk())
    bodies = {"commands": render_commands(commands, hand_sections(text)), "options": render_options(commands)}
    for block, body in bodies.items():
        pattern = _block_re(block)
        if not re.search(pattern, text):
            raise SystemExit(f"{CLI_MD}: no <!-- BEGIN GENERATED: {block} --> ... <!-- END GENERATED: {block} --> "
                             f"markers; add them where the {block} block belongs")
        new = (f"<!-- BEGIN GENERATED: {block} (do not edit; run {GENERATOR}) -->\n{body}\n"
               f"<!-- END GENERATED: {block} -->")
        text = re.sub(pattern, lambda _m: new, text)
    return text


# Commands that always exit 0 and so need not name exit codes in --help.
ALWAYS_OK = frozenset({"bsp version", "bsp docs components"})


def generated_section(text: str, name: str) -> str:
    """The part of the generated option reference about ``name`` ("" when absent)."""
    m = re.search(_block_re("options"), text)
    block = m.group(0) if m else ""
    start = block.find(f"### `{name}` options\n")
    if start < 0:
        return ""
    end = block.find("\n### ", start + 1)
    return block[start:end if end >= 0 else len(block)]


def hand_section(text: str, heading: str) -> str:
    """A hand-written section from its heading to the next heading of the same or a higher level."""
    prose = strip_generated(text)
    m = re.search(rf"^(#{{2,3}}) {re.escape(heading)}$", prose, flags=re.M)
    if not m:
        return ""
    level = len(m.group(1))
    nxt = re.search(rf"^#{{1,{level}}} ", prose[m.end():], flags=re.M)
    return prose[m.start():m.end() + (nxt.start() if nxt else len(prose))]


def problems(text: str, commands: list[Command] | None = None) -> list[str]:
    """Everything docs/cli.md lacks: commands, options, hand-written sections, exit codes, examples."""
    commands = commands if commands is not None else list(walk())
    sections = hand_sections(text)
    out: list[str] = []
    for c in commands:
        if not c.runs:
            continue
        gen = generated_section(text, c.name)
        if not gen:
            out.append(f"{c.name}: not in the option reference")
        for p in visible_params(c):
            if not flags(p) and f"| `{metavar(p)}` |" not in gen:
                out.append(f"{c.name}: argument {metavar(p)} not in its option table")
            for spelling in flags(p):
                if not re.search(rf"`{re.escape(spelling)}[` ]", gen):
                    out.append(f"{c.name}: option {spelling} not in its option table")
        heading = sections.get(c.name)
        if heading is None:
            out.append(f"{c.name}: no hand-written section (a heading naming `{c.name}`)")
            continue
        body = hand_section(text, heading)
        if not re.search(r"\bexit\b", body, flags=re.I):
            out.append(f"{c.name}: its section ({heading}) does not give its exit codes")
        blocks = re.findall(r"```[^\n]*\n(.*?)```", body, flags=re.S)
        if not any(re.search(rf"(^|\s){re.escape(c.name)}(\s|$)", b, flags=re.M) for b in blocks):
            out.append(f"{c.name}: its section ({heading}) has no example (a code block running `{c.name}`)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks of docs/cli.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md is stale")
    args = ap.parse_args(argv)
    old = CLI_MD.read_text(encoding="utf-8")
    new = regenerate(old)
    if args.write:
        if new != old:
            CLI_MD.write_text(new, encoding="utf-8")
        print(f"{CLI_MD.relative_to(REPO)}: {'updated' if new != old else 'already up to date'}")
        return 0
    if new != old:
        print(f"{CLI_MD.relative_to(REPO)} is stale: run .venv/bin/python {GENERATOR}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
