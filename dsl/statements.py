"""Bank statement functions of the route language: ``find`` (an item of a list by a field, wherever it
is) and ``statement_check`` (does a statement add up?): camt.053 / camt.052, MT940 / MT942 / MT950; any other
message is refused saying what it is (formats.swift.statement_kind).  Registered into ``dsl.functions``' tables, as
``dsl.calendars`` is; the arithmetic is ``formats`` code (pure, ``Decimal``), shared with
``bsp codec --check-balances``."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from dsl.functions import FUNCTIONS, SIGNATURES, FunctionError, Sig, _str
from formats.iso20022.camt_balance import (CLOSING, OPENING, REPORT, STATEMENT, balance, item_kind, item_problem,
                                           message_items)
from formats.swift.statement import balance_problem as mt940_problem
from formats.swift.statement import interim_problem, interim_sums
from formats.swift.statement_kind import swift_statement


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


_CAMT_KEYS = ("Bal", "Ntry", "Acct", "TxsSummry")
_AMBIGUOUS = (" (a camt.052 intraday report has no booked opening and closing balance: give statement_check "
              "the message, msg, whose BkToCstmrAcctRpt says it is one)")


def _camt_kind(s: Any) -> str | None:
    """``"Stmt"`` or ``"Rpt"``: how ``statement_check`` reads ``s`` (a camt message or item), None: not camt."""
    whole = message_items(s)
    if whole is not None:
        return whole[0]
    if isinstance(s, Mapping) and any(k in s for k in _CAMT_KEYS):
        return item_kind(s) or STATEMENT          # an item that does not tell: checked as a statement, the strict way
    return None


def f_statement_check(s: Any) -> str:
    """"" when the statement adds up, else what is wrong (see the signature's doc)."""
    whole = message_items(s)
    if whole is not None:                       # a whole camt.053 / camt.052 message: its group says which
        kind, items = whole
        if not items:
            raise FunctionError(f"statement_check: the message holds no {kind}")
        out = []
        for i, item in enumerate(items, 1):
            problem = item_problem(item, kind)
            if problem:
                ident = item.get("Id") if isinstance(item, Mapping) else None
                out.append(f"{kind} {i}{f' {ident}' if ident else ''}: {problem}")
        return "; ".join(out)
    swift = _swift("statement_check", s)
    kind = _camt_kind(s) if swift is None else None
    if kind is not None:
        problem = item_problem(s, kind)
        if problem and item_kind(s) is None and balance(s, *OPENING, *CLOSING) is None:
            problem += _AMBIGUOUS               # no booked balance at all: it may be an intraday report
    elif swift is not None and swift[0] == "MT942":
        problem = mt942_problem(swift[1])
    elif swift is not None:                     # an MT940 or an MT950: the same balances and entries
        problem = mt940_problem(swift[1])
    elif s is None:
        raise FunctionError("statement_check: expected a statement (a camt.053 Stmt or an MT940's block4), got null")
    else:
        raise FunctionError(f"statement_check: expected {_EXPECTED}, got {_got(s)}")
    return problem or ""


_EXPECTED = ("a camt.053 statement (Stmt), a camt.052 report (Rpt), their message (msg), or an MT940, MT942 or "
             "MT950 (its msg, or its msg.block4: a list of fields)")


def _got(s: Any) -> str:
    if isinstance(s, str):
        return "text"
    if isinstance(s, Mapping):
        shown = ", ".join(list(map(str, s))[:4])
        return f"a record with {shown}{' ...' if len(s) > 4 else ''}" if s else "an empty record"
    return type(s).__name__


def _swift(fn: str, s: Any) -> tuple[str, list] | None:
    """("MT940" / "MT942" / "MT950", block 4) of a SWIFT statement (its msg or msg.block4), None when ``s`` is no
    SWIFT message; a SWIFT message that is no statement (an MT103, an MT103's block 4) fails the exchange saying
    what it is (formats.swift.statement_kind)."""
    try:
        return swift_statement(s)
    except ValueError as exc:
        raise FunctionError(f"{fn}: {exc}") from None


def mt942_problem(fields: list) -> str | None:
    """An MT942 interim report is no statement: no balances, so only its :61: lines are checked against its
    :90D: / :90C: (number and sum of its debit / credit entries), as ``bsp reconcile``'s statement checks do
    (``formats.swift.statement.interim_sums``); one with neither has nothing to check."""
    sums, ccy = interim_sums(fields)
    return interim_problem(sums, ccy) if sums is not None else None


def f_statement_kind(s: Any) -> str:
    """Which statement ``s`` is, as statement_check reads it (see the signature's doc)."""
    swift = _swift("statement_kind", s)
    if swift is not None:
        return swift[0]
    kind = _camt_kind(s)
    if kind is not None:
        return "camt.052" if kind == REPORT else "camt.053"
    raise FunctionError(f"statement_kind: expected {_EXPECTED}, got {'null' if s is None else _got(s)}")


def _path_literal(index: int, value: Any) -> str | None:
    if index == 1 and isinstance(value, str) and not all(value.split(".")):
        return f"{value!r} is not a field path: names joined by dots, e.g. \"Tp.CdOrPrtry.Cd\""
    return None


RESULTS = {"find": None, "statement_check": "string", "statement_kind": "string"}

_FUNCTIONS: dict[str, Callable[..., Any]] = {"find": f_find, "statement_check": f_statement_check,
                                             "statement_kind": f_statement_kind}

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
                           "is a debit, RD a credit); a statement without either balance is a problem too; a "
                           "camt.053 with a TxsSummry must hold the entries it counts (TtlNtries, TtlCdtNtries, "
                           "TtlDbtNtries: number and Sum; the net). A camt.052 intraday report (Rpt) is no "
                           "statement: its balances are the day's so far, so only its entries are checked against "
                           "its TxsSummry, and what is wrong starts \"intraday report (camt.052): \". Which one s "
                           "is: give the message (msg: BkToCstmrStmt or BkToCstmrAcctRpt says it, and every Stmt or "
                           "Rpt of it is checked, each problem after \"Stmt 2 ID: \"), or an item that says it "
                           "(RptPgntn, AddtlRptInf: a report; StmtPgntn, AddtlStmtInf: a statement); an item that "
                           "does not is checked as a statement (statement_kind tells which). An MT950 statement "
                           "message (msg or msg.block4) is checked as an MT940. Any other SWIFT message (an MT103's "
                           "msg, or a block4 with a field no statement has, e.g. :32A:) fails the exchange naming "
                           "the message type or the field, never checked as a statement. An MT942 interim "
                           "report's msg.block4 (it has :34F: or :13D:, or :90D: / :90C: without balances) has no "
                           "balances: its :61: lines are checked against its :90D: / :90C: (number and sum of its "
                           "debits / credits), and what is wrong starts \"interim report (MT942): \" "
                           "(docs/services/account_consolidation.md)"),
    "statement_kind": Sig(1, 1, ("s",), ("any",),
                          "which statement s is, as statement_check reads it: \"camt.053\" (a Stmt, or its "
                          "message), \"camt.052\" (an intraday report: a message whose group is "
                          "BkToCstmrAcctRpt, or an Rpt that has RptPgntn or AddtlRptInf), \"MT940\" (an "
                          "MT940's msg.block4), \"MT942\" (an MT942 interim report's: :34F: or :13D:, or "
                          ":90D: / :90C: without balances), \"MT950\" (an MT950's msg: its block 2 says 950; its "
                          "block4 alone reads as \"MT940\"); a Stmt or Rpt that does not tell is \"camt.053\"; "
                          "any other SWIFT message (an MT103) fails the exchange saying what it is"),
}

FUNCTIONS.update(_FUNCTIONS)
SIGNATURES.update(_SIGNATURES)
