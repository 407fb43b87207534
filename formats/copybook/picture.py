"""PIC string + USAGE + SIGN clause -> ``FieldType`` (kind, size, digits, scale).

Kinds:
  alnum    PIC X / A (and alphanumeric-edited with B 0 /): text
  display  zoned decimal: 9 S V P, optional explicit '.', overpunched or separate sign
  edited   numeric-edited DISPLAY: Z * + - CR DB , . B 0 / $
  packed   COMP-3 / PACKED-DECIMAL
  binary   COMP / COMP-4 / BINARY / COMP-0 (digit-limited), COMP-5 (native), COMP-9
  float    COMP-1 (4 bytes) / COMP-2 (8 bytes), IBM hexadecimal or IEEE 754
  national PIC N [USAGE NATIONAL]: UTF-16BE text, 2 bytes per N

``scale``: value = stored integer * 10**-scale (negative for trailing P).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

_REPEAT = re.compile(r"(CR|DB|.)(?:\((\d+)\))?")


@dataclass(frozen=True)
class FieldType:
    kind: str
    size: int
    digits: int = 0
    scale: int = 0
    signed: bool = False
    sign_pos: str = "trailing"      # leading / trailing
    sign_separate: bool = False
    explicit_point: bool = False
    native: bool = False            # COMP-5: no digit limit
    pic: str = ""
    symbols: tuple[str, ...] = ()   # expanded picture (edited kinds)

    @property
    def integral(self) -> bool:
        return self.scale <= 0


class PictureError(ValueError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def expand(pic: str) -> list[str]:
    out: list[str] = []
    for m in _REPEAT.finditer(pic.upper()):
        sym, count = m.group(1), m.group(2)
        n = int(count) if count else 1
        if n <= 0 or n > 1_000_000:
            raise PictureError(f"repeat count {n} in PIC {pic} is out of range")
        out.extend([sym] * n)
    return out


def binary_size(digits: int, usage: str) -> int:
    if usage == "COMP-9" and digits <= 2:
        return 1
    if digits <= 4:
        return 2
    if digits <= 9:
        return 4
    if digits <= 18:
        return 8
    return math.ceil((math.log2(10) * digits + 1) / 8)


_USAGES = {"DISPLAY", "COMP", "COMP-0", "COMP-1", "COMP-2", "COMP-3", "COMP-4", "COMP-5", "COMP-9",
           "BINARY", "PACKED-DECIMAL", "POINTER", "INDEX", "COMP-X", "NATIONAL", "DISPLAY-1"}
_EDIT = set("Z*+-,.B0/$") | {"CR", "DB"}


def field_type(pic: str | None, usage: str | None, sign_pos: str | None = None,
               sign_separate: bool = False) -> FieldType:
    u = (usage or "DISPLAY").upper()
    if u not in _USAGES:
        raise PictureError(f"unsupported USAGE {u}", hint="use DISPLAY, COMP, COMP-1..5, BINARY or PACKED-DECIMAL")
    if u == "COMP-X":
        u = "COMP-5"
    if u in ("COMP-1", "COMP-2"):
        return FieldType("float", 4 if u == "COMP-1" else 8, pic=pic or "", signed=True)
    if u in ("POINTER", "INDEX"):
        return FieldType("binary", 4, digits=9, native=True, pic=pic or "")
    if pic is None:
        raise PictureError(f"elementary item with USAGE {u} needs a PIC clause")
    syms = expand(pic)
    if not syms:
        raise PictureError(f"empty PIC {pic!r}")
    chars = set(syms)
    bad = chars - set("XA9SVP") - _EDIT - {"N", "G"}
    if bad:
        raise PictureError(f"PIC {pic}: unexpected symbol {sorted(bad)[0]!r}",
                           hint="a PIC holds X A 9 S V P and editing symbols Z * + - CR DB , . B 0 /")
    if "G" in chars or u == "DISPLAY-1":
        raise PictureError(f"PIC {pic}: DBCS items (PIC G, USAGE DISPLAY-1) are not supported",
                           hint="DBCS needs a mixed code page (e.g. cp930/cp939); declare the bytes as PIC X(2n)"
                                " and convert them in a step, or use PIC N USAGE NATIONAL (UTF-16)")
    if "N" in chars:
        if chars != {"N"}:
            raise PictureError(f"PIC {pic}: N (national) cannot be mixed with other symbols",
                               hint="national items are PIC N(n); national-edited pictures are not supported")
        if usage is not None and u != "NATIONAL":
            raise PictureError(f"PIC {pic} is national; USAGE {u} needs another PIC",
                               hint="write PIC N(n) USAGE NATIONAL, or leave USAGE out")
        return FieldType("national", 2 * len(syms), pic=pic)
    if u == "NATIONAL":
        raise PictureError(f"PIC {pic} USAGE NATIONAL: only PIC N national items are supported",
                           hint="national decimal and national-edited items (PIC 9 / X USAGE NATIONAL) are not;"
                                " use PIC N(n) or USAGE DISPLAY")
    if chars & {"X", "A"}:
        if chars - set("XA9B0/"):
            raise PictureError(f"PIC {pic}: mixes alphanumeric and numeric symbols")
        if u != "DISPLAY":
            raise PictureError(f"PIC {pic} is alphanumeric; USAGE {u} needs a numeric PIC")
        return FieldType("alnum", len(syms), pic=pic)
    if syms.count("S") > 1 or ("S" in syms and syms[0] != "S"):
        raise PictureError(f"PIC {pic}: S must appear once, first")
    if syms.count("V") + syms.count(".") > 1:
        raise PictureError(f"PIC {pic}: only one V or '.' decimal point is allowed")
    signed = syms[0] == "S"
    body = [s for s in syms if s != "S"]
    edited = bool(set(body) & (_EDIT - {"."}))
    if edited or ("." in body and u != "DISPLAY"):
        if u != "DISPLAY":
            raise PictureError(f"PIC {pic}: numeric-edited pictures are DISPLAY only")
        return _edited(pic, body, signed)
    explicit = "." in body
    digits = body.count("9")
    if digits == 0:
        raise PictureError(f"PIC {pic}: a numeric picture needs at least one 9")
    if digits > 38:
        raise PictureError(f"PIC {pic}: {digits} digits; at most 38 are supported")
    # scale: digits right of V/'.', leading P (0.PPP999) or trailing P (999PPP)
    point = body.index("V") if "V" in body else body.index(".") if explicit else None
    first9 = body.index("9")
    last9 = len(body) - 1 - body[::-1].index("9")
    p_lead = sum(1 for s in body[:first9] if s == "P")
    p_trail = sum(1 for s in body[last9 + 1:] if s == "P")
    if p_lead and p_trail:
        raise PictureError(f"PIC {pic}: P may lead or trail the 9s, not both")
    if p_trail and point is not None and point < last9:
        raise PictureError(f"PIC {pic}: trailing P cannot follow a decimal point")
    if p_lead:
        scale = p_lead + digits
    elif p_trail:
        scale = -p_trail
    elif point is not None:
        scale = sum(1 for s in body[point:] if s == "9")
    else:
        scale = 0
    sp = (sign_pos or "trailing").lower()
    sep = bool(sign_separate) and signed or (bool(sign_separate) and sign_pos is not None)
    if sign_separate and not signed:
        signed = True   # SIGN ... SEPARATE on an unsigned PIC: upstream data carries the sign
    if sign_pos and not sign_separate and not signed:
        signed = True
    if u == "DISPLAY":
        size = digits + (1 if explicit else 0) + (1 if sep else 0)
        return FieldType("display", size, digits, scale, signed, sp, sep, explicit, pic=pic)
    if explicit:
        raise PictureError(f"PIC {pic}: an explicit '.' needs USAGE DISPLAY")
    if u in ("COMP-3", "PACKED-DECIMAL"):
        return FieldType("packed", digits // 2 + 1, digits, scale, signed, pic=pic)
    native = u == "COMP-5"
    return FieldType("binary", binary_size(digits, u), digits, scale, signed, native=native, pic=pic)


def _edited(pic: str, body: list[str], signed: bool) -> FieldType:
    size = sum(2 if s in ("CR", "DB") else 1 for s in body if s not in ("V", "S", "P"))
    digit_syms = {"9", "Z", "*"}
    # floating insertion: a run of 2+ leading '+', '-' or '$' is one symbol plus digit places
    syms = list(body)
    n_digits = 0
    scale = 0
    seen_point = False
    first = syms[0]
    float_run = 0
    if first in ("+", "-", "$"):
        while float_run < len(syms) and syms[float_run] == first:
            float_run += 1
    for i, s in enumerate(syms):
        is_digit = s in digit_syms or (float_run > 1 and 0 < i < float_run)
        if is_digit:
            n_digits += 1
            if seen_point:
                scale += 1
        elif s in ("V", "."):
            seen_point = True
    if n_digits == 0:
        raise PictureError(f"PIC {pic}: a numeric-edited picture needs digit positions (9 or Z)")
    has_sign = bool({"+", "-", "CR", "DB"} & set(syms)) or signed
    return FieldType("edited", size, n_digits, scale, has_sign, explicit_point="." in syms,
                     pic=pic, symbols=tuple(syms))
