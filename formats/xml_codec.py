"""Generic XML <-> values with lxml, parsed safely.

Convention (also in docs/formats-basic.md):

* A document decodes to ``{root_name: content}``.
* An element with neither attributes nor children is its text (``str``), or
  ``None`` when empty.  Otherwise it is a dict: attributes as ``"@name"``,
  text (when not only whitespace) as ``"#text"``, children by name.
* A name that repeats among siblings becomes a list (in document order).
  Option ``lists`` names elements that are always lists, even with one item.
* Namespaces: an element in the same namespace as its parent is keyed by its
  local name; the root (and any element whose namespace differs from its
  parent's) carries ``"@xmlns"`` with its namespace URI.  Namespaced
  attributes are keyed in Clark notation: ``"@{uri}name"``.  Encoding reverses
  all of this, so ``decode(encode(v)) == v``.
* Values are strings: typing needs a schema (see ``formats.iso20022``).
  On encode, ``Decimal`` is written in plain notation, ``bool`` as
  true/false, dates ISO.
* Limits: the relative order of *different* sibling names (``a b a``) is not
  kept (siblings are grouped by name); comments and processing instructions
  are dropped; mixed content keeps only the text before the first child.

Parsing is safe: no DTD loading, no entity expansion, no network; a document
with a DOCTYPE is refused.  Bounds (docs/security.md#hostile-input): libxml2's own
(depth 256, a text node or attribute value of 10 MB, entity amplification) and
``MAX_ATTRIBUTES`` attributes per element: lxml reads an element's attribute values
in time quadratic in their number (90,000 attributes in a 1 MB message: 10 s of CPU).
"""
from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal
from typing import Any, Iterable, Mapping

from lxml import etree

from formats.classify import parse_spec
from formats.component import ComponentSpec, FieldKind, OptionSpec
from formats.errors import FormatError, SpecError

_PARSER_KW = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                  huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)


def make_parser(**extra: Any) -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_KW, **extra)


_PARSER = make_parser()
_SPACE = re.compile(rb"[ \t\r\n]*")
MAX_ATTRIBUTES = 256          # per element; real messages carry a handful


def _doctype_at(data: bytes) -> int | None:
    """The offset of a ``<!DOCTYPE`` in the prolog (after a BOM, the declaration, processing
    instructions, comments and white space), or None.  One pass, no backtracking: a regular
    expression with a repeated lazy group took exponential time over ``<?a?>`` * 30 (a stall of
    minutes from a 150-byte message)."""
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while True:
        pos = _SPACE.match(data, pos).end()        # type: ignore[union-attr]
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos + 2)
            if end < 0:
                return None
            pos = end + 2
        elif data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                return None
            pos = end + 3
        else:
            return pos if data.startswith(b"<!DOCTYPE", pos) else None


def line_offset(data: bytes, line: int, col: int) -> int:
    """Byte offset of a 1-based line and (lxml) 1-based column."""
    if line <= 1:
        return max(col - 1, 0)
    pos = -1
    for _ in range(line - 1):
        pos = data.find(b"\n", pos + 1)
        if pos < 0:
            return len(data)
    return pos + 1 + max(col - 1, 0)


def parse(data: bytes, parser: etree.XMLParser | None = None) -> etree._Element:
    """Bytes -> root element with the safe parser; FormatError on bad XML or a DOCTYPE."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    at = _doctype_at(data)
    if at is not None:
        raise FormatError("a DOCTYPE is not allowed", offset=at,
                          hint="remove the DOCTYPE; entities and DTDs are refused for safety")
    try:
        root = etree.fromstring(data, parser or _PARSER)
    except etree.XMLSyntaxError as exc:
        line, col = (exc.position if exc.position else (0, 0))
        msg = exc.msg or str(exc)
        raise FormatError(f"not well-formed XML: {msg}", offset=line_offset(data, line, col)) from None
    except ValueError as exc:
        raise FormatError(f"not XML: {exc}", offset=0) from None
    if root is None:
        raise FormatError("empty XML document", offset=0)
    dt = root.getroottree().docinfo
    if dt.internalDTD is not None or dt.doctype:
        raise FormatError("a DOCTYPE is not allowed", offset=max(data.find(b"<!DOCTYPE"), 0),
                          hint="remove the DOCTYPE; entities and DTDs are refused for safety")
    for el in root.iter():
        if len(el.attrib) > MAX_ATTRIBUTES:
            _uri, local = split(el.tag) if isinstance(el.tag, str) else (None, "?")
            raise FormatError(f"element <{local}> has {len(el.attrib)} attributes, more than the "
                              f"{MAX_ATTRIBUTES} allowed", offset=line_offset(data, el.sourceline or 1, 1),
                              field=local, hint="a message element carries a few attributes; the limit "
                                                "keeps one message from taking the engine's CPU")
    return root


def split(tag: str) -> tuple[str | None, str]:
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


def text_of(v: Any) -> str:
    """A scalar value as XML text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"{v} is not a finite number")
        return format(v, "f")
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time)):
        return v.isoformat()
    if isinstance(v, float):
        raise ValueError("float values are refused (money is Decimal)")
    if isinstance(v, (str, int)):
        return str(v)
    raise ValueError(f"cannot write {type(v).__name__} as XML text")


class XmlCodec:
    def __init__(self, *, lists: Iterable[str] = (), name: str = "xml",
                 classify: dict[str, str] | None = None) -> None:
        self.name = name
        self.classify = dict(classify or {})
        self.lists = frozenset(lists)

    # -------------------------------------------------------------- decode
    def decode(self, data: bytes) -> dict[str, Any]:
        root = parse(data)
        uri, local = split(root.tag)
        return {local: self._element(root, None)}

    def _element(self, el: etree._Element, parent_ns: str | None) -> Any:
        ns, _ = split(el.tag)
        out: dict[str, Any] = {}
        if ns != parent_ns:
            out["@xmlns"] = ns or ""
        for k, v in el.attrib.items():
            out["@" + k] = v
        children = [c for c in el if isinstance(c.tag, str)]
        text = el.text or ""
        if not children and len(out) == 0:
            return text if text else None
        if text.strip():
            out["#text"] = text
        for c in children:
            clocal = split(c.tag)[1]
            value = self._element(c, ns)
            prev = out.get(clocal, _MISSING)
            if prev is _MISSING:
                out[clocal] = _Rep([value]) if clocal in self.lists else value
            elif isinstance(prev, _Rep):
                prev.append(value)
            else:
                out[clocal] = _Rep([prev, value])
        for k, v in out.items():
            if isinstance(v, _Rep):
                out[k] = list(v)
        if list(out) == ["@xmlns"] and not children:
            out["#text"] = text if text else None
        return out

    # -------------------------------------------------------------- encode
    def encode(self, value: Mapping[str, Any]) -> bytes:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise FormatError("expected a dict with exactly one key, the root element name",
                              hint='e.g. {"Order": {"@xmlns": "urn:x", "Id": "1"}}')
        (name, content), = value.items()
        root = self._build(None, str(name), content, None, str(name), False)
        if any(el.tag[:1] != "{" and el.getparent() is not None and split(el.getparent().tag)[0]
               for el in root.iter()):
            # XML cannot undeclare a default namespace in lxml: use prefixes instead
            root = self._build(None, str(name), content, None, str(name), True)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _build(self, parent: etree._Element | None, name: str, content: Any, ns: str | None,
               path: str, prefixed: bool) -> etree._Element:
        if isinstance(content, Mapping) and "@xmlns" in content:
            ns = content["@xmlns"] or None
        tag = name if name[:1] == "{" else (f"{{{ns}}}{name}" if ns else name)
        declare = ns and (parent is None or split(parent.tag)[0] != ns)
        nsmap = None
        if declare:
            nsmap = {None: ns} if not prefixed else {f"ns{sum(1 for _ in (parent.iterancestors() if parent is not None else ()))}": ns}
        try:
            el = etree.Element(tag, nsmap=nsmap) if parent is None else etree.SubElement(parent, tag, nsmap=nsmap)
        except ValueError as exc:
            raise FormatError(f"invalid element name {name!r}: {exc}", field=path) from None
        if content is None:
            return el
        if not isinstance(content, Mapping):
            try:
                el.text = text_of(content)
            except ValueError as exc:
                raise FormatError(str(exc), field=path) from None
            return el
        for k, v in content.items():
            k = str(k)
            if k == "@xmlns":
                continue
            if k.startswith("@"):
                try:
                    el.set(k[1:], text_of(v))
                except ValueError as exc:
                    raise FormatError(str(exc), field=f"{path}.{k}") from None
            elif k == "#text":
                if v is not None:
                    try:
                        el.text = text_of(v)
                    except ValueError as exc:
                        raise FormatError(str(exc), field=f"{path}.{k}") from None
            elif isinstance(v, list):
                for i, item in enumerate(v):
                    self._build(el, k, item, ns, f"{path}.{k}[{i}]", prefixed)
            else:
                self._build(el, k, v, ns, f"{path}.{k}", prefixed)
        return el


class _Rep(list):
    """A list being built from repeated siblings."""


_MISSING = object()


# ------------------------------------------------------------------ component

def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    lists = (getattr(decl, "options", None) or {}).get("lists", ())
    if not isinstance(lists, (list, tuple)) or not all(isinstance(x, str) for x in lists):
        return [SpecError(f"option lists must be a list of element names, got {lists!r}",
                          hint='e.g. lists = ["Item"]')]
    try:
        parse_spec((getattr(decl, "options", None) or {}).get("classify"))
    except SpecError as exc:
        return [exc]
    return []


def build(decl: Any) -> XmlCodec:
    errors = check(decl)
    if errors:
        raise errors[0]
    opts = getattr(decl, "options", None) or {}
    return XmlCodec(lists=opts.get("lists", ()), name=getattr(decl, "name", "xml"),
                    classify=parse_spec(opts.get("classify")))


def field_kind(decl: Any, base_dir: Any = None, parts: tuple = ()) -> FieldKind | None:
    """Generic XML declares no types: every element's text and attribute decodes to text."""
    return FieldKind("string", "XML without a schema: every value is text") if len(parts) > 1 else None


COMPONENT = ComponentSpec(
    category="format",
    name="xml",
    doc=("Generic XML: elements become dict keys, repeated elements lists, attributes '@name', text "
         "'#text' when an element also has attributes or children, namespaces as '@xmlns'. Safe parser: "
         "no DTD, no entities, no network."),
    options=(
        OptionSpec("lists", "list", "element names that always decode to a list, even with one item", default=()),
        OptionSpec("classify", "list", 'classified paths: ["Order.Card:pan", "Order.Name:personal"]'),
    ),
    build=build,
    check=check,
    fields=None,
    field_kind=field_kind,
    examples=('format Order = xml', 'format Order = xml lists ["Line"]'),
)
