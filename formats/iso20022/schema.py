"""ISO 20022 schemas: the XSD catalog, lxml validators and the value shapes.

A *shape* is what the codec needs from an XSD to type values and order
elements, computed once per XSD with ``xmlschema`` (slow, ~0.2 s per XSD)
and then applied to lxml trees (fast):

* ``TypeShape.kind``: ``complex`` (children), ``amount`` (simple content
  with attributes, e.g. ``<InstdAmt Ccy="EUR">``), or a scalar kind
  ``str decimal int bool date datetime time``.
* ``TypeShape.children``: child element name -> ``(repeat, TypeShape)`` in
  schema order (the writer emits children in this order).  ``repeat`` is
  True when maxOccurs > 1: such an element always decodes to a list.
* ``ANY``: an ``xs:any`` wildcard (e.g. ``SplmtryData/Envlp``): content
  decoded generically (strings).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lxml import etree

from formats.errors import SpecError
from formats.versioned import CHANGED, FileChanged, folder_files, held, in_force, read_bytes

NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
_MSG_ID = re.compile(r"([a-z]{4}\.\d{3}\.\d{3}\.\d{2}(?:\.[A-Za-z0-9]+)*?)(?:\.xsd)?$")
ENV_PATH = "BSP_ISO20022_XSD_PATH"


def message_id(namespace: str | None) -> str | None:
    """``urn:iso:std:iso:20022:tech:xsd:camt.053.001.02`` -> ``camt.053.001.02`` (also SIX/DK variants)."""
    if not namespace:
        return None
    tail = namespace.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    m = _MSG_ID.search(tail)
    return m.group(1) if m else None


def matches(wanted: str | None, msg_id: str) -> bool:
    """``pacs.008`` matches every version; ``pacs.008.001.08`` only itself."""
    if not wanted:
        return True
    return msg_id == wanted or msg_id.startswith(wanted + ".")


@dataclass
class TypeShape:
    kind: str
    children: dict[str, tuple[bool, "TypeShape"]] = field(default_factory=dict)
    attrs: tuple[str, ...] = ()
    value_kind: str = "str"      # for "amount": the kind of the text


ANY = TypeShape("any")
_SCALARS = {"decimal": "decimal", "boolean": "bool", "date": "date", "dateTime": "datetime", "time": "time"}


def _scalar_kind(simple: Any) -> str:
    prim = getattr(simple, "primitive_type", None)
    name = getattr(prim, "local_name", None)
    if name == "decimal":
        t = simple
        while t is not None:
            if getattr(t, "local_name", None) in ("integer", "int", "long", "nonNegativeInteger", "positiveInteger"):
                return "int"
            t = getattr(t, "base_type", None)
        return "decimal"
    return _SCALARS.get(name or "", "str")


def _shape(xtype: Any, cache: dict[int, TypeShape]) -> TypeShape:
    key = id(xtype)
    if key in cache:
        return cache[key]
    if xtype is None:
        return ANY
    if xtype.is_simple():
        shape = TypeShape(_scalar_kind(xtype))
        cache[key] = shape
        return shape
    if xtype.has_simple_content():
        shape = TypeShape("amount", attrs=tuple(a for a in xtype.attributes if isinstance(a, str)),
                          value_kind=_scalar_kind(xtype.content))
        cache[key] = shape
        return shape
    shape = TypeShape("complex", attrs=tuple(a for a in xtype.attributes if isinstance(a, str)))
    cache[key] = shape  # before the children: recursive types terminate
    content = getattr(xtype, "content", None)
    if content is not None and hasattr(content, "iter_elements"):
        for el in content.iter_elements():
            name = getattr(el, "local_name", None)
            if not name:
                shape.children["*"] = (True, ANY)
                continue
            repeat = el.max_occurs is None or el.max_occurs > 1
            shape.children[name] = (repeat, _shape(getattr(el, "type", None), cache))
    return shape


@dataclass
class Schema:
    path: str
    namespace: str
    message: str
    root: TypeShape               # shape of the <Document> element
    validator: etree.XMLSchema


_XS = "{http://www.w3.org/2001/XMLSchema}"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")     # http:, https:, ftp:, file: ... (not a drive letter C:)


def _refuse_urls(doc: Any, p: Path) -> None:
    """SpecError when the XSD imports, includes, redefines or overrides a schema by URL: loading it
    would make the engine (or ``bsp check``) fetch it from the network."""
    for el in doc.getroot().iter(*(f"{_XS}{k}" for k in ("import", "include", "redefine", "override"))):
        loc = el.get("schemaLocation") or ""
        if _URL.match(loc):
            raise SpecError(f"the XSD's <xs:{el.tag[len(_XS):]}> names {loc!r}: an XSD may only load files next to "
                            f"it, never a URL (the engine would fetch it from the network)", path=str(p),
                            line=el.sourceline, hint="download that schema, put it beside this one and give "
                                                     "schemaLocation as a relative file name")


_LOADS = tuple(f"{_XS}{k}" for k in ("import", "include", "redefine", "override"))
_MAX_INCLUDED = 1000          # files one XSD set may load (the largest ISO 20022 usage guidelines: a few dozen)


def _within(f: Path, root: Path) -> bool:
    """``f`` (made absolute, ``..`` and links resolved) is ``root`` or below it."""
    real, top = os.path.realpath(f), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _outside(where: Path, line: int | None, kind: str, loc: str, target: Path, root: Path) -> SpecError:
    return SpecError(f"the XSD's <xs:{kind}> names {loc!r} ({target}), outside the XSD folder {root}: an XSD may only "
                     f"load files of its own folder (never another file of the disk)", path=str(where), line=line,
                     hint=f"copy that schema into {root} and give schemaLocation as a path relative to the XSD")


def _confine(p: Path, data: bytes, root: Path) -> None:
    """SpecError naming the file and line of the first ``xs:import`` / ``include`` / ``redefine`` / ``override``,
    in the XSD or any file it loads, whose ``schemaLocation`` (absolute, or with ``..``) is outside ``root``
    (the XSD folder: the catalog's ``xsd_dir``, or the folder of the file named by ``xsd``); a URL is refused
    as by ``_refuse_urls``.  The files it names are read (as the configuration's version holds them) only
    once found inside ``root``."""
    todo: list[tuple[Path, bytes]] = [(p, data)]
    seen = {os.path.realpath(p)}
    while todo:
        f, text = todo.pop()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            doc = etree.ElementTree(etree.fromstring(text, parser, base_url=str(f)))
        except etree.XMLSyntaxError:
            continue                         # not XML: the XSD libraries say where it breaks
        _refuse_urls(doc, f)
        for el in doc.getroot().iter(*_LOADS):
            loc = el.get("schemaLocation")
            if not loc:
                continue
            target = Path(os.path.normpath(f.parent / unquote(loc)))
            if not _within(target, root):
                raise _outside(f, el.sourceline, el.tag[len(_XS):], loc, target, root)
            real = os.path.realpath(target)
            if real in seen or len(seen) >= _MAX_INCLUDED:
                continue
            seen.add(real)
            try:
                todo.append((target, read_bytes(target)))
            except FileChanged:
                raise
            except OSError:
                continue                     # missing: the XSD libraries say which


_CACHE: dict[tuple[str, bytes, str], tuple[Schema, tuple[tuple[str, str], ...]]] = {}
_CACHE_SIZE = 64


def load_schema(path: str, data: bytes | None = None, root: str | None = None) -> Schema:
    """Load an XSD (lxml validator + value shapes), from ``data`` or the bytes the configuration's version
    holds (``formats.versioned``; outside the engine's bind, the file's).  The files it includes or imports
    are read by the XSD libraries through ``_VersionedReads``: as the version holds them too (a file the
    version does not hold: from disk), and only from ``root`` (the XSD folder: the catalog's folder, by
    default the XSD's own; ``_confine``).  Cached by path, bytes and root, and by the bytes of the files it
    includes or imports as read.  Raises SpecError (``FileChanged``: reload again)."""
    p = Path(path)
    top = Path(root) if root is not None else p.parent
    if data is None:
        try:
            data = read_bytes(p)
        except OSError as exc:
            raise SpecError(f"cannot read XSD: {exc}", path=str(p)) from None
    key = (str(p), data, str(top))
    hit = _CACHE.get(key)
    if hit is not None and all(_read_digest(Path(f)) == d for f, d in hit[1]):
        return hit[0]
    schema, included = _parse_schema(p, data, top)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (schema, included)
    return schema


def _read_digest(path: Path) -> str:
    """The sha256 of the file as an XSD library is given it (the version's text in a ``versioned`` block);
    ``FileChanged`` as ``read_bytes`` raises it."""
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


class _VersionedReads:
    """What lxml (a ``Resolver``) and xmlschema (an ``opener``) read an XSD's ``xs:include`` /
    ``xs:import`` files through: ``read_bytes``, so that in the engine's bind, and in a catalog's schema
    loaded when a message first needs it (``Catalog.sources``), a file the configuration's version holds is
    its text there, not the file read again.  Both libraries swallow an exception raised while reading
    (lxml makes it "failed to parse"): the first ``FileChanged`` is kept in ``changed`` and raised after."""

    def __init__(self, root: Path) -> None:
        import urllib.request

        import xmlschema

        self.changed: FileChanged | None = None
        self.outside: Path | None = None        # a file outside the XSD folder a library asked for (refused)
        own = Path(xmlschema.__file__).parent   # xmlschema's own meta-schemas
        reads = self

        def refused(f: Path) -> bool:
            if _within(f, root) or _within(f, own):
                return False
            reads.outside = reads.outside or f
            return True

        class Resolver(etree.Resolver):
            def resolve(self, url: str, pubid: Any, context: Any) -> Any:
                f = _local(url)
                if f is not None and refused(f):    # never read: an empty schema stands in, refused after
                    return self.resolve_string(b"<refused/>", context, base_url=url)
                if f is None or held(f) is None:
                    return None                  # not the version's: lxml reads it (local files only)
                data = reads.read(f)
                return None if data is None else self.resolve_string(data, context, base_url=url)

        class Handler(urllib.request.BaseHandler):
            def file_open(self, req: Any) -> Any:
                import email.message
                import urllib.response

                f = _local(req.full_url)
                data = reads.read(f) if f is not None and not refused(f) else None
                if data is None:
                    raise urllib.request.URLError(f"cannot read {req.full_url}")
                return urllib.response.addinfourl(io.BytesIO(data), email.message.Message(), req.full_url)

        self.resolver = Resolver()
        self.opener = urllib.request.OpenerDirector()
        self.opener.add_handler(Handler())

    def read(self, f: Path) -> bytes | None:
        try:
            return read_bytes(f)
        except FileChanged as exc:
            self.changed = self.changed or exc
        except OSError:
            pass
        return None

    def raise_changed(self) -> None:
        if self.changed is not None:
            raise self.changed

    def raise_outside(self, p: Path, root: Path) -> None:
        if self.outside is not None:
            raise SpecError(f"the XSD loads {self.outside}, outside the XSD folder {root}: an XSD may only load "
                            f"files of its own folder", path=str(p),
                            hint=f"copy that schema into {root} and give schemaLocation as a path relative to the XSD")


def _local(url: str) -> Path | None:
    """The local file a URL (or a plain path) an XSD library asks for names; None for another scheme."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    if len(parsed.scheme) == 1:                  # a Windows drive letter
        return Path(url)
    return None


def _included(xs: Any, main: Path) -> tuple[tuple[str, str], ...]:
    """``(path, sha256)`` of the local files, other than ``main``, an XSD set was read from (its
    ``xs:include`` / ``xs:import``) as they were read, the XSD library's own meta-schemas left out."""
    import xmlschema

    own = Path(xmlschema.__file__).parent
    out = []
    for schema in xs.maps.iter_schemas():
        url = getattr(schema, "url", None)
        if not url:
            continue
        f = _local(url)
        if f is None or f == main or own in f.parents:
            continue
        out.append((str(f), _read_digest(f)))
    return tuple(sorted(set(out)))


def _parse_schema(p: Path, data: bytes, root: Path) -> tuple[Schema, tuple[tuple[str, str], ...]]:
    import xmlschema

    _confine(p, data, root)            # every file it loads (theirs too) in the XSD folder, named with its line
    reads = _VersionedReads(root)      # its includes / imports: as the configuration's version holds them
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(reads.resolver)
    try:
        doc = etree.ElementTree(etree.fromstring(data, parser, base_url=str(p)))
        _refuse_urls(doc, p)
        try:
            validator = etree.XMLSchema(doc)
        finally:
            reads.raise_changed()
            reads.raise_outside(p, root)
    except OSError as exc:
        raise SpecError(f"cannot read XSD: {exc}", path=str(p)) from None
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (None, None)
        raise SpecError(f"XSD is not well-formed XML: {exc.msg}", path=str(p), line=line, col=col) from None
    except etree.XMLSchemaParseError as exc:
        err = exc.error_log.last_error if exc.error_log else None
        raise SpecError(f"not a valid XSD: {err.message if err else exc}", path=str(p),
                        line=err.line if err else None) from None
    ns = doc.getroot().get("targetNamespace") or ""
    try:
        # local files only (a URL was refused above; nothing reaches the network), no DTDs or entities
        xs = xmlschema.XMLSchema(io.BytesIO(data), base_url=str(p.parent), allow="local", defuse="always",
                                 opener=reads.opener)
    except Exception as exc:  # xmlschema raises many kinds; all mean a bad schema here
        reads.raise_changed()
        reads.raise_outside(p, root)
        raise SpecError(f"not a usable XSD: {exc}", path=str(p)) from None
    reads.raise_changed()
    reads.raise_outside(p, root)
    document = xs.elements.get("Document")
    if document is None:
        raise SpecError("the XSD declares no global <Document> element", path=str(p),
                        hint="an ISO 20022 message schema declares <xs:element name=\"Document\">")
    msg = message_id(ns) or p.stem
    return Schema(str(p), ns, msg, _shape(document.type, {}), validator), _included(xs, p)


_SHOWN = 12                  # files named in a "no XSD" message
_CHUNK = 4096
_DECLARES = (f"{_XS}include", f"{_XS}redefine", f"{_XS}override")


@dataclass
class _Head:
    """What the catalog reads of an XSD: its targetNamespace, whether it declares a global ``<Document>``
    element itself, and the files of its namespace it includes (``xs:include`` / ``redefine`` / ``override``,
    which come before any declaration)."""
    namespace: str | None
    document: bool = False
    includes: tuple[str, ...] = ()
    broken: bool = False         # not well-formed before a <Document> was seen


def _head(data: bytes, f: Path) -> _Head:
    """The schema's head, read up to its global ``<Document>`` (the first declaration of an ISO 20022 message
    schema), else to its end (an included types file); fed 4 KB at a time, so a message schema's head costs
    a few KB of parsing (~0.06 ms), not the file."""
    head = _Head(None)
    includes: list[str] = []
    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True)
    depth = 0

    def read() -> bool:                  # the events parsed so far; True once <Document> is seen
        nonlocal depth
        for event, el in parser.read_events():
            if event == "end":
                depth -= 1
                if depth == 1:
                    el.clear()
                continue
            depth += 1
            if depth == 1:
                head.namespace = el.get("targetNamespace")
            elif depth == 2 and el.tag in _DECLARES and el.get("schemaLocation"):
                includes.append(os.path.normpath(f.parent / el.get("schemaLocation")))
            elif depth == 2 and el.tag == f"{_XS}element" and el.get("name") == "Document":
                return True
        return False

    try:
        for at in range(0, len(data), _CHUNK):
            parser.feed(data[at:at + _CHUNK])
            if read():
                head.document = True
                break
    except etree.XMLSyntaxError:
        head.document = read()           # what was parsed before the error
        head.broken = not head.document
    head.includes = tuple(includes)
    return head


def _rel(f: str, folder: str) -> str:
    try:
        return Path(f).relative_to(folder).as_posix()
    except ValueError:
        return f


class Catalog:
    """Message id -> XSD path, from files and directories (searched recursively).

    A folder may hold several files of one namespace (a message schema and the types files it includes, as
    ISO 20022 catalogues and usage guidelines ship them): the message's schema is the file that declares the
    global ``<Document>`` element, itself or through the files it includes, and that no other file of the
    namespace includes (``_choose``).  Several such files in one folder are ``ambiguous`` (refused by the codec
    and ``bsp check``, naming them); a namespace whose files declare no ``<Document>`` has no schema there
    (``missing`` says which files were seen).  Of several folders, the first that has the message's schema wins.

    Read in a ``formats.versioned`` block (the engine's bind), a folder the configuration's version holds
    files of is those files, as it holds them, every one (engine/ops/files.py versions all of a folder's
    ``*.xsd``, up to ``MAX_DIR_FILES``, else the configuration is refused): a file the version lacks that
    appeared after it was computed refuses the bind (``FileChanged``), and one removed since is still
    there.  A schema is parsed later, when a message first needs it, from the same version (``sources``).
    A folder the version holds nothing of (the bundled XSDs, ``BSP_ISO20022_XSD_PATH``) is read."""

    def __init__(self, paths: list[str | Path] = ()) -> None:
        self.by_message: dict[str, str] = {}
        self.data: dict[str, bytes] = {}        # a file the version keeps as its digest: the bytes checked
        self.roots: dict[str, str] = {}         # message -> the XSD folder its schema may load files from
        # message -> (folder, ((file, namespace), ...)): several schemas of it in one folder
        self.ambiguous: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self.seen: list[tuple[str, str, str | None, bool]] = []   # (folder, file, namespace, declares Document)
        self.folders: list[str] = []
        # the configuration version's sources (None outside the engine's bind): a schema loaded later, when a
        # message first needs it, is read as this version holds it, its includes / imports too (Iso20022Codec)
        self.sources = in_force()
        for p in paths:
            self.add(p)

    def add(self, path: str | Path) -> None:
        p = Path(path)
        if not p.is_dir():
            self._add_file(p)
            return
        self.folders.append(str(p))
        kept = {Path(k) for k in (self.sources or {}) if k.startswith(f"{p}/") and k.endswith(".xsd")}
        # message -> normalised path -> (path, head, the bytes when the version keeps the file's digest)
        found: dict[str, dict[str, tuple[str, _Head, bytes | None]]] = {}
        for f in sorted(set(folder_files(p, "*.xsd")) | kept):
            text = held(f)
            if kept and text is None:
                raise FileChanged(f"{f}: {CHANGED} (the file is not in the configuration's version)", path=str(p))
            try:
                data = read_bytes(f)
            except OSError:
                continue
            head = _head(data, f)
            self.seen.append((str(p), str(f), head.namespace, head.document))
            mid = message_id(head.namespace)
            if mid:
                digest_kept = text is not None and text.startswith("sha256:")
                found.setdefault(mid, {})[os.path.normpath(f)] = (str(f), head, data if digest_kept else None)
        for mid, files in found.items():
            if mid not in self.by_message and mid not in self.ambiguous:
                self._choose(str(p), mid, files)

    def _add_file(self, f: Path) -> None:
        text = held(f)
        try:
            data = read_bytes(f)
        except OSError:
            return
        head = _head(data, f)
        mid = message_id(head.namespace)
        if mid and mid not in self.by_message and mid not in self.ambiguous:
            self.by_message[mid] = str(f)
            self.roots[mid] = str(f.parent)
            if text is not None and text.startswith("sha256:"):
                self.data[mid] = data

    def _choose(self, folder: str, mid: str, files: dict[str, tuple[str, _Head, bytes | None]]) -> None:
        """The schema of ``mid`` among a folder's ``files`` of its namespace: the one declaring ``<Document>``
        (itself or through its includes) that no other includes; none: no schema here; several: ambiguous,
        unless they are copies (the same bytes, their includes too): then the first in name order."""
        def reached(f: str, seen: list[str]) -> list[str]:       # f and the files of the namespace it includes
            seen.append(f)
            for g in files[f][1].includes:
                if g in files and g not in seen:
                    reached(g, seen)
            return seen

        sets = {f: reached(f, []) for f in files}
        with_doc = [f for f in files if any(files[g][1].document for g in sets[f])]
        # none: a file that is not well-formed XML may be the schema; taken, its parse says where it breaks
        with_doc = with_doc or [f for f in files if files[f][1].broken]
        included = {g for f in files for g in files[f][1].includes if g != f}
        roots = [f for f in with_doc if f not in included] or with_doc
        if len(roots) > 1 and len({tuple(_read_digest(Path(files[g][0])) for g in sets[f]) for f in roots}) == 1:
            roots = roots[:1]                                     # copies of one schema
        if len(roots) > 1:
            self.ambiguous[mid] = (folder, tuple((files[f][0], files[f][1].namespace or "") for f in roots))
        elif roots:
            path, _, data = files[roots[0]]
            self.by_message[mid] = path
            self.roots[mid] = folder
            if data is not None:
                self.data[mid] = data

    def refusal(self, mid: str) -> SpecError:
        """What a catalog whose folder holds several schemas of ``mid`` is refused with."""
        folder, files = self.ambiguous[mid]
        spaces = sorted({ns for _, ns in files})
        one = len(spaces) == 1                # else: namespaces that name one message (an ISO and a SIX one)
        named = ", ".join(_rel(f, folder) + ("" if one else f" ({ns})") for f, ns in files[:_SHOWN])
        more = f" and {len(files) - _SHOWN} more" if len(files) > _SHOWN else ""
        what = f"namespace {spaces[0]} ({mid})" if one else mid
        return SpecError(f"xsd_dir folder {folder!r}: {len(files)} XSDs declare a global <Document> for {what}: "
                         f"{named}{more}; the catalog cannot tell which is the message's schema",
                         hint="point xsd_dir at a folder holding only one of them (move the others, e.g. another "
                              "usage guideline's, to a folder of their own), or name the file with the option xsd")

    def missing(self, mid: str, namespace: str | None = None) -> str:
        """Why the catalog has no schema of ``mid`` (``namespace``: the Document's): the folders searched, the
        files of that namespace seen (declaring no ``<Document>``) or else the XSDs the folders hold."""
        if not self.folders:
            return ""
        ns = namespace or f"{NS_PREFIX}{mid}"
        where = ", ".join(repr(f) for f in self.folders)
        same = [(folder, f) for folder, f, fns, _ in self.seen if message_id(fns) == mid]
        if same:
            files = ", ".join(_rel(f, folder) for folder, f in same)
            return (f"no file in {where} declares a global <Document> for namespace {ns}; seen of that namespace: "
                    f"{files} (no global <Document>: types files the message's schema includes)")
        shown = [f"{_rel(f, folder)} ({message_id(fns) or fns or 'no targetNamespace'})"
                 for folder, f, fns, _ in self.seen[:_SHOWN]]
        more = f" and {len(self.seen) - _SHOWN} more" if len(self.seen) > _SHOWN else ""
        files = f"{', '.join(shown)}{more}" if shown else "no *.xsd file"
        return f"no XSD in {where} has targetNamespace {ns}; seen: {files}"

    def find(self, wanted: str | None) -> list[str]:
        return sorted(m for m in self.by_message if matches(wanted, m))

    @classmethod
    def default(cls, extra: list[str | Path] = ()) -> "Catalog":
        paths: list[str | Path] = list(extra)
        env = os.environ.get(ENV_PATH)
        if env:
            paths += [x for x in env.split(os.pathsep) if x]
        bundled = Path(__file__).with_name("xsd")
        if bundled.is_dir():
            paths.append(bundled)
        return cls(paths)
