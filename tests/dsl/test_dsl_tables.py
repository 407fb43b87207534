"""CSV tables: rows by key, and bad files named by file and line."""
from __future__ import annotations

import pytest

from dsl import ir
from dsl.compiler import EvalError
from dsl.tables import TableError, load_table

from dslkit import BILL_PAYMENT


def decl(path, key="id"):
    return ir.TableDecl("t", "csv", str(path), key)


def test_loads_the_shipped_billers_table():
    t = load_table(ir.TableDecl("billers", "csv", str(BILL_PAYMENT.with_name("billers.csv")), "biller_id"))
    assert "EL0001" in t and "XX" not in t
    assert t["WA0001"]["api_code"] == "WATER-CITY"
    assert t.columns == ("biller_id", "api_code", "name", "category")
    with pytest.raises(EvalError, match=r"table billers \(billers.csv\) has no row with biller_id = 'XX'"):
        t["XX"]


@pytest.mark.parametrize("text, line, message", [
    ("id,v\n1,a\n2\n", 3, "row has 1 values, the header has 2"),
    ("id,v\n1,a\n\n1,b\n", 4, "key '1' appears twice (first on line 2)"),
    ("key,v\n1,a\n", 1, "key column 'id' is not in the header (key, v)"),
    ("", 1, "the file is empty"),
])
def test_bad_files_name_file_and_line(tmp_path, text, line, message):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(TableError) as info:
        load_table(decl(p))
    assert info.value.line == line and message in info.value.message
    assert str(info.value).startswith(f"{p}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(TableError, match="cannot open table t"):
        load_table(decl(tmp_path / "none.csv"))
