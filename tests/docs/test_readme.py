"""README.md opens with exactly `make demo` and `make test`; its tour runs only real commands and options."""
from __future__ import annotations

import re
import shlex

import cli_reference as ref

README = ref.REPO / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_readme_opens_with_exactly_make_demo_and_make_test() -> None:
    text = README.read_text(encoding="utf-8")
    first_code = text.index("```")
    assert "bsp" in text[:first_code].splitlines()[0], "README.md starts with the project's title"
    assert _blocks()[0].split("\n") == ["make demo", "make test", ""], _blocks()[0]


def test_readme_tour_uses_real_commands_and_options() -> None:
    commands = {c.name: c for c in ref.walk()}
    lines = [ln for b in _blocks()[1:] for ln in b.splitlines() if ln.startswith("bsp ")]
    assert len(lines) >= 8, "the tour shows the main commands"
    for line in lines:
        words = shlex.split(line.split("#", 1)[0])
        name = max((n for n in commands if words[:len(n.split())] == n.split()), key=len, default=None)
        assert name is not None, f"README.md tour: {line!r} is not a bsp command"
        known = {f for p in ref.visible_params(commands[name]) for f in ref.flags(p)}
        for word in words:
            if word.startswith("-"):
                assert word.split("=")[0] in known, f"README.md tour: {name} has no option {word}"
