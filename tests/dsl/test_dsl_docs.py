"""docs/language.md cannot rot: its route examples compile, its generated tables are current."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dsl import docgen
from dsl.diagnostics import render
from dsl.functions import SIGNATURES
from dsl.load import compile_paths

from dslkit import BILL_PAYMENT

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
TARGET2 = Path(__file__).resolve().parents[2] / "routes" / "common" / "calendars" / "target2.csv"
BLOCKS = re.findall(r"```route\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_doc_has_route_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_route_example_compiles(tmp_path, registry, i):
    shutil.copy(BILL_PAYMENT.with_name("billers.csv"), tmp_path / "billers.csv")
    shutil.copy(TARGET2, tmp_path / "target2.csv")          # the calendar of the business-day example
    (tmp_path / "caps.csv").write_text("currency,daily_max\nCNY,5000000.00\n")    # the `limit` example's table
    p = tmp_path / f"example{i}.route"
    p.write_text(BLOCKS[i])
    result = compile_paths([p], registry)
    assert result.errors == [], "\n".join(render(d, result.sources) for d in result.errors)


def test_generated_sections_are_current():
    text = DOC.read_text(encoding="utf-8")
    assert docgen.render(text) == text, "run `python -m dsl.docgen docs/language.md`"
    for name in SIGNATURES:
        assert f"`{name}(" in text


def test_a_stale_section_is_detected():
    text = DOC.read_text(encoding="utf-8")
    stale = text.replace("| `E020` |", "| `E999` |")
    assert docgen.render(stale) != stale


EXAMPLES = [line for block in re.findall(r"```examples\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
            for line in block.splitlines() if line.strip()]


def _value(text: str, scope: dict | None = None):
    from dsl.compiler import compile_expr
    from dsl.parser import parse
    m = parse(f"route r {{ let x = {text} }}", "docs/language.md")
    return compile_expr(m.decls[0].body[0].value)(scope or {})


def test_doc_has_expression_examples():
    assert len(EXAMPLES) >= 6 and all("==>" in line for line in EXAMPLES)


@pytest.mark.parametrize("line", EXAMPLES)
def test_expression_example_gives_its_value(line):
    expr, want = (part.strip() for part in line.split("==>"))
    got, expected = _value(expr), _value(want)
    assert got == expected and type(got) is type(expected), f"{expr} gives {got!r}, the doc says {want}"


def test_the_scope_table_lists_every_error_field():
    """The `error` row of "Scope" names exactly the fields `bsp check` knows (dsl.checker.ERROR_FIELDS)."""
    from dsl.checker import ERROR_FIELDS
    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `error` |"))
    assert re.findall(r"`error\.(\w+)`", row) == list(ERROR_FIELDS), row


CALENDAR_EXAMPLES = [line for block in re.findall(r"```calendar-examples\n(.*?)```", DOC.read_text(encoding="utf-8"),
                                                  flags=re.S) for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("line", CALENDAR_EXAMPLES)
def test_calendar_example_gives_its_value(line):
    """The business-day examples, evaluated with the shipped TARGET2 calendar as `target2`."""
    from dsl import ir
    from dsl.tables import load_table
    scope = {"target2": load_table(ir.TableDecl("target2", "csv", str(TARGET2), "date"))}
    expr, want = (part.strip() for part in line.split("==>"))
    got, expected = _value(expr, scope), _value(want, scope)
    assert got == expected and type(got) is type(expected), f"{expr} gives {got!r}, the doc says {want}"


def test_doc_has_calendar_examples():
    assert len(CALENDAR_EXAMPLES) >= 5
