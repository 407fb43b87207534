"""Statement continuity: does each account's chain of statements follow on, and does each statement add up?

A nostro clerk's controls over a counterparty's statements, per account:

* **running balance**: opening balance + entries = closing balance (each statement on its own), and a
  camt.053's entries are what its own ``TxsSummry`` says (number and sum of its entries, credits and debits,
  the net) when it has one;
* **balance continuity**: a statement opens with the closing balance of the one before it (amount, sign and
  currency), else a statement is missing between them or a balance is wrong (``balance_break``);
* **numbering**: statement numbers (MT940 ``:28C:`` ``nnnnn/sss``, camt.053 ``ElctrncSeqNb`` else
  ``LglSeqNb``) follow on: the next after ``n`` is ``n+1`` (``gap``: some are missing; ``repeat``: the
  same number and page again; ``out_of_order``: a lower number that is no repeat); a statement numbered 1
  in a new year (by its closing date) restarts the count (banks number per year);
* **pages**: a statement sent in pages (MT940 ``:62M:`` intermediate closing, the next page opening with
  ``:60M:``, numbered ``n/1``, ``n/2`` ...; camt.053 ``StmtPgntn`` with ``LastPgInd``, pages closing and
  opening with an interim booked ``ITBD`` or an ``OPBD`` / ``CLBD`` of sub-type ``INTM``) is complete: after
  an intermediate closing comes the next page of the same statement (``page_chain`` otherwise), opening with
  that intermediate balance (``balance_break`` otherwise).

A statement without an opening or a closing balance (a fragment, a camt.053 without ``Bal``) is
``unchecked``, and no link of the chain.  A statement number 0 (``:28C:0``, ``:28C:00000``: banks that do
not number) or none is not checked for numbering; the balances still are.  Statements are taken in the order
of their closing balance's date, then number and page (when all of the account's statements are numbered),
then the order given (so a file or a ledger holding them out of order is checked the same).

A camt.052 intraday report (``BkToCstmrAcctRpt/Rpt``) is treated as an MT942 interim report: its balances
(``OPBD``, ``ITBD``, ``OPAV``, ``ITAV`` ...) are the day's so far, none a closing balance, so it is ``unchecked``
and no link of its account's chain; its entries must agree with its ``TxsSummry`` when it has one
(``does_not_add_up`` otherwise), as an MT942's with its ``:90D:`` / ``:90C:``.

Pure: ``head_mt940`` / ``head_camt053`` / ``head_camt052`` turn a decoded statement (the codecs' values, or the JSON the ledger
keeps of them: amounts as text) into a ``Head``; ``check(heads)`` gives one ``Finding`` per statement.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

from formats.swift.statement import interim_problem, interim_sums

OK = "ok"
FIRST = "first"
UNCHECKED = "unchecked"     # no opening or no closing balance (a fragment, a notification): no link of the chain
PASSED = (OK, FIRST, UNCHECKED)
KINDS = ("does_not_add_up", "balance_break", "gap", "repeat", "out_of_order", "page_chain")


@dataclass(frozen=True)
class Head:
    """What the controls need of one statement (or one page of one)."""
    account: str                  # how the account is named: the file's account, or the ledger's member number
    number: int | None            # statement number; None or 0: not numbered
    page: int | None              # page (sequence) number, when given
    opening: Decimal | None       # signed (debit negative)
    opening_tag: str              # ":60F:", ":60M:", "OPBD", "PRCD"
    closing: Decimal | None
    closing_tag: str              # ":62F:", ":62M:", "CLBD"
    currency: str
    day: dt.date | None           # the closing balance's date
    total: Decimal                # the entries, signed
    entries: int
    label: str                    # field 20 / Stmt Id
    place: str                    # where it is: file:line, file: Stmt 2, a deal id
    last_page: bool | None = None  # camt.053 LastPgInd
    # an MT942 interim report's :90D: / :90C: (number and sum of its debit / credit entries) against its :61:
    # lines: ((said debits, said debit sum), (said credits, said credit sum), (debits, sum), (credits, sum))
    sums: tuple | None = None
    # a camt.052 intraday report (``head_camt052``): its balances are the day's so far (ITBD, ITAV, OPAV ...),
    # none a closing one, so, as an MT942, it is no link of the chain; ``balances``: them in words;
    # ``summary`` (a camt.052's or a camt.053's): where its ``TxsSummry`` disagrees with its entries (empty: it
    # agrees, or it has none), ``does_not_add_up`` for either
    intraday: bool = False
    balances: str = ""
    summary: tuple[str, ...] = ()
    summarised: bool = False          # it has a TxsSummry

    @property
    def intermediate_open(self) -> bool:
        return _intermediate(self.opening_tag)

    @property
    def intermediate_close(self) -> bool:
        return _intermediate(self.closing_tag) or self.last_page is False

    @property
    def numbered(self) -> bool:
        return bool(self.number)

    def statement(self) -> str:
        if not self.number:
            return self.label or "?"             # not numbered: its reference (field 20, Stmt Id)
        return f"{self.number}/{self.page}" if self.page is not None else str(self.number)


INTERMEDIATE_TAGS = (":60M:", ":62M:", "ITBD")     # and a camt.053 OPBD / CLBD of sub-type INTM: "OPBD/INTM"


def _intermediate(tag: str) -> bool:
    """An intermediate (interim) balance: a page's, not the statement's final one.  MT940 ``:60M:`` /
    ``:62M:``; camt.053 ``ITBD`` (interim booked) or an ``OPBD`` / ``CLBD`` of sub-type ``INTM``, as SWIFT's
    MT940-to-camt.053 translation writes ``:60M:`` / ``:62M:``."""
    return tag in INTERMEDIATE_TAGS or tag.endswith("/INTM")


@dataclass
class Finding:
    head: Head
    status: str = OK                                # ok, first, or the first problem's kind
    problems: list[tuple[str, str]] = field(default_factory=list)   # (kind, words)
    last: bool = False                              # the last link of its account's chain (what the next opens from)

    def add(self, kind: str, words: str) -> None:
        if not self.problems:
            self.status = kind
        self.problems.append((kind, words))

    @property
    def note(self) -> str:
        return "; ".join(w for _, w in self.problems)


def _dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, str):
        return Decimal(v)
    raise TypeError(f"an amount must be a Decimal or text, not {type(v).__name__}")   # never a float


def _day(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str) and v:
        return dt.date.fromisoformat(v[:10])
    return None


def _signed(mark: str, amount: Any) -> Decimal:
    a = _dec(amount) or Decimal(0)
    return -a if mark in ("D", "RC") else a


_NUMBER = re.compile(r"^\s*(\d+)(?:/(\d+))?\s*$")


def _number(text: Any) -> tuple[int | None, int | None]:
    m = _NUMBER.match(str(text or ""))
    if not m:
        return None, None
    return int(m[1]), (int(m[2]) if m[2] else None)


def head_mt940(fields: list[Mapping[str, Any]], *, place: str, account: str | None = None) -> Head:
    """A Head of an MT940's block 4 (``[{"tag": "20", "value": ...}, ...]``, as the swift codec decodes it or
    as the ledger keeps it).  ``account``: how to name the account when field 25 is masked (the ledger)."""
    opening = closing = None
    total, count = Decimal(0), 0
    label, acct, number = "", None, (None, None)
    for f in fields:
        tag, v = f.get("tag"), f.get("value")
        if tag == "20":
            label = str(v).strip()
        elif tag == "25":
            acct = str(v).strip()
        elif tag == "25P" and isinstance(v, Mapping):
            acct = str(v.get("account") or "").strip()
        elif tag in ("28C", "28"):
            number = _number(v)
        elif tag in ("60F", "60M") and opening is None and isinstance(v, Mapping):
            opening = (tag, v)
        elif tag in ("62F", "62M") and isinstance(v, Mapping):
            closing = (tag, v)
        elif tag == "61" and isinstance(v, Mapping):
            amount = _signed(v["mark"], v["amount"])
            total += amount
            count += 1
    cv = closing[1] if closing else {}
    sums, interim_ccy = interim_sums(fields)       # an MT942's :90D: / :90C: and its :61: lines
    return Head(account=account or acct or "?", number=number[0], page=number[1],
                opening=_signed(opening[1]["mark"], opening[1]["amount"]) if opening else None,
                opening_tag=f":{opening[0]}:" if opening else "",
                closing=_signed(cv["mark"], cv["amount"]) if closing else None,
                closing_tag=f":{closing[0]}:" if closing else "",
                currency=str(cv.get("currency") or (opening[1].get("currency") if opening else "") or interim_ccy),
                day=_day(cv.get("date")), total=total, entries=count, label=label, place=place, sums=sums)


def head_camt053(stmt: Mapping[str, Any], *, place: str, account: str | None = None) -> Head:
    """A Head of a camt.053 ``Stmt`` (the ISO 20022 codec's values, or the ledger's JSON of them)."""
    from formats.iso20022.camt_balance import account_of, booked_total, opening_closing, summary_problems

    def signed(node: Any) -> Decimal | None:
        if not isinstance(node, Mapping):
            return None
        amt = node.get("Amt")
        value = _dec(amt.get("value") if isinstance(amt, Mapping) else amt)
        if value is None:
            return None
        return -value if node.get("CdtDbtInd") == "DBIT" else value

    def plain(node: Any) -> dict[str, Any]:      # the ledger's JSON keeps amounts as text
        if isinstance(node, Mapping):
            amt = node.get("Amt")
            if isinstance(amt, Mapping) and isinstance(amt.get("value"), str):
                return {**node, "Amt": {**amt, "value": Decimal(amt["value"])}}
        return dict(node) if isinstance(node, Mapping) else {}

    opening, closing = opening_closing(stmt)        # an ITBD on a page of a statement in pages
    entries = stmt.get("Ntry") or []
    entries = entries if isinstance(entries, list) else [entries]
    total, count = booked_total({"Ntry": [plain(e) for e in entries]})
    problems = summary_problems(stmt)             # its own TxsSummry, when it has one
    seq = stmt.get("ElctrncSeqNb") or stmt.get("LglSeqNb")
    pg = stmt.get("StmtPgntn") if isinstance(stmt.get("StmtPgntn"), Mapping) else {}
    last = pg.get("LastPgInd")
    dt_ = (closing or {}).get("Dt") or {}
    amt = (closing or opening or {}).get("Amt") or {}
    return Head(account=account or account_of(stmt) or "?",
                number=int(str(seq)) if seq is not None and str(seq).strip().isdigit() else None,
                page=int(str(pg["PgNb"])) if str(pg.get("PgNb") or "").strip().isdigit() else None,
                opening=signed(opening), opening_tag=_camt_tag(opening),
                closing=signed(closing), closing_tag=_camt_tag(closing),
                currency=str(amt.get("Ccy") or "") if isinstance(amt, Mapping) else "",
                day=_day((dt_.get("Dt") or dt_.get("DtTm")) if isinstance(dt_, Mapping) else None),
                total=total, entries=count, label=str(stmt.get("Id") or ""), place=place,
                last_page=None if last is None else str(last).lower() in ("true", "1"),
                summary=tuple(problems or ()), summarised=problems is not None)


def head_camt052(rpt: Mapping[str, Any], *, place: str, account: str | None = None) -> Head:
    """A Head of a camt.052 intraday report's ``Rpt`` (the codec's values, or the ledger's JSON of them): no
    opening or closing balance (its balances are the day's so far, in words in ``balances``), every entry
    counted whatever its status, its ``TxsSummry`` checked against them (``summary``)."""
    from formats.iso20022.camt_balance import account_of, signed, summary_problems

    bals = rpt.get("Bal") or []
    bals = [b for b in (bals if isinstance(bals, list) else [bals]) if isinstance(b, Mapping)]
    entries = rpt.get("Ntry") or []
    entries = [e for e in (entries if isinstance(entries, list) else [entries]) if isinstance(e, Mapping)]
    amounts = [a for a in (signed(e) for e in entries) if a is not None]

    def ccy(node: Mapping[str, Any]) -> str:
        amt = node.get("Amt")
        return str(amt.get("Ccy") or "") if isinstance(amt, Mapping) else ""

    def when(node: Mapping[str, Any]) -> Any:
        d = node.get("Dt")
        return (d.get("Dt") or d.get("DtTm")) if isinstance(d, Mapping) else None

    words = ", ".join(f"{_camt_tag(b)} {signed(b)} {ccy(b)}" + (f" of {when(b)}" if when(b) else "") for b in bals)
    seq = rpt.get("ElctrncSeqNb") or rpt.get("LglSeqNb")
    pg = rpt.get("RptPgntn") if isinstance(rpt.get("RptPgntn"), Mapping) else {}
    dates = [_day(when(b)) for b in bals if when(b)]
    problems = summary_problems(rpt)
    return Head(account=account or account_of(rpt) or "?",
                number=int(str(seq)) if seq is not None and str(seq).strip().isdigit() else None,
                page=int(str(pg["PgNb"])) if str(pg.get("PgNb") or "").strip().isdigit() else None,
                opening=None, opening_tag="", closing=None, closing_tag="",
                currency=next((ccy(n) for n in (*bals, *entries) if ccy(n)), ""),
                day=_day(rpt.get("CreDtTm")) or max((d for d in dates if d), default=None),
                total=sum(amounts, Decimal(0)), entries=len(amounts), label=str(rpt.get("Id") or ""), place=place,
                intraday=True, balances=words, summary=tuple(problems or ()), summarised=problems is not None)


def _camt_tag(bal: Any) -> str:
    """How a camt.053 balance is named in the notes and the chain: ``OPBD``, ``PRCD``, ``CLBD``, ``ITBD``, and
    ``OPBD/INTM`` / ``CLBD/INTM`` for an opening or closing of sub-type INTM (intermediate: a page's)."""
    from formats.iso20022.camt_balance import balance_code

    if not isinstance(bal, Mapping):
        return ""
    code = balance_code(bal) or ""
    sub = ((bal.get("Tp") or {}).get("SubTp") or {}) if isinstance(bal.get("Tp"), Mapping) else {}
    sub_code = sub.get("Cd") if isinstance(sub, Mapping) else None
    return f"{code}/INTM" if sub_code == "INTM" and code != "ITBD" else code


def _bal(tag: str, amount: Decimal | None, ccy: str) -> str:
    return f"{tag} {amount} {ccy}" if amount is not None else f"no {tag or 'balance'}"


def _adds_up(h: Head) -> str | None:
    want = h.opening + h.total
    if want == h.closing:
        return None
    return (f"opening {h.opening_tag} {h.opening} + {h.entries} entr{'y' if h.entries == 1 else 'ies'} "
            f"({h.total:+}) = {want} {h.currency}, but the closing balance {h.closing_tag} is {h.closing} "
            f"{h.currency} (difference {h.closing - want:+})")


def _ordered(chain: list[tuple[int, Head]]) -> list[tuple[int, Head]]:
    """By closing date, then number and page when every statement of the account is numbered (one that is not
    keeps its place in the order given), then the order given."""
    numbered = all(h.numbered for _, h in chain if not h.intraday)    # a camt.052 numbers its reports apart
    return sorted(chain, key=lambda ih: (ih[1].day or dt.date.min, (ih[1].number or 0) if numbered else 0,
                                         (ih[1].page or 0) if numbered else 0, ih[0]))


def check(heads: Iterable[Head]) -> list[Finding]:
    """One Finding per statement, in the order given; each account's statements are checked in the order of
    their closing date, number, page (and the order given)."""
    heads = list(heads)
    found = [Finding(h) for h in heads]
    by_account: dict[str, list[tuple[int, Head]]] = {}
    for i, h in enumerate(heads):
        by_account.setdefault(h.account, []).append((i, h))
    for chain in by_account.values():
        prev: Head | None = None
        seen: dict[tuple[int, int | None], Head] = {}
        for i, h in _ordered(chain):
            f = found[i]
            if h.intraday:
                _intraday_report(f, h)
                continue
            if h.opening is None or h.closing is None:
                if h.sums is not None and h.opening is None and h.closing is None:
                    _interim_report(f, h)
                    continue
                if h.summary:
                    f.add("does_not_add_up", "; ".join(h.summary))
                else:
                    f.status = UNCHECKED
                f.problems.append((UNCHECKED, f"no {'opening' if h.opening is None else 'closing'} balance: "
                                              f"not checked, and no link of the account's chain"))
                continue
            problem = _adds_up(h)
            if problem:
                f.add("does_not_add_up", problem)
            if h.summary:                       # a camt.053's entries against its own TxsSummry
                f.add("does_not_add_up", "; ".join(h.summary))
            if prev is None:
                if not f.problems:
                    f.status = FIRST
                if h.intermediate_open:
                    f.add("page_chain", f"statement {h.statement()} opens with an intermediate balance {h.opening_tag}: "
                                        f"the page before it is missing")
            else:
                first = seen.get((h.number, h.page)) if h.numbered else None
                if first is not None:
                    same = (h.opening, h.closing, h.currency) == (first.opening, first.closing, first.currency)
                    other = (f", with other balances ({_bal(first.closing_tag, first.closing, first.currency)} "
                             f"then {_bal(h.closing_tag, h.closing, h.currency)})")
                    f.add("repeat", f"statement {h.statement()} again (first: {first.label or '?'} at {first.place})"
                                    + ("" if same else other))
                    continue                # the chain goes on from the first one
                _follows(f, prev, h)
            if h.numbered:
                seen[(h.number, h.page)] = h
            prev = h
        if prev is not None:
            found[next(i for i, h in chain if h is prev)].last = True
    return found


def _interim_report(f: Finding, h: Head) -> None:
    """An MT942 interim report carries no balance, only the number and sum of its debit and credit entries
    (:90D: / :90C:): those must be its :61: lines' (``does_not_add_up`` otherwise).  No link of the chain."""
    problem = interim_problem(h.sums, h.currency)         # type: ignore[arg-type]
    if problem:
        f.add("does_not_add_up", problem)
        return
    f.status = UNCHECKED
    f.problems.append((UNCHECKED, f"interim report (MT942): no balances, no link of the account's chain; its "
                                  f"{h.entries} entr{'y' if h.entries == 1 else 'ies'} agree with :90D: / :90C:"))


def _intraday_report(f: Finding, h: Head) -> None:
    """A camt.052 intraday report: its balances are the day's so far, none a closing balance, so, as an MT942,
    it is no link of the chain (``unchecked``); its entries must agree with its ``TxsSummry`` when it has one
    (``does_not_add_up`` otherwise)."""
    n = f"{h.entries} entr{'y' if h.entries == 1 else 'ies'}"
    if h.summary:
        f.add("does_not_add_up", "intraday report (camt.052): " + "; ".join(h.summary))
        return
    f.status = UNCHECKED
    f.problems.append((UNCHECKED, "intraday report (camt.052): "
                       + (f"its balances ({h.balances}) are the day's so far, no closing balance"
                          if h.balances else "no balances")
                       + "; no link of the account's chain; "
                       + (f"its {n} agree with TxsSummry" if h.summarised else f"{n}, no TxsSummry to check")))


def _follows(f: Finding, prev: Head, h: Head) -> None:
    """The numbering first (a missing statement explains a balance break), then the balances."""
    def balance() -> None:
        if (h.opening, h.currency) != (prev.closing, prev.currency):
            f.add("balance_break", f"statement {h.statement()} opens with {_bal(h.opening_tag, h.opening, h.currency)}"
                                   f"{f' of {h.day}' if h.day else ''}, but statement {prev.statement()} before it "
                                   f"({prev.label or '?'} at {prev.place}) closed with "
                                   f"{_bal(prev.closing_tag, prev.closing, prev.currency)}"
                                   f"{f' of {prev.day}' if prev.day else ''}"
                                   + (f" (difference {h.opening - prev.closing:+})"
                                      if h.opening is not None and prev.closing is not None and h.currency == prev.currency
                                      else ""))

    if prev.intermediate_close:
        want_page = (prev.page or 0) + 1
        if not (h.number == prev.number and (h.page is None or prev.page is None or h.page == want_page)
                and h.opening_tag != ":60F:"):
            f.add("page_chain", f"statement {prev.statement()} ({prev.label or '?'}) closes with an intermediate "
                                f"balance {prev.closing_tag}, but the next is statement {h.statement()} opening with "
                                f"{h.opening_tag or 'no balance'}: "
                                + (f"page {prev.number}/{want_page} is missing" if prev.page is not None else
                                   f"the next page of statement {prev.statement()} is missing"))
    else:
        if h.intermediate_open:
            f.add("page_chain", f"statement {h.statement()} opens with an intermediate balance {h.opening_tag}, "
                                f"but statement {prev.statement()} before it ({prev.label or '?'}) closed with a final "
                                f"{prev.closing_tag}: a page is missing, or the balance marks are wrong")
        if h.numbered and prev.numbered:
            _numbering(f, prev, h)
    balance()


def _numbering(f: Finding, prev: Head, h: Head) -> None:
    """After a final closing: the next statement is numbered one more (or 1 in a new year)."""
    want = (prev.number or 0) + 1
    number = h.number or 0
    if number == want or (number == 1 and h.day and prev.day and h.day.year != prev.day.year):
        return                                              # (numbered per year: a new year starts at 1)
    if number == prev.number:
        f.add("page_chain", f"statement {h.statement()} comes after statement {prev.statement()}, which closed with "
                            f"a final balance {prev.closing_tag}: a page after the last one")
    elif number > want:
        missing = str(want) if number == want + 1 else f"{want} to {number - 1}"
        f.add("gap", f"statement(s) {missing} missing between statement {prev.statement()} ({prev.label or '?'}) "
                     f"and statement {h.statement()} ({h.label or '?'})")
    else:
        f.add("out_of_order", f"statement {h.statement()} comes after statement {prev.statement()} "
                              f"({prev.label or '?'}): the numbers go back"
                              + (" (a count restarts at 1 only in a new year)" if number == 1 else ""))


def summary(findings: list[Finding]) -> dict[str, int]:
    """How many statements of each status."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.status] = out.get(f.status, 0) + 1
    return out


__all__ = ["FIRST", "Finding", "Head", "KINDS", "OK", "PASSED", "UNCHECKED", "check", "head_camt052", "head_camt053", "head_mt940", "summary"]
