"""Every `bsp ...` command line in a code block of README.md or docs/ runs a real command with real options."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import cli_reference as ref

COMMANDS = {c.name: c for c in ref.walk()}
PAGES = [ref.REPO / "README.md"] + sorted((ref.REPO / "docs").rglob("*.md"))
# A fence may be indented (a code block inside a list item: a numbered procedure, a nightly script).
_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
# `bsp ...`, `$ bsp ...`, `VAR=x bsp ...`, `.venv/bin/bsp ...`, indented or not; not output (`bsp 0.1.0 ...`)
_LINE = re.compile(r"^[ \t]*(?:\$ )?(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?(bsp(?: [a-z-][^\n]*)?)$", re.M)


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line, command) of every `bsp` line of a code block; a line continued with `\\` is read with the lines
    that continue it, so the options written on them are checked too."""
    out = []
    for block in _FENCE.finditer(text):
        body = block.group(1)
        for m in _LINE.finditer(body):
            line, end = m.group(1), m.end()
            while line.endswith("\\") and end < len(body):
                nxt = body.find("\n", end + 1)
                nxt = len(body) if nxt == -1 else nxt
                line, end = line[:-1].rstrip() + " " + body[end + 1:nxt].strip(), nxt
            if "COMMAND" in line.split("#", 1)[0]:      # the generic usage line
                continue
            out.append((text.count("\n", 0, block.start(1) + m.start()) + 1, line))
    return out


_SPAN = re.compile(r"(?<!`)`(bsp [a-z][^`]*)`(?!`)")


def inline_command_lines(text: str) -> list[tuple[int, str]]:
    """The `bsp ...` code spans of the prose (outside code blocks), a span broken over lines joined: each
    names a command, and its options, as a reader types them."""
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out = []
    for m in _SPAN.finditer(prose):
        line = " ".join(re.sub(r"\n\s*>", " ", m.group(1)).split())      # a span over lines of a quote
        if line.split()[1].endswith(":"):                   # output quoted, "bsp report: on a snapshot ..."
            continue
        out.append((prose.count("\n", 0, m.start()) + 1, line))
    return out


def problems(line: str) -> list[str]:
    code = re.sub(r"\s#.*$", "", line)
    code = re.sub(r"[\[\]()|\\]", " ", code)              # usage syntax: [--opt X] (a | b) continuation
    try:
        words = shlex.split(code)
    except ValueError as exc:
        return [f"cannot read the line ({exc})"]
    name = max((n for n in COMMANDS if words[:len(n.split())] == n.split()), key=len, default=None)
    if name is None:
        return [f"{' '.join(words[:3])!r} is not a bsp command"]
    known = {f for p in ref.visible_params(COMMANDS[name]) for f in ref.flags(p)} | {"--help"}
    # "--status/--route" is usage shorthand for either option
    flags = [f.split("=")[0] for w in words if w.startswith("-") and w != "-" for f in w.split("/")]
    return [f"{name} has no option {f}" for f in flags if f not in known]


def test_the_check_finds_a_wrong_command_and_option() -> None:
    assert problems("bsp deals --since 1h --json") == []
    assert problems("bsp deal --since 1h") == ["'bsp deal --since' is not a bsp command"]
    assert problems("bsp deals --ledger-sync journal   # comment --x") == ["bsp deals has no option --ledger-sync"]
    assert problems("bsp report NAME [--to DAY] [--format table|csv]") == []


def test_command_lines_are_read_in_indented_blocks_and_over_continued_lines() -> None:
    """A procedure's step (a code block indented in a list item) and the options on the lines that continue a
    command (`\\`) are what a reader pastes: they are read too (they were skipped: a stale option there passed)."""
    text = ("1. Run it:\n\n   ```\n   $ bsp reconcile --live --type totals \\\n         --codez c.csv\n   ...\n   ```\n"
            "- nightly:\n  ```sh\n  .venv/bin/bsp deals --sinse 1h\n  ```\n```\nbsp 0.1.0 (ledger schema 11)\n```\n")
    lines = command_lines(text)
    assert lines == [(4, "bsp reconcile --live --type totals --codez c.csv"), (10, "bsp deals --sinse 1h")], lines
    assert [p for _, ln in lines for p in problems(ln)] == ["bsp reconcile has no option --codez",
                                                           "bsp deals has no option --sinse"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ref.REPO)))
def test_documented_command_lines_are_real(page: Path) -> None:
    found = [f"{page.relative_to(ref.REPO)}:{n}: {line.strip()[:70]!r}: {p}"
             for n, line in command_lines(page.read_text(encoding="utf-8")) for p in problems(line)]
    assert not found, "\n".join(found)


def test_the_inline_check_reads_spans_over_lines_and_leaves_code_blocks_and_output_alone() -> None:
    text = "Run `bsp deals\n--flagged` now.\n```\n`bsp nope`\n```\n`bsp report: on a snapshot` and `bsp dead list`"
    assert inline_command_lines(text) == [(1, "bsp deals --flagged"), (6, "bsp dead list")]
    assert problems("bsp dead list --reasons flagged") == ["bsp dead list has no option --reasons"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ref.REPO)))
def test_commands_named_in_the_prose_are_real(page: Path) -> None:
    found = [f"{page.relative_to(ref.REPO)}:{n}: {line[:70]!r}: {p}"
             for n, line in inline_command_lines(page.read_text(encoding="utf-8")) for p in problems(line)]
    assert not found, "\n".join(found)


def test_pages_show_command_lines() -> None:
    assert sum(len(command_lines(p.read_text(encoding="utf-8"))) for p in PAGES) > 50


def test_shipped_files_named_in_command_lines_exist() -> None:
    """A `routes/...` file or folder a documented command line names (`--profile routes/bill_payment/replay.yaml`)
    is in the repository, so the example can be run as written."""
    missing = []
    for page in PAGES:
        for n, line in command_lines(page.read_text(encoding="utf-8")):
            code = re.sub(r"\s#.*$", "", line)
            for path in re.findall(r"(?<![\w./-])routes/[\w./-]+", code):
                if not (ref.REPO / path.rstrip(".")).exists():
                    missing.append(f"{page.relative_to(ref.REPO)}:{n}: {path}")
    assert not missing, "\n".join(missing)
