"""ISO 8583 network specs: our YAML format, loaded into frozen dataclasses.

A spec file (see docs/formats-iso8583.md and formats/specs/iso8583_1987_*.yaml)::

    name: iso8583_1987_ascii
    mti: ascii                 # ascii | ebcdic | bcd | binary
    bitmap: hex                # hex (16 ASCII hex chars) | binary (8 bytes) | ebcdic (16 EBCDIC hex chars)
    secondary_bitmap: true     # bit 1 announces a second bitmap (fields 65-128)
    defaults: {length_encoding: ascii, data_encoding: ascii}
    fields:
      2:  {name: PAN, type: n, length: LL, max: 19, classification: pan}
      43: {type: ans, length: 40, subfields: [{name: name, length: 25}, ...]}
      55: {type: b, length: LLL, max: 255, data_encoding: binary, tlv: ber}

Every problem is reported as ``SpecError`` with file, line and column;
``check_spec`` collects all of them, ``load_spec`` raises the first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formats.errors import SpecError
from formats.iso8583.content import FORMAT_HELP, format_length, parse_date_format
from formats.iso8583.rules import MessageRule, RuleBuilder
from formats.iso8583.yamlmarks import load_with_marks
from formats.versioned import held, read_bytes

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

TYPES = ("n", "an", "ans", "a", "as", "ns", "b", "z", "xn")
TEXT_TYPES = ("an", "ans", "a", "as", "ns")
LENGTH_KINDS = {"LL": 2, "LLL": 3, "LLLL": 4}
LENGTH_ENCODINGS = ("ascii", "ebcdic", "bcd", "binary", "hex")   # hex: ASCII hex digits, as many as max needs
DATA_ENCODINGS = ("ascii", "ebcdic", "bcd", "binary", "hex")
MTI_ENCODINGS = ("ascii", "ebcdic", "bcd", "binary")
BITMAP_ENCODINGS = ("hex", "binary", "ebcdic")
CLASSES = ("pan", "secret", "personal")
# which data encodings make sense for which types
_ALLOWED_DATA = {
    "n": ("ascii", "ebcdic", "bcd"),
    "z": ("ascii", "ebcdic", "bcd"),
    "xn": ("ascii", "ebcdic"),
    "b": ("binary", "hex"),
}
_TOP_KEYS = ("name", "doc", "mti", "bitmap", "secondary_bitmap", "tertiary_bitmap", "defaults", "fields",
             "ebcdic_codepage", "messages")
_FIELD_KEYS = ("name", "doc", "type", "length", "max", "length_encoding", "length_pad", "data_encoding", "pad",
               "classification", "subfields", "tlv", "format")


@dataclass(frozen=True)
class SubfieldSpec:
    name: str
    length: int


@dataclass(frozen=True)
class FieldSpec:
    """One data element.

    ``length``: the fixed length, or None when ``prefix`` (2/3/4 digits: LL/LLL/LLLL) is set.
    Lengths count digits for n/z/xn, characters for text, bytes for b.
    ``pad``: "left" or "right" - for BCD the side of the pad nibble on odd digit counts,
    for fixed text/numbers the side where the encoder pads a short value.
    """
    number: int
    name: str
    type: str
    length: int | None
    prefix: int | None
    max: int
    length_encoding: str
    data_encoding: str
    pad: str
    classification: tuple[str, ...] = ()
    length_pad: str = "left"
    subfields: tuple[SubfieldSpec, ...] = ()
    tlv: str | None = None
    format: str | None = None          # date/time layout (MMDDhhmmss, YYMM...) or track2; see content.py

    @property
    def key(self) -> str:
        return str(self.number)


@dataclass(frozen=True)
class IsoSpec:
    name: str
    mti: str
    bitmap: str
    secondary_bitmap: bool
    fields: dict[int, FieldSpec]
    ebcdic_codepage: str = "cp500"
    doc: str = ""
    path: str | None = None
    secondary_always: bool = False     # secondary_bitmap: always - sent even when fields 65-128 are absent
    tertiary_bitmap: bool = False      # bit 65 announces a third bitmap (fields 129-192)
    messages: dict[str, MessageRule] = field(default_factory=dict)   # per-MTI rules (rules.py)

    def classification(self) -> dict[str, tuple[str, ...]]:
        """Field key -> classification tags, for every classified field in the spec."""
        return {f.key: f.classification for f in self.fields.values() if f.classification}


def builtin_specs() -> list[str]:
    return sorted(p.stem for p in SPECS_DIR.glob("iso8583_*.yaml"))


def resolve_spec_path(ref: str | Path) -> Path:
    """A spec file, or the name of a built-in spec (``iso8583_1987_ascii``).

    A route's ``path`` option arrives already made absolute by the checker, so a
    non-existent path whose last part names a built-in spec also means the built-in.
    """
    p = Path(ref)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml"):
        builtin = SPECS_DIR / f"{p.name}.yaml"
        if builtin.is_file():
            return builtin
    raise SpecError(f"no ISO 8583 spec file or built-in spec named {str(ref)!r}", path=str(ref),
                    hint=f"give a path to a .yaml spec or one of: {', '.join(builtin_specs())}")


def load_spec(ref: str | Path) -> IsoSpec:
    spec, errors = check_spec(ref)
    if errors:
        raise errors[0]
    assert spec is not None
    return spec


def check_spec(ref: str | Path) -> tuple[IsoSpec | None, list[SpecError]]:
    try:
        path = Path(ref) if held(ref) is not None else resolve_spec_path(ref)
        text = read_bytes(path).decode("utf-8")      # as the configuration's version holds it (formats/versioned.py)
    except SpecError as exc:
        return None, [exc]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SpecError(f"cannot read ISO 8583 spec: {exc}", path=str(ref))]
    return parse_spec_text(text, str(path))


def parse_spec_text(text: str, path: str | None = None) -> tuple[IsoSpec | None, list[SpecError]]:
    try:
        data, marks = load_with_marks(text, path)
    except SpecError as exc:
        return None, [exc]
    return _Builder(marks, path).build(data)


class _Builder:
    def __init__(self, marks: dict, path: str | None) -> None:
        self.marks = marks
        self.path = path
        self.errors: list[SpecError] = []

    def err(self, where: tuple, message: str, hint: str | None = None) -> None:
        line, col = None, None
        w = where
        while w not in self.marks and w:
            w = w[:-1]
        if w in self.marks:
            line, col = self.marks[w]
        self.errors.append(SpecError(message, path=self.path, line=line, col=col, hint=hint))

    def choice(self, where: tuple, value: Any, choices: tuple[str, ...], what: str) -> str | None:
        if value not in choices:
            self.err(where, f"{what} must be one of {', '.join(choices)}, not {value!r}")
            return None
        return value

    def build(self, data: Any) -> tuple[IsoSpec | None, list[SpecError]]:
        if not isinstance(data, dict):
            self.err((), "an ISO 8583 spec must be a mapping with keys name, mti, bitmap, fields")
            return None, self.errors
        for key in data:
            if key not in _TOP_KEYS:
                self.err((key, "<key>"), f"unknown key {key!r}", hint=f"known keys: {', '.join(_TOP_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            self.err(("name",), "spec needs a 'name' (text)")
            name = "?"
        mti = self.choice(("mti",), data.get("mti", "ascii"), MTI_ENCODINGS, "mti")
        bitmap = self.choice(("bitmap",), data.get("bitmap", "hex"), BITMAP_ENCODINGS, "bitmap")
        secondary = data.get("secondary_bitmap", True)
        always = secondary == "always"
        if secondary in ("auto", "always"):
            secondary = True
        if not isinstance(secondary, bool):
            self.err(("secondary_bitmap",), "secondary_bitmap must be true (= auto), false, auto or always",
                     hint="auto sends the secondary bitmap only when a field 65-128 is present; always sends it "
                          "in every message")
        tertiary = data.get("tertiary_bitmap", False)
        if not isinstance(tertiary, bool):
            self.err(("tertiary_bitmap",), "tertiary_bitmap must be true or false")
            tertiary = False
        if tertiary and not secondary:
            self.err(("tertiary_bitmap",), "a tertiary bitmap needs secondary_bitmap",
                     hint="bit 65 of the secondary bitmap announces the third one")
        codepage = data.get("ebcdic_codepage", "cp500")
        if codepage not in ("cp500", "cp037", "cp1140", "cp273", "cp1047"):
            self.err(("ebcdic_codepage",), f"unsupported EBCDIC code page {codepage!r}",
                     hint="use cp500, cp037, cp1140, cp273 or cp1047")
        defaults = data.get("defaults", {}) or {}
        if not isinstance(defaults, dict):
            self.err(("defaults",), "defaults must be a mapping")
            defaults = {}
        for key in defaults:
            if key not in ("length_encoding", "data_encoding", "binary_encoding"):
                self.err(("defaults", key, "<key>"), f"unknown default {key!r}",
                         hint="defaults may set length_encoding, data_encoding and binary_encoding")
        fields_in = data.get("fields")
        fields: dict[int, FieldSpec] = {}
        if not isinstance(fields_in, dict) or not fields_in:
            self.err(("fields",), "spec needs a non-empty 'fields' mapping (field number -> definition)")
        else:
            for key, fdef in fields_in.items():
                f = self.field(key, fdef, defaults, bool(secondary), tertiary)
                if f is not None:
                    if f.number in fields:
                        self.err(("fields", key, "<key>"), f"field {f.number} is defined twice")
                    fields[f.number] = f
        known = set(fields) | {int(k) for k in (fields_in if isinstance(fields_in, dict) else {}) if str(k).isdigit()}
        rules = RuleBuilder(self.err, known).build(data.get("messages"))
        if self.errors:
            return None, self.errors
        return IsoSpec(name=name, mti=mti or "ascii", bitmap=bitmap or "hex", secondary_bitmap=bool(secondary),
                       fields=fields, ebcdic_codepage=codepage, doc=str(data.get("doc", "")),
                       path=self.path, secondary_always=always, tertiary_bitmap=tertiary, messages=rules), []

    def field(self, key: Any, fdef: Any, defaults: dict, secondary: bool, tertiary: bool = False
              ) -> FieldSpec | None:
        where = ("fields", key)
        n_errors = len(self.errors)
        try:
            number = int(key)
        except (TypeError, ValueError):
            self.err(where + ("<key>",), f"field key {key!r} is not a field number")
            return None
        top = 192 if tertiary else 128 if secondary else 64
        if number == 1:
            self.err(where + ("<key>",), "field 1 is the secondary bitmap, not a data field",
                     hint="remove it; set 'secondary_bitmap: true' instead")
            return None
        if number == 65 and tertiary:
            self.err(where + ("<key>",), "field 65 is the tertiary bitmap when tertiary_bitmap is true",
                     hint="remove field 65 from fields")
            return None
        if not 2 <= number <= top:
            self.err(where + ("<key>",), f"field number {number} is outside 2..{top}")
            return None
        if not isinstance(fdef, dict):
            self.err(where, f"field {number}: definition must be a mapping like {{type: n, length: 6}}")
            return None
        for k in fdef:
            if k not in _FIELD_KEYS:
                self.err(where + (k, "<key>"), f"field {number}: unknown key {k!r}",
                         hint=f"known keys: {', '.join(_FIELD_KEYS)}")
        ftype = self.choice(where + ("type",), fdef.get("type"), TYPES, f"field {number}: type")
        length = fdef.get("length")
        prefix = None
        fixed: int | None = None
        if isinstance(length, str) and length in LENGTH_KINDS:
            prefix = LENGTH_KINDS[length]
            mx = fdef.get("max")
            if not isinstance(mx, int) or isinstance(mx, bool) or mx < 0:
                self.err(where + ("max",), f"field {number}: a {length} field needs 'max' (a whole number)")
                mx = 0
            elif mx >= 10 ** prefix and fdef.get("length_encoding", defaults.get("length_encoding")) not in (
                    "binary", "hex"):
                self.err(where + ("max",), f"field {number}: max {mx} does not fit a {length} length prefix")
            elif fdef.get("length_encoding", defaults.get("length_encoding")) == "binary" and \
                    mx >= 1 << (8 if prefix == 2 else 16):
                # a binary LL prefix is 1 byte, LLL / LLLL 2 bytes (codec._prefix_codec)
                nbytes = 1 if prefix == 2 else 2
                self.err(where + ("max",), f"field {number}: max {mx} does not fit a {length} binary length "
                         f"prefix ({nbytes} byte{'s' if nbytes > 1 else ''}, at most {(1 << 8 * nbytes) - 1})",
                         hint="lower max, or use a longer length (LLL / LLLL)" if prefix == 2 else "lower max")
        elif isinstance(length, int) and not isinstance(length, bool) and length > 0:
            fixed = mx = length
            if "max" in fdef and fdef["max"] != length:
                self.err(where + ("max",), f"field {number}: 'max' differs from the fixed length {length}",
                         hint="drop 'max' for fixed-length fields")
        else:
            self.err(where + ("length",), f"field {number}: length must be a positive number or LL, LLL, LLLL,"
                     f" not {length!r}")
            mx = 0
        len_enc = self.choice(where + ("length_encoding",),
                              fdef.get("length_encoding", defaults.get("length_encoding", "ascii")),
                              LENGTH_ENCODINGS, f"field {number}: length_encoding")
        default_data = (defaults.get("binary_encoding", "binary") if ftype == "b"
                        else defaults.get("data_encoding", "ascii"))
        if ftype in TEXT_TYPES and default_data == "bcd":
            default_data = "ascii"
        data_enc = self.choice(where + ("data_encoding",), fdef.get("data_encoding", default_data),
                               DATA_ENCODINGS, f"field {number}: data_encoding")
        allowed = _ALLOWED_DATA.get(ftype or "", ("ascii", "ebcdic"))
        if data_enc and ftype and data_enc not in allowed:
            self.err(where + ("data_encoding",),
                     f"field {number}: type {ftype} cannot use data_encoding {data_enc}",
                     hint=f"use one of {', '.join(allowed)}")
        pad = fdef.get("pad", "left" if ftype in ("n", "xn") or data_enc == "bcd" else "right")
        if ftype == "z" and data_enc == "bcd" and "pad" not in fdef:
            pad = "right"
        self.choice(where + ("pad",), pad, ("left", "right"), f"field {number}: pad")
        length_pad = fdef.get("length_pad", "left")
        self.choice(where + ("length_pad",), length_pad, ("left", "right"), f"field {number}: length_pad")
        cls = fdef.get("classification", ())
        if isinstance(cls, str):
            cls = tuple(c.strip() for c in cls.replace("/", ",").split(",") if c.strip())
        elif isinstance(cls, (list, tuple)):
            cls = tuple(cls)
        else:
            cls = ()
            self.err(where + ("classification",), f"field {number}: classification must be pan, secret,"
                     " personal or a list of them")
        for c in cls:
            if c not in CLASSES:
                self.err(where + ("classification",), f"field {number}: unknown classification {c!r}",
                         hint="use pan, secret or personal")
        subs: list[SubfieldSpec] = []
        subs_in = fdef.get("subfields")
        if subs_in is not None:
            if not isinstance(subs_in, list) or not subs_in:
                self.err(where + ("subfields",), f"field {number}: subfields must be a list of {{name, length}}")
            else:
                names = set()
                for i, s in enumerate(subs_in):
                    if (not isinstance(s, dict) or not isinstance(s.get("name"), str)
                            or not isinstance(s.get("length"), int) or s["length"] <= 0):
                        self.err(where + ("subfields", i), f"field {number}: subfield {i + 1} needs a name and a"
                                 " positive length")
                        continue
                    if s["name"] in names:
                        self.err(where + ("subfields", i), f"field {number}: subfield {s['name']!r} repeated")
                    names.add(s["name"])
                    subs.append(SubfieldSpec(s["name"], s["length"]))
                if fixed is not None and subs and sum(s.length for s in subs) != fixed:
                    self.err(where + ("subfields",), f"field {number}: subfield lengths add up to "
                             f"{sum(s.length for s in subs)}, the field is {fixed} long")
                if ftype in ("b", "n", "z") and subs:
                    self.err(where + ("subfields",), f"field {number}: positional subfields need a text type"
                             " (an, ans, ...)")
        tlv = fdef.get("tlv")
        if tlv is not None:
            if tlv != "ber":
                self.err(where + ("tlv",), f"field {number}: tlv must be 'ber', not {tlv!r}")
            elif ftype != "b":
                self.err(where + ("tlv",), f"field {number}: BER-TLV needs type b")
            if subs:
                self.err(where + ("tlv",), f"field {number}: a field has either subfields or tlv, not both")
        fmt = fdef.get("format")
        if fmt is not None:
            if fmt == "track2":
                if ftype != "z":
                    self.err(where + ("format",), f"field {number}: format track2 needs type z")
            elif not isinstance(fmt, str) or parse_date_format(fmt) is None:
                self.err(where + ("format",), f"field {number}: unknown format {fmt!r}", hint=f"use {FORMAT_HELP}")
            elif ftype != "n":
                self.err(where + ("format",), f"field {number}: a date/time format needs type n, not {ftype}")
            elif fixed is not None and format_length(fmt) != fixed:
                self.err(where + ("format",), f"field {number}: format {fmt} has {format_length(fmt)} digits, "
                         f"the field is {fixed} long")
        if len(self.errors) != n_errors:
            return None
        return FieldSpec(number=number, name=str(fdef.get("name", f"field {number}")), type=ftype or "ans",
                         length=fixed, prefix=prefix, max=mx, length_encoding=len_enc or "ascii",
                         data_encoding=data_enc or "ascii", pad=pad, classification=cls, length_pad=length_pad,
                         subfields=tuple(subs), tlv=tlv, format=fmt)


def spec_from_dict(data: dict[str, Any], name: str | None = None) -> IsoSpec:
    """Build a spec from an already-loaded mapping (no marks: errors carry no line)."""
    spec, errors = _Builder({}, name).build(data)
    if errors:
        raise errors[0]
    assert spec is not None
    return spec
