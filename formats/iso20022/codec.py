"""ISO 20022 XML <-> values, typed and ordered by the message's XSD.

Values (also in docs/formats-iso20022.md)::

    {"message": "camt.053.001.02",                 # from the Document namespace
     "AppHdr": {...},                              # when an envelope carried a head.001 header; encode
                                                   # writes one back (``header``, ``envelope`` options)
     "BkToCstmrStmt": {"GrpHdr": {"MsgId": "X", "CreDtTm": datetime(...)},
                       "Stmt": [{"Bal": [{"Amt": {"value": Decimal("18.15"), "Ccy": "EUR"}, ...}]}]}}

* children by local name; an element whose XSD maxOccurs > 1 is always a list;
* xs:decimal -> Decimal, integer types -> int, xs:boolean -> bool, xs:date ->
  date, xs:dateTime -> datetime (naive when the text has no offset), xs:time
  -> time; other simple types stay str (codes, identifiers, ``Max15NumericText``);
* an element with simple content and attributes (amounts) ->
  ``{"value": <typed>, "<attr>": str}``, e.g. ``{"value": Decimal("1.00"), "Ccy": "EUR"}``;
* ``xs:any`` content (``SplmtryData/Envlp``) decodes with the generic rule below.

Without an XSD (``validate = false``) leaves stay strings, except an element
with a ``Ccy`` attribute, whose text becomes a Decimal; repeated siblings
become lists.
"""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from lxml import etree

from formats.currencies import MINOR_UNITS, too_fine
from formats.errors import FormatError, SpecError
from formats.iso20022.schema import ANY, NS_PREFIX, Catalog, Schema, TypeShape, load_schema, matches, message_id
from formats.iso20022.totals import check_totals
from formats.iso20022.xsd_decimal import xs_decimal
from formats.versioned import versioned
from formats.xml_codec import line_offset, parse, split


def _scalar_in(kind: str, text: str | None) -> Any:
    t = (text or "").strip() if kind != "str" else (text or "")
    try:
        if kind == "decimal":
            return xs_decimal(t)
        if kind == "int":
            return int(t)
        if kind == "bool":
            return t in ("true", "1")
        if kind == "date":
            return _dt.date.fromisoformat(t)
        if kind == "datetime":
            return _dt.datetime.fromisoformat(t)
        if kind == "time":
            return _dt.time.fromisoformat(t)
    except (ValueError, InvalidOperation):
        if kind in ("decimal", "int"):
            raise
        return t  # an XSD-valid form Python cannot hold (e.g. a date with an offset): keep the text
    return t


def _scalar_out(kind: str, v: Any, path: str) -> str:
    if isinstance(v, float):
        raise FormatError(f"float {v!r}: money is Decimal, never float", field=path,
                          hint="use decimal.Decimal")
    if kind == "bool" and isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bool):
        raise FormatError(f"expected {kind}, got a bool", field=path)
    if kind in ("decimal", "int") and isinstance(v, (Decimal, int)):
        if isinstance(v, Decimal) and not v.is_finite():
            raise FormatError(f"{v} is not a finite number", field=path)
        return format(v, "f") if isinstance(v, Decimal) else str(v)
    if kind in ("date", "datetime", "time") and isinstance(v, (_dt.date, _dt.time)):
        if kind == "date" and isinstance(v, _dt.datetime):
            v = v.date()
        return v.isoformat()
    if isinstance(v, str):
        return v
    if isinstance(v, (int, Decimal)) and kind == "str":
        return format(v, "f") if isinstance(v, Decimal) else str(v)
    raise FormatError(f"expected {kind}, got {type(v).__name__} {v!r}", field=path)


_PLAIN = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def _fits_currency(v: Any, ccy: Any, path: str) -> None:
    """Refuse an amount with more decimals than its currency's ISO 4217 minor units (``100.5`` JPY, ``12.345``
    EUR): the XSD's ``fractionDigits`` 5 allows it, CBPR+ and the clearings do not, and a non-zero digit is
    never dropped.  A Decimal, an int or plain text digits; a currency the table does not list is not checked."""
    if isinstance(v, str) and v.isascii() and _PLAIN.fullmatch(v.strip()):
        v = Decimal(v.strip())
    fine = too_fine(v, ccy)
    if fine is None:
        return
    alpha, places, have = fine
    unit = "no decimals" if places == 0 else f"{places} decimal{'s' if places > 1 else ''}"
    raise FormatError(f"amount {v} {alpha} has {have} decimal{'s' if have > 1 else ''}, but {alpha} has {unit} "
                      f"(ISO 4217 minor units); it is never rounded", field=path or None,
                      hint="round it where the business rule says so (round(x, minor_units(ccy))) or refuse it "
                           "(fits_currency(x, ccy) else reject)")


def _currency_scale(text: str, ccy: Any) -> str:
    """An amount's text without the trailing zeros its currency has no decimals for (ISO 4217 minor units,
    the table SWIFT's rule C03 uses): ``150000.00`` JPY is written ``150000``, ``12.500`` KWD stays, ``12.5000``
    KWD is ``12.500``; a currency the table does not list keeps the text.  CBPR+ and the clearings refuse an
    amount with more fraction digits than its currency has; a non-zero digit is never dropped: ``_fits_currency``
    refuses such an amount first."""
    places = MINOR_UNITS.get(ccy) if isinstance(ccy, str) else None
    if places is None or "." not in text:
        return text
    whole, frac = text.split(".", 1)
    while len(frac) > places and frac.endswith("0"):
        frac = frac[:-1]
    return f"{whole}.{frac}" if frac else whole


_FULL_ID = re.compile(r"[a-z]{4}\.\d{3}\.\d{3}\.\d{2}")
HEADER_DEFAULT = "head.001.001.02"       # the Business Application Header of SWIFT CBPR+ and most MX traffic
ENVELOPE_DEFAULT = "message"             # what holds AppHdr + Document (prowide's and the corpus's name)
HEADER_REQUIRED = ("Fr", "To", "BizMsgIdr", "MsgDefIdr", "CreDt")


def _untyped(value: Any) -> Any:
    """A value written without an XSD to type it: times ISO 8601, booleans true / false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return value


def _generic(el: etree._Element) -> Any:
    children = [c for c in el if isinstance(c.tag, str)]
    attrs = {split(k)[1]: v for k, v in el.attrib.items()}
    if not children:
        text = el.text or ""
        if "Ccy" in attrs:
            try:
                return {"value": xs_decimal(text.strip()), **attrs}
            except InvalidOperation:
                raise FormatError(f"amount {text!r} is not a decimal number", field=split(el.tag)[1],
                                  offset=None) from None
        return {"value": text, **attrs} if attrs else text
    out: dict[str, Any] = dict(attrs)
    for c in children:
        name = split(c.tag)[1]
        v = _generic(c)
        if name in out:
            prev = out[name]
            if isinstance(prev, _Many):
                prev.append(v)
            else:
                out[name] = _Many([prev, v])
        else:
            out[name] = v
    return {k: list(v) if isinstance(v, _Many) else v for k, v in out.items()}


class _Many(list):
    pass


def _typed(el: etree._Element, shape: TypeShape, path: str) -> Any:
    kind = shape.kind
    if kind == "any":
        return _generic(el)
    try:
        if kind == "amount":
            out = {"value": _scalar_in(shape.value_kind, el.text)}
            out.update((split(k)[1], v) for k, v in el.attrib.items())
            return out
        if kind != "complex":
            return _scalar_in(kind, el.text)
    except (ValueError, InvalidOperation):
        raise FormatError(f"{(el.text or '').strip()!r} is not a valid {shape.value_kind if kind == 'amount' else kind}",
                          field=path, hint=f"line {el.sourceline}") from None
    out2: dict[str, Any] = {split(k)[1]: v for k, v in el.attrib.items()
                            if not k.startswith("{http://www.w3.org/2001/XMLSchema-instance}")}
    for c in el:
        if not isinstance(c.tag, str):
            continue
        name = split(c.tag)[1]
        spec = shape.children.get(name) or shape.children.get("*")
        if spec is None:
            value, repeat = _generic(c), False
        else:
            repeat, cshape = spec
            if repeat:
                lst = out2.setdefault(name, [])
                lst.append(_typed(c, cshape, f"{path}.{name}[{len(lst)}]"))
                continue
            value = _typed(c, cshape, f"{path}.{name}")
        out2[name] = value
    return out2


def _error_path(doc: etree._Element, xpath: str | None, shape: TypeShape) -> str | None:
    """lxml's error XPath (``/*/*[2]/*[3]``) -> our value path (``CstmrCdtTrfInitn.PmtInf[0].Amt``)."""
    if not xpath:
        return None
    steps = xpath.strip("/").split("/")[1:]  # the first step is <Document> itself
    try:
        found = doc.xpath("/".join(steps)) if steps else [doc]
    except etree.XPathError:
        return None
    if not found or not isinstance(found[0], etree._Element):
        return None
    el = found[0]
    chain = []
    while el is not None and el is not doc:
        chain.append(el)
        el = el.getparent()
    parts: list[str] = []
    for node in reversed(chain):
        name = split(node.tag)[1]
        spec = shape.children.get(name) if shape.kind == "complex" else None
        repeat, shape = spec if spec else (False, ANY)
        if repeat:
            same = [c for c in node.getparent() if c.tag == node.tag]
            name += f"[{same.index(node)}]"
        parts.append(name)
    return ".".join(parts) or "Document"


class Iso20022Codec:
    """Decode/encode ISO 20022 documents; ``message`` limits which ones (``pacs.008`` = any version)."""

    def __init__(self, *, message: str | None = None, xsd: str | None = None, xsd_dir: str | None = None,
                 validate: bool = True, name: str = "iso20022", header: str = HEADER_DEFAULT,
                 envelope: str = ENVELOPE_DEFAULT, control_totals: bool = False) -> None:
        self.name = name
        self.control_totals = control_totals   # NbOfTxs / CtrlSum checked against the transactions
        self.header = header          # the head.001 version an AppHdr is written in
        self.envelope = envelope      # the element that holds AppHdr and Document when a header is written
        self.classify: dict[str, str] = {}
        self.message = message
        self.validate = validate
        self._fixed: Schema | None = load_schema(str(xsd)) if xsd else None
        if self._fixed is not None and message and not matches(message, self._fixed.message):
            raise SpecError(f"the XSD is for {self._fixed.message}, the format says {message}", path=str(xsd),
                            hint="point xsd at the schema of the declared message")
        self.catalog = Catalog.default([xsd_dir] if xsd_dir else [])
        if self._fixed is None:       # a folder with several schemas of a message the format reads: refused
            for mid in sorted(self.catalog.ambiguous):
                if matches(message, mid):
                    raise self.catalog.refusal(mid)
        self._schemas: dict[str, Schema] = {}     # a catalog's, loaded when a message first needs it

    # ---------------------------------------------------------- schemas
    def schema_for(self, msg: str) -> Schema | None:
        if self._fixed is not None:
            return self._fixed if self._fixed.message == msg else None
        return self._catalog_schema(msg)

    def _catalog_schema(self, msg: str) -> Schema | None:
        """The catalog's schema of ``msg``, parsed from the bytes read when the codec was built (in the
        engine, the configuration version's: ``Catalog``), once; the files it includes or imports are read
        as that version holds them too (``Catalog.sources``), however long after the bind."""
        schema = self._schemas.get(msg)
        if schema is None:
            path = self.catalog.by_message.get(msg)
            if path is None:
                return None
            with versioned(self.catalog.sources):      # it and its includes as the codec's version holds them
                schema = self._schemas[msg] = load_schema(path, self.catalog.data.get(msg),
                                                       self.catalog.roots.get(msg))
        return schema

    def _no_xsd(self, msg: str, namespace: str | None = None) -> str:
        """``no XSD for MSG``, and, from a catalog's folders, why: the folders, the namespace, the files seen."""
        why = self.catalog.missing(msg, namespace) if self._fixed is None and _FULL_ID.fullmatch(msg) else ""
        return f"no XSD for {msg}: {why}" if why else f"no XSD for {msg}"

    def _check_message(self, msg: str | None, *, offset: int | None) -> None:
        if msg is None:
            raise FormatError("the Document namespace names no ISO 20022 message", offset=offset,
                              hint=f'expected xmlns="{NS_PREFIX}<message>", e.g. {NS_PREFIX}pacs.008.001.08')
        if not matches(self.message, msg):
            raise FormatError(f"expected a {self.message} message, got {msg}", offset=offset,
                              hint="route the message to a format declared for its type")

    # ---------------------------------------------------------- decode
    def decode(self, data: bytes) -> dict[str, Any]:
        root = parse(data)
        data = bytes(data)
        doc, hdr = root, None
        if split(root.tag)[1] != "Document":
            kids = {split(c.tag)[1]: c for c in root if isinstance(c.tag, str)}
            doc, hdr = kids.get("Document"), kids.get("AppHdr")
            if doc is None:
                raise FormatError(f"expected a <Document> element (or an envelope holding one), found "
                                  f"<{split(root.tag)[1]}>", offset=0, field=split(root.tag)[1])
        where = line_offset(data, doc.sourceline or 1, 1)
        ns = split(doc.tag)[0]
        if ns is None:
            raise FormatError("<Document> has no namespace, so the message type is unknown", offset=where,
                              field="Document",
                              hint=f'add xmlns="{NS_PREFIX}<message>", e.g. xmlns="{NS_PREFIX}pain.002.001.11"')
        msg = message_id(ns)
        self._check_message(msg, offset=where)
        schema = self.schema_for(msg)
        if schema is None and self.validate:
            raise FormatError(self._no_xsd(msg, ns), offset=where,
                              hint="give the format option xsd (or xsd_dir), or validate = false to parse "
                                   "without a schema")
        if schema is not None and self.validate:
            if not schema.validator.validate(doc):
                err = schema.validator.error_log[0]
                raise FormatError(f"not valid {msg}: {err.message} (line {err.line})",
                                  offset=line_offset(data, err.line, max(err.column, 1)),
                                  field=_error_path(doc, err.path, schema.root), hint=f"checked against {schema.path}")
        if self.control_totals:
            check_totals(doc, data)
        out: dict[str, Any] = {"message": msg}
        if hdr is not None:
            out["AppHdr"] = _generic(hdr)
        if schema is None:
            body = _generic(doc)
        else:
            body = _typed(doc, schema.root, "")
            body = {k.lstrip("."): v for k, v in body.items()}
        if not isinstance(body, dict):
            raise FormatError("<Document> is empty", offset=where, field="Document")
        out.update(body)
        return out

    # ---------------------------------------------------------- encode
    def encode(self, value: Mapping[str, Any]) -> bytes:
        if not isinstance(value, Mapping):
            raise FormatError(f"expected a dict of the Document's content, got {type(value).__name__}")
        msg = value.get("message") or self.message
        if not msg:
            raise FormatError("which message? give the value key 'message' (e.g. 'pacs.008.001.08')",
                              field="message")
        schema = self._fixed if (self._fixed is not None and matches(msg, self._fixed.message)) else None
        if schema is None:
            found = [msg] if msg in self.catalog.by_message else self.catalog.find(msg)
            if len(found) > 1:
                raise FormatError(f"{msg} names {len(found)} schema versions ({', '.join(found)})", field="message",
                                  hint="give the full message id, e.g. " + found[-1])
            schema = self._catalog_schema(found[0]) if found else None
        if msg and schema is not None:
            self._check_message(schema.message, offset=None)
            msg = schema.message
        elif self.validate:
            raise FormatError(self._no_xsd(msg), field="message", hint="give the format option xsd or xsd_dir")
        elif not _FULL_ID.match(msg):
            header = value.get("AppHdr")
            defined = header.get("MsgDefIdr") if isinstance(header, Mapping) else None
            if isinstance(defined, str) and _FULL_ID.match(defined) and not matches(msg, defined):
                raise FormatError(f"MsgDefIdr is {defined!r} but the format writes a {msg}", field="AppHdr.MsgDefIdr",
                                  hint=f"set MsgDefIdr to a {msg} version, e.g. \"{msg}.001.01\"")
            if not (isinstance(defined, str) and _FULL_ID.match(defined)):
                raise FormatError(f"{msg} names no version, and without its XSD the writer needs one for the "
                                  f"Document's namespace", field="message",
                                  hint=f"give the value key message (e.g. \"{msg}.001.01\"), the format's full "
                                       f"message id, or an AppHdr.MsgDefIdr")
            msg = defined                  # the header says which version the Document is
        ns = schema.namespace if schema is not None else f"{NS_PREFIX}{msg}"
        root = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
        body = {k: v for k, v in value.items() if k not in ("message", "AppHdr")}
        self._fill(root, body, schema.root if schema is not None else ANY, ns, "")
        if schema is not None and self.validate and not schema.validator.validate(root):
            err = schema.validator.error_log[0]
            raise FormatError(f"the values do not make a valid {msg}: {err.message}", field=_error_path(root, err.path, schema.root),
                              hint=f"checked against {schema.path}")
        if self.control_totals:
            check_totals(root)
        if value.get("AppHdr") is not None:
            root = self._envelope(value["AppHdr"], msg, root)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _envelope(self, header: Any, msg: str, document: etree._Element) -> etree._Element:
        """``<envelope><AppHdr xmlns=head.001...>...</AppHdr><Document>...</Document></envelope>``: the
        header's elements in the order given (no head.001 XSD ships), the ones every header needs
        checked, and its MsgDefIdr checked against the Document's message."""
        if not isinstance(header, Mapping):
            raise FormatError(f"expected a dict of header elements, got {type(header).__name__}", field="AppHdr")
        missing = [k for k in HEADER_REQUIRED if k not in header]
        if missing:
            raise FormatError(f"the header lacks {', '.join(missing)}", field=f"AppHdr.{missing[0]}",
                              hint="a Business Application Header needs " + ", ".join(HEADER_REQUIRED))
        defined = header["MsgDefIdr"]
        if not isinstance(defined, str) or not matches(defined, msg):
            raise FormatError(f"MsgDefIdr is {defined!r} but the Document is a {msg}", field="AppHdr.MsgDefIdr",
                              hint=f'set MsgDefIdr = "{msg}"')
        hns = f"{NS_PREFIX}{self.header}"
        env = etree.Element(self.envelope)
        hdr = etree.SubElement(env, f"{{{hns}}}AppHdr", nsmap={None: hns})
        self._fill(hdr, header, ANY, hns, "AppHdr")
        env.append(document)
        return env

    def _fill(self, el: etree._Element, value: Any, shape: TypeShape, ns: str, path: str) -> None:
        kind = shape.kind
        if kind == "amount" or (kind == "any" and isinstance(value, Mapping) and "value" in value):
            if not isinstance(value, Mapping) or "value" not in value:
                raise FormatError(f"expected {{'value': ..., {', '.join(repr(a) for a in shape.attrs)}}}",
                                  field=path or None, hint='e.g. {"value": Decimal("1.00"), "Ccy": "EUR"}')
            for k, v in value.items():
                if k == "value":
                    el.text = _scalar_out(shape.value_kind if kind == "amount" else "str", v, path)
                    _fits_currency(v, value.get("Ccy"), path)
                    if isinstance(v, Decimal):
                        el.text = _currency_scale(el.text, value.get("Ccy"))
                elif kind == "amount" and k not in shape.attrs:
                    raise FormatError(f"no attribute {k!r}", field=f"{path}.{k}",
                                      hint="attributes are: " + ", ".join(shape.attrs))
                else:
                    el.set(k, str(v))
            return
        if kind not in ("complex", "any"):
            el.text = _scalar_out(kind, value, path)
            return
        if not isinstance(value, Mapping):
            if kind == "any":       # no XSD to type it: times ISO 8601, booleans true / false
                el.text = _scalar_out("str", _untyped(value), path)
                return
            raise FormatError(f"expected a dict of child elements, got {type(value).__name__}", field=path or None)
        order = list(shape.children) if kind == "complex" else []
        for k in value:
            if kind == "complex" and k not in shape.children and k not in shape.attrs and "*" not in shape.children:
                raise FormatError(f"no element {k!r} here", field=f"{path}.{k}".lstrip("."),
                                  hint="allowed: " + ", ".join(shape.children))
        names = [k for k in order if k in value] + [k for k in value if k not in order]
        for k in names:
            v = value[k]
            sub = f"{path}.{k}".lstrip(".")
            if kind == "complex" and k in shape.attrs:
                el.set(k, str(v))
                continue
            repeat, cshape = shape.children.get(k) or shape.children.get("*") or (isinstance(v, list), ANY)
            items = v if isinstance(v, list) else [v]
            if isinstance(v, list) and not repeat and kind == "complex":
                raise FormatError(f"{k} occurs once, got a list of {len(v)}", field=sub)
            for i, item in enumerate(items):
                child = etree.SubElement(el, f"{{{ns}}}{k}")
                self._fill(child, item, cshape, ns, f"{sub}[{i}]" if isinstance(v, list) else sub)
