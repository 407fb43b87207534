"""Single-byte code pages for mainframe records: EBCDIC pages, ASCII, Latin-1.

Every page is a 256-character decoding table (``decoding_table(name)``), so a
whole record is turned into text with one ``codecs.charmap_decode`` call and
each DISPLAY field is a slice of it (about twice as fast as decoding field by
field).  Encoding goes through the matching ``codecs.charmap_build`` map.

Pages: cp037, cp273, cp500, cp1047, cp1140-cp1149 (the ``ebcdic`` package
registers cp1047 and cp1141-cp1149), ``common`` (the printable US-ASCII characters at
their cp037 positions - letters, digits, US punctuation including { } [ ] that
zoned signs and most copybook data use; every other byte, controls and
national characters, decodes to a space), ``ascii`` (7-bit ASCII) and ``latin-1``.  In the ``ascii`` table bytes
128-255 decode to the lone surrogates U+DC80-U+DCFF (as Python's
``surrogateescape`` does): a record's binary fields still slice from one decoded
text, while a text field holding such a byte is refused by the copybook decoder
(``byte 0xfc is not valid ascii``) and no character encodes to them.  ``controls="space"`` maps C0/C1 control characters to spaces
(what upstream readers call the non-"extended" pages).
"""
from __future__ import annotations

import codecs
from functools import lru_cache

try:  # registers cp1047, cp1141-cp1149 with the codecs machinery
    import ebcdic as _ebcdic  # noqa: F401
except ImportError:  # pragma: no cover - the dependency is declared in pyproject
    _ebcdic = None

EBCDIC_PAGES: tuple[str, ...] = (
    "cp037", "cp273", "cp500", "cp1047",
    "cp1140", "cp1141", "cp1142", "cp1143", "cp1144", "cp1145", "cp1146",
    "cp1147", "cp1148", "cp1149",
)
ASCII_PAGES: tuple[str, ...] = ("ascii", "latin-1")
PAGES: tuple[str, ...] = ("common",) + EBCDIC_PAGES + ASCII_PAGES

_ALIASES = {"latin1": "latin-1", "iso-8859-1": "latin-1", "us-ascii": "ascii",
            "ebcdic": "cp037", "ibm037": "cp037", "ibm500": "cp500", "ibm1047": "cp1047"}


class UnknownCodePage(ValueError):
    pass


def canonical(name: str) -> str:
    n = name.strip().lower().replace("_", "-")
    n = _ALIASES.get(n, n)
    if n.startswith("cp-"):
        n = "cp" + n[3:]
    if n not in PAGES:
        raise UnknownCodePage(f"unknown code page {name!r}; expected one of {', '.join(PAGES)}")
    return n


def is_ebcdic(name: str) -> bool:
    return canonical(name) in EBCDIC_PAGES or canonical(name) == "common"


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or 0x7F <= o < 0xA0


@lru_cache(maxsize=None)
def _raw_table(page: str) -> str:
    if page == "ascii":
        return "".join(chr(i) if i < 128 else chr(0xDC00 + i) for i in range(256))
    if page == "latin-1":
        return bytes(range(256)).decode("latin-1")
    if page == "common":
        base = _raw_table("cp037")
        return "".join(ch if " " <= ch <= "~" else " " for ch in base)
    table = bytes(range(256)).decode(page)
    if table[0x15] == table[0x25] == "\n" and "\x85" not in table:
        # the ebcdic package's cp1141-cp1149 decode both NL (0x15) and LF (0x25) to U+000A, so a
        # record holding 0x15 came back as 0x25; IBM's tables (and Python's cp037/cp500/cp1140)
        # give NL its own character, U+0085 NEXT LINE
        table = table[:0x15] + "\x85" + table[0x16:]
    return table


@lru_cache(maxsize=None)
def decoding_table(name: str, controls: str = "keep") -> str:
    """The 256-character table for ``codecs.charmap_decode``."""
    if controls not in ("keep", "space"):
        raise ValueError(f"controls must be 'keep' or 'space', not {controls!r}")
    table = _raw_table(canonical(name))
    if controls == "space":
        table = "".join(" " if _is_control(c) else c for c in table)
    return table


@lru_cache(maxsize=None)
def encoding_map(name: str):
    """The map for ``codecs.charmap_encode`` (inverse of the raw table).

    For ``common`` the first byte of each character wins; space is 0x40.
    """
    page = canonical(name)
    table = _raw_table(page)
    if page == "ascii":
        table = table[:128] + "\ufffe" * 128      # 7 bits: nothing encodes to bytes 128-255
    if page == "common":
        seen: dict[str, int] = {" ": 0x40}
        for i, ch in enumerate(table):
            seen.setdefault(ch, i)
        chars = ["\ufffe"] * 256
        for ch, i in seen.items():
            chars[i] = ch
        table = "".join(chars)
    return codecs.charmap_build(table)


def space_byte(name: str) -> int:
    return 0x20 if canonical(name) in ASCII_PAGES else 0x40


def decode(data: bytes, name: str, controls: str = "keep") -> str:
    return codecs.charmap_decode(data, "strict", decoding_table(name, controls))[0]


def encode(text: str, name: str) -> bytes:
    return codecs.charmap_encode(text, "strict", encoding_map(name))[0]
