"""Which request Content-Types an ``http listen`` channel reads (its option ``check_content_type``).

The media types follow the receive formats of the channel's routes: a JSON format reads
``application/json`` and ``application/*+json``, and a form (``application/x-www-form-urlencoded``, which
the channel turns into a flat JSON object); an XML format (``xml``, ``iso20022``) reads ``application/xml``,
``text/xml`` and ``application/*+xml``.  A channel with a route of any other format (a copybook, ISO 8583,
fixed records, raw bytes) is not checked: those have no media type of their own.

A request without Content-Type is not checked (nothing declared, nothing contradicted): the format reads
it.  A form whose body is JSON (``{`` or ``[`` first: a form serialiser escapes both) is refused: that is
``curl -d`` sending JSON with its default Content-Type, which read as a form would give the route a field
named after the whole JSON text.  Case does not matter; of the parameters only ``charset`` does:

* JSON (and a form, whose %-escapes are UTF-8 bytes, WHATWG URL standard) is UTF-8 (RFC 8259 8.1: "MUST
  be encoded using UTF-8"; ``application/json`` defines no charset parameter): ``charset=utf-8`` (or
  ``us-ascii``, a subset) or none is read; any other declared charset (``iso-8859-1``, ``utf-16``,
  ``windows-1252``) is refused 415 naming ``charset=utf-8``, rather than reading the bytes as UTF-8 against
  the sender's word (latin-1 ``Ã©`` would silently become ``é``, UTF-16 would fail as "not JSON").
  Transcoding is not offered: payment APIs take UTF-8 only, and the ledger keeps a JSON request as
  received, byte for byte.
* XML is read as the document says (its BOM, else its ``<?xml ... encoding="..."?>``, else UTF-8: what
  lxml does, XML 1.0 appendix F); a ``charset`` that names another encoding than the document's (RFC 7303
  makes the parameter authoritative, the parser reads the declaration) is refused 415 naming the
  document's, so the two can never be read differently.  ``text/xml`` is treated as ``application/xml``
  (RFC 7303: no US-ASCII default any more).
* An unknown charset name is refused 415 too.

Pure: the channel and the OpenAPI generator (engine/http_contract) both use it.
"""
from __future__ import annotations

import codecs
import re
from typing import Iterable

FORM = "application/x-www-form-urlencoded"
JSON_TYPES = ("application/json", "application/*+json", FORM)
XML_TYPES = ("application/xml", "text/xml", "application/*+xml")


def accepted_types(kinds: Iterable[str | None]) -> tuple[str, ...] | None:
    """The media types the formats of ``kinds`` (a route's format kind, None: raw bytes) read, in a fixed
    order; None when one of them has none (not checked)."""
    out: list[str] = []
    for kind in kinds:
        if kind == "json":
            out += JSON_TYPES
        elif kind in ("xml", "iso20022"):
            out += XML_TYPES
        else:
            return None
    return tuple(dict.fromkeys(out)) or None


def _matches(media: str, accepted: str) -> bool:
    if "/*+" in accepted:                         # application/*+json: application/problem+json, ...
        top, suffix = accepted.split("/*", 1)
        return media.startswith(top + "/") and media.endswith(suffix)
    return media == accepted


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value (unquoted, as sent), None when absent."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').strip() or None
    return None


def _codec(name: str) -> str | None:
    """Python's name of the encoding ``name`` (``latin-1`` and ``ISO-8859-1`` alike), None when unknown."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_UTF8 = {"utf-8", "ascii"}                       # codecs' names: utf8, UTF-8, us-ascii ...
_XML_DECL = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def xml_encoding(body: bytes) -> tuple[str, str]:
    """The encoding an XML parser reads ``body`` in, and why: its BOM, else its declaration's
    ``encoding``, else UTF-8 (XML 1.0 appendix F).  ``("utf-8", "it declares no encoding")``."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, f"it starts with a {name.upper()} byte order mark"
    if body[:2] in (b"<\x00", b"\x00<"):              # '<' in UTF-16 (appendix F: 3C 00 3F 00 ...)
        return "utf-16", "it is UTF-16 without a byte order mark"
    m = _XML_DECL.match(body[:200])
    if m:
        declared = m.group(1).decode("ascii")
        return declared, f'it declares encoding="{declared}"'
    return "utf-8", "it declares no encoding (XML's default: UTF-8)"


def _family(name: str | None) -> str | None:
    """``utf-16-le`` and ``utf-16`` are one family: the BOM says which, the parser reads either."""
    if name is None:
        return None
    return "utf-16" if name.startswith("utf-16") else "utf-32" if name.startswith("utf-32") else name


def _charset_refusal(media: str, body: bytes, charset: str | None) -> str | None:
    if charset is None:
        return None
    codec = _codec(charset)
    charset = charset[:40]                  # the sender's text, in the reason and the log: bounded
    xml = not media == FORM and not media.endswith("json")
    if codec is None:
        want = "the document's own encoding (or none)" if xml else "charset=utf-8"
        return f"Content-Type declares charset={charset}, which is not a known character set: send {want}"
    if not xml:
        if codec in _UTF8:
            return None
        what = "a form's %-escaped bytes are UTF-8" if media == FORM else "JSON is UTF-8 (RFC 8259)"
        return (f"Content-Type declares charset={charset}, but {what} and the body is read as UTF-8 only: "
                f"send the body in UTF-8 with charset=utf-8 (or no charset)")
    encoding, why = xml_encoding(body)
    if _family(codec) == _family(_codec(encoding)) or (codec == "ascii" and _codec(encoding) == "utf-8"):
        return None
    return (f"Content-Type declares charset={charset}, but the XML document is read as {encoding}: {why}; "
            f"make them agree: send charset={encoding} (or no charset), or the document in {charset} "
            f"declaring it (<?xml version=\"1.0\" encoding=\"{charset}\"?>)")


def refusal(media: str, body: bytes, accepted: tuple[str, ...] | None, charset: str | None = None) -> str | None:
    """Why a request of Content-Type ``media`` (without parameters, lower case; "" when absent) and
    ``charset`` (its parameter, ``charset_of``; None when absent) is refused (a 415's detail), or None when
    the channel reads it."""
    if accepted is None or not media:
        return None
    if media == FORM and FORM in accepted and body.lstrip()[:1] in (b"{", b"["):
        return (f"the body is JSON but its Content-Type says a form ({FORM}, curl -d's default): "
                f"send Content-Type: application/json")
    if any(_matches(media, a) for a in accepted):
        return _charset_refusal(media, body, charset)
    return f"Content-Type {media} is not read here: send {' or '.join(accepted)}"


def answer_in_utf8(content_type: str | None, body: bytes) -> tuple[bytes, str | None]:
    """An ``http call``'s answer body as the reply format reads it (UTF-8), and what was done to it.

    The other side of the rule above: a counterpart's answer has already been acted on, so refusing it
    for its charset would fail a deal the counterpart has done.  A text answer (JSON, a form, ``text/*``
    but not XML) that declares a known charset other than UTF-8 (``iso-8859-1``, ``windows-1252``,
    ``utf-16``) is transcoded to UTF-8 as declared, so that ``é`` sent in latin-1 is read as ``é`` and
    not as an undecodable byte.  XML is left to its own declaration (the parser reads it); a body without
    a charset, with an unknown one, or not valid in the one it declares is given as it came (the format
    then says what is wrong with it).  Returns ``(body, None)`` when nothing was done, else
    ``(utf8_body, "transcoded from CHARSET")``."""
    charset = charset_of(content_type)
    if charset is None:
        return body, None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if "xml" in media or not (media.endswith("json") or media == FORM or media.startswith("text/")):
        return body, None
    codec = _codec(charset)
    if codec is None or codec in _UTF8:
        return body, None
    try:
        return body.decode(codec).encode("utf-8"), f"transcoded from {charset[:40]}"
    except UnicodeDecodeError:
        return body, None
