"""A camt.053 (or camt.052 / camt.054) file with several statements -> one document per statement.

Banks send a day's statements of several accounts (or several pages of one) as one
``BkToCstmrStmt`` with many ``<Stmt>``.  ``split_statements(data)`` gives each statement as a
document of its own: the file's bytes before the first statement (XML declaration, envelope,
``AppHdr``, ``GrpHdr``: the head), that statement's bytes, and the bytes after the last one (the
tail), cut from the file as they are, so a route reads a one-statement camt.053 and records it as
its own deal.  A document with one statement is returned as it is.  ``Rpt`` (camt.052) and
``Ntfctn`` (camt.054) are split alike.

Each part's offset is where it would start were it cut from the file with its statement at its own
place: the statement's start tag minus the head's length (0 for the first).  So an error the
decoder finds inside a statement, at an offset in the part, is at that offset plus the part's in
the file, as for every record kind.  When the statements cannot be cut by their tags (a ``<Stmt>``
inside a comment or CDATA), each part is the document rebuilt by lxml without the other statements,
at offset 0.  Pure: lxml only, through ``formats.xml_codec.parse`` (no DTD, no entities, no
network).
"""
from __future__ import annotations

import copy
import re

from lxml import etree

from formats.errors import FormatError
from formats.xml_codec import parse

PARTS = {"BkToCstmrStmt": "Stmt", "BkToCstmrAcctRpt": "Rpt", "BkToCstmrDbtCdtNtfctn": "Ntfctn"}


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def split_statements(data: bytes) -> list[tuple[int, bytes]]:
    """``data`` -> [(byte offset of the statement's start tag, one-statement document)]."""
    root = parse(data)
    groups = [el for el in root.iter() if _local(el.tag) in PARTS]
    if not groups:
        raise FormatError("no BkToCstmrStmt (camt.053), BkToCstmrAcctRpt (camt.052) or BkToCstmrDbtCdtNtfctn "
                          "(camt.054) in this document", offset=0, record=1,
                          hint="record = \"camt053\" splits bank-to-customer statements; read other XML with "
                               "record = \"whole\"")
    if len(groups) > 1:
        raise FormatError(f"{len(groups)} {_local(groups[0].tag)} elements in one document: expected one",
                          offset=0, record=1)
    group = groups[0]
    child = PARTS[_local(group.tag)]
    parts = [el for el in group if _local(el.tag) == child]
    if not parts:
        raise FormatError(f"{_local(group.tag)} holds no {child}", offset=0, record=1,
                          hint=f"a bank-to-customer message has at least one {child}")
    if len(parts) == 1:
        return [(0, bytes(data))]
    spans = _spans(bytes(data), group.prefix, child, len(parts))
    if spans is not None:
        head, tail = data[:spans[0][0]], data[spans[-1][1]:]
        return [(start - len(head), bytes(head) + bytes(data[start:end]) + bytes(tail)) for start, end in spans]
    tree = root.getroottree()
    path = tree.getpath(group)
    out: list[tuple[int, bytes]] = []
    for i in range(len(parts)):
        doc = copy.deepcopy(root)
        (grp,) = doc.getroottree().xpath(path) if path != "/" else [doc]
        for j, el in enumerate([e for e in grp if _local(e.tag) == child]):
            if j != i:
                grp.remove(el)
        out.append((0, etree.tostring(doc, xml_declaration=True, encoding="UTF-8")))
    return out


def _spans(data: bytes, prefix: str | None, child: str, n: int) -> list[tuple[int, int]] | None:
    """The byte ranges of the ``n`` statements, start tag to end tag, or None when the tags found are
    not exactly those ``n`` (a tag in a comment, another prefix)."""
    name = ((prefix + ":") if prefix else "").encode() + child.encode()
    starts = [m.start() for m in re.finditer(rb"<" + re.escape(name) + rb"[\s>]", data)]
    ends = [m.end() for m in re.finditer(rb"</" + re.escape(name) + rb"\s*>", data)]
    if len(starts) != n or len(ends) != n:
        return None
    spans = list(zip(starts, ends))
    if any(a >= b for a, b in spans) or any(spans[i][1] > spans[i + 1][0] for i in range(n - 1)):
        return None
    if b"<!--" in data or b"<![CDATA[" in data:
        return None
    return spans
