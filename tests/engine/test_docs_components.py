"""docs/components.md is generated from the registry, and the channel examples compile."""
from __future__ import annotations

from pathlib import Path

from engine.commands.docs import render_components
from engine.registry import default_registry
from kit import REPO, compile_text


def test_components_md_is_current() -> None:
    """bsp's own kinds: a plugin installed in the developer's environment is not part of bsp's reference."""
    text = render_components(default_registry(plugins=False))
    assert "### `tcp.listen`" in text and "### `call`" in text
    assert (REPO / "docs" / "components.md").read_text() == text, \
        "run: bsp docs components --no-plugins > docs/components.md"


def test_the_main_value_of_a_format_kind_is_named() -> None:
    """docs/language.md: "the first value that follows no option name fills the kind's main option";
    the reference says which option that is, kind by kind."""
    text = render_components(default_registry())
    json_part = text.split("### `json`")[1].split("### ")[0]
    assert "| `schema` | path |  |  | a JSON Schema file validated on decode and encode. The main value: " \
           "`json VALUE` may leave out the option's name. |" in json_part
    copybook_part = text.split("### `copybook`")[1].split("### ")[0]
    assert "`copybook VALUE` may leave out the option's name" in copybook_part


def test_every_channel_example_compiles(tmp_path: Path) -> None:
    reg = default_registry()
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outbox").mkdir()
    for name in reg.names("channel"):
        for ex in reg.get("channel", name).examples:
            prefix = "format BillPayRsp = json\n" if "BillPayRsp" in ex else ""
            compile_text(tmp_path, prefix + ex + "\n", name=name + ".route", registry=reg)


def test_channels_md_examples_compile(tmp_path: Path) -> None:
    import re

    text = (REPO / "docs" / "channels.md").read_text()
    blocks = re.findall(r"```route\n(.*?)```", text, re.S)
    assert len(blocks) >= 8          # tcp framings, tcp listen/connect, memory, http listen/call, file watch/write
    for d in ("in", "out"):          # the folders of the file examples (a route test runs one of them)
        (tmp_path / d).mkdir()
    for i, block in enumerate(blocks):
        compile_text(tmp_path, block, name=f"channels{i}.route")
