"""MT940 / MT942 / MT950 statements: a lenient reader for banks' .sta exports and a flat view.

What it reads: block 4 fields of an MT940, an MT942 or an MT950 (the MT950 statement message is an MT940
without :86:), written alone (a bank's export) or as FIN messages (``{1:...}{2:O950...}{4:`` ... ``-}{5:...}``).
Anything else is refused as ``NotAStatement`` saying what it is and where (formats.swift.statement_kind): a
FIN message of another type at its block 2 (an MT103 in an RJE batch), a field no statement has (an MT103's
:32A: in block 4 text) at that field, a text without any field (a pain.001, a CSV) at its start.

``parse_statements(text)`` reads files that hold only block 4 content (no FIN
envelope), statements separated by a line "-" (or, where a bank leaves it out, by
the next ``:20:``) and sometimes preceded by bank header lines; it tolerates
trailing spaces and non-X characters (banks' exports are not FIN traffic) but
field formats (61, balances, amounts, dates) are strict.
``:NS:`` (non-SWIFT) fields are kept as text in the field list; ``statement_view`` also
splits them into their numbered sub-fields (``parse_ns``: lines "NNtext").

``iter_statements(text)`` gives each statement with its offset, or the FormatError
of a statement with a bad field, so one bad statement does not hide the others;
``check_statement(fields)`` checks the mandatory fields (opening and closing
balance of an MT940, ...), which the conformance corpus's fragments do not all have, naming the message
(a FIN message's type, MT950 say, from its block 2).

``statement_view(fields)`` -> {"statement": {...}, "transactions": [...]} with
signed ``Decimal`` amounts (debits negative), ``date`` objects and each :61:
paired with the :86: that follows it.
"""
from __future__ import annotations

import bisect
import datetime as dt
import re
from decimal import Decimal
from typing import Any, Iterator

from formats.errors import FormatError
from formats.swift.details86 import add_details, parse_86
from formats.swift.fields import parse_field
from formats.swift.statement_kind import (ACCEPTED, SHAPE, STATEMENT_TYPES, describe_text, foreign_field, guess_mt,
                                           mt_name, NotAStatement)

_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):")
# a statement's end: a line "-", or a FIN message's block 4 end "-}" (its trailer blocks {5:...} may follow)
_END = re.compile(r"-(?:\}.*)?")
_FIN_START = re.compile(r"\{1:[FAL]\d\d")
_FIN_B2 = re.compile(r"\{2:[IO](\d{3})")
# a FIN message's basic header and the message type its application header (block 2) says
_FIN_HEAD = re.compile(r"\{1:[FAL]\d\d[^{}]*\}\s*\{2:[IO](\d{3})")
_ONLY = "only statements are read here: MT940, MT942, MT950 (FIN messages or bank .sta exports)"


Statement = list[dict[str, Any]]


def _split(text: str) -> list[tuple[int, list[tuple[str, list[str], int]]]]:
    """The statements of ``text`` as (offset of the first tag, [(tag, lines, offset of the value)]).

    A statement ends at a line "-" (or "-}"), or where a new ``:20:`` begins while the
    current statement already has fields (exports that leave out the "-" line)."""
    out: list[tuple[int, list[tuple[str, list[str], int]]]] = []
    current: list[tuple[str, list[str], int]] = []
    start = 0
    offset = 0
    in_field = False
    if text.startswith("\ufeff"):           # a byte order mark before the first line
        offset, text = 1, text[1:]
    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n").rstrip(" ")
        m = _TAG.match(line)
        if m:
            if m[1] == "20" and current:
                out.append((start, current))
                current = []
            if not current:
                start = offset
            body = line[m.end():]
            if m[1] == "86":
                body = body.lstrip(" ")
            current.append((m[1], [body], offset + m.end()))
            in_field = True
        elif _END.fullmatch(line.strip(" \x01\x03\x1a")):
            if current:
                out.append((start, current))
            current = []
            in_field = False
        elif in_field:
            current[-1][1].append(line)
        # else: bank header lines before the first tag of a statement
        offset += len(raw)
    if current:
        out.append((start, current))
    return out


def _fields(raw: list[tuple[str, list[str], int]]) -> Statement:
    fields: Statement = []
    for tag, lines, off in raw:
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        fields.append(add_details({"tag": tag, "value": parse_field(tag, "\n".join(lines), off, lenient=True)}))
    return fields


def iter_statements(text: str, *, check: bool = False, balances: bool = False
                    ) -> Iterator[tuple[int, Statement | FormatError]]:
    """Each statement of a bank export as (character offset of its first tag, fields), or
    (offset, FormatError) for a statement with a bad field: one bad statement does not stop
    the others.  Error offsets are character offsets into ``text``.  ``check``: each
    statement must also have its mandatory fields and one currency (``check_statement``);
    ``balances``: opening balance + entries must equal the closing balance (``check_balances``), and a
    statement's opening balance the closing balance of the one before it of the same account in the file
    (``check_continuity``)."""
    text, refused = _other_messages(text)
    parts = _split(text)
    if not parts and not refused:
        what, at = describe_text(text)
        raise NotAStatement(f"no bank statement here: found {what}; expected {ACCEPTED}: {SHAPE}", offset=at,
                            hint="a camt.053 / camt.052 statement is XML, read as ISO 20022"
                            if what.startswith("an XML") else None)
    items: list[tuple[int, Any]] = sorted([*parts, *refused], key=lambda p: p[0])
    fin = _fin_types(text)
    closed: dict[str, tuple[dict[str, Any], int, str]] = {}   # account -> (its last 62a, statement no, 28C)
    for no, (start, raw) in enumerate(items, 1):
        if isinstance(raw, FormatError):
            yield start, raw
            continue
        try:
            _statement_fields(raw)
            fields = _fields(raw)
            offsets = [off for _, _, off in raw]
            if check:
                check_statement(fields, start, offsets, mt=_type_at(fin, start))
            if balances:
                check_continuity(fields, closed, no, start, offsets)    # first: it notes this closing balance
                check_balances(fields, start, offsets)
        except FormatError as exc:
            if exc.offset is None:
                exc.offset = start
            yield start, exc
            continue
        yield start, fields


def _fin_types(text: str) -> list[tuple[int, int, str]]:
    """(start, end of block 4, type its block 2 says) of each FIN message of ``text``, in order."""
    spans = []
    for m in _FIN_HEAD.finditer(text):
        end = text.find("-}", m.end())
        spans.append((m.start(), end if end >= 0 else len(text), m[1]))
    return spans


def _type_at(spans: list[tuple[int, int, str]], at: int) -> str | None:
    """The type ("950") of the FIN message whose block 4 holds offset ``at``; None for a bank export's
    statement (no FIN envelope)."""
    i = bisect.bisect_right([b for b, _, _ in spans], at) - 1
    if i >= 0 and at <= spans[i][1]:
        return spans[i][2]
    return None


def _other_messages(text: str) -> tuple[str, list[tuple[int, NotAStatement]]]:
    """FIN messages (``{1:...}{2:O940...}{4:...-}``) of a type that is no statement (an MT103 ...), each as its
    FormatError at its block 2, and ``text`` with them blanked out (spaces, the line breaks kept: offsets and
    lines stay).  Service messages (an ACK: no block 2) are left to the reader: they hold no fields."""
    starts = [m.start() for m in _FIN_START.finditer(text)]
    if not starts:
        return text, []
    refused: list[tuple[int, NotAStatement]] = []
    chars = list(text)
    for i, begin in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        b2 = _FIN_B2.search(text, begin, end)
        if b2 is None or b2[1] in STATEMENT_TYPES:
            continue
        raw = text[begin:end]
        tags = re.findall(r"^:(\d{2}[A-Z]?):", raw, re.M)
        fields = (", fields " + " ".join(f":{t}:" for t in tags[:4]) + (" ..." if len(tags) > 4 else "")) if tags else ""
        refused.append((begin, NotAStatement(
            f"{mt_name(b2[1])} is no bank statement (its block 2 says {b2[1]}{fields}); expected {ACCEPTED}",
            offset=b2.start(), field="block2", hint=_ONLY)))
        for j in range(begin, end):
            if chars[j] not in "\r\n":
                chars[j] = " "
    return ("".join(chars) if refused else text), refused


def _statement_fields(raw: list[tuple[str, list[str], int]]) -> None:
    """Refuses a statement with a field no MT940, MT942 or MT950 has (an MT103's block 4 in a .sta file), at that
    field, before its fields are read as a statement's."""
    bad = foreign_field(tag for tag, _, _ in raw)
    if bad is None:
        return
    i, tag = bad
    what = guess_mt(tag for tag, _, _ in raw)
    raise NotAStatement(f"field :{tag}: is no field of a bank statement"
                        + (f": these are the fields of {what}" if what else "")
                        + f"; expected {ACCEPTED}: {SHAPE}", offset=raw[i][2] - len(tag) - 2, field=tag, hint=_ONLY)


def parse_statements(text: str, *, check: bool = False) -> list[Statement]:
    """Every statement's block-4 field list; the first bad field (or, with ``check``, missing
    mandatory field) raises its FormatError."""
    out: list[Statement] = []
    for _, item in iter_statements(text, check=check):
        if isinstance(item, FormatError):
            raise item
        out.append(item)
    return out


# Mandatory fields of a bank export's statement: MT940 (20, 25, 28C, 60a, 62a; some banks still
# write the older :28:) or, when it carries :34F: / :13D:, MT942 (20, 25, 28C, 34F, 13D).
_MANDATORY_940 = (("20",), ("25", "25P"), ("28C", "28"), ("60F", "60M"), ("62F", "62M"))
_MANDATORY_942 = (("20",), ("25", "25P"), ("28C", "28"), ("34F",), ("13D",))
_NAMES = {"60F": "opening balance", "60M": "opening balance", "62F": "closing balance", "62M": "closing balance",
          "20": "transaction reference", "25": "account identification", "25P": "account identification",
          "28C": "statement number", "28": "statement number", "34F": "floor limit", "13D": "date/time indication"}


def check_statement(fields: Statement, start: int | None = None, offsets: list[int] | None = None, *,
                    mt: str | None = None) -> None:
    """A statement's mandatory fields are there (MT940 and MT950, or MT942 when it has :34F: or :13D:) and
    its balances agree on the currency (network rule C27: the first two letters of the currency
    of 60a, 62a, 64 and 65 are the same); raises a FormatError naming the tag and the message (``mt``, the
    type a FIN message's block 2 says, "950"; without it, a bank export's: MT940, or MT942 by its fields), at
    the statement's offset ``start`` (or at the field, given the fields' ``offsets``)."""
    tags = {f["tag"] for f in fields}
    mt942 = mt == "942" if mt in STATEMENT_TYPES else bool(tags & {"34F", "13D"})
    kind = STATEMENT_TYPES[mt] if mt in STATEMENT_TYPES else ("MT942" if mt942 else "MT940")
    mandatory = _MANDATORY_942 if mt942 else _MANDATORY_940
    for alts in mandatory:
        if not tags & set(alts):
            name = " / ".join(f":{t}:" for t in alts)
            raise FormatError(f"mandatory field {name} ({_NAMES[alts[0]]}) is missing from this {kind} statement",
                              offset=start, field=alts[0],
                              hint=f"an {kind} statement needs " + ", ".join(f":{a[0]}:" for a in mandatory))
    first = None
    for i, f in enumerate(fields):
        if f["tag"] in ("60F", "60M", "62F", "62M", "64", "65"):
            ccy = f["value"]["currency"]
            if first is None:
                first = f["tag"], ccy
            elif ccy[:2] != first[1][:2]:
                raise FormatError(f"balance :{f['tag']}: is in {ccy} but :{first[0]}: is in {first[1]}",
                                  offset=offsets[i] if offsets else start, field=f["tag"],
                                  hint="network rule C27: a statement's balances (60a, 62a, 64, 65) are in "
                                       "one currency")


def check_balances(fields: Statement, start: int | None = None, offsets: list[int] | None = None) -> None:
    """Opening balance (60F/60M) plus the entries (:61:, debits negative) equals the closing
    balance (62F/62M).  Not part of ``check``: banks' exports (and upstream's test files) do
    not always add up.  A statement without both balances is not checked here; an MT942 interim report's :61:
    lines must make its :90D: / :90C: (``interim_sums``)."""
    if is_interim(fields):
        sums, ccy = interim_sums(fields)
        problem = interim_problem(sums, ccy) if sums is not None else None
        if problem is not None:
            wrong = "90D" if tuple(sums[0]) != tuple(sums[2]) else "90C"      # the first total that is wrong
            i = next((i for i, f in enumerate(fields) if isinstance(f, dict) and f.get("tag") == wrong),
                     next(i for i, f in enumerate(fields) if isinstance(f, dict) and f.get("tag") in ("90D", "90C")))
            raise FormatError(problem, offset=offsets[i] if offsets else start, field=fields[i]["tag"],
                              hint="the report's totals are not its entries': an entry is missing or an amount "
                                   "is wrong")
        return
    at = start
    for i, f in enumerate(fields):
        if isinstance(f, dict) and f.get("tag") in ("62F", "62M"):
            at = offsets[i] if offsets else start
    problem = balance_problem(fields, missing=False)
    if problem is not None:
        closing = next(f["tag"] for f in fields if isinstance(f, dict) and f.get("tag") in ("62F", "62M"))
        raise FormatError(problem, offset=at, field=closing,
                          hint="the statement does not add up: an entry is missing or an amount is wrong")


def _account(fields: Statement) -> str | None:
    for f in fields:
        if f.get("tag") == "25":
            return str(f["value"]).strip()
        if f.get("tag") == "25P":
            return str(f["value"]["account"]).strip()
    return None


def _number(fields: Statement) -> str:
    return next((str(f["value"]).strip() for f in fields if f.get("tag") in ("28C", "28")), "?")


def _show(f: dict[str, Any]) -> str:
    v = f["value"]
    return f":{f['tag']}: {v['mark']} {v['amount']} {v['currency']} of {v['date']}"


def check_continuity(fields: Statement, closed: dict[str, tuple[dict[str, Any], int, str]], no: int,
                     start: int | None = None, offsets: list[int] | None = None) -> None:
    """The statement's opening balance (60F/60M) is the closing balance (62F/62M) of the statement before it
    of the same account (field 25) in the file: same mark, amount and currency (a statement that opens
    elsewhere means one is missing between them, or a wrong balance).  ``closed`` carries each account's
    last closing balance from statement to statement (it is updated here); ``no``: this statement's number
    in the file.  Raises a FormatError at the opening balance."""
    account = _account(fields)
    opening = next((f for f in fields if f.get("tag") in ("60F", "60M")), None)
    closing = next((f for f in fields if f.get("tag") in ("62F", "62M")), None)
    if account is None:
        return
    before = closed.get(account)
    if closing is not None:
        closed[account] = (closing, no, _number(fields))
    if before is None or opening is None:
        return
    prev, prev_no, prev_number = before
    o, c = opening["value"], prev["value"]
    if (_signed(o["mark"], o["amount"]), o["currency"]) == (_signed(c["mark"], c["amount"]), c["currency"]):
        return
    at = offsets[fields.index(opening)] if offsets else start
    raise FormatError(f"statement {_number(fields)} opens with {_show(opening)}, but the statement before it of "
                      f"this account ({prev_number}, statement {prev_no} of the file) closed with {_show(prev)}",
                      offset=at, field=opening["tag"],
                      hint="a statement's opening balance is the previous one's closing balance: a statement "
                           "between them is missing, or a balance is wrong")


def balance_problem(fields: Any, *, missing: bool = True) -> str | None:
    """None when the statement's opening balance (60F/60M) plus its entries (:61:, C and RD credits,
    D and RC debits) equals its closing balance (62F/62M), in ``Decimal``; otherwise what is wrong
    (the closing balance, the opening balance, the entries' total and the difference).  A statement
    without an opening or a closing balance is a problem too, unless ``missing`` is false (then
    it is not checked: None)."""
    opening = closing = None
    total, count = Decimal(0), 0
    for f in fields if isinstance(fields, list) else []:
        if not isinstance(f, dict) or not isinstance(f.get("value"), dict):
            continue
        tag, v = f.get("tag"), f["value"]
        if tag in ("60F", "60M") and opening is None:
            opening = f
        elif tag in ("62F", "62M"):
            closing = f
        elif tag == "61":
            total += _signed(v["mark"], v["amount"])
            count += 1
    if opening is None or closing is None:
        if not missing:
            return None
        which = "opening balance (60F/60M)" if opening is None else "closing balance (62F/62M)"
        return f"no {which}: the statement cannot be checked"
    start_amount = _signed(opening["value"]["mark"], opening["value"]["amount"])
    want = start_amount + total
    got = _signed(closing["value"]["mark"], closing["value"]["amount"])
    if want == got:
        return None
    ccy = closing["value"]["currency"]
    return (f"closing balance :{closing['tag']}: is {got} {ccy}, but the opening balance :{opening['tag']}: "
            f"{start_amount} plus the {count} entr{'y' if count == 1 else 'ies'} ({total:+}) makes {want} "
            f"(difference {got - want:+})")


def _signed(mark: str, amount: Decimal) -> Decimal:
    return -amount if mark in ("D", "RC") else amount


# An MT942 interim report: its mandatory :34F: (floor limit) and :13D: (date and time) an MT940 lacks; it has no
# balances, only :90D: / :90C: (the number and sum of its debit / credit entries), which its :61: lines must make.
INTERIM_TAGS = frozenset({"34F", "13D"})
_BALANCE_TAGS = frozenset({"60F", "60M", "62F", "62M"})


def is_interim(fields: Any) -> bool:
    """Whether block 4 ``fields`` is an MT942 interim report: it has :34F: or :13D:, or :90D: / :90C: without
    an opening or closing balance."""
    tags = {f.get("tag") for f in fields if isinstance(f, dict)} if isinstance(fields, (list, tuple)) else set()
    return bool(tags & INTERIM_TAGS) or (bool(tags & {"90D", "90C"}) and not tags & _BALANCE_TAGS)


def _amount(v: Any) -> Decimal:
    """A decoded amount (``Decimal``) or the ledger's JSON of one (text); never a float."""
    if isinstance(v, Decimal):
        return v
    if isinstance(v, (int, str)) and not isinstance(v, bool):
        return Decimal(v) if v != "" else Decimal(0)
    if v is None:
        return Decimal(0)
    raise TypeError(f"an amount must be a Decimal or text, not {type(v).__name__}")


def interim_sums(fields: Any) -> tuple[tuple | None, str]:
    """An MT942's :90D: / :90C: against its :61: lines (block 4 as the codec decodes it, or the ledger's JSON of
    it): (((said debits, their sum), (said credits, their sum), (debit lines, sum), (credit lines, sum)), the
    currency :90D: / :90C: name); (None, "") when it has neither."""
    lines = [[0, Decimal(0)], [0, Decimal(0)]]
    said: dict[str, tuple[int, Decimal]] = {}
    ccy = ""
    for f in fields if isinstance(fields, (list, tuple)) else []:
        tag, v = (f.get("tag"), f.get("value")) if isinstance(f, dict) else (None, None)
        if tag == "61" and isinstance(v, dict):
            amount = _signed(v.get("mark"), _amount(v.get("amount")))
            side = lines[0] if amount < 0 else lines[1]
            side[0] += 1
            side[1] += abs(amount)
        elif tag in ("90D", "90C") and isinstance(v, dict):
            said[tag] = (int(str(v.get("count") or 0)), _amount(v.get("amount")))
            ccy = ccy or str(v.get("currency") or "")
    if not said:
        return None, ""
    zero = (0, Decimal(0))
    return (said.get("90D", zero), said.get("90C", zero), tuple(lines[0]), tuple(lines[1])), ccy


def interim_problem(sums: tuple, currency: str) -> str | None:
    """What is wrong with an MT942's totals (``interim_sums``): each of :90D: / :90C: whose number or sum is not
    its :61: lines'; None when both agree."""
    said_d, said_c, got_d, got_c = sums
    wrong = []
    for tag, what, said, got in ((":90D:", "debit", said_d, got_d), (":90C:", "credit", said_c, got_c)):
        if tuple(said) != tuple(got):
            wrong.append(f"{tag} says {said[0]} {what}(s) of {said[1]} {currency}, but the :61: lines hold "
                         f"{got[0]} of {got[1]} (difference {said[1] - got[1]:+})".replace("  ", " "))
    return "interim report (MT942): " + "; ".join(wrong) if wrong else None


def _balance(v: dict[str, Any]) -> dict[str, Any]:
    return {"status": v["mark"], "date": v["date"],
            "amount": {"amount": _signed(v["mark"], v["amount"]), "currency": v["currency"]}}


_BALANCES = {"60F": "final_opening_balance", "60M": "intermediate_opening_balance",
             "62F": "final_closing_balance", "62M": "intermediate_closing_balance", "64": "available_balance"}


def _entry_date(value_date: dt.date, mmdd: str | None) -> dt.date | None:
    if not mmdd:
        return None
    month, day = int(mmdd[:2]), int(mmdd[2:])
    year = value_date.year
    # booking around the year end: a December entry for a January value date (and vice versa)
    if value_date.month == 1 and month == 12:
        year -= 1
    elif value_date.month == 12 and month == 1:
        year += 1
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise FormatError(f"entry date {mmdd} is not a calendar date in {year}", field="61") from None


def _datetime_13d(text: str) -> dt.datetime:
    m = re.fullmatch(r"(\d{6})(\d{4})([+-])(\d{2})(\d{2})", text)
    if not m:
        raise FormatError(f"{text!r} is not YYMMDDhhmm+hhmm", field="13D")
    offset = dt.timedelta(hours=int(m[4]), minutes=int(m[5])) * (1 if m[3] == "+" else -1)
    d = m[1]
    return dt.datetime(2000 + int(d[:2]), int(d[2:4]), int(d[4:6]), int(m[2][:2]), int(m[2][2:]),
                       tzinfo=dt.timezone(offset))


def parse_ns(text: str) -> dict[str, str]:
    """A ``:NS:`` field's numbered lines ("22JOHN DOE") -> {"22": "JOHN DOE"}; a line that does
    not start with two digits continues the previous one."""
    out: dict[str, str] = {}
    last = None
    for line in text.strip("\r\n").split("\n"):
        line = line.rstrip("\r")
        if len(line) >= 2 and line[:2].isdigit():
            last = line[:2]
            out[last] = line[2:] if last not in out else out[last] + "\n" + line[2:]
        elif last is not None:
            out[last] += "\n" + line
        elif line:
            raise FormatError(f":NS: line {line!r} does not start with a 2-digit sub-field number", field="NS")
    return out


def _ns_view(text: str) -> dict[str, Any]:
    subs = parse_ns(text)
    view: dict[str, Any] = {"non_swift": text.strip("\r\n"), "non_swift_text": "\n".join(subs.values())}
    view.update({f"non_swift_{k}": v for k, v in subs.items()})
    return view


def statement_view(fields: list[dict[str, Any]]) -> dict[str, Any]:
    st: dict[str, Any] = {}
    txns: list[dict[str, Any]] = []
    currency = None
    for item in fields:
        tag, v = item["tag"], item["value"]
        if tag == "20":
            st["transaction_reference"] = v
        elif tag == "21":
            st["related_reference"] = v
        elif tag == "25":
            st["account_identification"] = v
        elif tag == "25P":                 # the account and its bank's BIC
            st["account_identification"] = v["account"]
            st["account_bic"] = v["bic"]
        elif tag in ("28", "28C"):
            num, _, seq = v.partition("/")
            st["statement_number"] = num
            if seq:
                st["sequence_number"] = seq
        elif tag in _BALANCES:
            st[_BALANCES[tag]] = _balance(v)
            currency = v["currency"] if tag.startswith("60") else currency or v["currency"]
        elif tag == "65":
            st.setdefault("forward_available_balance", []).append(_balance(v))
        elif tag == "34F":
            limit = {"amount": v["amount"], "currency": v["currency"]}
            currency = currency or v["currency"]
            if v["mark"] in (None, "D"):
                st["d_floor_limit"] = limit
            if v["mark"] in (None, "C"):
                st["c_floor_limit"] = limit
        elif tag == "13D":
            st["date"] = _datetime_13d(v)
        elif tag in ("90D", "90C"):
            key = "sum_debit_entries" if tag == "90D" else "sum_credit_entries"
            st[key] = {"number": v["count"], "amount": v["amount"], "currency": v["currency"]}
        elif tag == "61":
            txns.append({
                "status": v["mark"], "funds_code": v["funds_code"], "id": v["type"],
                "amount": {"amount": _signed(v["mark"], v["amount"]), "currency": currency},
                "currency": currency, "date": v["value_date"],
                "entry_date": _entry_date(v["value_date"], v["entry_date"]),
                "customer_reference": v["customer_reference"], "bank_reference": v["bank_reference"],
                "extra_details": v["supplementary"] or "", "transaction_details": None, "details": None})
        elif tag == "86" and txns and txns[-1]["transaction_details"] is None:
            txns[-1]["transaction_details"] = v
            txns[-1]["details"] = item["details"] if "details" in item else parse_86(v)
        elif tag == "86":
            st["information"] = v
        elif tag == "NS":
            (txns[-1] if txns else st).update(_ns_view(v))
    return {"statement": st, "transactions": txns}
