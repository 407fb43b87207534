"""Whatever the text, compiling gives a program or diagnostics, never a crash;
dsl/ stays pure (no trio, duckdb or engine; no eval/exec)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.load import compile_source

from dslkit import BILL_PAYMENT

DSL = Path(__file__).resolve().parents[2] / "dsl"
SAMPLE = BILL_PAYMENT.read_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(SAMPLE)), junk=st.text(alphabet='{}()[]"=.,#\n abc019+-*', max_size=6))
def test_mangled_sample_never_crashes(tmp_path, registry, cut, junk):
    text = SAMPLE[:cut] + junk + SAMPLE[cut:]
    r = compile_source(text, registry, tmp_path / "main.route")
    assert (r.program is None) == any(d.is_error for d in r.diagnostics)
    for d in r.diagnostics:
        assert d.code and d.message and d.pos is not None and d.pos.line >= 1 and d.pos.col >= 1


def test_dsl_imports_no_trio_duckdb_or_engine():
    code = ("import sys, dsl.load, dsl.compiler, dsl.tables, dsl.errors_catalogue, dsl.docgen;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'duckdb', 'engine'));"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=DSL.parent)
    assert out.stdout.strip() == ""


def test_no_eval_exec_or_getattr_on_values_in_the_compiler():
    for path in DSL.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(eval|exec|compile)\(", text.replace("compile_expr(", "")
                             .replace("compile_assigns(", "").replace("re.compile(", "")), path.name
    compiler = (DSL / "compiler.py").read_text()
    assert "getattr(" not in compiler
