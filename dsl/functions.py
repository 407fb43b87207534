"""The fixed function library a route may call.  Nothing else is callable.

Each entry: the Python implementation and a ``Sig`` (arity and the types of
arguments the checker can verify when they are literals).  Money stays
``Decimal``: a ``float`` never enters; ``round`` rounds half up.
"""
from __future__ import annotations

import os
import uuid as _uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dsl import clock as _clock
from dsl import money as _money
from dsl.timestamps import Duration as _Duration
from formats.exact import plain_decimal


class FunctionError(ValueError):
    """Bad argument at run time; the compiler wraps it into an EvalError with a position."""


@dataclass(frozen=True)
class Sig:
    min_args: int
    max_args: int | None          # None: any number
    params: tuple[str, ...]       # names shown in messages
    types: tuple[str, ...] = ()   # per position: string, number, int, date, table, call, any
    doc: str = ""
    # ``bsp check``: (argument index, literal value) -> what is wrong with it, or None (a time zone name)
    literal: Callable[[int, Any], str | None] | None = None
    literal_code: str = "E072"    # the code of what ``literal`` finds (E078: a pattern ``matches`` cannot use)
    constant: tuple[int, ...] = ()  # argument indexes that must be a string literal (E077): checked, never sent

    def usage(self, name: str) -> str:
        return f"{name}({', '.join(self.params)})"


def _str(v: Any, fn: str) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (Mapping, list, tuple)):
        # an object or a list where text is read: never Python's rendering ("{'x': 1}") sent on as a name
        raise FunctionError(f"{fn}: expected text, got {'an object' if isinstance(v, Mapping) else 'a list'}")
    return str(v)


def _num(v: Any, fn: str) -> Decimal | int:
    if isinstance(v, bool) or v is None:
        raise FunctionError(f"{fn}: expected a number, got {_tname(v)}")
    if isinstance(v, (int, Decimal)):
        return v
    if isinstance(v, str):
        d = plain_decimal(v)             # never 1_000, 1e3, ١٢٠.50 or NaN, which Decimal(text) takes
        if d is None:
            shown = v if len(v) <= 40 else v[:37] + "..."
            raise FunctionError(f"{fn}: {shown!r} is not a number: write ASCII digits with an optional sign and "
                                f"decimal point (120.50), no exponent, thousands separator or underscore")
        return d
    raise FunctionError(f"{fn}: expected a number, got {_tname(v)}")


def _int(v: Any, fn: str) -> int:
    n = _num(v, fn)
    if isinstance(n, Decimal):
        if n != n.to_integral_value():
            raise FunctionError(f"{fn}: expected a whole number, got {n}")
        return int(n)
    return n


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    return {str: "a string", int: "an integer", Decimal: "a decimal", bool: "a bool",
            list: "a list", dict: "a record", date: "a date", datetime: "a timestamp",
            _Duration: "a duration"}.get(type(v), type(v).__name__)


def f_trim(s: Any) -> str:
    return _str(s, "trim").strip()


def f_upper(s: Any) -> str:
    return _str(s, "upper").upper()


def f_lower(s: Any) -> str:
    return _str(s, "lower").lower()


MAX_TEXT = 10_000_000     # characters a text function may produce (a width or a replacement from a message)


def _width(n: Any, fn: str) -> int:
    width = _int(n, fn)
    if width > MAX_TEXT:
        raise FunctionError(f"{fn}: a width of {width} characters is more than the {MAX_TEXT} a text may have; "
                            f"check the width (does it come from the message?)")
    return width


def f_pad_left(s: Any, n: Any, ch: Any = " ") -> str:
    ch = _str(ch, "pad_left")
    if len(ch) != 1:
        raise FunctionError(f"pad_left: the pad character must be one character, got {ch!r}")
    return _str(s, "pad_left").rjust(_width(n, "pad_left"), ch)


def f_pad_right(s: Any, n: Any, ch: Any = " ") -> str:
    ch = _str(ch, "pad_right")
    if len(ch) != 1:
        raise FunctionError(f"pad_right: the pad character must be one character, got {ch!r}")
    return _str(s, "pad_right").ljust(_width(n, "pad_right"), ch)


def f_substr(s: Any, start: Any, length: Any = None) -> str:
    """0-based start; ``length`` omitted: to the end."""
    text = _str(s, "substr")
    a = _int(start, "substr")
    if a < 0:
        raise FunctionError(f"substr: start must be 0 or more, got {a}")
    if length is None:
        return text[a:]
    n = _int(length, "substr")
    if n < 0:
        raise FunctionError(f"substr: length must be 0 or more, got {n}")
    return text[a:a + n]


def f_mask_pan(s: Any) -> Any:
    """The value as the ledger masks a PAN (formats.classify.mask_value): first 6 and last 4 kept."""
    from formats.classify import mask_value
    if s is None or s == "":
        return s
    return mask_value(_str(s, "mask_pan"), "pan")


_IBAN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def f_iban_valid(s: Any) -> bool:
    """ISO 13616 in its electronic form: 2 letters (the country), 2 check digits, 11 to 30 upper-case
    letters or digits (15 to 34 characters in all), and the ISO 7064 MOD 97-10 check (the first four
    characters moved to the end, letters read as 10..35, the number modulo 97 is 1).  Spaces, lower case
    and null are not valid: ``iban_valid(upper(trim(x)))`` for input that may carry them."""
    if not isinstance(s, str) or not 15 <= len(s) <= 34 or not set(s) <= _IBAN_CHARS:
        return False
    if not (s[:2].isalpha() and s[2:4].isdigit()):
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def f_is_digits(s: Any) -> bool:
    """One or more of the ASCII digits 0-9 and nothing else: no sign, point, space or other script's
    digits (``"١٢"`` is not); null, ``""`` and a number are not (a number has no leading zeros to keep)."""
    return isinstance(s, str) and s != "" and s.isascii() and s.isdigit()


def f_swift_x_valid(s: Any) -> bool:
    """Every character in the SWIFT FIN X set (a-z A-Z 0-9 / - ? : ( ) . , ' + space and line breaks), so that
    an MT message's free-text field can carry it; null and a number are not (``""`` is: nothing to refuse).
    A name from the mainframe (EBCDIC has ``&``, ``@``, ``#``, ``%``, ``;``) checked before the MT is built
    is a request refused with the route's code, not an MT that cannot be written (96 after the calls)."""
    from formats.swift.charset import X_CHARS      # here: importing the swift package costs every route ~50 ms
    return isinstance(s, str) and set(s) <= X_CHARS


def f_has_control(s: Any) -> bool:
    """True when the text holds a control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F; NUL,
    tab and line breaks included).  A value a partner sends that goes into a file name, an XML element or a
    fixed record is checked with it in ``validate``: refused with the route's code before the first call,
    not a message that cannot be built after the debit (96).  Null, a number and ``""`` hold none."""
    return isinstance(s, str) and any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in s)


def f_replace(s: Any, old: Any, new: Any) -> str:
    """Every occurrence of the text ``old`` replaced by ``new`` (plain text, not a pattern)."""
    what = _str(old, "replace")
    if what == "":
        raise FunctionError("replace: the text to replace (old) is empty; give the text to take out, "
                            "e.g. replace(x, \" \", \"\")")
    text, by = _str(s, "replace"), _str(new, "replace")
    if len(by) > len(what):
        size = len(text) + text.count(what) * (len(by) - len(what))
        if size > MAX_TEXT:
            raise FunctionError(f"replace: the result would be {size} characters, more than the {MAX_TEXT} a text "
                                f"may have ({text.count(what)} occurrence(s) of a {len(what)}-character text, each "
                                f"replaced by {len(by)} characters); check where the texts come from")
    return text.replace(what, by)


def _replace_literal(i: int, value: Any) -> str | None:
    return "must not be empty (it would match between every two characters)" if i == 1 and value == "" else None


def f_len(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v)
    return len(_str(v, "len"))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_problem(name: Any) -> str | None:
    """Why ``name`` is not an IANA time zone name (None when it is one)."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return f"{name!r} is not a time zone name; write an IANA name such as \"Europe/Berlin\" or \"UTC\""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"{name!r} is not a known IANA time zone; write one such as \"Europe/Berlin\", \"Asia/Shanghai\" or \"UTC\""
    return None


def _tz(name: Any, fn: str) -> ZoneInfo:
    problem = zone_problem(name)
    if problem is not None:
        raise FunctionError(f"{fn}: {problem}")
    return _zone(name)


def _tz_literal(i: int, value: Any) -> str | None:
    return zone_problem(value) if i == 0 and value is not None else None


def f_now(tz: Any = None) -> datetime:
    """Without ``tz``: the current time in UTC; with it, the same instant in that zone.  The clock is the
    exchange's (``dsl.clock``): a replay's and a route test's ``at`` fix it."""
    at = _clock.now()
    if tz is None:
        return at
    return at.astimezone(_tz(tz, "now"))


def f_today(tz: Any = None) -> date:
    """Without ``tz``: the date of the engine's local time (its TZ environment variable); with it, the
    date it is now in that zone (the business's date, whatever the machine's zone).  The clock is the
    exchange's, as for ``now()``."""
    at = _clock.now()
    if tz is None:
        return at.astimezone().date()
    return at.astimezone(_tz(tz, "today")).date()


def _date(v: Any, fn: str) -> date:
    if isinstance(v, str):
        raise FunctionError(f"{fn}: expected a date, got the string {v!r} (use parse_date first)")
    if not isinstance(v, (date, datetime)):
        raise FunctionError(f"{fn}: expected a date, got {_tname(v)}")
    return v


def f_add_days(d: Any, n: Any) -> date | None:
    """``d`` moved by ``n`` whole days (negative: back); a timestamp keeps its time of day; null stays null."""
    if d is None:
        return None
    day = _date(d, "add_days")
    days = _int(n, "add_days")
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise FunctionError(f"add_days: {day.isoformat()} moved by {days} days is outside the years 1 to 9999") \
            from None


def f_days_between(a: Any, b: Any) -> int | None:
    """Whole days from ``a`` to ``b`` (b - a: positive when b is later); timestamps count by their dates;
    null when either is null."""
    if a is None or b is None:
        return None
    x, y = _date(a, "days_between"), _date(b, "days_between")
    x = x.date() if isinstance(x, datetime) else x
    y = y.date() if isinstance(y, datetime) else y
    return (y - x).days


def f_format_date(d: Any, fmt: Any) -> str:
    if d is None:
        return ""
    if isinstance(d, str):
        raise FunctionError(f"format_date: expected a date, got the string {d!r} (use parse_date first)")
    if not isinstance(d, (date, datetime)):
        raise FunctionError(f"format_date: expected a date, got {_tname(d)}")
    return d.strftime(_str(fmt, "format_date"))


def _strptime(s: Any, fmt: Any, name: str) -> datetime | None:
    """``s`` read with the strftime pattern ``fmt`` for the function ``name`` (parse_date, parse_timestamp):
    null and "" give null; text that does not fit fails saying how, never quoting a piece of it again."""
    if s is None or s == "":
        return None
    text = _str(s, name)
    try:
        return datetime.strptime(text, _str(fmt, name))
    except ValueError as e:
        # strptime quotes the text again ("time data '...' does not match", "unconverted data remains: ...");
        # a piece of it would escape masking of the whole value (Exchange.fail): say how much is left over
        why = str(e)
        if why.startswith("unconverted data remains"):
            rest = len(why.split(": ", 1)[-1])
            why = f"the first {len(text) - rest} characters match it, {rest} are left over"
        elif why.startswith("time data"):
            why = "it does not fit the pattern"
        raise FunctionError(f"{name}: {text!r} does not match {fmt!r}: {why}") from None


def f_parse_date(s: Any, fmt: Any) -> date | None:
    read = _strptime(s, fmt, "parse_date")
    return None if read is None else read.date()


def f_parse_timestamp(s: Any, fmt: Any) -> datetime | None:
    """``s`` read with a strftime pattern that has a time of day: a timestamp, with a zone when the pattern
    reads one (``%z``: +0100, Z), zone-less otherwise; null and "" give null; text that does not fit fails."""
    return _strptime(s, fmt, "parse_timestamp")


def f_local(ts: Any, tz: Any) -> datetime | None:
    """The wall-clock time a timestamp with a zone is in the zone ``tz``, without a zone: what a fixed-width
    or CSV field's zone-less time is compared with (``msg.booked < local(now(), "Europe/Paris")``)."""
    if ts is None:
        return None
    if not isinstance(ts, datetime):
        raise FunctionError(f"local: expected a timestamp, got {_tname(ts)}"
                            + (" (use parse_timestamp first)" if isinstance(ts, str) else ""))
    zone = _tz(tz, "local")
    if ts.utcoffset() is None:
        raise FunctionError(f"local: {ts.isoformat()} has no zone already: whose local time it is the value does "
                            f"not say, so it is not moved to {tz}")
    return ts.astimezone(zone).replace(tzinfo=None)


def _local_literal(i: int, value: Any) -> str | None:
    return zone_problem(value) if i == 1 and value is not None else None


def f_is_date(s: Any, fmt: Any) -> bool:
    """True when ``parse_date(s, fmt)`` gives a date; never fails: null, "" and text that does not fit are false."""
    if s is None or s == "" or not isinstance(fmt, str) or isinstance(s, (list, tuple, dict, bool)):
        return False
    try:
        datetime.strptime(_str(s, "is_date"), fmt)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def date_pattern_problem(fmt: Any) -> str | None:
    """Why ``fmt`` is not a strptime pattern (a bad directive such as ``%Q``, a stray ``%``), or None."""
    if not isinstance(fmt, str):
        return None
    try:
        datetime.strptime("", fmt)
    except ValueError as e:
        why = str(e)
        if why.startswith(("time data", "unconverted data")):
            return None
        return f"is not a date pattern: {why}; write strftime codes such as \"%Y-%m-%d\""
    return None


def _date_fmt_literal(i: int, value: Any) -> str | None:
    return date_pattern_problem(value) if i == 1 else None


def f_matches(s: Any, pattern: Any) -> bool:
    """True when the whole of ``s`` matches the regular expression (dsl/regexsafe.py: fullmatch, ASCII classes);
    null and a bool are false; a number is its text.  A list or a record, and a text longer than MAX_INPUT
    characters, fail (never false: ``not matches(msg.narrative, ".*DROP.*")`` would let ``["DROP TABLE"]`` or
    an over-long text through); on a request's field the sender's error."""
    from dsl.regexsafe import MAX_INPUT, PatternError, compile_safe
    if s is None or isinstance(s, bool):
        return False
    text = _str(s, "matches")
    if len(text) > MAX_INPUT:
        raise FunctionError(f"matches: the text is {len(text):,} characters long, more than the {MAX_INPUT:,} a "
                            f"pattern is matched against: send it shorter, or cut it first "
                            f"(substr(s, 0, {MAX_INPUT})) if the route means to look at its start only")
    try:
        compiled = compile_safe(_str(pattern, "matches"))
    except PatternError as e:         # `bsp check` refuses it first (E078): only a program built around the checker
        raise FunctionError(f"matches: the pattern {pattern!r} {e}") from None
    return compiled.fullmatch(text) is not None


def _pattern_literal(i: int, value: Any) -> str | None:
    if i != 1 or not isinstance(value, str):
        return None
    from dsl.regexsafe import problem
    return problem(value)


def f_uuid() -> str:
    return str(_uuid.uuid4())


def f_round(x: Any, n: Any = 0) -> Decimal:
    """ROUND_HALF_UP: 2.345 -> 2.35, -2.345 -> -2.35 (half away from zero), at any size; -0.004 -> 0.00."""
    v = _num(x, "round")
    places = _int(n, "round")
    try:
        return _money.round_half_up(v, places)
    except _money.TooLong:
        raise FunctionError(f"round: {v} to {places} decimal places needs more than {_money.MAX_DIGITS:,} "
                            f"digits") from None


def f_number(x: Any) -> Decimal | int | None:
    """The number a text reads as (``number("20261226")`` is 20261226, ``number(" 86.40 ")`` 86.40); a
    number is itself, a duration its seconds as a plain number (``number(90m)`` is 5400, which no timestamp
    moves by); null and "" are null."""
    if x is None or x == "":
        return None
    v = _num(x, "number")
    if isinstance(v, Decimal) and not v.is_finite():
        raise FunctionError(f"number: {x!r} is not a number")
    if isinstance(v, _Duration):       # number(90m): its seconds, a plain number (bsp check types it so)
        return Decimal(v)
    return v


def f_abs(x: Any) -> Decimal | int:
    v = _num(x, "abs")
    if isinstance(v, _Duration):                 # abs(b - a): still a duration, as bsp check types it
        return _Duration(v.copy_abs())
    return v.copy_abs() if isinstance(v, Decimal) else abs(v)      # exact: abs() would round to 28 digits


def f_coalesce(*vals: Any) -> Any:
    """The first argument neither null nor ""; when none is, the last one as given: ``coalesce(x, "")`` is
    "" for a missing or blank ``x`` (a fallback is a fallback, never turned into null)."""
    for v in vals:
        if v is not None and v != "":
            return v
    return vals[-1] if vals else None


def f_env(name: Any, default: Any = None) -> Any:
    from formats.secret_env import is_secret
    text = _str(name, "env")
    if is_secret(text):
        raise FunctionError(f"env: {text} holds a secret of the engine's (a key or a token): a route never "
                            f"reads it")
    return os.environ.get(text, default)


def _env_literal(i: int, value: Any) -> str | None:
    from formats.secret_env import is_secret
    if i == 0 and isinstance(value, str) and is_secret(value):
        return (f"names {value}, which holds a secret of the engine's (a key or a token): a route never reads it "
                f"(its value would reach a reply, the ledger or a log)")
    return None


def f_lookup(table: Any, key: Any, column: Any, default: Any = None) -> Any:
    if not (hasattr(table, "rows") and hasattr(table, "key")):
        raise FunctionError(f"lookup: the first argument must be a table, got {_tname(table)}")
    row = table.get(_str(key, "lookup"))      # an effective-dated table: the row in force today
    if row is None:
        return default
    col = _str(column, "lookup")
    if col not in row:
        raise FunctionError(f"lookup: table {table.name!r} has no column {col!r}; columns: {', '.join(row)}")
    return row[col]


def f_http_status(answer: Any) -> int | None:
    status = getattr(answer, "http_status", None)     # set by the engine on an http call's answer
    return status if type(status) is int else None


def f_http_header(answer: Any, name: Any) -> str | None:
    headers = getattr(answer, "http_headers", None)   # set by the engine on an http call's answer
    if not isinstance(headers, dict):
        return None
    value = headers.get(_str(name, "http_header").lower())
    return value if isinstance(value, str) else None


def f_response_mti(t: Any) -> str:
    """The ISO 8583 response MTI of a request or advice MTI: the function digit (the third) one up, the origin
    digit (the fourth) without its repeat bit: 0100 -> 0110, 0200 -> 0210, 0421 -> 0430, 0800 -> 0810,
    1100 -> 1110.  A response MTI (odd third digit: 0110, 0430), or text that is not 4 digits, is an error:
    a response is never answered."""
    if t is None:
        raise FunctionError("response_mti: expected an MTI, got null (the message type could not be read)")
    text = _str(t, "response_mti")
    if len(text) != 4 or not (text.isascii() and text.isdigit()):
        raise FunctionError(f"response_mti: {text!r} is not an MTI (4 digits)")
    function = int(text[2])
    if function & 1 or function > 8:
        raise FunctionError(f"response_mti: {text} is not a request, advice or notification (third digit "
                            f"{function}): a response is never answered")
    return text[:2] + str(function + 1) + str(int(text[3]) & ~1)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "trim": f_trim, "upper": f_upper, "lower": f_lower,
    "pad_left": f_pad_left, "pad_right": f_pad_right, "substr": f_substr, "mask_pan": f_mask_pan, "iban_valid": f_iban_valid, "is_digits": f_is_digits,
    "swift_x_valid": f_swift_x_valid, "has_control": f_has_control,
    "replace": f_replace,
    "len": f_len, "now": f_now, "today": f_today, "add_days": f_add_days, "days_between": f_days_between,
    "format_date": f_format_date, "parse_date": f_parse_date,
    "parse_timestamp": f_parse_timestamp, "local": f_local, "is_date": f_is_date, "matches": f_matches,
    "uuid": f_uuid, "round": f_round, "abs": f_abs, "number": f_number, "coalesce": f_coalesce,
    "env": f_env, "lookup": f_lookup, "http_status": f_http_status,
    "http_header": f_http_header, "response_mti": f_response_mti,
}

SIGNATURES: dict[str, Sig] = {
    "trim": Sig(1, 1, ("s",), ("string",), "removes leading and trailing spaces"),
    "upper": Sig(1, 1, ("s",), ("string",), "upper case"),
    "lower": Sig(1, 1, ("s",), ("string",), "lower case"),
    "pad_left": Sig(2, 3, ("s", "n", 'ch=" "'), ("string", "int", "string"),
                    "pads on the left to n characters with ch (n at most 10,000,000: more fails the deal)"),
    "pad_right": Sig(2, 3, ("s", "n", 'ch=" "'), ("string", "int", "string"),
                     "pads on the right to n characters with ch (n at most 10,000,000)"),
    "substr": Sig(2, 3, ("s", "start", "len"), ("string", "int", "int"),
                  "len characters from start (0-based); without len, to the end"),
    "mask_pan": Sig(1, 1, ("s",), ("string",), "a card number masked as the ledger masks it: first 6 and "
                    "last 4 kept (4111111111111111 -> 411111******1111); null and \"\" stay"),
    "iban_valid": Sig(1, 1, ("s",), ("string",), "true when s is an IBAN in electronic form (2 letters, 2 check "
                      "digits, 11-30 upper-case letters or digits) whose ISO 7064 MOD 97-10 check holds; spaces, "
                      "lower case and null are not: write iban_valid(upper(trim(x))) for such input"),
    "is_digits": Sig(1, 1, ("s",), ("string",), "true when s is one or more of the digits 0-9 and nothing else "
                     "(no sign, point or space; null, \"\" and a number are not): an account number's form is "
                     "is_digits(msg.account) and len(msg.account) == 16"),
    "swift_x_valid": Sig(1, 1, ("s",), ("string",), "true when every character of s is in the SWIFT FIN X set "
                         "(a-z A-Z 0-9 / - ? : ( ) . , ' + space, line breaks), which an MT field can carry; "
                         "& @ # % ; and accented letters are not: check a name before an MT is built from it "
                         "(null and a number are not valid)"),
    "has_control": Sig(1, 1, ("s",), ("string",), "true when s holds a control character (U+0000-U+001F, "
                       "U+007F-U+009F: NUL, tab, line breaks ...); null, \"\" and a number hold none: refuse a text "
                       "a partner sent before it goes into a file name, an XML element or a record "
                       "(not has_control(msg.name) else reject ...)"),
    "replace": Sig(3, 3, ("s", "old", "new"), ("string", "string", "string"),
                   "s with every occurrence of the text old replaced by new (plain text, not a pattern): "
                   "replace(\"DE89 3704\", \" \", \"\") is \"DE893704\"; null s gives \"\"; a result of more than "
                   "10,000,000 characters fails the deal", literal=_replace_literal),
    "len": Sig(1, 1, ("v",), ("any",), "length of a string or list; null has length 0"),
    "now": Sig(0, 1, ("tz",), ("string",), "the current time: in UTC, or with tz (an IANA name such as "
               "\"Europe/Berlin\") in that zone; in a replay, the time the recorded exchange was received, and in a "
               "route test written `test \"...\" at \"2026-11-25T10:00:00Z\"`, that time", literal=_tz_literal),
    "today": Sig(0, 1, ("tz",), ("string",), "today's date: the engine's local date (its TZ environment "
                 "variable), or with tz (an IANA name such as \"Europe/Berlin\") the date in that zone; the date of "
                 "now()'s clock (a replay's recorded time, a route test's `at`)",
                 literal=_tz_literal),
    "add_days": Sig(2, 2, ("d", "n"), ("date", "int"), "the date (or timestamp) d moved by n whole days, "
                    "back when n is negative: add_days(today(), -1) is yesterday; null d gives null"),
    "days_between": Sig(2, 2, ("a", "b"), ("date", "date"), "whole days from a to b (b - a: positive when b "
                        "is later); timestamps count by their dates; null when either is null"),
    "format_date": Sig(2, 2, ("d", "fmt"), ("date", "string"),
                       "a date rendered with a strftime pattern; null gives \"\" (check a date in a deal key "
                       "is not null first); bsp check refuses a literal pattern with a bad directive (%Q, %F: "
                       "the directives parse_date reads)", literal=_date_fmt_literal),
    "parse_date": Sig(2, 2, ("s", "fmt"), ("string", "string"), "a string read with a strftime pattern; as lenient as Python's strptime: a one-digit month or day is read (parse_date(\"2026-12-1\", \"%Y-%m-%d\") is 2026-12-01), so a deal key or a comparison takes format_date(parse_date(s, fmt), fmt), not s; null and \"\" give null; text that does not fit fails the request; bsp check refuses a literal pattern with a bad directive (%Q)",
                      literal=_date_fmt_literal),
    "parse_timestamp": Sig(2, 2, ("s", "fmt"), ("string", "string"), "a string read with a strftime pattern "
                           "that has a time of day: a timestamp (parse_date keeps only the date); with a zone when "
                           "the pattern reads one (%z: +0100, +01:00, Z), without one otherwise: "
                           "parse_timestamp(\"2026-11-25 10:00\", \"%Y-%m-%d %H:%M\") is 2026-11-25T10:00:00; null "
                           "and \"\" give null; text that does not fit fails the request",
                           literal=_date_fmt_literal),
    "local": Sig(2, 2, ("ts", "tz"), ("timestamp", "string"), "the wall-clock time the timestamp ts (with a zone) "
                 "is in the zone tz (an IANA name), without a zone: local(now(), \"Europe/Paris\") is the time in "
                 "Paris now, to compare with a fixed-width or CSV field's zone-less time; null ts gives null; a "
                 "zone-less ts fails (whose time it is is not known)", literal=_local_literal),
    "is_date": Sig(2, 2, ("s", "fmt"), ("string", "string"), "true when parse_date(s, fmt) gives a date (the same "
                   "strptime pattern, as lenient); never fails: null, \"\" and text that does not fit are false: "
                   "is_date(msg.value_date, \"%Y%m%d\")", literal=_date_fmt_literal),
    "matches": Sig(2, 2, ("s", "pattern"), ("string", "string"), "true when the whole of s matches the regular "
                   "expression pattern, a string literal that bsp check compiles and vets (a regular expression's "
                   "`\\d` is written `\"\\\\d\"` in a route): `matches(msg.ref, \"[A-Z]{3}\\\\d{8}\")`; `\\d` and "
                   "`\\w` are ASCII; null is false; a text of more than 1,000 characters is not matched: the "
                   "request is rejected naming its field (see [Regular expressions](#regular-expressions))", literal=_pattern_literal, literal_code="E078", constant=(1,)),
    "uuid": Sig(0, 0, (), (), "a random UUID string"),
    "round": Sig(1, 2, ("x", "n=0"), ("number", "int"), "x rounded to n decimals, half up (2.345 -> 2.35, "
                 "2.5 -> 3; not half even), at any size; -0.004 -> 0.00 ([money](money.md#arithmetic-and-rounding))"),
    "abs": Sig(1, 1, ("x",), ("number",), "absolute value"),
    "number": Sig(1, 1, ("s",), ("any",), 'the number a text reads as: number("20261226") is 20261226, '
                  'number(" 86.40 ") is 86.40 (a number is itself; a duration its seconds, a plain number: '
                  'number(90m) is 5400, which no timestamp moves by, so bsp check refuses now() + number(2h) '
                  'and so does the run; null and "" give null; other text is an '
                  'error, and so are 1e3, 1_000, 1,000.00 and digits of other scripts: only ASCII digits, a '
                  'sign and a point): to compare a computed text with a numeric field'),
    "coalesce": Sig(1, None, ("a", "b", "..."), (), "the first argument that is neither null nor \"\"; when none is, the last one (so `coalesce(x, \"\")` is \"\", never null)"),
    "env": Sig(1, 2, ("name", "default"), ("string", "any"),
               "an environment variable, or default; the name is a literal, never one of the engine's secrets "
               "(BSP_ADMIN_TOKEN, BSP_AUDIT_KEY, BSP_FIELD_KEYS, nor a variable a channel or format reads a "
               "token or key from: the deal fails)",
               literal=_env_literal, literal_code="E151", constant=(0,)),
    "lookup": Sig(3, 4, ("table", "key", "column", "default"), ("table", "string", "string", "any"),
                  "a column of the table row with that key, or default when there is no such row (an "
                  "effective-dated table: the row in force today; TABLE[KEY at DATE] reads another day's)"),
    "http_status": Sig(1, 1, ("call",), ("call",),
                       "the HTTP status of the answer to `call NAME` on an http call channel (200, 404, ...)"),
    "http_header": Sig(2, 2, ("call", "name"), ("call", "string"),
                       "a header of that answer (name in any case), or null when it has none"),
    "response_mti": Sig(1, 1, ("t",), ("string",), "the ISO 8583 response MTI of a request MTI t: 0100 -> 0110, "
                        "0200 -> 0210, 0421 -> 0430 (a repeat is answered as its original), 0800 -> 0810; a "
                        "response MTI (0110), null or text that is not 4 digits is an error: a channel's `on error "
                        "reply` writes `t = response_mti(msg.t)` to answer any request it could read "
                        "([channels](channels.md#tcp-listen))"),
}

# business-day calendars (is_business_day, value_date ...): their own module, which adds them to both tables
# bank statements (find, statement_check) first, then the calendars: whichever module is imported first,
# the tables (and docs/language.md's generated list) keep this order
from dsl import statements as _statements  # noqa: E402
from dsl import currency as _currency  # noqa: E402  (minor units: before the calendars, which import this module first)
from dsl import calendars as _calendars  # noqa: E402
del _calendars, _currency, _statements

assert set(FUNCTIONS) == set(SIGNATURES)
