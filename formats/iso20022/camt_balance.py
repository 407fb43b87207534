"""Does a camt.053 statement add up?  Opening booked balance + booked entries = closing booked balance.

``balance(stmt, *codes)`` finds a statement's balance by its type code wherever it is in the list
of ``Bal`` (banks order them as they like: OPBD, CLBD, CLAV, FWAV ... or PRCD first);
``balance_problem(stmt)`` says what is wrong with the statement's balances, or ``None`` when
``opening + credits - debits == closing``, in ``Decimal``.

The rules a reconciliation clerk applies (ISO 20022 camt.053 MDR, CGI-MP / DK usage):

* the opening balance is ``OPBD`` (opening booked) or, as German and Swiss banks write it,
  ``PRCD`` (previously closed booked); the closing balance is ``CLBD``; a page of a statement in pages
  carries an interim booked ``ITBD`` in place of the one it lacks (``opening_closing``);
* only **booked** entries move the booked balance: ``Sts`` ``BOOK`` (in camt.053.001.02-07 a code,
  from .08 on ``<Sts><Cd>BOOK</Cd></Sts>``); pending (``PDNG``) and information (``INFO``)
  entries do not;
* an entry's ``CdtDbtInd`` is the direction it moved the account, a reversal (``RvslInd`` true)
  included: a reversed credit comes as a ``DBIT`` entry (the MDR: "if the CreditDebitIndicator is
  DBIT and ReversalIndicator is Yes, the original operation was a credit entry");
* balances and entries are amounts without sign; ``CdtDbtInd`` ``DBIT`` makes them negative.

Values are the ISO 20022 codec's (``formats/iso20022/codec.py``): ``Amt`` is
``{"value": Decimal, "Ccy": "EUR"}``; repeated elements are lists.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)


def _many(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def balance_code(bal: Any) -> str | None:
    """A ``Bal``'s type code (``Tp/CdOrPrtry/Cd``), or its proprietary code, or None."""
    if not isinstance(bal, Mapping):
        return None
    kind = (bal.get("Tp") or {}).get("CdOrPrtry") or {}
    code = kind.get("Cd") if isinstance(kind, Mapping) else None
    if code is None and isinstance(kind, Mapping):
        code = kind.get("Prtry")
    return code if isinstance(code, str) else None


def balance(stmt: Any, *codes: str) -> dict[str, Any] | None:
    """The first ``Bal`` of ``stmt`` whose type code is one of ``codes`` (in the order of ``codes``:
    ``balance(s, "OPBD", "PRCD")`` takes an OPBD before a PRCD), wherever it is in the list."""
    bals = _many(stmt.get("Bal")) if isinstance(stmt, Mapping) else []
    for code in codes:
        for b in bals:
            if balance_code(b) == code:
                return b
    return None


def opening_closing(stmt: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The statement's opening (``OPBD``, else ``PRCD``) and closing (``CLBD``) booked balances; a page of a
    statement in pages carries an interim booked balance (``ITBD``) where the statement's own is not (the
    first page OPBD .. ITBD, a middle one ITBD .. ITBD, the last ITBD .. CLBD): it stands for the missing one.
    With two ITBD, the earlier (by date, then as written) opens and the later closes; with one, it opens a page
    that has a CLBD, else it closes.  Beside both booked balances an ITBD is the bank's information only."""
    opening, closing = balance(stmt, *OPENING), balance(stmt, *CLOSING)
    if opening is not None and closing is not None:
        return opening, closing
    bals = _many(stmt.get("Bal")) if isinstance(stmt, Mapping) else []
    interim = [b for b in bals if balance_code(b) == "ITBD"]
    if not interim:
        return opening, closing

    def when(b: Mapping[str, Any]) -> str:
        d = b.get("Dt") or {}
        return str((d.get("Dt") or d.get("DtTm") or "") if isinstance(d, Mapping) else "")

    interim = sorted(interim, key=when)            # stable: as written on the same day
    if opening is None and closing is None:
        return (interim[0], interim[-1]) if len(interim) > 1 else (None, interim[0])
    if opening is None:
        return interim[0], closing
    return opening, interim[-1]


def signed(node: Any) -> Decimal | None:
    """A balance's or an entry's amount, negative when its ``CdtDbtInd`` is ``DBIT``."""
    if not isinstance(node, Mapping):
        return None
    amt = node.get("Amt")
    value = amt.get("value") if isinstance(amt, Mapping) else amt
    if isinstance(value, str):
        value = Decimal(value)
    if not isinstance(value, (Decimal, int)):
        return None
    value = Decimal(value)
    return -value if node.get("CdtDbtInd") == "DBIT" else value


def _status(entry: Mapping[str, Any]) -> str | None:
    sts = entry.get("Sts")
    if isinstance(sts, Mapping):            # camt.053.001.08 on: <Sts><Cd>BOOK</Cd></Sts>
        sts = sts.get("Cd") or sts.get("Prtry")
    return sts if isinstance(sts, str) else None


def booked_total(stmt: Any) -> tuple[Decimal, int]:
    """The sum of the statement's booked entries (credits minus debits) and how many there are."""
    total, count = Decimal(0), 0
    for entry in _many(stmt.get("Ntry")) if isinstance(stmt, Mapping) else []:
        if not isinstance(entry, Mapping) or _status(entry) not in (None, "BOOK"):
            continue
        amount = signed(entry)
        if amount is None:
            continue
        total += amount
        count += 1
    return total, count


def _ccy(node: Mapping[str, Any]) -> str:
    amt = node.get("Amt")
    return str(amt.get("Ccy") or "") if isinstance(amt, Mapping) else ""


def balance_problem(stmt: Any) -> str | None:
    """None when the statement adds up (opening + booked entries == closing) and its entries are what its own
    ``TxsSummry`` says (when it has one: ``summary_problems``); otherwise what is wrong: a missing opening or
    closing booked balance, or the two amounts, the entries and the difference, then each ``TxsSummry`` figure
    that disagrees, said and found (``; ``-separated)."""
    if not isinstance(stmt, Mapping):
        return "not a camt.053 statement (Stmt)"
    opening, closing = opening_closing(stmt)
    if opening is None:
        return "no opening booked balance (OPBD or PRCD): the statement cannot be checked"
    if closing is None:
        return "no closing booked balance (CLBD): the statement cannot be checked"
    start, end = signed(opening), signed(closing)
    if start is None or end is None:
        return "a balance without an amount"
    total, count = booked_total(stmt)
    want = start + total
    problems = summary_problems(stmt) or []          # its own TxsSummry, when it has one
    if want != end:
        ccy = _ccy(closing)
        problems.insert(0, f"opening balance {balance_code(opening)} {start} {ccy} + {count} booked "
                           f"entr{'y' if count == 1 else 'ies'} ({total:+}) = {want} {ccy}, but the closing balance "
                           f"{balance_code(closing)} is "
                           f"{end} {ccy} (difference {end - want:+})")
    return "; ".join(problems) or None


def _count(v: Any) -> int | None:
    text = str(v).strip() if v is not None else ""
    return int(text) if text.isdigit() else None


def _sum(v: Any) -> Decimal | None:
    if isinstance(v, (Decimal, int)) and not isinstance(v, bool):
        return Decimal(v)
    if isinstance(v, str) and v.strip():
        try:
            d = Decimal(v.strip())
        except ArithmeticError:
            return None
        return d if d.is_finite() else None
    return None


def summary_problems(stmt: Any) -> list[str] | None:
    """A camt.052 report's (or a camt.053 statement's) ``TxsSummry`` against its entries, every one whatever its
    ``Sts``: ``TtlCdtNtries`` / ``TtlDbtNtries`` (how many credit / debit entries and their sum), ``TtlNtries``
    (how many entries, the sum of their amounts and the net, ``TtlNetNtryAmt`` with its ``CdtDbtInd``), each
    part only when given.  None: no ``TxsSummry``; else what disagrees (empty: it agrees), in ``Decimal``."""
    summ = stmt.get("TxsSummry") if isinstance(stmt, Mapping) else None
    if not isinstance(summ, Mapping):
        return None
    credits: list[Decimal] = []
    debits: list[Decimal] = []
    ccy = ""
    for entry in _many(stmt.get("Ntry")):
        if not isinstance(entry, Mapping):
            continue
        amount = signed(entry)
        if amount is None:
            continue
        ccy = ccy or _ccy(entry)
        (debits if entry.get("CdtDbtInd") == "DBIT" else credits).append(abs(amount))
    out: list[str] = []

    def compare(name: str, what: str, node: Any, got: list[Decimal]) -> None:
        if not isinstance(node, Mapping):
            return
        n, total = _count(node.get("NbOfNtries")), _sum(node.get("Sum"))
        have = sum(got, Decimal(0))
        if (n is None or n == len(got)) and (total is None or total == have):
            return
        said = " of ".join(p for p in (f"{n} {what}" + ("" if what.endswith("entries") else "(s)") if n is not None
                                        else "",
                                        f"{total} {ccy}".strip() if total is not None else "") if p)
        held = " of ".join(p for p in (f"{len(got)}" if n is not None else "",
                                        f"{have}" if total is not None else "") if p)
        out.append(f"TxsSummry/{name} says {said}, but the entries hold {held}"
                   + (f" (difference {total - have:+})" if total is not None and total != have else ""))

    compare("TtlCdtNtries", "credit", summ.get("TtlCdtNtries"), credits)
    compare("TtlDbtNtries", "debit", summ.get("TtlDbtNtries"), debits)
    every = summ.get("TtlNtries")
    compare("TtlNtries", "entries", every, credits + debits)
    said = _net(every)
    if said is not None:
        name, net = said
        have = sum(credits, Decimal(0)) - sum(debits, Decimal(0))
        if net != have:
            out.append(f"TxsSummry/TtlNtries/{name} says a net {net:+} {ccy}, but the entries net "
                       f"{have:+} (difference {net - have:+})".replace("  ", " "))
    return out


def _net(every: Any) -> tuple[str, Decimal] | None:
    """``TtlNtries``' net amount, signed, and where it is: ``TtlNetNtryAmt`` with a ``CdtDbtInd`` beside it
    (camt.05x.001.02 / .03), ``TtlNetNtry`` with its ``Amt`` and ``CdtDbtInd`` (.04 on); None when not given."""
    if not isinstance(every, Mapping):
        return None
    node = every.get("TtlNetNtry")
    if isinstance(node, Mapping) and _sum(node.get("Amt")) is not None:
        net, mark, name = _sum(node.get("Amt")), node.get("CdtDbtInd"), "TtlNetNtry"
    elif _sum(every.get("TtlNetNtryAmt")) is not None:
        net, mark, name = _sum(every.get("TtlNetNtryAmt")), every.get("CdtDbtInd"), "TtlNetNtryAmt"
    else:
        return None
    assert net is not None
    return name, (-net if mark == "DBIT" else net)


def report_problem(rpt: Any) -> str | None:
    """A camt.052 intraday report (``Rpt``): its balances are the day's so far (``ITBD``, ``ITAV``, ``OPAV``
    ...), no closing balance, so it is not checked as a statement (it does not add up to a ``CLBD``, no
    statement opens from it); only its entries against its ``TxsSummry``, when it has one.  None when they
    agree (or there is no ``TxsSummry``), else what disagrees."""
    problems = summary_problems(rpt)
    return "; ".join(problems) if problems else None


# a camt message's group element -> the element of each of its items, and what one is called
GROUPS = {"BkToCstmrStmt": ("Stmt", "camt.053 statement"), "BkToCstmrAcctRpt": ("Rpt", "camt.052 intraday report")}
STATEMENT, REPORT = "Stmt", "Rpt"
REPORT_MARKS = ("RptPgntn", "AddtlRptInf")          # elements only a camt.052 Rpt has
STATEMENT_MARKS = ("StmtPgntn", "AddtlStmtInf")     # ... only a camt.053 Stmt


def item_kind(item: Any) -> str | None:
    """``"Rpt"`` when ``item`` (a decoded ``Stmt`` or ``Rpt``) tells by its own elements that it is a camt.052
    intraday report (``RptPgntn``, ``AddtlRptInf``), ``"Stmt"`` when it tells it is a camt.053 statement
    (``StmtPgntn``, ``AddtlStmtInf``), None when it does not tell (the two share every other element: only
    the message's group element, ``BkToCstmrAcctRpt`` or ``BkToCstmrStmt``, says it then)."""
    if not isinstance(item, Mapping):
        return None
    if any(k in item for k in REPORT_MARKS):
        return REPORT
    if any(k in item for k in STATEMENT_MARKS):
        return STATEMENT
    return None


def message_items(doc: Any) -> tuple[str, list[Any]] | None:
    """A decoded camt.053 / camt.052 message (``msg``: ``{"BkToCstmrStmt": ...}``) as (``"Stmt"`` or ``"Rpt"``,
    its items); None when ``doc`` is not one of them."""
    if not isinstance(doc, Mapping):
        return None
    for group, (part, _) in GROUPS.items():
        body = doc.get(group)
        if isinstance(body, Mapping):
            return part, _many(body.get(part))
    return None


def item_problem(item: Any, kind: str) -> str | None:
    """What is wrong with one item of a camt message, by its kind: a camt.053 ``Stmt`` must add up and agree
    with its own ``TxsSummry`` (``balance_problem``); a camt.052 ``Rpt`` is no statement (its balances are the
    day's so far, no closing balance, no link of the balance chain): only its entries are checked against its
    ``TxsSummry`` (``report_problem``), and what is wrong is said as the report's."""
    if kind == REPORT:
        problem = report_problem(item)
        return f"intraday report (camt.052): {problem}" if problem else None
    return balance_problem(item)


def account_of(stmt: Any) -> str | None:
    """The statement's account: ``Acct/Id/IBAN`` or ``Acct/Id/Othr/Id``."""
    ident = ((stmt.get("Acct") or {}).get("Id") or {}) if isinstance(stmt, Mapping) else {}
    if not isinstance(ident, Mapping):
        return None
    other = ident.get("Othr")
    value = ident.get("IBAN") or (other.get("Id") if isinstance(other, Mapping) else None)
    return str(value).strip() if value else None


def _shown(bal: Mapping[str, Any]) -> str:
    dt = bal.get("Dt") or {}
    day = (dt.get("Dt") or dt.get("DtTm")) if isinstance(dt, Mapping) else None
    return f"{balance_code(bal)} {signed(bal)} {_ccy(bal)}" + (f" of {day}" if day else "")


def continuity_problem(stmt: Any, closed: dict[str, tuple[dict[str, Any], str]]) -> str | None:
    """None when the statement's opening booked balance (OPBD, or PRCD) is the closing booked balance (CLBD)
    of the statement before it of the same account (``closed``: account -> (that CLBD, its statement's Id),
    carried from statement to statement in the order they come and updated here), amount, sign and
    currency; else what differs.  A statement with no earlier one of its account, or without the
    balances, is not a problem here (``balance_problem`` tells the missing balances)."""
    account = account_of(stmt)
    if account is None:
        return None
    opening, closing = opening_closing(stmt)
    before = closed.get(account)
    if closing is not None:
        closed[account] = (closing, str(stmt.get("Id") or "?"))
    if before is None or opening is None:
        return None
    prev, prev_id = before
    if (signed(opening), _ccy(opening)) == (signed(prev), _ccy(prev)):
        return None
    return (f"statement {stmt.get('Id') or '?'} opens with {_shown(opening)}, but the statement before it of "
            f"this account ({prev_id}) closed with {_shown(prev)}")
