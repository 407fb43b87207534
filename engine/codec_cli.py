"""The logic behind ``bsp decode`` / ``bsp encode`` (the typer glue is engine/commands/codec.py).

``CodecArgs`` holds what the analyst typed (``None`` = not given);
``make_setup(args)`` checks the combination and builds the codec (raising
``UsageError`` for anything the analyst must fix before a byte is read);
``decode_records(setup, source)`` yields ``(record_no, byte_offset,
values | FormatError)`` and ``encode_records(setup, values)`` returns the
bytes of many records with their framing.

JSON lines written by ``bsp decode`` (``to_json_line``): ``Decimal`` as an
exact JSON number (``120.50`` keeps its two places), ``date``/``datetime``/``time``
as ISO 8601 strings, COMP-1/COMP-2 floats as the shortest JSON number that
reads back to the same float, bytes as uppercase hex text.
"""
from __future__ import annotations

import dataclasses

import datetime as _dt
import importlib
import itertools
import re
from dataclasses import dataclass, field, fields as dc_fields
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from dsl.ir import FormatDecl
from engine.defaults import CODEC_KINDS
from formats import json_codec
from formats.classify import TAGS, parse_spec, strictest, tags_of
from formats.errors import FormatError, SpecError
from formats.framing import FRAMINGS, FramingError, make_framer

# Format kinds the commands know, and the module holding each kind's COMPONENT (engine/defaults.py: --help
# lists them without importing this module).
KINDS: dict[str, str] = CODEC_KINDS
# Message framings for the one-message codecs (copybook has --record, csv is a file, swift finds RJE itself).
FRAMING_CHOICES = ("none", "lines") + tuple(sorted(FRAMINGS))
FRAMED_KINDS = ("iso8583", "json", "xml", "fixed")

# Options that belong to one kind (flag text, kinds it applies to).  Anything else given is contradictory.
KIND_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "encoding": ("--encoding", ("copybook",)),
    "record": ("--record", ("copybook",)),
    "rdw_includes_header": ("--rdw-includes-header/--rdw-excludes-header", ("copybook",)),
    "max_record": ("--max-record", ("copybook",)),
    "segment_field": ("--segment-field", ("copybook",)),
    "segment": ("--segment", ("copybook",)),
    "segment_filter": ("--segment-filter", ("copybook",)),
    "trim": ("--trim", ("copybook",)),
    "controls": ("--controls", ("copybook",)),
    "float_format": ("--float-format", ("copybook",)),
    "invalid": ("--invalid", ("copybook",)),
    "low_values_null": ("--low-values-null/--no-low-values-null", ("copybook",)),
    "variable_occurs": ("--variable-occurs", ("copybook",)),
    "occurs_mapping": ("--occurs-mapping", ("copybook",)),
    "keep_value_fillers": ("--keep-value-fillers", ("copybook",)),
    "keep_group_fillers": ("--keep-group-fillers", ("copybook",)),
    "filler_naming": ("--filler-naming", ("copybook",)),
    "collapse_root": ("--collapse-root/--no-collapse-root", ("copybook",)),
    "conditions": ("--conditions/--no-conditions", ("copybook",)),
    "names": ("--names", ("copybook",)),
    "source_format": ("--source-format", ("copybook",)),
    "spec": ("--spec", ("iso8583",)),
    "message": ("--message", ("swift", "iso20022")),
    "statements": ("--statements", ("swift", "iso20022")),
    "check_balances": ("--check-balances", ("swift", "iso20022")),
    "xsd": ("--xsd", ("iso20022",)),
    "xsd_dir": ("--xsd-dir", ("iso20022",)),
    "validate": ("--validate/--no-validate", ("iso20022", "iso8583")),
    "schema": ("--schema", ("json",)),
    "lists": ("--lists", ("xml",)),
    "delimiter": ("--delimiter", ("csv",)),
    "header": ("--header/--no-header", ("csv",)),
    "framing": ("--framing", FRAMED_KINDS),
}


# Closed choices, checked before anything is built so the message names the flag.
CHOICES: dict[str, tuple[str, ...]] = {
    "record": ("fixed", "rdw", "rdw_le"),
    "trim": ("none", "left", "right", "both"),
    "controls": ("keep", "space"),
    "float_format": ("ibm", "ieee"),
    "invalid": ("error", "null"),
    "filler_naming": ("sequence", "previous"),
    "names": ("keep", "lower"),
    "source_format": ("fixed", "free"),
    "framing": FRAMING_CHOICES,
}


class UsageError(Exception):
    """Bad arguments: the command prints it and exits 2."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass
class CodecArgs:
    """Every option of decode/encode; None means "not given" (so defaults stay the codec's own)."""

    format: str | None = None
    copybook: Path | None = None
    route: Path | None = None
    name: str | None = None
    # copybook
    encoding: str | None = None
    record: str | None = None
    rdw_includes_header: bool | None = None
    max_record: int | None = None
    segment_field: str | None = None
    segment: list[str] | None = None
    segment_filter: list[str] | None = None
    trim: str | None = None
    controls: str | None = None
    float_format: str | None = None
    invalid: str | None = None
    low_values_null: bool | None = None
    variable_occurs: bool | None = None
    occurs_mapping: list[str] | None = None
    keep_value_fillers: bool | None = None
    keep_group_fillers: bool | None = None
    filler_naming: str | None = None
    collapse_root: bool | None = None
    conditions: bool | None = None
    names: str | None = None
    source_format: str | None = None
    # others
    spec: str | None = None
    message: str | None = None
    statements: bool | None = None
    check_balances: bool | None = None
    xsd: Path | None = None
    xsd_dir: Path | None = None
    validate: bool | None = None
    schema: Path | None = None
    lists: list[str] | None = None
    delimiter: str | None = None
    header: bool | None = None
    framing: str | None = None
    classify: list[str] | None = None

    def given(self) -> list[str]:
        """Names of the kind-specific options given."""
        out = []
        for f in dc_fields(self):
            if f.name in KIND_OPTIONS:
                v = getattr(self, f.name)
                if v is not None and v is not False and v != []:
                    out.append(f.name)
        return out


@dataclass
class Setup:
    kind: str
    codec: Any
    framing: str = "none"               # for FRAMED_KINDS
    statements: bool = False            # swift: MT940/942 .sta exports
    check_balances: bool = False        # swift --statements: opening balance + entries = closing balance
    tags: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ building

def _component(kind: str) -> Any:
    return importlib.import_module(KINDS[kind]).COMPONENT


def _usage_from_spec(exc: SpecError, what: str) -> UsageError:
    text, hint = str(exc), exc.hint
    for route_words, cli_words in _HINT_FLAGS:        # said the command line's way
        text = text.replace(route_words, cli_words)
        hint = hint.replace(route_words, cli_words) if hint else hint
    return UsageError(f"{what}: {text}", hint)


def _require_file(p: Path | None, what: str) -> str | None:
    if p is None:
        return None
    if not Path(p).is_file():
        raise UsageError(f"{what} {p}: no such file")
    return str(Path(p).resolve())


def _copybook_options(a: CodecArgs) -> dict[str, Any]:
    o: dict[str, Any] = {"path": _require_file(a.copybook, "--copybook")}
    simple = ("encoding", "record", "rdw_includes_header", "max_record", "segment_field", "trim", "controls",
              "float_format", "invalid", "low_values_null", "variable_occurs", "filler_naming", "collapse_root",
              "conditions", "names", "source_format")
    for k in simple:
        v = getattr(a, k)
        if v is not None:
            o[k] = v
    if a.keep_value_fillers:
        o["drop_value_fillers"] = False
    if a.keep_group_fillers:
        o["drop_group_fillers"] = False
    if a.segment:
        pairs = {}
        for item in a.segment:
            value, eq, member = item.partition("=")
            if not eq or not value or not member:
                raise UsageError(f"--segment {item!r}: expected VALUE=GROUP",
                                 "e.g. --segment C=COMPANY --segment P=PERSON (the REDEFINES member to decode "
                                 "when the segment field holds VALUE)")
            pairs[value] = member
        if not a.segment_field:
            raise UsageError("--segment needs --segment-field (the field whose value picks the group)")
        o["segment_map"] = pairs
    if a.occurs_mapping:
        from formats.copybook.component import parse_occurs_mappings
        try:
            o["occurs_mappings"] = parse_occurs_mappings(a.occurs_mapping)
        except ValueError as exc:
            raise UsageError(f"--occurs-mapping: {exc}") from None
    if a.segment_filter:
        if not a.segment_field:
            raise UsageError("--segment-filter needs --segment-field")
        o["segment_filter"] = tuple(a.segment_filter)
    return o


def _kind_options(kind: str, a: CodecArgs) -> dict[str, Any]:
    if kind == "copybook":
        return _copybook_options(a)
    if kind == "iso8583":
        if not a.spec:
            from formats.iso8583.spec import builtin_specs
            raise UsageError("--format iso8583 needs --spec FILE|NAME",
                             f"a .yaml network spec, a moov-io .json spec, or one of: {', '.join(builtin_specs())}")
        return {"spec": a.spec} if a.validate is None else {"spec": a.spec, "validate": a.validate}
    if kind == "swift":
        return {"message": a.message} if a.message else {}
    if kind == "iso20022":
        o: dict[str, Any] = {}
        if a.message:
            o["message"] = a.message
        if a.xsd:
            o["xsd"] = _require_file(a.xsd, "--xsd")
        if a.xsd_dir:
            if not Path(a.xsd_dir).is_dir():
                raise UsageError(f"--xsd-dir {a.xsd_dir}: no such directory")
            o["xsd_dir"] = str(Path(a.xsd_dir).resolve())
        if a.validate is not None:
            o["validate"] = a.validate
        return o
    if kind == "json":
        return {"schema": _require_file(a.schema, "--schema")} if a.schema else {}
    if kind == "xml":
        return {"lists": list(a.lists)} if a.lists else {}
    if kind == "csv":
        o = {}
        if a.delimiter is not None:
            o["delimiter"] = a.delimiter
        if a.header is not None:
            o["header"] = a.header
        return o
    if kind == "fixed":
        raise UsageError("--format fixed needs its field list: declare the format in a route file and use "
                         "--route FILE --name FORMAT",
                         'e.g. format BillPayReq = fixed { txn_code string(4) amount decimal(12, 2) }')
    raise AssertionError(kind)


def _decl_from_route(a: CodecArgs) -> tuple[FormatDecl, Any, str]:
    """The format ``--name`` declared in ``--route``; for a plugin's kind also its ``ComponentSpec`` and the
    note naming the kind and plugin (else None, "")."""
    from dsl.load import compile_paths

    from engine.registry import default_registry
    if not a.name:
        raise UsageError("--route needs --name FORMAT (the format declared in the route file)")
    path = Path(a.route)  # type: ignore[arg-type]
    if not path.is_file():
        raise UsageError(f"--route {path}: no such file")
    registry = default_registry()
    for kind in KINDS:   # kinds not (yet) in the engine's built-in list still resolve here
        if registry.get("format", kind) is None:
            registry.register(_component(kind))
    result = compile_paths([path], registry)
    if result.program is None:
        first = result.errors[0]
        raise UsageError(f"{path} does not compile: {first.pos}: {first.message}",
                         f"run `bsp check {path}` to see all {len(result.errors)} error(s)")
    decl = result.program.formats.get(a.name)
    if decl is None:
        known = ", ".join(sorted(result.program.formats)) or "none"
        raise UsageError(f"--name {a.name}: {path} declares no format of that name", f"formats declared: {known}")
    if decl.kind in KINDS:
        return decl, None, ""
    spec = registry.get("format", decl.kind)
    if spec is None or spec.build is None or registry.origin("format", decl.kind) is None:
        raise UsageError(f"format {a.name} is of kind {decl.kind!r}, which bsp decode/encode cannot run",
                         f"supported kinds: {', '.join(KINDS)}, and the format kinds of installed plugins")
    from engine.runtime.binder import plugin_note
    return decl, spec, plugin_note(registry, "format", decl.kind)


def make_setup(a: CodecArgs) -> Setup:
    """Check the option combination and build the codec; raises UsageError."""
    for opt, allowed in CHOICES.items():
        v = getattr(a, opt)
        if v is not None and v not in allowed:
            raise UsageError(f"{KIND_OPTIONS[opt][0].split('/')[0]} {v!r}: expected one of {', '.join(allowed)}")
    if a.name and not a.route:
        raise UsageError("--name needs --route FILE (the route file that declares the format)")
    if a.route:
        if a.copybook:
            raise UsageError("--route and --copybook contradict: the route file's format names its own copybook")
        decl, plugin, note = _decl_from_route(a)
        if a.format and a.format != decl.kind:
            raise UsageError(f"--format {a.format} contradicts format {decl.name}, which is {decl.kind} "
                             f"in {a.route}", "leave --format out when using --route")
        kind = decl.kind
        extra = [n for n in a.given() if n != "framing"]
        if extra:
            raise UsageError(f"{KIND_OPTIONS[extra[0]][0]} cannot be combined with --route: format {decl.name}'s "
                             f"options come from {a.route}", "change the route file, or drop --route and give the "
                             "format's options on the command line")
    else:
        plugin, note = None, ""
        kind = a.format or ("copybook" if a.copybook else None)
        if kind is None:
            raise UsageError("say which format: --format KIND (or --copybook FILE, or --route FILE --name FORMAT)",
                             f"kinds: {', '.join(KINDS)}")
        if kind not in KINDS:
            raise UsageError(f"unknown format {kind!r}", f"expected one of {', '.join(KINDS)}")
        if a.copybook and kind != "copybook":
            raise UsageError(f"--copybook contradicts --format {kind}")
        if kind == "copybook" and not a.copybook:
            raise UsageError("--format copybook needs --copybook FILE.cpy")
        decl = None
    for name in a.given():
        flag, kinds = KIND_OPTIONS[name]
        if kind not in kinds and not (plugin is not None and name == "framing"):   # a plugin's: one message
            raise UsageError(f"{flag.split('/')[0]} does not apply to --format {kind}",
                             f"it is an option of {', '.join(kinds)}")
    if a.statements and a.message and kind == "swift":
        raise UsageError("--statements reads MT940/MT942 exports; it cannot be combined with --message")
    if a.check_balances and not a.statements:
        raise UsageError("--check-balances checks bank statements (MT940, camt.053): it needs --statements")
    if decl is None:
        decl = FormatDecl(name=kind, kind=kind, options=_kind_options(kind, a))
    try:
        extra_tags = parse_spec(list(a.classify)) if a.classify else {}
    except SpecError as exc:
        raise UsageError(f"--classify: {exc.message}", exc.hint or f"PATH:TAG with TAG one of {', '.join(TAGS)}")
    if kind == "copybook" and "missing_numbers" not in decl.options:
        # JSON lines hold whole records (what bsp decode writes): a number left out is a mistake,
        # not an amount of zero.  A route format may still say missing_numbers zero.
        decl = dataclasses.replace(decl, options={**decl.options, "missing_numbers": "error"})
    codec = _build(kind, decl) if plugin is None else _build_plugin(plugin, decl, note)
    if kind == "swift" and a.statements:     # records are statement views, not FIN values
        from formats.swift.classes import statement_view_tags
        tags = statement_view_tags()
    else:
        tags = codec_tags(codec)
    tags.update(extra_tags)
    return Setup(kind=kind, codec=codec, framing=a.framing or "none", statements=bool(a.statements),
                 check_balances=bool(a.check_balances), tags=tags)


def codec_tags(codec: Any) -> dict[str, str]:
    """Classified paths of a codec: declared fields, ``classify`` option, or an ISO 8583 spec's tags (a field
    with several: the one that shows least of it, ``formats.classify.SHOWS_LEAST``, as the ledger takes it)."""
    spec = getattr(codec, "spec", None)
    if spec is not None and callable(getattr(spec, "classification", None)):
        return {key: strictest(tags) for key, tags in spec.classification().items() if set(tags) & set(TAGS)}
    if callable(getattr(codec, "fields", None)):
        return dict(getattr(codec, "classify", None) or {})
    return tags_of(codec)


def _build_plugin(spec: Any, decl: Any, note: str) -> Any:
    """A plugin format's codec (``--route``), its decode checked as the engine checks it
    (``engine.runtime.plugin_codec``): a value a message cannot hold is a bad record, not a crash."""
    from engine.runtime.plugin_codec import CheckedCodec
    try:
        return CheckedCodec(spec.build(decl), note)
    except Exception as exc:   # noqa: BLE001 - a plugin's constructor: say whose it is
        raise UsageError(f"format {decl.name}{note}: {type(exc).__name__}: {exc}") from None


def _build(kind: str, decl: Any) -> Any:
    if kind == "iso8583" and str(decl.options.get("spec", "")).endswith(".json"):
        from formats.iso8583.codec import Iso8583Codec
        from formats.iso8583.moov import load_moov_spec
        try:
            spec = load_moov_spec(_require_file(Path(decl.options["spec"]), "--spec"))
            return Iso8583Codec(spec, validate=decl.options.get("validate", True))
        except SpecError as exc:
            raise _usage_from_spec(exc, "--spec") from None
    comp = _component(kind)
    if comp.check is not None and kind != "copybook":   # copybook's check is a full build
        errs = comp.check(decl)
        if errs:
            raise _usage_from_spec(errs[0], f"format {kind}")
    try:
        codec = comp.build(decl)
    except SpecError as exc:
        raise _usage_from_spec(exc, f"format {kind}") from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"format {kind}: {exc}") from None
    if kind == "iso8583" and decl.options.get("validate") is False and getattr(codec, "validate", False):
        from formats.iso8583.codec import Iso8583Codec
        codec = Iso8583Codec(codec.spec, decl.name, validate=False)
    return codec


# ------------------------------------------------------------------ values <-> JSON lines

def plain(value: Any) -> Any:
    """Decoded values made writable as JSON (dict subclasses, floats, bytes, tuples)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Decimal) and not value.is_finite():
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    return value


def to_json_line(value: Any) -> bytes:
    return json_codec.dumps(plain(value))


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?\Z")


def _revive_swift(value: Any) -> Any:
    """JSON gave strings and ints; SWIFT's typed block 4 fields want dates and Decimal amounts."""
    if isinstance(value, dict):
        return {k: _revive_swift(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive_swift(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        if _DATE.match(value):
            return _dt.date.fromisoformat(value)
        if _DATETIME.match(value):
            return _dt.datetime.fromisoformat(value)
    return value


def _revive_fields(fields: Any, value: Any) -> Any:
    """Declared date fields (fixed, csv) arrive from JSON as ISO text: back to date / datetime."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for fd in fields:
        v = out.get(fd.name)
        if getattr(fd, "type", None) == "date" and isinstance(v, str) and v:
            try:
                out[fd.name] = (_dt.datetime.fromisoformat(v) if "T" in v or " " in v.strip()
                                else _dt.date.fromisoformat(v))
            except ValueError:
                pass   # the codec says what is wrong with it, naming the field
    return out


def revive(setup: Setup, value: Any) -> Any:
    """JSON-line values made what the codec's encoder takes (dates, Decimal amounts)."""
    fields = getattr(setup.codec, "fields", None)
    if setup.kind in ("fixed", "csv") and fields and not callable(fields):
        return _revive_fields(fields, value)
    if setup.kind == "swift" and isinstance(value, dict) and isinstance(value.get("block4"), list):
        value = dict(value)
        value["block4"] = [dict(f, value=_revive_swift(f.get("value"))) if isinstance(f, dict) else f
                           for f in value["block4"]]
    return value


# ------------------------------------------------------------------ decoding

Result = tuple[int, int, Any]   # (record_no, byte_offset, values | FormatError)


def _placed(exc: FormatError, record: int, base: int) -> FormatError:
    exc.record = record
    exc.offset = base if exc.offset is None else exc.offset + base
    return exc


def decode_records(setup: Setup, source: bytes | BinaryIO, *, strict: bool = False) -> Iterator[Result]:
    """Every record of ``source`` as ``(record_no, offset, values | FormatError)``.

    A FormatError whose ``fatal`` attribute is true ends the stream (a torn
    frame: nothing after it can be trusted)."""
    kind = setup.kind
    codec = setup.codec
    if kind == "copybook":
        for no, off, v in codec.iter_records(source, strict=False):
            if isinstance(v, FormatError):
                if v.record is None:
                    v.record = no
                if v.offset is None:
                    v.offset = off
            yield no, off, v
        return
    data = source if isinstance(source, (bytes, bytearray)) else source.read()
    data = bytes(data)
    if kind == "csv":
        try:
            yield from codec.iter_batch(data)
        except FormatError as exc:
            exc.fatal = True  # type: ignore[attr-defined]
            yield exc.record or 0, exc.offset or 0, exc
        return
    if kind == "swift":
        yield from _swift_records(setup, data)
        return
    if kind == "iso20022":
        if setup.statements:
            yield from _camt_statement_records(setup, data)
            return
        yield 1, 0, _one(codec, data, 1, 0)
        return
    yield from _framed(setup, data)


def _camt_statement_records(setup: Setup, data: bytes) -> Iterator[Result]:
    """A camt.053 / .052 / .054 file: one record per statement (``Stmt``, ``Rpt``, ``Ntfctn``), each decoded as
    a document of its own (formats.iso20022.statements_split, as a file watch channel's record = camt053)
    with its offset in the file.  ``check_balances``: each statement adds up (opening booked balance +
    booked entries = CLBD) and opens where the statement before it of the same account closed; a camt.052
    intraday report has no closing balance: only its entries are checked against its ``TxsSummry``."""
    from formats.iso20022.camt_balance import balance_problem, continuity_problem, report_problem
    from formats.iso20022.statements_split import split_statements
    try:
        parts = split_statements(data)
    except FormatError as exc:
        exc.fatal = True  # type: ignore[attr-defined]
        yield 1, exc.offset or 0, _placed(exc, 1, 0)
        return
    closed: dict[str, Any] = {}
    for no, (offset, part) in enumerate(parts, 1):
        item = _one(setup.codec, part, no, offset)
        if setup.check_balances and not isinstance(item, FormatError):
            group = next((v for k, v in item.items() if k.startswith("BkToCstmr")), None) or {}
            for key in ("Stmt", "Rpt", "Ntfctn"):
                stmts = group.get(key) if isinstance(group, dict) else None
                if stmts:
                    break
            stmt = stmts[0] if isinstance(stmts, list) and stmts else {}
            if key == "Rpt":    # a camt.052 intraday report: no closing balance, only its TxsSummry (as an MT942)
                problem = report_problem(stmt)
            else:
                problem = continuity_problem(stmt, closed) or balance_problem(stmt)
            if problem is not None:
                ident = stmt.get("Id") if isinstance(stmt, dict) else None
                tag = re.search(rb"<(?:[A-Za-z_][\w.-]*:)?(?:Stmt|Rpt|Ntfctn)[\s>]", part)
                at = offset + (tag.start() if tag else 0)          # the statement's start tag in the file
                noun = "intraday report" if key == "Rpt" else "statement"
                item = _placed(FormatError(f"{noun} {ident}: {problem}" if ident and not
                                           problem.startswith("statement ") else problem,
                                           hint="the report's entries are not what its TxsSummry says: an "
                                                "entry is missing or an amount is wrong" if key == "Rpt" else
                                           "the statement does not add up (or its entries are not what its "
                                           "TxsSummry says), or does not open where the one before it of its "
                                           "account closed"), no, at)
        yield no, offset, item


# Hints written for route files, said the command line's way.
_HINT_FLAGS = (("give the format option xsd (or xsd_dir)", "give --xsd FILE (or --xsd-dir DIR)"),
               ("validate = false", "--no-validate"),
               ("xsd_dir folder", "--xsd-dir folder"), ("point xsd_dir at", "point --xsd-dir at"),
               ("name the file with the option xsd", "name the file with --xsd FILE"))


def _unusable_schema(exc: SpecError) -> FormatError:
    """A schema the codec loads when a message first needs it (an ISO 20022 ``--xsd-dir``'s) that cannot be
    used: every record would fail alike, so the run stops at the first (``fatal``), naming the file."""
    err = FormatError(f"the message's schema cannot be used: {exc}", hint=exc.hint or "fix that file, or give "
                      "--xsd FILE with the message's schema")
    err.fatal = True  # type: ignore[attr-defined]
    return err


def _one(codec: Any, data: bytes, no: int, base: int) -> Any:
    try:
        return codec.decode(data)
    except SpecError as exc:
        return _placed(_unusable_schema(exc), no, base)
    except FormatError as exc:
        if exc.hint:
            for route_words, cli_words in _HINT_FLAGS:
                exc.hint = exc.hint.replace(route_words, cli_words)
        return _placed(exc, no, base)


def _framed(setup: Setup, data: bytes) -> Iterator[Result]:
    codec = setup.codec
    if setup.framing == "none":
        yield 1, 0, _one(codec, data, 1, 0)
        return
    if setup.framing == "lines":
        pos = 0
        no = 0
        for line in data.splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            if body.strip():
                no += 1
                yield no, pos, _one(codec, body, no, pos)
            pos += len(line)
        return
    framer = make_framer(setup.framing)
    width = framer.width  # type: ignore[attr-defined]
    pos = 0
    no = 0
    try:
        frames = framer.feed(data)
    except FramingError as exc:
        exc.fatal = True  # type: ignore[attr-defined]
        yield 1, exc.offset or 0, _placed(exc, 1, 0)
        return
    for frame in frames:
        no += 1
        yield no, pos, _one(codec, frame, no, pos + width)
        pos += width + len(frame)
    err = framer.error
    if err is None:
        try:
            framer.eof("file")
        except FramingError as exc:
            err = exc
    if err is not None:
        err.record = no + 1
        err.fatal = True  # type: ignore[attr-defined]
        yield no + 1, err.offset or pos, err


def _swift_records(setup: Setup, data: bytes) -> Iterator[Result]:
    from formats.swift import parse_fin, split_rje
    if setup.statements:
        yield from _statement_records(data, balances=setup.check_balances)
        return
    if not data.lstrip(b" \r\n").startswith(b"{"):
        err = FormatError("a FIN message starts with a basic header block {1:...}", offset=0, record=1,
                          field="block1", hint="a bank statement export (lines like :20:, :61:) reads with "
                                               "--statements")
        err.fatal = True  # type: ignore[attr-defined]
        yield 1, 0, err
        return
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        err = FormatError(f"byte {data[exc.start]:#04x} is not ASCII: FIN text uses the SWIFT X set",
                          offset=exc.start, record=1, hint="bank statement exports (.sta): add --statements")
        err.fatal = True  # type: ignore[attr-defined]
        yield 1, exc.start, err
        return
    no = 0
    search = 0
    for part in split_rje(text):
        base = text.find(part, search)
        search = base + len(part)
        pos = 0
        while True:
            while pos < len(part) and part[pos] in " \r\n":
                pos += 1
            if pos >= len(part):
                break
            no += 1
            try:
                _values, end = parse_fin(part[pos:])
            except FormatError as exc:
                yield no, base + pos, _placed(exc, no, base + pos)
                break   # the rest of this RJE part cannot be delimited
            chunk = part[pos:pos + end]
            yield no, base + pos, _one(setup.codec, chunk.encode("ascii"), no, base + pos)
            pos += end


def _statement_records(data: bytes, *, balances: bool = False) -> Iterator[Result]:
    """MT940/942 bank exports: one record per statement, each with its own number and byte offset.

    UTF-8, or ISO 8859-1 when the file is not valid UTF-8 (as the reconciliation's MT940
    reader does).  A statement with a bad field, without a mandatory one (opening and
    closing balance ...), with balances in two currencies or (``balances``) whose entries do
    not take the opening balance to the closing balance is reported and the next one is read."""
    from formats.swift import iter_statements, statement_view
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "latin-1"   # banks' .sta exports are often ISO 8859-1
    to_byte = _ByteOffsets(text, encoding)
    try:
        statements = iter_statements(text, check=True, balances=balances)
        first = next(statements)
    except FormatError as exc:
        exc.fatal = True  # type: ignore[attr-defined]
        yield 1, 0, _placed(exc, 1, 0)
        return
    for no, (start, item) in enumerate(itertools.chain([first], statements), 1):
        base = to_byte(start)
        if not isinstance(item, FormatError):
            try:
                item = statement_view(item)
            except FormatError as exc:
                item = exc
        if isinstance(item, FormatError):
            item.record = no
            item.offset = base if item.offset is None else to_byte(item.offset)
        yield no, base, item


class _ByteOffsets:
    """Character offsets into decoded text -> byte offsets into the file (UTF-8 characters take 1-4)."""

    def __init__(self, text: str, encoding: str) -> None:
        self.text, self.encoding = text, encoding
        self.char, self.byte = 0, 0

    def __call__(self, char: int) -> int:
        if self.encoding == "latin-1":
            return char
        if char < self.char:
            self.char, self.byte = 0, 0
        self.byte += len(self.text[self.char:char].encode(self.encoding))
        self.char = char
        return self.byte


# ------------------------------------------------------------------ encoding

def frame_one(setup: Setup, payload: bytes) -> bytes:
    if setup.kind == "copybook":
        return setup.codec.frame(payload)
    if setup.framing == "lines":
        return payload + b"\n"
    if setup.framing in FRAMINGS:
        return make_framer(setup.framing).frame(payload)
    return payload


def check_encodable(setup: Setup) -> None:
    if setup.kind == "swift" and setup.statements:
        raise UsageError("--statements is read-only: bsp encode writes FIN messages, not statement exports",
                         "encode the MT940 as FIN values (decode it without --statements)")


def encode_records(setup: Setup, records: Iterable[tuple[int, int, Any]], *, strict: bool = False
                   ) -> Iterator[tuple[int, int, bytes | FormatError]]:
    """``records``: (line_no, byte offset of the line, values).  Yields (line_no, offset, bytes | FormatError)."""
    codec = setup.codec
    if setup.kind == "csv":
        rows = list(records)
        good = []
        columns = None
        for no, off, v in rows:
            try:
                v = revive(setup, v)
                codec.encode(v)   # each row alone first, so one bad row does not sink the file
                if not good:
                    columns = codec.batch_columns(v)     # no declared fields: the first row's columns
                codec.batch_cells(v, len(good) + 1, columns)
            except FormatError as exc:
                yield no, off, _located(exc, no, off)
                continue
            good.append(v)
        yield 0, 0, codec.encode_batch(good)
        return
    if setup.kind == "swift":
        yield from _encode_swift(setup, records)
        return
    for no, off, v in records:
        try:
            payload = frame_one(setup, codec.encode(revive(setup, v)))
        except SpecError as exc:
            yield no, off, _located(_unusable_schema(exc), no, off)
            continue
        except FormatError as exc:
            yield no, off, _located(exc, no, off)
            continue
        yield no, off, payload


def _located(exc: FormatError, no: int, off: int) -> FormatError:
    """An encode error points at the JSON line it came from (record = line number, ``input_offset`` =
    the line's byte in the input); ``offset`` stays the byte of the encoded record where the field
    goes, when the format said it (``engine.commands.codec.describe_encode``)."""
    exc.record = no
    exc.input_offset = off      # type: ignore[attr-defined]
    return exc


def frame_header(setup: Setup) -> int | None:
    """Bytes an encoded record's framing puts before it in the output (an RDW, a length prefix);
    None when not known (a batch file, whose records are gathered)."""
    if setup.kind in ("csv", "swift"):
        return None
    if setup.kind != "copybook" and setup.framing == "lines":
        return 0
    try:
        framed = frame_one(setup, b"\xff")
    except Exception:  # noqa: BLE001 - a framing that takes no such payload: the offset stays unknown
        return None
    return framed.rfind(b"\xff")


def _encode_swift(setup: Setup, records: Iterable[tuple[int, int, Any]]
                  ) -> Iterator[tuple[int, int, bytes | FormatError]]:
    """One message: its FIN text.  Several: an RJE batch, each message on its own lines, '$' lines between."""
    done: list[tuple[int, int, bytes]] = []
    for no, off, v in records:
        try:
            done.append((no, off, setup.codec.encode(revive(setup, v))))
        except FormatError as exc:
            yield no, off, _located(exc, no, off)
    if len(done) == 1:
        yield done[0]
        return
    for i, (no, off, msg) in enumerate(done):
        yield no, off, (b"$\n" if i else b"") + msg + b"\n"
