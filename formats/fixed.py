"""Fixed-width records declared inline in a route file (``format X = fixed { ... }``).

Each field is a ``dsl.ir.FieldDecl``-like object (``name type width scale
pattern classification pos``).  Conventions (also in docs/formats-basic.md):

* ``string(W)``: decoded right-trimmed; encoded left-aligned, padded with
  spaces.  A value longer than W is an error (never silently cut).
* ``integer(W)``: digits, zero-padded on the left.  A negative value carries a
  leading ``-`` inside the width (``-0000042``); a leading ``+`` is accepted
  on decode.  Encoded positives carry no sign.
* ``decimal(W, S)``: by default the decimal point is *implied* (mainframe
  style): ``000000012050`` with S=2 is ``Decimal("120.50")``.  With the
  format option ``decimal_point = explicit`` the text holds the point
  (``000000120.50``).  Signs as for integers.  Decoded values always have
  exactly S places; encoding a value with more than S places is an error
  (no silent rounding).
* ``date(W, "pattern")``: strftime/strptime pattern (default ``%Y%m%d``);
  a pattern with a time directive gives a ``datetime``.
* A field that is all spaces decodes to ``""`` (string) or ``None`` (number,
  date); ``None`` or a missing key encodes as spaces.  So blank <-> absent.

The record is decoded once with the option ``encoding`` (default ``ascii``;
any single-byte code page such as ``cp037``/``cp1047`` for EBCDIC) and then
sliced.
"""
from __future__ import annotations

import codecs
import datetime as _dt
import importlib
import re
from decimal import Context, Decimal
from typing import Any, Iterable, Mapping

from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError, SpecError
from formats.exact import plain_decimal

try:  # adds cp1047, cp1141..cp1149 to the codec registry (imported for that effect alone)
    importlib.import_module("ebcdic")
except ImportError:  # pragma: no cover - declared dependency
    pass

TYPES = ("string", "integer", "decimal", "date")
_CONTROL = re.compile("[\x00-\x1f\x7f]")     # never written into a record: CR and LF end one
CLASSIFICATIONS = (None, "pan", "secret", "personal")
_CTX = Context(prec=1000)  # exact arithmetic for any field width
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%p", "%X", "%c", "%T")
_MULTIBYTE_PREFIXES = ("utf", "ucs", "utf_", "big5", "gb", "shift_jis", "euc", "iso2022", "cp932",
                       "cp949", "cp950", "hz", "johab", "punycode", "idna")


def _pos_kw(fd: Any, path: str | None = None) -> dict[str, Any]:
    pos = getattr(fd, "pos", None)
    if pos is None:
        return {"path": path}
    return {"path": getattr(pos, "file", path), "line": getattr(pos, "line", None),
            "col": getattr(pos, "col", None)}


def check_encoding(name: Any, decl: Any = None) -> list[SpecError]:
    """An encoding usable for byte-width records: known and one byte per character."""
    if not isinstance(name, str):
        return [SpecError(f"option encoding must be a code page name, got {name!r}",
                          **_pos_kw(decl), hint="e.g. encoding = cp037")]
    try:
        info = codecs.lookup(name)
    except LookupError:
        return [SpecError(f"unknown encoding {name!r}", **_pos_kw(decl),
                          hint="use ascii, latin-1, or an EBCDIC code page such as cp037, cp500, cp1047, cp1140")]
    if info.name.replace("-", "_").startswith(_MULTIBYTE_PREFIXES):
        return [SpecError(f"encoding {name!r} is multi-byte; fixed-width fields are counted in bytes",
                          **_pos_kw(decl), hint="use a single-byte code page (ascii, latin-1, cp037, ...)")]
    return []


def check_fields(fields: Iterable[Any], *, kind: str, decl: Any = None) -> list[SpecError]:
    """Problems in an inline field list.  ``kind`` is "fixed" (widths required) or "csv"."""
    errors: list[SpecError] = []
    seen: set[str] = set()
    fields = tuple(fields)
    if not fields:
        errors.append(SpecError(f"a {kind} format needs at least one field", **_pos_kw(decl),
                                hint="declare fields in braces: { name string(10) amount decimal(12, 2) }"))
    for fd in fields:
        where = _pos_kw(fd, getattr(getattr(decl, "pos", None), "file", None))
        name = getattr(fd, "name", None)
        if name in seen:
            errors.append(SpecError(f"field {name!r} is declared twice", **where, hint="rename one of them"))
        seen.add(name)
        ftype = getattr(fd, "type", None)
        if ftype not in TYPES:
            errors.append(SpecError(f"field {name!r}: unknown type {ftype!r}; expected one of {', '.join(TYPES)}",
                                    **where))
            continue
        width = getattr(fd, "width", None)
        scale = getattr(fd, "scale", None)
        if kind == "fixed":
            if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
                given = "none is given" if width is None else f"{width!r} is given"
                errors.append(SpecError(f"field {name!r}: a fixed-width field needs a positive width; {given}",
                                        **where, hint=f"write {ftype}(N), e.g. {ftype}(10)"))
                continue
        if ftype == "decimal":
            if scale is not None and (not isinstance(scale, int) or scale < 0):
                errors.append(SpecError(f"field {name!r}: decimal scale must be >= 0, got {scale!r}", **where))
            elif kind == "fixed" and scale is not None and scale >= width:
                errors.append(SpecError(f"field {name!r}: scale {scale} leaves no integer digits in width {width}",
                                        **where, hint="make the width larger than the scale"))
        elif scale is not None:
            errors.append(SpecError(f"field {name!r}: only decimal fields take a scale", **where))
        if ftype == "date":
            pattern = getattr(fd, "pattern", None) or "%Y%m%d"
            try:
                sample = _dt.datetime(2024, 12, 31, 23, 59, 58).strftime(pattern)
            except ValueError as exc:
                errors.append(SpecError(f"field {name!r}: bad date pattern {pattern!r}: {exc}", **where))
            else:
                if not _DATE_DIRECTIVE.search(pattern):
                    errors.append(SpecError(
                        f"field {name!r}: date pattern {pattern!r} has no date directive (%Y, %m, %d, ...), so "
                        f"no date can be read with it", **where,
                        hint=f"patterns are strftime codes: write {_strftime_like(pattern)!r}"))
                if kind == "fixed" and len(sample) != width:
                    errors.append(SpecError(
                        f"field {name!r}: date pattern {pattern!r} gives {len(sample)} characters "
                        f"({sample!r}) but the width is {width}", **where,
                        hint=f"write date({len(sample)}, {pattern!r}) or change the pattern"))
        elif getattr(fd, "pattern", None) is not None:
            errors.append(SpecError(f"field {name!r}: only date fields take a pattern", **where))
        cls = getattr(fd, "classification", None)
        if cls not in CLASSIFICATIONS:
            errors.append(SpecError(f"field {name!r}: unknown classification {cls!r}; expected pan, secret or personal",
                                    **where))
    return errors


def parse_number(text: str, *, ftype: str, scale: int, implied: bool, offset: int | None, field: str) -> Any:
    """Digits with an optional leading sign -> int / Decimal with exactly ``scale`` places."""
    body = text
    sign = ""
    if body[:1] in "+-" and body:
        sign, body = body[0], body[1:]
    if ftype == "integer" or implied:
        if not body or not body.isascii() or not body.isdigit():
            raise _bad_digits(text, ftype, offset, field)
        if ftype == "integer":
            return int(sign + body)
        return Decimal(f"{sign}{body}").scaleb(-scale, _CTX)
    # explicit point
    ipart, dot, fpart = body.partition(".")
    if (not (ipart + fpart)) or not (ipart + fpart).isascii() or not (ipart + fpart).isdigit() \
            or (ipart and not ipart.isdigit()) or (fpart and not fpart.isdigit()):
        raise _bad_digits(text, ftype, offset, field)
    if len(fpart) > scale:
        raise FormatError(f"{text!r} has {len(fpart)} decimal places, the field has {scale}",
                          offset=offset, field=field)
    value = Decimal(f"{sign}{ipart or '0'}.{fpart or '0'}")
    return value.quantize(Decimal(1).scaleb(-scale), context=_CTX)


def _bad_digits(text: str, ftype: str, offset: int | None, field: str) -> FormatError:
    at = offset
    if offset is not None:  # point at the first offending character
        for i, ch in enumerate(text):
            if not (ch in "0123456789" or (i == 0 and ch in "+-") or (ftype == "decimal" and ch == ".")):
                at = offset + i
                break
    return FormatError(f"expected {ftype} digits with an optional leading sign, found {text!r}",
                       offset=at, field=field,
                       hint="numbers are zero-padded on the left; a blank field means absent")


_DATE_DIRECTIVE = re.compile(r"%[YymdjbBeGV]")
_SPELLED = (("YYYY", "%Y"), ("CCYY", "%Y"), ("YY", "%y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"),
            ("MI", "%M"), ("SS", "%S"))


def _strftime_like(pattern: str) -> str:
    """``YYYYMMDD`` -> ``%Y%m%d``: the strftime pattern a COBOL / SQL style spelling means."""
    out = pattern
    for spelled, code in _SPELLED:
        out = out.replace(spelled, code)
    return out if out != pattern else "%Y%m%d"


def format_date(v: "_dt.date", pattern: str) -> str:
    """``v.strftime(pattern)`` with ``%Y`` always four digits: the C library writes year 24 as
    "24", which a date field of width 8 cannot hold and which does not read back as year 24."""
    if "%Y" in pattern:
        pattern = pattern.replace("%Y", f"{v.year:04d}")
    return v.strftime(pattern)


def to_decimal(value: Any, *, scale: int, field: str) -> Decimal:
    """A value for a decimal field, checked to fit ``scale`` places exactly."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        if isinstance(value, str):
            text, value = value, plain_decimal(value)
            if value is None:
                raise FormatError(f"expected a decimal number, got {text!r}", field=field,
                                  hint="write ASCII digits with an optional sign and decimal point (120.50): "
                                       "no exponent, thousands separator or underscore")
        else:
            raise FormatError(f"expected a Decimal, got {type(value).__name__} {value!r}", field=field,
                              hint="money is decimal.Decimal, never float")
    d = Decimal(value)
    if not d.is_finite():
        raise FormatError(f"expected a finite number, got {d}", field=field)
    q = d.quantize(Decimal(1).scaleb(-scale), context=_CTX)
    if q != d:
        raise FormatError(f"{d} has more than {scale} decimal places", field=field,
                          hint=f"round it first, e.g. round(x, {scale})")
    return q


class FixedCodec:
    """A fixed-width record codec.  ``fields`` are the declared FieldDecls."""

    def __init__(self, fields: Iterable[Any], *, encoding: str = "ascii", decimal_point: str = "implied",
                 name: str = "fixed") -> None:
        self.name = name
        self.fields = tuple(fields)
        self.encoding = encoding
        self.implied = decimal_point != "explicit"
        layout = []
        offset = 0
        for fd in self.fields:
            layout.append((fd.name, fd.type, offset, fd.width, fd.scale or 0,
                           getattr(fd, "pattern", None) or "%Y%m%d"))
            offset += fd.width
        self._layout = tuple(layout)
        self.length = offset
        self._names = frozenset(fd.name for fd in self.fields)

    def field_names(self) -> list[str]:
        return [fd.name for fd in self.fields]

    # ---------------------------------------------------------------- decode
    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FormatError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) != self.length:
            where = min(len(data), self.length)
            field = self._field_at(where) if len(data) < self.length else None
            raise FormatError(
                f"record is {len(data)} bytes, the layout is {self.length} bytes", offset=where, field=field,
                hint="check the framing and that the sender uses the same field widths"
                if len(data) < self.length else "the record has trailing bytes past the last field")
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise FormatError(f"byte 0x{data[exc.start]:02x} is not valid {self.encoding}", offset=exc.start,
                              field=self._field_at(exc.start),
                              hint="check the option encoding (e.g. cp037 for EBCDIC)") from None
        if len(text) != len(data):  # pragma: no cover - multi-byte encodings are rejected by check
            raise FormatError(f"encoding {self.encoding} is not single-byte", offset=0)
        out: dict[str, Any] = {}
        for name, ftype, off, width, scale, pattern in self._layout:
            raw = text[off:off + width]
            if ftype == "string":
                out[name] = raw.rstrip(" ")
                continue
            if raw.strip(" ") == "":
                out[name] = None
                continue
            if ftype == "date":
                out[name] = self._parse_date(raw, pattern, off, name)
            else:
                out[name] = parse_number(raw, ftype=ftype, scale=scale, implied=self.implied,
                                         offset=off, field=name)
        return out

    @staticmethod
    def _parse_date(raw: str, pattern: str, off: int, name: str) -> Any:
        try:
            value = _dt.datetime.strptime(raw, pattern)
        except ValueError:
            raise FormatError(f"{raw!r} is not a date in the form {pattern!r}", offset=off, field=name,
                              hint="dates are written with the field's strftime pattern") from None
        if any(d in pattern for d in _TIME_DIRECTIVES):
            return value
        return value.date()

    def _field_at(self, offset: int) -> str | None:
        for name, _t, off, width, _s, _p in self._layout:
            if off <= offset < off + width:
                return name
        return None

    # ---------------------------------------------------------------- encode
    def encode(self, value: Mapping[str, Any]) -> bytes:
        if not isinstance(value, Mapping):
            raise FormatError(f"expected a record (mapping of field -> value), got {type(value).__name__}")
        unknown = [k for k in value if k not in self._names]
        if unknown:
            raise FormatError(f"no field {unknown[0]!r} in this layout", field=str(unknown[0]),
                              hint="fields are: " + ", ".join(self.field_names()))
        parts: list[str] = []
        for name, ftype, off, width, scale, pattern in self._layout:
            v = value.get(name)
            parts.append(self._encode_field(v, name, ftype, off, width, scale, pattern))
        text = "".join(parts)
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise FormatError(f"character {text[exc.start]!r} cannot be written in {self.encoding}",
                              offset=exc.start, field=self._field_at(exc.start),
                              hint="use characters of the record's code page") from None

    def _encode_field(self, v: Any, name: str, ftype: str, off: int, width: int, scale: int, pattern: str) -> str:
        if v is None:
            return " " * width
        if ftype == "string":
            if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
                raise FormatError(f"expected text, got {type(v).__name__} {v!r}", offset=off, field=name)
            s = v if isinstance(v, str) else str(v)
            if len(s) > width:
                raise FormatError(f"{s!r} is {len(s)} characters, the field holds {width}", offset=off, field=name,
                                  hint="shorten the value (e.g. with substr) or widen the field")
            ctl = _CONTROL.search(s)
            if ctl is not None:
                # a partner's "AB\n<a whole record>" in a reference wrote a second record into the file
                raise FormatError(f"the text holds the control character 0x{ord(ctl.group()):02x} at character "
                                  f"{ctl.start()}: a fixed-width field holds text only (a line break would start "
                                  f"another record in the file)", offset=off + ctl.start(), field=name,
                                  hint="refuse such a request first (not has_control(msg.x) else reject ...), or "
                                       "take the character out (replace)")
            return s.ljust(width)
        if ftype == "date":
            if not isinstance(v, (_dt.date, _dt.datetime)):
                hint = (f"a route reads a text as a date with parse_date(TEXT, PATTERN), e.g. "
                        f"parse_date(x, \"%Y-%m-%d\") for a text x such as 2026-12-01; the field writes it as {pattern!r}"
                        if isinstance(v, str) else None)
                raise FormatError(f"expected a date, got {type(v).__name__} {v!r}", offset=off, field=name, hint=hint)
            s = format_date(v, pattern)
            if len(s) != width:
                raise FormatError(f"date {s!r} is {len(s)} characters, the field holds {width}", offset=off,
                                  field=name)
            return s
        if ftype == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, Decimal) and v == v.to_integral_value():
                    v = int(v)
                else:
                    raise FormatError(f"expected an integer, got {type(v).__name__} {v!r}", offset=off, field=name)
            digits, sign = str(abs(v)), "-" if v < 0 else ""
        else:
            d = to_decimal(v, scale=scale, field=name)
            sign = "-" if d < 0 else ""
            if self.implied:
                digits = str(abs(d).scaleb(scale, _CTX).to_integral_value(context=_CTX))
            else:
                digits = f"{abs(d):.{scale}f}"
        room = width - len(sign)
        if len(digits) > room:
            raise FormatError(f"{sign}{digits} needs {len(sign) + len(digits)} characters, the field holds {width}",
                              offset=off, field=name, hint="the value is too large for the declared width")
        return sign + digits.rjust(room, "0")


# ------------------------------------------------------------------ component

def _options(decl: Any) -> Mapping[str, Any]:
    return getattr(decl, "options", None) or {}


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    opts = _options(decl)
    errors = check_fields(getattr(decl, "fields", ()) or (), kind="fixed", decl=decl)
    errors += check_encoding(opts.get("encoding", "ascii"), decl)
    dp = opts.get("decimal_point", "implied")
    if dp not in ("implied", "explicit"):
        errors.append(SpecError(f"option decimal_point must be implied or explicit, got {dp!r}", **_pos_kw(decl)))
    return errors


def build(decl: Any) -> FixedCodec:
    errors = check(decl)
    if errors:
        raise errors[0]
    opts = _options(decl)
    return FixedCodec(decl.fields, encoding=opts.get("encoding", "ascii"),
                      decimal_point=opts.get("decimal_point", "implied"), name=getattr(decl, "name", "fixed"))


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    return [fd.name for fd in getattr(decl, "fields", ()) or ()]


COMPONENT = ComponentSpec(
    category="format",
    name="fixed",
    doc=("Fixed-width records with fields declared inline: string(W), integer(W), decimal(W, S) with an "
         "implied decimal point (000000012050 = 120.50), date(W, \"%Y%m%d\"). Strings are right-trimmed; "
         "numbers zero-padded with a leading '-' when negative; a blank field means absent."),
    options=(
        OptionSpec("encoding", "ident", "single-byte code page of the record: ascii, latin-1, cp037, cp500, cp1047...",
                   default="ascii"),
        OptionSpec("decimal_point", "ident", "implied (mainframe, default) or explicit ('.' written in the field)",
                   default="implied", choices=("implied", "explicit")),
    ),
    build=build,
    check=check,
    fields=fields,
    examples=(
        'format BillPayReq = fixed {\n    trace_no string(12)\n    account string(20) personal\n'
        '    amount decimal(12, 2)\n    value_date date(8, "%Y%m%d")\n}',
        'format Legacy = fixed encoding cp037 {\n    code string(4)\n    count integer(6)\n}',
    ),
    accepts_fields=True,
)
