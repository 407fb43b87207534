"""``format X = copybook "REQ.cpy" encoding cp037 record fixed`` as a component."""
from __future__ import annotations

from typing import Any

from formats import ebcdic
from formats.classify import parse_spec
from formats.component import ComponentSpec, OptionSpec
from formats.copybook.codec import CopybookCodec
from formats.copybook.keys import condition_key
from formats.copybook.layout import parse_copybook
from formats.copybook.options import CopybookOptions
from formats.copybook.records import RECORD_FORMATS
from formats.errors import SpecError
from formats.versioned import read_bytes

ENCODINGS = ebcdic.PAGES + ("utf-8",)


def _options(decl: Any) -> tuple[CopybookOptions, dict[str, Any]]:
    o = dict(decl.options)
    segment_map = o.get("segment_map")
    if isinstance(segment_map, (list, tuple)):   # ["C=COMPANY", "P=PERSON"]
        pairs = {}
        for item in segment_map:
            value, _, member = str(item).partition("=")
            pairs[value.strip()] = member.strip()
        o["segment_map"] = pairs
    if isinstance(o.get("occurs_mappings"), (list, tuple)):   # ["DETAIL1:A=0", "DETAIL1:B=1"]
        o["occurs_mappings"] = parse_occurs_mappings(o["occurs_mappings"])
    if isinstance(o.get("segment_filter"), (list, tuple)):
        o["segment_filter"] = tuple(str(x) for x in o["segment_filter"])
    opts = CopybookOptions.from_mapping(o)
    extra = {"record": o.get("record", "fixed"), "max_record": int(o.get("max_record", 1 << 20)),
             "rdw_includes_header": bool(o.get("rdw_includes_header", True))}
    return opts, extra


def parse_occurs_mappings(items: Any) -> dict[str, dict[str, int]]:
    """``["DETAIL1:A=0", "DETAIL1:B=1"]`` -> ``{"DETAIL1": {"A": 0, "B": 1}}``: the count an OCCURS
    DEPENDING ON table takes for each text its (non-numeric) counter holds."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        table, colon, rest = str(item).partition(":")
        text, eq, count = rest.rpartition("=")
        if not colon or not eq or not table.strip() or not count.strip().isdigit():
            raise ValueError(f"occurs_mappings item {str(item)!r}: expected TABLE:TEXT=COUNT, e.g. \"DETAIL1:A=0\""
                             " (the table's count when its DEPENDING ON field holds the text A)")
        out.setdefault(table.strip(), {})[text] = int(count)
    return out


def _read(decl: Any):
    path = decl.options["path"]
    try:        # as the configuration's version holds it (formats/versioned.py), not read again
        text = read_bytes(path).decode("utf-8", errors="replace")
    except OSError as exc:
        raise SpecError(f"cannot read copybook: {exc.strerror}", path=path, line=1, col=1,
                        hint="the path is relative to the route file that declares the format") from None
    return parse_copybook(text, path, decl.options.get("source_format", "fixed"))


def build(decl: Any) -> CopybookCodec:
    opts, extra = _options(decl)
    classify = parse_spec(decl.options.get("classify"))     # checked before the copybook is read
    codec = CopybookCodec(_read(decl), opts, name=decl.name, **extra)
    codec.classify = classify
    return codec


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    """The copybook's errors; else its warnings (``SpecError.warning``: accepted, but not as IBM's
    compiler would, e.g. a SIGN clause on an unsigned picture)."""
    try:
        codec = build(decl)
    except SpecError as exc:
        return [exc]
    except ValueError as exc:
        return [SpecError(str(exc), path=decl.options.get("path"))]
    return list(codec.layout.warnings)


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    try:
        codec = build(decl)
    except (SpecError, ValueError):
        return None
    roots = codec.layout.roots
    if len(roots) == 1 and codec.options.collapse_root:
        # level-88 names are keys the encoder takes (`reply Rsp { RESP_OK = true }` fills RESP-CODE)
        conds = [condition_key(name, codec.options) for c in roots[0].children for name, _v in c.conditions]
        return ([c.key for c in roots[0].children if not c.dropped] + [r.key for r in codec.layout.renames]
                + conds)
    return [r.key for r in roots]


_NUMBERS = ("display", "packed", "binary", "edited")


def field_types(decl: Any, base_dir: Any = None) -> dict[str, str] | None:
    """``{name: string|integer|decimal}`` of the top-level elementary fields (PIC X / N: string, PIC 9:
    integer without decimals, else decimal); tables (OCCURS), groups and floats are left out."""
    try:
        codec = build(decl)
    except (SpecError, ValueError):
        return None
    roots = codec.layout.roots
    nodes = roots[0].children if len(roots) == 1 and codec.options.collapse_root else roots
    out: dict[str, str] = {}
    for n in nodes:
        ft = n.ftype
        if n.dropped or n.children or ft is None or n.occurs_max is not None:
            continue
        if ft.kind in ("alnum", "national"):
            out[n.key] = "string"
        elif ft.kind in _NUMBERS:
            out[n.key] = "integer" if ft.scale <= 0 else "decimal"
    return out


def body_check(decl: Any, base_dir: Any = None):
    """A ``BodyCheck`` of the copybook's field tree (formats/copybook/bodycheck.py), or None."""
    from formats.copybook.bodycheck import BodyCheck
    try:
        return BodyCheck(build(decl))
    except (SpecError, ValueError):
        return None


COMPONENT = ComponentSpec(
    category="format",
    name="copybook",
    doc="Fixed-layout records described by a COBOL copybook (EBCDIC or ASCII): DISPLAY, COMP, COMP-3, "
        "COMP-1/2, OCCURS [DEPENDING ON], REDEFINES, 66 RENAMES, level 88 conditions as booleans; fixed or RDW files.",
    positional="path",
    options=(
        OptionSpec("path", "path", "the copybook file", required=True),
        OptionSpec("encoding", "ident", "code page of text and zoned fields", default="cp037", choices=ENCODINGS),
        OptionSpec("record", "ident", "file framing for iter_records: fixed, rdw (big-endian RDW), rdw_le",
                   default="fixed", choices=RECORD_FORMATS),
        OptionSpec("rdw_includes_header", "bool", "the RDW length counts its own 4 bytes (IBM)", default=True),
        OptionSpec("max_record", "int", "largest RDW record accepted, in bytes", default=1 << 20),
        OptionSpec("trim", "ident", "spaces stripped from PIC X values", default="right",
                   choices=("none", "left", "right", "both")),
        OptionSpec("controls", "ident", "control characters in text: keep, or space", default="keep",
                   choices=("keep", "space")),
        OptionSpec("float_format", "ident", "COMP-1/COMP-2 representation", default="ibm", choices=("ibm", "ieee")),
        OptionSpec("invalid", "ident", "a malformed number: error, or null", default="error",
                   choices=("error", "null")),
        OptionSpec("low_values_null", "bool", "all X'00' fields decode to null", default=True),
        OptionSpec("variable_occurs", "bool", "OCCURS DEPENDING ON tables take only their actual size",
                   default=False),
        OptionSpec("occurs_mappings", "list", 'counts for OCCURS DEPENDING ON a non-numeric field, per table: '
                   '["DETAIL1:A=0", "DETAIL1:B=1"] (TABLE:TEXT=COUNT)'),
        OptionSpec("segment_field", "string", "field naming the record's segment (multi-segment files)"),
        OptionSpec("segment_map", "list", 'segment value to REDEFINES member: ["C=COMPANY", "P=PERSON"]'),
        OptionSpec("segment_filter", "list", "keep only these segment values when reading files"),
        OptionSpec("drop_value_fillers", "bool", "leave elementary FILLERs out", default=True),
        OptionSpec("drop_group_fillers", "bool", "leave FILLER groups out", default=True),
        OptionSpec("filler_naming", "ident", "names of kept FILLERs", default="sequence",
                   choices=("sequence", "previous")),
        OptionSpec("collapse_root", "bool", "a single 01 record's fields are the top-level names", default=True),
        OptionSpec("conditions", "bool", "add a boolean per level-88 name", default=True),
        OptionSpec("names", "ident", "output names: keep (ACCOUNT_NO) or lower (account_no)", default="keep",
                   choices=("keep", "lower")),
        OptionSpec("binary_order", "ident", "byte order of COMP/BINARY/COMP-5: big (mainframe), little, or"
                   " native_little (COMP-5 little, COMP big: Micro Focus / GnuCOBOL on x86)", default="big",
                   choices=("big", "little", "native_little")),
        OptionSpec("source_format", "ident", "copybook source: fixed (cols 8-72) or free", default="fixed",
                   choices=("fixed", "free")),
        OptionSpec("missing_numbers", "ident", "encoding a record that leaves out a COMP-3/COMP/COMP-1/2 field:"
                   " zero (written as zero) or error", default="zero", choices=("zero", "error")),
        OptionSpec("classify", "list", 'classified fields, by their names in the values (bsp decode shows them): '
                   '["acct_no:personal", "card_no:pan"]'),
    ),
    build=build,
    check=check,
    fields=fields,
    field_types=field_types,
    body_check=body_check,
    examples=('format BillPayReq = copybook "BILLPAY-REQ.cpy" encoding cp037 record fixed',),
)
