"""``bsp check`` for effective-dated tables (``table T = csv "f.csv" key K effective from COLUMN``) and
their as-of reads (``T[KEY at DATE]``): the checker's part, kept out of ``dsl.checker``.

* E150: the effective-date column is not in the file, is the key column, or the file does not load as an
  effective-dated table (a date that is not YYYY-MM-DD, two rows of one key from the same date), pointing
  at the file's line;
* E148: ``X[KEY at DATE]`` where X is not a table declared with ``effective from``;
* E149: the as-of date is known not to be a date (a string, a number ...): ``dsl.types.Typer``.
"""
from __future__ import annotations

from typing import Any, Callable

from dsl import ir
from dsl.diagnostics import did_you_mean

Error = Callable[..., None]


def check_decl(d: Any, path: str, header: list[str], error: Error) -> str | None:
    """The declaration's ``effective from COLUMN`` against the file: the column, or None (none declared, or
    reported)."""
    eff = d.effective
    if eff is None:
        return None
    name = d.name.name
    if eff.name not in header:
        error("E150", f"table `{name}`: effective-date column `{eff.name}` is not in the file", eff.pos,
              did_you_mean(eff.name, header) or "columns: " + ", ".join(header))
        return None
    if eff.name == d.key.name:
        error("E150", f"table `{name}`: the effective-date column `{eff.name}` is the key column", eff.pos,
              "the key names the row (insurer), the effective-date column the day it applies from (valid_from): "
              "two columns")
        return None
    from dsl.tables import TableError, load_table
    try:
        load_table(ir.TableDecl(name, "csv", path, d.key.name, effective=eff.name))
    except TableError as e:
        error("E150", f"table `{name}`: {e.message.removeprefix(f'table {name}: ')}",
              ir.Pos(e.path, e.line or 1, 1), "one row per key and date, the date written YYYY-MM-DD: "
              "the day from which the row applies")
        return None
    return eff.name


def check_index(e: Any, table: str | None, effective: str | None, declared: bool, error: Error) -> None:
    """``X[KEY at DATE]``: E148 unless X is a table declared ``effective from``.  ``table``: X's name when
    it is a table; ``effective``: its effective-date column; ``declared``: its declaration was read (no
    other error in it)."""
    if e.at is None:
        return
    if table is None:
        error("E148", f"`{_shown(e)}`: `[KEY at DATE]` reads a row of an effective-dated table, and "
              f"{_shown(e.base)} is not a table", e.pos,
              "declare the table `table T = csv \"FILE.csv\" key K effective from COLUMN`")
    elif effective is None and declared:
        error("E148", f"table `{table}` has no effective dates: `{table}[KEY at DATE]` needs them", e.pos,
              f"add `effective from COLUMN` to its declaration (a column of the date each row applies from, "
              f"YYYY-MM-DD), or read today's row with `{table}[KEY]`")


def _shown(e: Any) -> str:
    from dsl.types import show
    return show(e)
