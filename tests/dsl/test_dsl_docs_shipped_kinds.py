"""docs/language.md holds with the kinds bsp ships (``default_registry``), not only with the
stand-in registry of the language tests: an analyst's `bsp check` uses the real ones."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dsl.diagnostics import render
from dsl.load import compile_paths
from engine.registry import default_registry
from formats.component import ComponentSpec, OptionSpec

from dslkit import BILL_PAYMENT

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```route\n(.*?)```", TEXT, flags=re.S)


def _shipped_with_the_docs_plugin():
    """The shipped kinds, plus the plugin step `audit` the doc's plugin example assumes (the doc
    says bsp ships no plugin step kind)."""
    reg = default_registry(plugins=False)
    reg.register(ComponentSpec("step", "audit", "a plugin's step (docs/language.md)", (
        OptionSpec("text", "expr", "what to write", required=True),)))
    return reg


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_route_example_compiles_with_the_shipped_kinds(tmp_path, i):
    shutil.copy(BILL_PAYMENT.with_name("billers.csv"), tmp_path / "billers.csv")
    shutil.copy(BILL_PAYMENT.parents[1] / "common" / "calendars" / "target2.csv", tmp_path / "target2.csv")
    (tmp_path / "caps.csv").write_text("currency,daily_max\nCNY,5000000.00\n")    # the `limit` example's table
    p = tmp_path / f"example{i}.route"
    p.write_text(BLOCKS[i])
    result = compile_paths([p], _shipped_with_the_docs_plugin())
    assert result.errors == [], "\n".join(render(d, result.sources) for d in result.errors)


def test_json_takes_its_schema_as_its_main_value(tmp_path):
    """`format BillerPost = json "biller_post.schema.json"          # the same` (as `json schema "..."`)."""
    assert 'format BillerPost = json "biller_post.schema.json"          # the same' in TEXT
    (tmp_path / "biller_post.schema.json").write_text('{"type": "object"}')
    (tmp_path / "m.route").write_text(
        'format A = json schema "biller_post.schema.json"\n'
        'format B = json "biller_post.schema.json"\n'
        'channel c = memory\n'
        'route r {\n    receive from c as A\n    reply B { x = 1 }\n}\n')
    result = compile_paths([tmp_path / "m.route"], default_registry(plugins=False))
    assert result.errors == [], "\n".join(render(d, result.sources) for d in result.errors)
    fm = result.program.formats
    assert fm["A"].options["schema"] == fm["B"].options["schema"] == str(tmp_path / "biller_post.schema.json")


def test_the_plugin_example_says_no_plugin_step_ships():
    assert "bsp ships no plugin step kind" in TEXT
    assert "audit" not in default_registry(plugins=False).names("step")
