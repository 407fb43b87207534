"""Number representations: zoned DISPLAY, packed (COMP-3), binary, floats, edited
(and national PIC N text, UTF-16BE, which shares the decoder protocol).

Each ``*_decoder`` returns ``f(raw, text, start) -> value`` and each
``*_encoder`` returns ``f(value) -> bytes``.  Decoders raise ``_Bad(message,
offset)``; the record codec turns that into ``FormatError`` with the field
path (or into None for lenient fields).  Values: ``int`` for integral
pictures, ``Decimal`` with the declared scale otherwise, ``float`` only for
COMP-1 / COMP-2.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from formats.copybook.picture import FieldType
from formats.exact import exact_stored, plain_decimal
from formats import ebcdic

CTX = Context(prec=80)


class _Bad(Exception):
    hint: str | None = None

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _scaled(ft: FieldType):
    """int stored value -> int / Decimal with the declared scale."""
    scale = ft.scale
    if scale > 0:
        def out(v: int) -> Decimal:
            return Decimal(v).scaleb(-scale, CTX)
    elif scale < 0:
        mult = 10 ** -scale

        def out(v: int) -> int:
            return v * mult
    else:
        def out(v: int) -> int:
            return v
    return out


_DATE_TEXT = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")     # 2026-12-10: a date sent as JSON text


def to_stored(ft: FieldType, value, where: str) -> int:
    """A value -> the stored integer (value * 10**scale), exact or an error."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        if isinstance(value, str):
            text, value = value, plain_decimal(value)
            if value is None:
                raise ValueError(f"{text!r} is not a finite number written in ASCII digits with an optional sign "
                                 f"and decimal point (no exponent, thousands separator or underscore)"
                                 + (f"; PIC {ft.pic} holds a date as the number the host reads: in a route, "
                                    f"number(format_date(parse_date(text, \"%Y-%m-%d\"), \"%Y%m%d\"))"
                                    if _DATE_TEXT.fullmatch(text.strip()) else ""))
        else:
            raise ValueError(f"expected int or Decimal, got {type(value).__name__}"
                             + (" (money is never float: use Decimal)" if isinstance(value, float) else "")
                             + (f" (PIC {ft.pic} holds a date as the number the host reads: in a route, "
                                f"number(format_date(d, \"%Y%m%d\")))" if isinstance(value, (dt.date, dt.time))
                                else ""))
    # COMP-5 has no digit limit: bound by its bytes (the binary encoder says when it does not fit)
    limit = len(str(1 << (8 * ft.size))) if ft.native else ft.digits
    v = exact_stored(Decimal(value), ft.scale, limit)
    if v == "finite":
        raise ValueError(f"{value} is not a finite number")
    if v == "places" and ft.scale < 0:
        raise ValueError(f"{value} is not a multiple of {10 ** -ft.scale}: PIC {ft.pic} stores no digits for "
                         f"its {-ft.scale} trailing P")
    if v == "places":
        raise ValueError(f"{value} has more decimal places than PIC {ft.pic} holds ({max(ft.scale, 0)})")
    if v == "digits":
        if ft.native:
            raise ValueError(f"{value} does not fit {ft.size} binary bytes")
        raise ValueError(f"{value} does not fit PIC {ft.pic} ({ft.digits} digits)")
    assert isinstance(v, int)
    if v < 0 and not ft.signed:
        raise ValueError(f"{value} is negative but PIC {ft.pic} is unsigned")
    return v


# ----------------------------------------------------------------- zoned

class ZonedTables:
    """Per-code-page byte tables for DISPLAY numbers."""

    def __init__(self, page: str) -> None:
        asc = ebcdic.canonical(page) in ebcdic.ASCII_PAGES
        self.ascii = asc
        digit = [ord("x")] * 256
        over = [ord("x")] * 256     # sign-carrying byte -> digit
        neg = [False] * 256
        pos = [False] * 256         # carries an explicit + zone
        space = 0x20 if asc else 0x40
        for d in range(10):
            b = (0x30 if asc else 0xF0) + d
            digit[b] = over[b] = 0x30 + d
        digit[space] = ord(" ")
        if asc:
            for d, ch in enumerate("{ABCDEFGHI"):
                over[ord(ch)] = 0x30 + d
                pos[ord(ch)] = True
            for d, ch in enumerate("}JKLMNOPQR"):
                over[ord(ch)] = 0x30 + d
                neg[ord(ch)] = True
            for d in range(10):
                over[0x70 + d] = 0x30 + d
                neg[0x70 + d] = True
        else:
            for d in range(10):
                for zone, is_neg in ((0xC0, False), (0xA0, False), (0xE0, False), (0xD0, True), (0xB0, True)):
                    over[zone + d] = 0x30 + d
                    neg[zone + d] = is_neg
                    pos[zone + d] = not is_neg
        self.digit = bytes(digit)
        self.over = bytes(over)
        self.neg = tuple(neg)
        self.space = space
        self.plus = 0x2B if asc else 0x4E
        self.minus = 0x2D if asc else 0x60
        self.point = 0x2E if asc else 0x4B
        self.comma = 0x2C if asc else 0x6B
        self.zero = 0x30 if asc else 0xF0
        self.pos_zone = None if asc else 0xC0
        self.neg_zone = None if asc else 0xD0


def display_decoder(ft: FieldType, zt: ZonedTables, low_values_null: bool):
    size = ft.size
    out = _scaled(ft)
    dig, over, neg, space = zt.digit, zt.over, zt.neg, zt.space
    blank = bytes([space]) * size
    low = bytes(size)
    signed, leading, sep = ft.signed, ft.sign_pos == "leading", ft.sign_separate
    plus, minus, point = zt.plus, zt.minus, zt.point
    pic = ft.pic

    def bad(start: int, raw: bytes):
        return _Bad(f"invalid DISPLAY number {raw[start:start + size].hex(' ')!r} for PIC {pic}", start)

    if ft.explicit_point:
        frac = ft.scale
        zero = zt.zero

        def dec(raw: bytes, text: str, s: int):
            b = raw[s:s + size]
            if b == blank or (low_values_null and b == low):
                return None
            negative = False
            if signed:
                if sep:
                    sb = b[0] if leading else b[-1]
                    if sb not in (plus, minus):
                        raise bad(s, raw)
                    negative = sb == minus
                    b = b[1:] if leading else b[:-1]
                else:
                    i = 0 if leading else len(b.rstrip(bytes([space]))) - 1
                    if i < 0:
                        raise bad(s, raw)
                    negative = neg[b[i]]
                    if over[b[i]] == 0x78:
                        raise bad(s, raw)
                    b = b[:i] + bytes([zero + over[b[i]] - 0x30]) + b[i + 1:]
            parts = b.split(bytes([point]))
            if len(parts) != 2:
                raise bad(s, raw)
            ip = parts[0].translate(dig).strip()
            fp = parts[1].translate(dig).strip()
            if len(fp) > frac or not (ip or fp) or not (ip or b"0").isdigit() or not (fp or b"0").isdigit():
                raise bad(s, raw)
            v = int((ip or b"0") + fp.ljust(frac, b"0"))
            return out(-v if negative else v)
        return dec

    if not signed:
        def dec(raw: bytes, text: str, s: int):
            b = raw[s:s + size]
            try:
                return out(int(b.translate(dig)))
            except ValueError:
                if b == blank or (low_values_null and b == low):
                    return None
                raise bad(s, raw) from None
        return dec

    if sep:
        if leading:
            def dec(raw: bytes, text: str, s: int):
                b = raw[s:s + size]
                try:
                    v = int(b[1:].translate(dig))
                except ValueError:
                    if b == blank or (low_values_null and b == low):
                        return None
                    raise bad(s, raw) from None
                c = b[0]
                if c == minus:
                    return out(-v)
                if c == plus:
                    return out(v)
                raise bad(s, raw)
        else:
            def dec(raw: bytes, text: str, s: int):
                b = raw[s:s + size]
                try:
                    v = int(b[:-1].translate(dig))
                except ValueError:
                    if b == blank or (low_values_null and b == low):
                        return None
                    raise bad(s, raw) from None
                c = b[-1]
                if c == minus:
                    return out(-v)
                if c == plus:
                    return out(v)
                raise bad(s, raw)
        return dec

    if leading:
        def dec(raw: bytes, text: str, s: int):
            b = raw[s:s + size]
            c = b[0]
            try:
                v = int(bytes((over[c],)) + b[1:].translate(dig))
            except ValueError:
                if b == blank or (low_values_null and b == low):
                    return None
                raise bad(s, raw) from None
            return out(-v if neg[c] else v)
        return dec

    def dec(raw: bytes, text: str, s: int):
        e = s + size
        c = raw[e - 1]
        try:
            v = int(raw[s:e - 1].translate(dig) + bytes((over[c],)))
        except ValueError:
            b = raw[s:e]
            if b == blank or (low_values_null and b == low):
                return None
            raise bad(s, raw) from None
        return out(-v if neg[c] else v)
    return dec


def display_encoder(ft: FieldType, zt: ZonedTables):
    size = ft.size
    asc = zt.ascii

    def enc(value) -> bytes:
        if value is None:
            return bytes([zt.space]) * size
        v = to_stored(ft, value, "")
        negative = v < 0
        digits = str(abs(v)).rjust(ft.digits, "0")
        body = bytes(zt.zero + int(c) for c in digits)
        if ft.explicit_point:
            k = len(body) - ft.scale
            body = body[:k] + bytes([zt.point]) + body[k:]
        if not ft.signed:
            return body
        if ft.sign_separate:
            sb = bytes([zt.minus if negative else zt.plus])
            return sb + body if ft.sign_pos == "leading" else body + sb
        i = 0 if ft.sign_pos == "leading" else len(body) - 1
        d = body[i] - zt.zero
        if asc:
            ch = ("}JKLMNOPQR" if negative else "{ABCDEFGHI")[d]
            b = ord(ch)
        else:
            b = (zt.neg_zone if negative else zt.pos_zone) + d
        return body[:i] + bytes([b]) + body[i + 1:]
    return enc


# ---------------------------------------------------------------- packed

_POS_NIBBLES = {"c", "a", "e", "f"}
_NEG_NIBBLES = {"d", "b"}


def packed_decoder(ft: FieldType, low_values_null: bool):
    size, out, signed, pic = ft.size, _scaled(ft), ft.signed, ft.pic
    limit = 10 ** ft.digits
    pos_set = {"c", "a", "e", "f"} if signed else {"f", "c"}
    neg_set = {"d", "b"} if signed else set()

    def dec(raw: bytes, text: str, s: int):
        h = raw[s:s + size].hex()
        sg = h[-1]
        try:
            v = int(h[:-1] or "0")
        except ValueError:
            i = next(k for k, ch in enumerate(h) if ch not in "0123456789")
            raise _Bad(f"invalid packed digits {h!r} for PIC {pic} COMP-3: nibble {i + 1} is "
                       f"{h[i].upper()}, expected a digit 0-9", s + i // 2) from None
        if v >= limit:
            raise _Bad(f"packed value {v} exceeds PIC {pic}", s)
        if sg in pos_set:
            return out(v)
        if sg in neg_set:
            return out(-v)
        raise _Bad(f"invalid packed sign nibble {sg.upper()!r} in {h!r} for PIC {pic} COMP-3; expected "
                   + ("C, F, A or E (+) or D, B (-)" if signed else "F or C (unsigned)"), s + size - 1)
    return dec


def packed_encoder(ft: FieldType):
    size = ft.size

    def enc(value) -> bytes:
        v = to_stored(ft, value, "")
        sign = "d" if v < 0 else ("c" if ft.signed else "f")
        return bytes.fromhex(str(abs(v)).rjust(size * 2 - 1, "0") + sign)
    return enc


# ---------------------------------------------------------------- binary

def binary_decoder(ft: FieldType, little: bool = False):
    size, out, signed, pic = ft.size, _scaled(ft), ft.signed, ft.pic
    limit = None if ft.native else 10 ** ft.digits
    order = "little" if little else "big"
    from_bytes = int.from_bytes

    def dec(raw: bytes, text: str, s: int):
        v = from_bytes(raw[s:s + size], order, signed=signed)
        if limit is not None and (v >= limit or -v >= limit):
            raise _Bad(f"binary value {v} exceeds PIC {pic} ({ft.digits} digits)", s)
        return out(v)
    return dec


def binary_encoder(ft: FieldType, little: bool = False):
    size, signed = ft.size, ft.signed

    def enc(value) -> bytes:
        v = to_stored(ft, value, "")
        try:
            return v.to_bytes(size, "little" if little else "big", signed=signed)
        except OverflowError:
            raise ValueError(f"{value} does not fit {size} binary bytes") from None
    return enc


# ---------------------------------------------------------------- floats

def ibm_to_float(b: bytes) -> float:
    n = int.from_bytes(b, "big")
    bits = len(b) * 8 - 8
    sign = n >> (bits + 7)
    exp = (n >> bits) & 0x7F
    frac = n & ((1 << bits) - 1)
    v = math.ldexp(frac, 4 * (exp - 64) - bits)
    return -v if sign else v


def float_to_ibm(x: float, size: int) -> bytes:
    bits = size * 8 - 8
    if x == 0:
        return bytes(size)
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{x} has no IBM hexadecimal floating point form")
    sign = 0x80 if x < 0 else 0
    m, e = math.frexp(abs(x))             # abs(x) = m * 2**e, 0.5 <= m < 1
    e16 = -((-e) // 4)                    # ceil(e / 4)
    frac = round(math.ldexp(m, e - 4 * e16 + bits))
    if frac >= 1 << bits:
        frac >>= 4
        e16 += 1
    if not 0 <= e16 + 64 <= 127:
        raise ValueError(f"{x} is out of IBM floating point range")
    return bytes([sign | (e16 + 64)]) + frac.to_bytes(size - 1, "big")


def _shortest_single(x: float, raw: bytes, back) -> float:
    """A COMP-1 (4 bytes, about 7 digits) widened to a Python float shows digits the item never held
    (-30503.93 reads as -30503.9296875): give the float of the shortest decimal that ``back``
    (the item's own encoder) writes as the same 4 bytes, as IBM DISPLAY and cobrix show it
    (of two such decimals, the nearer)."""
    if x != x or x in (math.inf, -math.inf) or x == 0:
        return x
    # from 6 digits: a normal COMP-1 holds at least 21 bits, so no two 6-digit decimals read back to the
    # same bytes, and a shorter one that does is one of the two 6-digit decimals either side of x
    # (an IEEE subnormal, below 2**-126, holds fewer: search it from 1 digit)
    for digits in range(6 if abs(x) >= 1.1754943508222875e-38 else 1, 10):
        near = f"{x:.{digits}g}"                  # the nearer of the two, most often the one
        if _writes(back, float(near), raw):
            return float(near)
        exact = Decimal(x)
        other = Context(prec=digits, rounding=ROUND_FLOOR if Decimal(near) > exact else ROUND_CEILING).plus(exact)
        if _writes(back, float(other), raw):
            return float(other)
    return x


def _writes(back, y: float, raw: bytes) -> bool:
    try:
        return back(y) == raw
    except (ValueError, OverflowError):           # rounded past the end of the range
        return False


def float_decoder(ft: FieldType, ieee: bool):
    size = ft.size
    if ieee:
        st = struct.Struct(">f" if size == 4 else ">d")
        unpack = st.unpack_from
        if size == 4:
            pack = st.pack

            def dec(raw: bytes, text: str, s: int):
                x = unpack(raw, s)[0]
                return _shortest_single(x, raw[s:s + 4], pack)
            return dec

        def dec(raw: bytes, text: str, s: int):
            return unpack(raw, s)[0]
        return dec

    if size == 4:
        def dec(raw: bytes, text: str, s: int):
            b = raw[s:s + 4]
            return _shortest_single(ibm_to_float(b), b, lambda y: float_to_ibm(y, 4))
        return dec

    def dec(raw: bytes, text: str, s: int):
        return ibm_to_float(raw[s:s + size])
    return dec


def float_encoder(ft: FieldType, ieee: bool):
    size = ft.size

    def enc(value) -> bytes:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"expected a number, got {type(value).__name__}")
        x = float(value)
        if ieee:
            try:
                return struct.pack(">f" if size == 4 else ">d", x)
            except OverflowError:
                raise ValueError(f"{value} is out of float range") from None
        return float_to_ibm(x, size)
    return enc


# ---------------------------------------------------------------- edited

_DIGIT_SYMS = {"9", "Z", "*"}


def _edit_positions(ft: FieldType) -> list[tuple[str, int]]:
    """(symbol, width) per output position, with floating runs marked 'F'."""
    syms = list(ft.symbols)
    run = 0
    if syms and syms[0] in "+-$":
        while run < len(syms) and syms[run] == syms[0]:
            run += 1
    out = []
    for i, s in enumerate(syms):
        if s in ("V", "P", "S"):
            continue
        if run > 1 and 0 < i < run:
            out.append(("F", 1))
        else:
            out.append((s, 2 if s in ("CR", "DB") else 1))
    return out


def edited_decoder(ft: FieldType):
    size, out, pic = ft.size, _scaled(ft), ft.pic
    positions = _edit_positions(ft)

    def dec(raw: bytes, text: str, s: int):
        t = text[s:s + size]
        if not t.strip():
            return None
        digits = []
        negative = False
        i = 0
        for sym, w in positions:
            ch = t[i:i + w]
            i += w
            if sym in _DIGIT_SYMS or sym == "F":
                if ch.isdigit() and ch.isascii():
                    digits.append(ch)
                elif ch in (" ", "*", "+", "-", "$", ",") and sym != "9":
                    digits.append("0")
                    if ch == "-":
                        negative = True
                else:
                    raise _Bad(f"invalid edited number {t!r} for PIC {pic}", s)
            elif sym in ("+", "-"):
                if ch == "-":
                    negative = True
                elif ch.isdigit() and sym in ("+", "-") and positions[0][0] == sym:
                    digits.append(ch)   # single leading sign position holding a digit: lenient
                elif ch not in ("+", " "):
                    raise _Bad(f"invalid sign {ch!r} in edited number {t!r} for PIC {pic}", s)
            elif sym in ("CR", "DB"):
                if ch == sym:
                    negative = True
                elif ch.strip():
                    raise _Bad(f"invalid {sym} in edited number {t!r} for PIC {pic}", s)
        v = int("".join(digits) or "0")
        return out(-v if negative else v)
    return dec


def edited_encoder(ft: FieldType, page: str):
    size = ft.size
    positions = _edit_positions(ft)
    n_digit = sum(1 for sym, _ in positions if sym in _DIGIT_SYMS or sym == "F")

    def enc(value) -> bytes:
        if value is None:
            return ebcdic.encode(" " * size, page)
        v = to_stored(ft, value, "")
        negative = v < 0
        digs = str(abs(v)).rjust(n_digit, "0")
        if len(digs) > n_digit:
            raise ValueError(f"{value} does not fit PIC {ft.pic}")
        # integer part digit positions before the point may be suppressed
        chars = []
        k = 0
        suppressing = True
        point_seen = False
        int_places = n_digit - max(ft.scale, 0)
        for sym, _w in positions:
            if sym in _DIGIT_SYMS or sym == "F":
                d = digs[k]
                k += 1
                if sym == "9" or d != "0" or k > int_places or point_seen:
                    suppressing = False
                if suppressing and sym != "9":
                    chars.append("*" if sym == "*" else " ")
                else:
                    chars.append(d)
            elif sym in (".", "V"):
                point_seen = True
                if sym == ".":
                    chars.append(".")
            elif sym == "+":
                chars.append("-" if negative else "+")
            elif sym == "-":
                chars.append("-" if negative else " ")
            elif sym in ("CR", "DB"):
                chars.append(sym if negative else "  ")
            elif sym == ",":
                chars.append(" " if suppressing else ",")
            elif sym == "B":
                chars.append(" ")
            else:
                chars.append(sym)
        return ebcdic.encode("".join(chars), page)
    return enc


# ---------------------------------------------------------------- national (PIC N)

_NATIONAL_SPACE = " ".encode("utf-16-be")


def national_decoder(ft: FieldType, trim: str, low_values_null: bool):
    """PIC N(n) USAGE NATIONAL: 2n bytes of UTF-16BE, trimmed of U+0020 like PIC X."""
    size, pic = ft.size, ft.pic
    low = bytes(size)
    strip = {"right": str.rstrip, "left": str.lstrip, "both": str.strip}.get(trim)

    def dec(raw: bytes, text: str, s: int):
        b = raw[s:s + size]
        if low_values_null and b == low:
            return None
        try:
            t = b.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise _Bad(f"invalid UTF-16BE in PIC {pic} ({exc.reason})", s + exc.start) from None
        return strip(t, " ") if strip else t
    return dec


def national_encoder(ft: FieldType, low_values_null: bool):
    size, pic = ft.size, ft.pic

    def enc(value) -> bytes:
        if value is None:
            return bytes(size) if low_values_null else _NATIONAL_SPACE * (size // 2)
        if not isinstance(value, str):
            value = str(value)
        try:
            b = value.encode("utf-16-be")
        except UnicodeEncodeError as exc:
            raise ValueError(f"character {value[exc.start]!r} cannot be written as UTF-16") from None
        if len(b) > size:
            raise ValueError(f"{len(b) // 2} UTF-16 code units do not fit PIC {pic}"
                             + ("" if f"({size // 2})" in pic or len(pic) == size // 2
                                else f", which holds {size // 2}"))
        return b + _NATIONAL_SPACE * ((size - len(b)) // 2)
    return enc
