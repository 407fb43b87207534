"""docs/cli.md names every `bsp` command and option, with exit codes and an example; --help explains itself."""
from __future__ import annotations

import re

import pytest

import cli_reference as ref

COMMANDS = list(ref.walk())
RUNNABLE = [c for c in COMMANDS if c.runs]


def _doc() -> str:
    return ref.CLI_MD.read_text(encoding="utf-8")


def test_the_walk_sees_the_whole_command_line() -> None:
    """Guards the other tests against walking nothing: these commands exist today."""
    names = {c.name for c in COMMANDS}
    expected = {"bsp version", "bsp check", "bsp run", "bsp demo", "bsp deals", "bsp deals show", "bsp decode",
                "bsp encode", "bsp status", "bsp reload", "bsp top", "bsp report", "bsp reconcile", "bsp replay",
                "bsp test", "bsp docs components", "bsp admin token", "bsp certs dev", "bsp audit verify",
                "bsp dead list", "bsp dead show", "bsp dead retry", "bsp dead purge"}
    assert expected <= names, f"missing from the typer app: {sorted(expected - names)}"
    decode = next(c for c in COMMANDS if c.name == "bsp decode")
    assert "--copybook" in [f for p in ref.visible_params(decode) for f in ref.flags(p)]


def test_cli_md_is_generated_from_the_current_command_line() -> None:
    doc = _doc()
    assert ref.regenerate(doc) == doc, (
        "docs/cli.md's generated blocks are stale (a command or option changed): run "
        ".venv/bin/python tests/docs/cli_reference.py --write and review the diff")


def test_every_command_and_option_is_documented_with_exit_codes_and_an_example() -> None:
    found = ref.problems(_doc(), COMMANDS)
    assert not found, "docs/cli.md:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("cut", ["--older-than", "--explain", "--rdw-excludes-header"])
def test_a_missing_option_is_reported(cut: str) -> None:
    """The check is not vacuous: drop one option's row from the reference and it is named."""
    doc = _doc()
    lines = [ln for ln in doc.splitlines() if not (ln.startswith("| `") and f"`{cut}" in ln)]
    assert len(lines) < len(doc.splitlines())
    found = ref.problems("\n".join(lines), COMMANDS)
    assert any(cut in p for p in found), found


def test_a_missing_section_or_example_is_reported() -> None:
    doc = _doc()
    section = ref.hand_section(doc, "`bsp top`")
    assert section, "docs/cli.md has no hand-written `bsp top` section"
    without_example = doc.replace(section, re.sub(r"```.*?```", "", section, flags=re.S))
    assert any("bsp top: its section" in p and "example" in p for p in ref.problems(without_example, COMMANDS))
    without_section = doc.replace(section, "")
    assert "bsp top: no hand-written section (a heading naming `bsp top`)" in ref.problems(without_section, COMMANDS)


def test_summary_links_point_at_headings_in_cli_md() -> None:
    doc = _doc()
    anchors = {ref.anchor(h) for h in re.findall(r"^#{1,6} (.+)$", doc, flags=re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", doc)
    assert links
    dangling = sorted({a for a in links if a not in anchors})
    assert not dangling, f"docs/cli.md links to headings it does not have: {dangling}"


@pytest.mark.parametrize("cmd", RUNNABLE, ids=lambda c: c.name)
def test_help_explains_the_command(cmd: ref.Command) -> None:
    text = (cmd.click.help or "").strip()
    assert len(ref.first_paragraph(text)) >= 15, f"{cmd.name} --help does not say what it does: {text!r}"
    if cmd.name not in ref.ALWAYS_OK:
        assert re.search(r"\bexit\b", text, flags=re.I), f"{cmd.name} --help does not give its exit codes"
    for p in ref.visible_params(cmd):
        assert (p.help or "").strip(), f"{cmd.name}: {ref.option_cell(p)} has no help text"
    # stale wording: commands and files that no longer exist
    for word in re.findall(r"`(bsp(?: [a-z][\w-]*)+)", text):
        assert any(c.name == word or c.name.startswith(word + " ") or word.startswith(c.name + " ")
                   for c in COMMANDS), f"{cmd.name} --help mentions {word!r}, which is not a command"
    for doc in re.findall(r"docs/[\w/.-]+\.md", text + " " + " ".join(p.help or "" for p in cmd.click.params)):
        assert (ref.REPO / doc).is_file(), f"{cmd.name} --help points at {doc}, which does not exist"


def test_check_and_test_help_point_the_analyst_to_the_catalogue_and_the_test_syntax() -> None:
    """An analyst reads `bsp check --help` / `bsp test --help` before the docs: where codes are explained,
    that warnings pass, where tests are written and what a configuration is."""
    helps = {c.name: " ".join((c.click.help or "").split()) for c in COMMANDS if c.name in ("bsp check", "bsp test")}
    check, test = helps["bsp check"], helps["bsp test"]
    assert "error catalogue of docs/language.md" in check and "Warnings (W...) do not fail the check" in check
    assert 'test "NAME" {' in test and "docs/testing.md" in test and "NAME_test.route" in test
    assert "each sub-folder on its own" in test
