"""The ``iso20022`` format kind: ``format Pay = iso20022 pacs.008 xsd "pacs.008.001.08.xsd"``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from formats.classify import parse_spec
from formats.component import ComponentSpec, FieldKind, OptionSpec
from formats.errors import SpecError
from formats.iso20022.codec import ENVELOPE_DEFAULT, HEADER_DEFAULT, Iso20022Codec
from formats.iso20022.schema import Catalog, TypeShape, load_schema, matches

_MSG = re.compile(r"[a-z]{4}\.\d{3}(?:\.\d{3}\.\d{2}(?:\.[A-Za-z0-9]+)*)?\Z")
_HEAD = re.compile(r"head\.001\.001\.\d{2}\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def _opts(decl: Any) -> dict[str, Any]:
    return dict(getattr(decl, "options", None) or {})


def _where(decl: Any) -> dict[str, Any]:
    pos = getattr(decl, "pos", None)
    return {"path": getattr(pos, "file", None), "line": getattr(pos, "line", None), "col": getattr(pos, "col", None)}


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    """The options (``_check_options``), and an ``xsd_dir`` holding several schemas of a message the format
    reads (``Catalog.ambiguous``: refused, naming them; ``bsp check`` E050)."""
    opts = _opts(decl)
    errors = _check_options(decl, base_dir)
    xsd_dir = opts.get("xsd_dir")
    if not errors and xsd_dir and not opts.get("xsd"):
        if base_dir is not None and not Path(xsd_dir).is_absolute():
            xsd_dir = str(Path(base_dir) / xsd_dir)
        msg = opts.get("message")
        catalog = Catalog([xsd_dir])
        errors += [catalog.refusal(mid) for mid in sorted(catalog.ambiguous) if matches(msg, mid)]
    return errors


def _check_options(decl: Any, base_dir: Any = None) -> list[SpecError]:
    opts = _opts(decl)
    errors: list[SpecError] = []
    msg = opts.get("message")
    if msg is not None and (not isinstance(msg, str) or not _MSG.match(msg)):
        errors.append(SpecError(f"message must look like pacs.008 or pacs.008.001.08, got {msg!r}", **_where(decl)))
    for key in ("xsd", "xsd_dir"):
        p = opts.get(key)
        if p is not None and base_dir is not None and not Path(p).is_absolute():
            opts[key] = str(Path(base_dir) / p)
    if opts.get("xsd"):
        try:
            schema = load_schema(str(opts["xsd"]))
        except SpecError as exc:
            errors.append(exc)
        else:
            if isinstance(msg, str) and not matches(msg, schema.message):
                errors.append(SpecError(f"the XSD is for {schema.message}, the format says {msg}", **_where(decl)))
    try:
        parse_spec(opts.get("classify"), where=_where(decl))
    except SpecError as exc:
        errors.append(exc)
    header = opts.get("header")
    if header is not None and (not isinstance(header, str) or not _HEAD.match(header)):
        errors.append(SpecError(f"header must be a head.001 version such as head.001.001.02, got {header!r}",
                                **_where(decl)))
    envelope = opts.get("envelope")
    if envelope is not None and (not isinstance(envelope, str) or not _NAME.match(envelope)):
        errors.append(SpecError(f"envelope must be an XML element name such as message, got {envelope!r}",
                                **_where(decl)))
    if opts.get("xsd_dir") and not Path(opts["xsd_dir"]).is_dir():
        errors.append(SpecError(f"xsd_dir {opts['xsd_dir']!r} is not a directory", **_where(decl)))
    return errors


def build(decl: Any) -> Iso20022Codec:
    errors = _check_options(decl)          # the catalog's refusals: the codec's, reading it once
    if errors:
        raise errors[0]
    o = _opts(decl)
    codec = Iso20022Codec(message=o.get("message"), xsd=o.get("xsd"), xsd_dir=o.get("xsd_dir"),
                          validate=o.get("validate", True), name=getattr(decl, "name", "iso20022"),
                          header=o.get("header") or HEADER_DEFAULT, envelope=o.get("envelope") or ENVELOPE_DEFAULT,
                          control_totals=o.get("control_totals", False))
    codec.classify = parse_spec(o.get("classify"))
    return codec


_KINDS = {"decimal": "decimal", "int": "integer", "str": "string"}     # XSD kinds a test writes as a number or text


def field_kind(decl: Any, base_dir: Any = None, parts: tuple = ()) -> FieldKind | None:
    """The kind the message's XSD (option ``xsd``) gives the element at ``parts`` (list indexes skipped;
    an amount's ``value`` and its attributes): xs:decimal a decimal, the integer types an integer, the
    other simple types but dates, times and booleans text; ``message`` is text.  None without an XSD
    (``validate = false``: leaves stay text, but amounts), or where the path leaves the schema."""
    opts = _opts(decl)
    if parts == ("message",):
        return FieldKind("string", "the ISO 20022 message id")
    xsd = opts.get("xsd")
    if not xsd or not opts.get("validate", True) or not parts or parts[0] == "AppHdr":
        return None
    if base_dir is not None and not Path(xsd).is_absolute():
        xsd = str(Path(base_dir) / xsd)
    try:
        shape: TypeShape = load_schema(str(xsd)).root
    except SpecError:
        return None
    names = [p for p in parts if not isinstance(p, int)]
    for i, name in enumerate(names):
        last = i == len(names) - 1
        if shape.kind == "amount":
            if not last:
                return None
            if name == "value":
                kind = _KINDS.get(shape.value_kind)
                return FieldKind(kind, f"XSD type {shape.value_kind}") if kind else None
            return FieldKind("string", "an XSD attribute") if name in shape.attrs else None
        if shape.kind != "complex":
            return None
        if name in shape.children:
            shape = shape.children[name][1]
        elif name in shape.attrs and last:
            return FieldKind("string", "an XSD attribute")
        else:
            return None
    kind = _KINDS.get(shape.kind)
    return FieldKind(kind, f"XSD type {shape.kind}") if kind else None


COMPONENT = ComponentSpec(
    category="format",
    name="iso20022",
    doc=("ISO 20022 XML (pain, pacs, camt ...): the message type comes from the Document namespace, values "
         "are typed by the XSD (Decimal amounts as {value, Ccy}, dates, booleans; repeatable elements always "
         "lists), documents are validated against the XSD on decode and encode, and the writer orders "
         "elements by the schema."),
    options=(
        OptionSpec("message", "ident", "the accepted message: pacs.008 (any version) or pacs.008.001.08"),
        OptionSpec("xsd", "path", "the message's XSD"),
        OptionSpec("xsd_dir", "path", "a folder searched (recursively) for XSDs (*.xsd) by target namespace: a "
                   "message's schema is the file declaring its global Document (its includes may share the "
                   "namespace); every one is versioned with the configuration (at most 2000)",
                   folder_files="*.xsd"),
        OptionSpec("validate", "bool", "validate against the XSD (false: parse only, leaves stay text)",
                   default=True),
        OptionSpec("classify", "list", 'classified paths: ["FIToFICstmrCdtTrf.CdtTrfTxInf.Dbtr:personal"]'),
        OptionSpec("header", "ident", "the head.001 version of a Business Application Header written from the "
                   "values' AppHdr", default=HEADER_DEFAULT),
        OptionSpec("envelope", "ident", "the element that holds AppHdr and Document when a header is written",
                   default=ENVELOPE_DEFAULT),
        OptionSpec("control_totals", "bool", "check each group header's and payment block's NbOfTxs and CtrlSum "
                   "against its transactions (pain.001, pain.008, pacs.008 ...), on decode and encode; off by "
                   "default, as some senders' samples disagree (recommended for files from corporates)",
                   default=False),
    ),
    build=build,
    check=check,
    fields=None,
    field_kind=field_kind,
    examples=('format Transfer = iso20022 pacs.008 xsd "xsd/pacs.008.001.08.xsd"',
              'format Statement = iso20022 camt.053 xsd_dir "xsd"'),
    positional="message",
)
