"""Block 4 field formats: parse a tag's text into values and write it back.

Only the formats named here are structured; every other tag's value is its text
(lines joined with "\n").  Each parser is the exact inverse of its writer for
valid input, so ``write(parse(x)) == x``.  Amounts are ``Decimal``; one written
with leading zeros ("00,12") comes back as ``SwiftAmount``, a Decimal that keeps its
wire text, so it too is written back byte for byte.

  32A            {"date": date, "currency": "EUR", "amount": Decimal}
  32B 33B        {"currency", "amount"}
  30             date (YYMMDD)
  60F 60M 62F 62M 64 65
                 {"mark": "C"|"D", "date", "currency", "amount"}
  61             {"value_date", "entry_date" (MMDD text or None), "mark" (C/D/RC/RD), "funds_code",
                  "amount", "type" (e.g. NTRF), "customer_reference", "bank_reference",
                  "supplementary"}
  34F            {"currency", "mark" (D/C/None), "amount"}
  90D 90C        {"count": int, "currency", "amount"}
  xxA (BIC)      {"account": str|None, "bic": "CIBKCNBJ473"}
  50G 25P        {"account": str, "bic": "CIBKCNBJ473"} (the account is mandatory; 25P's has no "/")
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from formats.currencies import MINOR_UNITS
from formats.errors import FormatError

AMOUNT = r"\d{1,15},\d*"
_CCY = r"[A-Z]{3}"


class SwiftAmount(Decimal):
    """A ``Decimal`` that remembers the text it was read from, when that text is not the
    canonical form the writer would produce (leading zeros: ``"00,12"`` is 0.12).

    It compares, hashes and computes as a plain Decimal (results of arithmetic are plain
    Decimals); only ``write_amount`` looks at ``text``.
    """
    __slots__ = ("text",)

    def __new__(cls, value: Decimal, text: str) -> "SwiftAmount":
        self = super().__new__(cls, value)
        self.text = text
        return self


# ISO 4217 minor units (network validated rule C03): formats/currencies.py
_MAX_AMOUNT = 15      # "15d": digits and the decimal comma


def check_decimals(text: str, currency: str | None, field: str, offset: int | None) -> None:
    places = MINOR_UNITS.get(currency or "")
    if places is not None and len(text) - text.index(",") - 1 > places:
        raise FormatError(f"amount {text!r} has more decimals than {currency} allows ({places})", offset=offset,
                          field=field, hint=f"{currency} amounts have at most {places} digit(s) after the comma "
                                            "(network rule C03)")


def parse_amount(text: str, field: str, offset: int, lenient: bool = False, currency: str | None = None
                 ) -> Decimal:
    """``currency``: check its decimals (rule C03); the lenient reader of bank exports does not."""
    if lenient and re.fullmatch(r"\d{1,15}", text):
        text += ","                       # banks' exports sometimes drop the comma of a whole amount
    if not text.isascii() or not re.fullmatch(AMOUNT, text) or len(text) > _MAX_AMOUNT:
        raise FormatError(f"amount {text!r} is not digits with a decimal comma (e.g. 1234,56)",
                          offset=offset, field=field, hint="SWIFT amounts use a comma and at most 15 characters")
    if not lenient:
        check_decimals(text, currency, field, offset)
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern above rules it out
        raise FormatError(f"bad amount {text!r}", offset=offset, field=field) from None
    if text[0] == "0" and text[1] != ",":
        return SwiftAmount(value, text)       # leading zeros: keep the wire text for the writer
    return value


def write_amount(value: Any, field: str, currency: str | None = None) -> str:
    """The wire text of an amount: at most 15 characters and (``currency``) its decimals (C03),
    the same checks as ``parse_amount``; trailing zeros beyond the currency's decimals are dropped."""
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise FormatError(f"amount must be a non-negative Decimal, got {value!r}", field=field)
    if type(value) is SwiftAmount:
        text = value.text
    else:
        text = format(value.copy_abs() if not value else value, "f").replace(".", ",")   # -0.00 is 0,00
        if "," not in text:
            text += ","
        places = MINOR_UNITS.get(currency or "")
        if places is not None:
            while len(text) - text.index(",") - 1 > places and text.endswith("0"):
                text = text[:-1]              # 100,000 USD -> 100,00: the same value
    if len(text) > _MAX_AMOUNT:
        raise FormatError(f"amount {value} takes {len(text)} characters ({text!r}); SWIFT allows at most 15",
                          field=field, hint="SWIFT amounts (15d) have at most 15 characters, the decimal comma "
                                            "included; the reader refuses longer ones")
    check_decimals(text, currency, field, None)
    return text


def parse_date6(text: str, field: str, offset: int) -> dt.date:
    if not text.isascii() or not re.fullmatch(r"\d{6}", text):
        raise FormatError(f"date {text!r} is not YYMMDD", offset=offset, field=field)
    try:
        # SWIFT: YY 80-99 -> 19YY, 00-79 -> 20YY
        yy = int(text[:2])
        return dt.date(1900 + yy if yy >= 80 else 2000 + yy, int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise FormatError(f"date {text!r} is not a calendar date (YYMMDD)", offset=offset, field=field) from None


def write_date6(value: Any, field: str) -> str:
    if not isinstance(value, dt.date):
        raise FormatError(f"expected a date, got {value!r}", field=field)
    return value.strftime("%y%m%d")


def _ccy(value: Any, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(_CCY, value):
        raise FormatError(f"currency {value!r} is not 3 capital letters", field=field)
    return value


def _need(value: Any, field: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise FormatError(f"expected a mapping with {', '.join(keys)}", field=field)
    missing = [k for k in keys if k not in value]
    if missing:
        raise FormatError(f"missing {', '.join(missing)}", field=field)
    return value


# ------------------------------------------------------------------ parsers / writers

_R32A = re.compile(rf"(\d{{6}})({_CCY})(.*)", re.S)


def p_32a(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = _R32A.fullmatch(text)
    if not m:
        raise FormatError(f"{text!r} is not YYMMDD + currency + amount (e.g. 191014USD1814,28)", offset=off,
                          field=f)
    return {"date": parse_date6(m[1], f, off), "currency": m[2], "amount": parse_amount(m[3], f, off + 9, lenient, m[2])}


def w_32a(v: Any, f: str) -> str:
    v = _need(v, f, ("date", "currency", "amount"))
    return write_date6(v["date"], f) + _ccy(v["currency"], f) + write_amount(v["amount"], f, v["currency"])


def p_ccy_amount(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = re.fullmatch(rf"({_CCY})(.*)", text, re.S)
    if not m:
        raise FormatError(f"{text!r} is not currency + amount (e.g. EUR1000,)", offset=off, field=f)
    return {"currency": m[1], "amount": parse_amount(m[2], f, off + 3, lenient, m[1])}


def w_ccy_amount(v: Any, f: str) -> str:
    v = _need(v, f, ("currency", "amount"))
    return _ccy(v["currency"], f) + write_amount(v["amount"], f, v["currency"])


def p_balance(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = re.fullmatch(rf"([CD])(\d{{6}})({_CCY})(.*)", text, re.S)
    if not m:
        raise FormatError(f"{text!r} is not D/C mark + YYMMDD + currency + amount", offset=off, field=f)
    return {"mark": m[1], "date": parse_date6(m[2], f, off + 1), "currency": m[3],
            "amount": parse_amount(m[4], f, off + 10, lenient, m[3])}


def w_balance(v: Any, f: str) -> str:
    v = _need(v, f, ("mark", "date", "currency", "amount"))
    if v["mark"] not in ("C", "D"):
        raise FormatError(f"mark must be C or D, got {v['mark']!r}", field=f)
    return (v["mark"] + write_date6(v["date"], f) + _ccy(v["currency"], f)
            + write_amount(v["amount"], f, v["currency"]))


_R61 = re.compile(r"(?P<vd>\d{6})(?P<ed>\d{4})?(?P<mark>RC|RD|C|D)(?P<fc>[A-Z])?(?P<amt>\d[\d,]{0,14})"
                  r"(?P<type>[NSF][A-Z0-9]{3})(?P<cref>[^\n]{1,16}?)(?://(?P<bref>[^\n]{1,16}))?"
                  r"(?:\n(?P<sup>[^\n]{1,34}))?", re.S | re.ASCII)     # ASCII: \d takes any script's digits


# banks' exports: a type code with spaces ("S   "), no reference at all
_R61_LENIENT = re.compile(_R61.pattern.replace("[NSF][A-Z0-9]{3}", "[NSF][A-Z0-9 ]{3}")
                          .replace("(?P<cref>[^\\n]{1,16}?)", "(?P<cref>[^\\n]{0,16}?)"), re.S | re.ASCII)


def p_61(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = (_R61_LENIENT if lenient else _R61).fullmatch(text)
    if not m:
        raise FormatError(f"{text.splitlines()[0] if text else text!r} is not a statement line: value date "
                          "YYMMDD, [entry MMDD], mark C/D/RC/RD, [funds code], amount, type (e.g. NTRF), "
                          "reference[//bank reference]", offset=off, field=f)
    return {"value_date": parse_date6(m["vd"], f, off), "entry_date": m["ed"], "mark": m["mark"],
            "funds_code": m["fc"], "amount": parse_amount(m["amt"], f, off + m.start("amt"), lenient),
            "type": m["type"], "customer_reference": m["cref"] or None, "bank_reference": m["bref"],
            "supplementary": m["sup"]}


def w_61(v: Any, f: str, currency: str | None = None) -> str:
    """``currency``: the statement's (its 60a or 34F), for the entry's decimals (rule C03) and trailing zeros."""
    v = _need(v, f, ("value_date", "mark", "amount", "type", "customer_reference"))
    if not isinstance(v["customer_reference"], str) or not v["customer_reference"]:
        raise FormatError(f"a statement line needs a customer reference, got {v['customer_reference']!r}",
                          field=f, hint="write NONREF when there is none (banks' exports may leave it out; "
                                        "the lenient reader reads those with customer_reference None)")
    if not isinstance(v["type"], str):
        raise FormatError(f"a statement line needs a transaction type (e.g. NTRF), got {v['type']!r}", field=f)
    out = write_date6(v["value_date"], f) + (v.get("entry_date") or "") + v["mark"] + (v.get("funds_code") or "")
    out += write_amount(v["amount"], f, currency) + v["type"] + v["customer_reference"]
    if v.get("bank_reference"):
        out += "//" + v["bank_reference"]
    if v.get("supplementary"):
        out += "\n" + v["supplementary"]
    if not _R61.fullmatch(out):
        raise FormatError(f"values do not make a valid statement line: {out!r}", field=f)
    return out


def p_34f(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = re.fullmatch(rf"({_CCY})([DC])?(.*)", text, re.S)
    if not m:
        raise FormatError(f"{text!r} is not currency + [D/C] + amount", offset=off, field=f)
    return {"currency": m[1], "mark": m[2], "amount": parse_amount(m[3], f, off + 3 + len(m[2] or ""), lenient, m[1])}


def w_34f(v: Any, f: str) -> str:
    v = _need(v, f, ("currency", "amount"))
    return _ccy(v["currency"], f) + (v.get("mark") or "") + write_amount(v["amount"], f, v["currency"])


def p_90(text: str, f: str, off: int, lenient: bool = False) -> dict:
    m = re.fullmatch(rf"(\d{{1,5}})({_CCY})(.*)", text, re.S)
    if not m:
        raise FormatError(f"{text!r} is not count + currency + amount", offset=off, field=f)
    return {"count": m[1], "currency": m[2], "amount": parse_amount(m[3], f, off + len(m[1]) + 3, lenient, m[2])}


def w_90(v: Any, f: str) -> str:
    v = _need(v, f, ("count", "currency", "amount"))
    return str(v["count"]) + _ccy(v["currency"], f) + write_amount(v["amount"], f, v["currency"])


_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")


def p_bic(text: str, f: str, off: int, lenient: bool = False) -> dict:
    lines = text.split("\n")
    account = None
    if lines[0].startswith("/") and len(lines) > 1:
        account = lines.pop(0)[1:]
    if len(lines) != 1 or not _BIC.fullmatch(lines[0]):
        raise FormatError(f"{lines[-1]!r} is not a BIC (8 or 11 characters: bank, country, location, [branch])",
                          offset=off + len(text) - len(lines[-1]), field=f)
    return {"account": account, "bic": lines[0]}


def w_bic(v: Any, f: str) -> str:
    v = _need(v, f, ("bic",))
    if not isinstance(v["bic"], str) or not _BIC.fullmatch(v["bic"]):
        raise FormatError(f"{v['bic']!r} is not a BIC", field=f)
    return (f"/{v['account']}\n" if v.get("account") else "") + v["bic"]


def p_bic_account(text: str, f: str, off: int, lenient: bool = False) -> dict:
    """50G: ``/34x`` (the account, mandatory) then the BIC; 25P: ``35x`` (the account, no slash) then the BIC."""
    slash = f != "25P"
    lines = text.split("\n")
    if len(lines) != 2 or (slash and not lines[0].startswith("/")) or not lines[0].strip("/"):
        raise FormatError(f":{f}: is not an account line then a BIC", offset=off, field=f,
                          hint=f":{f}: is {'/34x' if slash else '35x'} (the account) and a BIC on the next line")
    account = lines[0][1:] if slash else lines[0]
    if len(lines[0]) > 35:
        raise FormatError(f"account line {lines[0][:40]!r} is {len(lines[0])} characters; :{f}: allows 35",
                          offset=off, field=f)
    if not _BIC.fullmatch(lines[1]):
        raise FormatError(f"{lines[1]!r} is not a BIC (8 or 11 characters: bank, country, location, [branch])",
                          offset=off + len(lines[0]) + 1, field=f)
    return {"account": account, "bic": lines[1]}


def w_bic_account(v: Any, f: str) -> str:
    v = _need(v, f, ("account", "bic"))
    if not isinstance(v["account"], str) or not v["account"]:
        raise FormatError(f":{f}: needs an account, got {v['account']!r}", field=f)
    if not isinstance(v["bic"], str) or not _BIC.fullmatch(v["bic"]):
        raise FormatError(f"{v['bic']!r} is not a BIC", field=f)
    return ("/" if f != "25P" else "") + v["account"] + "\n" + v["bic"]


FORMATS: dict[str, tuple[Callable[[str, str, int], Any], Callable[[Any, str], str]]] = {
    "32A": (p_32a, w_32a),
    "32B": (p_ccy_amount, w_ccy_amount), "33B": (p_ccy_amount, w_ccy_amount),
    "30": (lambda t, f, o, lenient=False: parse_date6(t, f, o), write_date6),
    "60F": (p_balance, w_balance), "60M": (p_balance, w_balance), "62F": (p_balance, w_balance),
    "62M": (p_balance, w_balance), "64": (p_balance, w_balance), "65": (p_balance, w_balance),
    "61": (p_61, w_61), "34F": (p_34f, w_34f), "90D": (p_90, w_90), "90C": (p_90, w_90),
}
BIC_TAGS = ("50A", "51A", "52A", "53A", "54A", "55A", "56A", "57A", "58A", "59A", "82A", "87A")
for _t in BIC_TAGS:
    FORMATS[_t] = (p_bic, w_bic)
FORMATS["50G"] = FORMATS["25P"] = (p_bic_account, w_bic_account)


# ------------------------------------------------------------------ text fields: formats checked, value kept as text

def _line_starts(text: str, eol_len: int) -> list[tuple[str, int]]:
    """Lines of a "\n"-joined value with their offsets in the message (line breaks ``eol_len`` wide)."""
    out = []
    pos = 0
    for i, line in enumerate(text.split("\n")):
        out.append((line, pos + i * (eol_len - 1)))
        pos += len(line) + 1
    return out


def _lines(text: str, f: str, off: int, eol_len: int, count: int, width: int, *, account: int = 0,
           what: str = "", optional: bool = False) -> None:
    """``count``*``width``x, after an optional first line "/account" of at most ``account`` characters."""
    lines = _line_starts(text, eol_len)
    fmt = f"{count}*{width}x"
    if account and lines[0][0].startswith("/"):
        line, at = lines.pop(0)
        fmt = f"[{account}-character /account line] {fmt}"
        if len(line) > account:
            raise FormatError(f"account line {line[:40]!r} is {len(line)} characters; :{f}: allows {account}",
                              offset=off + at, field=f, hint=f":{f}: is {fmt}{what}")
    if not optional and (not lines or (len(lines) == 1 and not lines[0][0])):
        raise FormatError(f":{f}: is empty", offset=off, field=f, hint=f":{f}: is {fmt}{what}")
    if len(lines) > count:
        raise FormatError(f":{f}: has {len(lines)} lines{' after the account' if fmt.startswith('[') else ''}; "
                          f"at most {count} are allowed", offset=off + lines[count][1], field=f,
                          hint=f":{f}: is {fmt}{what}")
    for line, at in lines:
        if len(line) > width:
            raise FormatError(f"line {line[:40]!r} is {len(line)} characters; :{f}: allows {width} per line",
                              offset=off + at + width, field=f, hint=f":{f}: is {fmt}{what}")


def _reference(text: str, f: str, off: int, eol_len: int) -> None:
    """16x and network rule T26: not starting or ending with '/', no '//'."""
    if "\n" in text or not 1 <= len(text) <= 16:
        raise FormatError(f"reference {text[:40]!r} is not 1 to 16 characters on one line", offset=off, field=f,
                          hint=f":{f}: is 16x")
    bad = 0 if text.startswith("/") else len(text) - 1 if text.endswith("/") else text.find("//")
    if bad >= 0:
        raise FormatError(f"reference {text!r} starts or ends with '/' or contains '//'", offset=off + bad,
                          field=f, hint="network rule T26: a reference must not start or end with a slash nor "
                                        "contain two consecutive slashes")


def _pattern(regex: str, fmt: str) -> Callable[[str, str, int, int], None]:
    rx = re.compile(regex)

    def check(text: str, f: str, off: int, eol_len: int) -> None:
        if not rx.fullmatch(text):
            raise FormatError(f"{text[:40]!r} is not {fmt}", offset=off, field=f, hint=f":{f}: is {fmt}")
    return check


def _codes(*codes: str) -> Callable[[str, str, int, int], None]:
    def check(text: str, f: str, off: int, eol_len: int) -> None:
        if text not in codes:
            raise FormatError(f"code {text[:40]!r} is not one of {', '.join(codes)}", offset=off, field=f,
                              hint=f":{f}: takes one of {', '.join(codes)}")
    return check


def _ccy_amount_text(text: str, f: str, off: int, eol_len: int) -> None:
    p_ccy_amount(text, f, off)


def _party(count: int, width: int, account: int, optional: bool = False) -> Callable[[str, str, int, int], None]:
    def check(text: str, f: str, off: int, eol_len: int) -> None:
        _lines(text, f, off, eol_len, count, width, account=account, optional=optional)
    return check


def _account_line(text: str, f: str, off: int, eol_len: int) -> None:
    if "\n" in text or not text.startswith("/") or not 2 <= len(text) <= 35:
        raise FormatError(f"{text[:40]!r} is not an account line '/' + up to 34 characters", offset=off, field=f,
                          hint=f":{f}: is /34x")


_X35 = _party(4, 35, 0)
# Text fields of the messages with a spec (formats.swift.messages): checked on read and on write,
# the value stays text.  Formats per the SWIFT MT field specifications (Standards MT, categories 1, 2, 9).
TEXT_FORMATS: dict[str, Callable[[str, str, int, int], None]] = {
    "20": _reference, "21": _reference, "21R": _reference, "21F": _reference,
    "23B": _codes("CRED", "CRTS", "SPAY", "SPRI", "SSTD"),
    "23E": _pattern(r"[A-Z0-9]{4}(/[^\n]{1,30})?", "4!c[/30x] (an instruction code, e.g. INTC, SDVA)"),
    "26T": _pattern(r"[A-Z0-9]{3}", "3!c (a transaction type code)"),
    "13C": _pattern(r"/[A-Z0-9]{1,8}/\d{4}[+-]\d{4}", "/8c/4!n1!x4!n (e.g. /SNDTIME/1249+0100)"),
    "13D": _pattern(r"\d{10}[+-]\d{4}", "6!n4!n1!x4!n (YYMMDDhhmm +/- hhmm)"),
    "25": _pattern(r"[^\n]{1,35}", "35x (one line)"),
    "25A": _account_line,
    "28C": _pattern(r"\d{1,5}(/\d{1,5})?", "5n[/5n] (statement number / sequence number)"),
    "28D": _pattern(r"\d{1,5}/\d{1,5}", "5n/5n (message index / total)"),
    "36": _pattern(r"(?=[\d,]{1,12}$)\d+,\d*", "12d (an exchange rate with a decimal comma)"),
    "50K": _party(4, 35, 35), "59": _party(4, 35, 35), "59F": _party(4, 35, 35), "50H": _party(4, 35, 35),
    "50F": _party(5, 35, 0), "50L": _pattern(r"[^\n]{1,35}", "35x (one line)"),
    **{t: _party(4, 35, 37) for t in ("52D", "53D", "54D", "55D", "56D", "57D", "58D")},
    **{t: _party(1, 35, 37, optional=True) for t in ("53B", "54B", "55B", "57B")},   # [/1!a][/34x] [35x]
    **{t: _account_line for t in ("52C", "56C", "57C")},
    "70": _X35, "72": _party(6, 35, 0), "77B": _party(3, 35, 0), "86": _party(6, 65, 0),
    "71A": _codes("BEN", "OUR", "SHA"),
    "71F": _ccy_amount_text, "71G": _ccy_amount_text,
}


def parse_field(tag: str, text: str, offset: int, lenient: bool = False, eol_len: int = 1) -> Any:
    """``offset``: where the value starts in the message; ``eol_len``: width of its line breaks
    (2 for CRLF), for the offset of a bad line.  ``lenient`` (bank exports) skips the text formats."""
    fmt = FORMATS.get(tag)
    if fmt:
        return fmt[0](text, tag, offset, lenient)
    check = None if lenient else TEXT_FORMATS.get(tag)
    if check is not None:
        check(text, tag, offset, eol_len)
    return text


def write_field(tag: str, value: Any) -> str:
    fmt = FORMATS.get(tag)
    if fmt:
        return fmt[1](value, tag)
    if not isinstance(value, str):
        raise FormatError(f"expected text, got {type(value).__name__}", field=tag)
    return value
