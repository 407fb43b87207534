"""Fast decoders/encoders for the common ISO 8583 field shapes, in front of the general ones.

A character field (types n, z, an, ans, a, as, ns) with ASCII or EBCDIC data and a
fixed length or an ASCII LL/LLL/LLLL prefix - nearly every field of a card
message - is read and written by one closure that:

* checks shape and content with C-level calls (``frozenset.issuperset``,
  ``str.isprintable``, ``bytes.isdigit``) or a compiled date check;
* remembers what it validated, bounded: the wire bytes it decoded -> the value,
  and the value -> its wire bytes.  A value decoded (and so validated) once is
  encoded again by a dict lookup - a route that copies fields verbatim
  (``"11" = msg["11"]``) does not validate them twice - and the same bytes
  seen again (the reply echoing DE 11, DE 41, DE 7) are not validated again.
  Decode and encode of one field are pure functions of the bytes / the value,
  so the memo cannot change a result.

Anything the fast path does not accept (a bad value, a short message, a
non-``str`` value) goes to the general closure, which gives the same result or
raises the same ``FormatError`` with its offset, field and hint.
"""
from __future__ import annotations

from typing import Any, Callable

from formats.iso8583.content import CLASS_CHARS, parse_date_format

Decoder = Callable[[bytes, int], tuple[Any, int]]
Encoder = Callable[[Any], bytes]

MEMO_MAX = 2048          # entries per field and direction, two generations
_DIGITS = frozenset("0123456789")
_Z_CHARS = frozenset("0123456789ABCDEF:;<=>?")
_TWO = [f"{i:02d}" for i in range(100)]
_RANGE_SETS = {"MM": frozenset(_TWO[1:13]), "DD": frozenset(_TWO[1:32]), "hh": frozenset(_TWO[:24]),
               "mm": frozenset(_TWO[:60]), "ss": frozenset(_TWO[:60])}
# month/day pairs valid in every year (29 February needs the year: the general check decides)
_MONTH_DAYS = frozenset(f"{m:02d}{d:02d}" for m, last in enumerate((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1)
                        for d in range(1, last + 1))


def fast_date_ok(fmt: str) -> Callable[[str], bool] | None:
    """A True/False check that accepts only values the general date check accepts (it may send
    a valid value - 29 February, an unusual layout - to the general check)."""
    parts = parse_date_format(fmt)
    if parts is None:
        return None
    width = parts[-1][2]
    ranged = tuple((a, b, _RANGE_SETS[tok]) for tok, a, b in parts if tok in _RANGE_SETS)
    years = tuple((a, b) for tok, a, b in parts if tok in ("YY", "CCYY", "YYYY"))
    mm = next(((a, b) for tok, a, b in parts if tok == "MM"), None)
    dd = next(((a, b) for tok, a, b in parts if tok == "DD"), None)
    md = (mm[0], mm[1], dd[0], dd[1]) if mm is not None and dd is not None else None
    digits = _DIGITS

    def ok(text: str) -> bool:
        if len(text) != width:
            return False
        for a, b, allowed in ranged:
            if text[a:b] not in allowed:
                return False
        for a, b in years:
            if not digits.issuperset(text[a:b]):
                return False
        if md is not None and text[md[0]:md[1]] + text[md[2]:md[3]] not in _MONTH_DAYS:
            return False
        return True
    return ok


def _content_ok(ftype: str, fmt: str | None, validate: bool) -> tuple[bool, Callable[[str], bool] | None]:
    """(supported, check): the shape + content check as one callable (None: nothing to check)."""
    checks: list[Callable[[str], bool]] = []
    if ftype == "n":
        checks.append(_DIGITS.issuperset)
    elif ftype == "z":
        checks.append(_Z_CHARS.issuperset)
    if validate:
        if ftype == "ans":
            checks.append(str.isprintable)
        elif ftype in CLASS_CHARS:
            checks.append(CLASS_CHARS[ftype].issuperset)
        if fmt == "track2":
            return False, None            # track 2 keeps its general check (rare: one field, secret)
        if fmt:
            date = fast_date_ok(fmt)
            if date is None:
                return False, None
            if ftype == "n":
                checks = [date]           # the date check accepts ASCII digits only
            else:
                checks.append(date)
    if not checks:
        return True, None
    if len(checks) == 1:
        return True, checks[0]
    first, second = checks[0], checks[1]
    if len(checks) == 2:
        return True, lambda text: first(text) and second(text)
    return True, lambda text: all(c(text) for c in checks)


def fast_field(f: Any, cp: str, validate: bool, slow_dec: Decoder, slow_enc: Encoder) -> tuple[Decoder, Encoder] | None:
    """Fast (decode, encode) for field spec ``f``, or None when its shape is not one of the fast ones."""
    if f.subfields or f.tlv or f.type in ("b", "xn") or f.data_encoding not in ("ascii", "ebcdic"):
        return None
    if f.length is None and f.length_encoding != "ascii":
        return None
    supported, ok = _content_ok(f.type, f.format, validate)
    if not supported:
        return None
    text_codec = "latin-1" if f.data_encoding == "ascii" else cp
    ascii_digits = f.type == "n" and f.data_encoding == "ascii" and not (validate and f.format)
    if ascii_digits:
        ok = None                          # checked on the bytes: bytes.isdigit is ASCII-only
    dmemo: dict[bytes, str] = {}           # wire bytes (body) -> value
    dold: dict[bytes, str] = {}
    ememo: dict[str, bytes] = {}           # value -> wire bytes (prefix + body)
    eold: dict[str, bytes] = {}

    def remember(raw: bytes, text: str, wire: bytes) -> None:
        nonlocal dmemo, dold, ememo, eold
        if len(dmemo) >= MEMO_MAX:
            dold, dmemo = dmemo, {}
        dmemo[raw] = text
        if len(ememo) >= MEMO_MAX:
            eold, ememo = ememo, {}
        ememo[text] = wire

    fixed = f.length
    if fixed is not None:
        n = fixed

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            end = pos + n
            raw = data[pos:end]
            text = dmemo.get(raw)
            if text is None:
                text = dold.get(raw)
                if text is None:
                    if len(raw) != n or (ascii_digits and not raw.isdigit()):
                        return slow_dec(data, pos)
                    text = raw.decode(text_codec)
                    if ok is not None and not ok(text):
                        return slow_dec(data, pos)
                    remember(raw, text, raw)
            return text, end

        def enc(value: Any) -> bytes:
            if type(value) is str:
                wire = ememo.get(value)
                if wire is None:
                    wire = eold.get(value)
                    if wire is None:
                        wire = slow_enc(value)      # validates, pads, raises with the field named
                        if len(value) == n:
                            remember(wire, value, wire)
                return wire
            return slow_enc(value)
        return dec, enc

    digits = f.prefix or 0
    mx = f.max

    def dec_var(data: bytes, pos: int) -> tuple[Any, int]:
        start = pos + digits
        head = data[pos:start]
        if len(head) == digits and head.isdigit():
            end = start + int(head)
            if end - start <= mx and end <= len(data):
                raw = data[start:end]
                text = dmemo.get(raw)
                if text is None:
                    text = dold.get(raw)
                    if text is None:
                        if ascii_digits and raw and not raw.isdigit():
                            return slow_dec(data, pos)
                        text = raw.decode(text_codec)
                        if ok is not None and not ok(text):
                            return slow_dec(data, pos)
                        remember(raw, text, head + raw)
                return text, end
        return slow_dec(data, pos)

    def enc_var(value: Any) -> bytes:
        if type(value) is str:
            wire = ememo.get(value)
            if wire is None:
                wire = eold.get(value)
                if wire is None:
                    wire = slow_enc(value)
                    remember(wire[digits:], value, wire)
            return wire
        return slow_enc(value)
    return dec_var, enc_var
