"""Bank statement functions of the route language: ``find`` (an item of a list by a field, wherever it
is) and ``statement_check`` (does a statement add up?).  Registered into ``dsl.functions``' tables, as
``dsl.calendars`` is; the arithmetic is ``formats`` code (pure, ``Decimal``), shared with
``bsp codec --check-balances``."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from dsl.functions import FUNCTIONS, SIGNATURES, FunctionError, Sig, _str
from formats.iso20022.camt_balance import balance_problem as camt_problem
from formats.swift.statement import balance_problem as mt940_problem


def _at(item: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(item, Mapping):
            return None
        item = item.get(part)
    return item


def f_find(items: Any, path: Any, value: Any) -> Any:
    """The first item of ``items`` whose field ``path`` (dotted: "Tp.CdOrPrtry.Cd") equals ``value``
    (or, when ``value`` is a list, is one of its values, tried in the list's order); null when none."""
    if items is None:
        return None
    if isinstance(items, Mapping):
        items = [items]         # a repeated element that came once
    if not isinstance(items, (list, tuple)):
        raise FunctionError(f"find: expected a list, got {'text' if isinstance(items, str) else type(items).__name__}")
    parts = _str(path, "find").split(".")
    if not all(parts):
        raise FunctionError(f"find: {path!r} is not a field path (names joined by dots)")
    wanted = list(value) if isinstance(value, (list, tuple)) else [value]
    for want in wanted:
        for item in items:
            if _at(item, parts) == want:
                return item
    return None


def f_statement_check(s: Any) -> str:
    """"" when the statement adds up, else what is wrong (see the signature's doc)."""
    if isinstance(s, Mapping) and ("Bal" in s or "Ntry" in s or "Acct" in s):
        problem = camt_problem(s)
    elif isinstance(s, list):
        problem = mt940_problem(s)
    elif s is None:
        raise FunctionError("statement_check: expected a statement (a camt.053 Stmt or an MT940's block4), got null")
    else:
        raise FunctionError("statement_check: expected a camt.053 statement (Stmt) or an MT940's block4 "
                            f"(a list of fields), got {'text' if isinstance(s, str) else type(s).__name__}")
    return problem or ""


def _path_literal(index: int, value: Any) -> str | None:
    if index == 1 and isinstance(value, str) and not all(value.split(".")):
        return f"{value!r} is not a field path: names joined by dots, e.g. \"Tp.CdOrPrtry.Cd\""
    return None


RESULTS = {"find": None, "statement_check": "string"}

_FUNCTIONS: dict[str, Callable[..., Any]] = {"find": f_find, "statement_check": f_statement_check}

_SIGNATURES: dict[str, Sig] = {
    "find": Sig(3, 3, ("list", "path", "value"), ("any", "string", "any"),
                "the first item of list whose field path (dotted) equals value, or is one of value's when it is "
                "a list (tried in that order); null when none: a camt.053's closing balance wherever it is among "
                "its balances is find(stmt.Bal, \"Tp.CdOrPrtry.Cd\", \"CLBD\"), an MT940's is "
                "find(msg.block4, \"tag\", [\"62F\", \"62M\"])", literal=_path_literal),
    "statement_check": Sig(1, 1, ("s",), ("any",),
                           "\"\" when the bank statement s adds up: opening balance + its entries (credits minus "
                           "debits) = closing balance, exactly (decimal); otherwise what is wrong, with the "
                           "amounts. s is a camt.053 Stmt (OPBD, or PRCD, + booked entries = CLBD; a page of a "
                           "statement in pages has an interim ITBD for the one it lacks; a reversal "
                           "counts by its CdtDbtInd) or an MT940's msg.block4 (60F/60M + :61: = 62F/62M; RC "
                           "is a debit, RD a credit); a statement without either balance is a problem too "
                           "(docs/services/account_consolidation.md)"),
}

FUNCTIONS.update(_FUNCTIONS)
SIGNATURES.update(_SIGNATURES)
