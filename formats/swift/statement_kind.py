"""Which SWIFT messages are bank statements, and what a text or a message is when it is none.

The statement readers (``iter_statements``: bank .sta exports and FIN statement messages; the route language's
``statement_check``; the ``continuity`` step; ``bsp reconcile``) read three SWIFT messages, all of them block 4
fields of one shape (:20: :25: :28C: :60F/M: :61: :62F/M: ...): the MT940 customer statement, the MT942
interim transaction report (no balances: :34F: :13D: :90D: :90C:) and the MT950 statement message (an MT940
without :86:, the banks' nostro statement).  Anything else (an MT103, a pain.001, a CSV, any text) is refused
saying what it is and where, never read as if it were an MT940.

Pure: ``STATEMENT_TYPES``, ``ACCEPTED``; ``foreign_field(tags)``: the first tag no statement has;
``guess_mt(tags)``: the message the tags read as; ``message_type(msg)``: a decoded FIN message's type;
``swift_statement(s)``: a decoded statement's kind and fields, or why it is none; ``describe_text(text)``: what
a text that holds no statement is, and where.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from formats.errors import FormatError
from formats.swift.messages import MESSAGES

STATEMENT_TYPES = {"940": "MT940", "942": "MT942", "950": "MT950"}
ACCEPTED = "an MT940 (customer statement), MT942 (interim transaction report) or MT950 (statement message)"
SHAPE = "block 4 fields :20:, :25:, :28C:, :60F:, :61:, :62F: (MT942: :34F:, :13D:, :90D:, :90C:)"
# every field an MT940, MT942 or MT950 may carry, with what banks' exports add: the older :28:, :25P: (the
# account and its BIC), :NS: (non-SWIFT) and the MT941 balance report's (a subset of these)
STATEMENT_TAGS = frozenset({"20", "21", "25", "25P", "28", "28C", "60F", "60M", "61", "86", "62F", "62M", "64",
                            "65", "34F", "13D", "90D", "90C", "NS"})


class NotAStatement(FormatError):
    """The text (or a message of it) is no bank statement at all, not a statement with a bad field: a reader
    refuses the file saying what it is rather than what an MT940 would lack."""


def foreign_field(tags: Iterable[str]) -> tuple[int, str] | None:
    """(index, tag) of the first field no MT940, MT942 or MT950 has; None when every one may be a statement's."""
    for i, tag in enumerate(tags):
        if tag not in STATEMENT_TAGS:
            return i, tag
    return None


def _base(tag: str, allowed: Mapping[str, str]) -> tuple[str, str]:
    if tag in allowed:
        return tag, "-"
    return (tag[:2], tag[2]) if len(tag) == 3 else (tag, "-")


def guess_mt(tags: Iterable[str]) -> str | None:
    """"an MT103 (Single Customer Credit Transfer)" when block 4's ``tags`` are all fields of that one message
    (of those with a spec, formats.swift.messages) and its mandatory ones are there; None when no one fits."""
    tags = list(tags)
    fits = []
    for mt, spec in MESSAGES.items():
        if mt in STATEMENT_TYPES:
            continue
        allowed = spec.allowed()
        bases = [_base(t, allowed) for t in tags]
        if all(b in allowed and o in allowed[b] for b, o in bases) and \
                all(b in {x for x, _ in bases} for b, _ in spec.mandatory()):
            fits.append(f"an MT{mt} ({spec.title})")
    return fits[0] if len(fits) == 1 else None


def mt_name(mt: str) -> str:
    """"an MT103 (Single Customer Credit Transfer)"; "an MT999" for a type without a spec."""
    spec = MESSAGES.get(mt)
    return f"an MT{mt} ({spec.title})" if spec else f"an MT{mt}"


def message_type(msg: Any) -> str | None:
    """The message type a decoded FIN message's block 2 says ("940"), None when it has none."""
    b2 = msg.get("block2") if isinstance(msg, Mapping) else None
    mt = b2.get("type") if isinstance(b2, Mapping) else None
    return str(mt) if mt else None


def not_statement(fields: Any, mt: str | None = None) -> str | None:
    """Why block 4 ``fields`` (of a message of type ``mt`` when known) is no bank statement; None when it may be
    one (MT940, MT942, MT950)."""
    if mt is not None and mt not in STATEMENT_TYPES:
        return f"{mt_name(mt)} is no bank statement: expected {ACCEPTED}"
    tags = [str(f.get("tag")) for f in fields if isinstance(f, Mapping)] if isinstance(fields, (list, tuple)) else []
    bad = foreign_field(tags)
    if bad is None:
        return None
    i, tag = bad
    what = guess_mt(tags)
    return (f"field {i + 1} (:{tag}:) is no field of a bank statement"
            + (f": these are the fields of {what}" if what else "")
            + f"; expected {ACCEPTED} ({SHAPE})")


def swift_statement(s: Any) -> tuple[str, list] | None:
    """A decoded SWIFT statement: ``msg`` (block 2 says its type) or its ``msg.block4`` (a list of fields) ->
    ("MT940" / "MT942" / "MT950", its block 4); an MT942 is told by its fields (:34F:, :13D:, or :90D: / :90C:
    without balances), and a block 4 alone without them reads as "MT940" (an MT950 is one without :86:: give
    ``msg`` to have it named).  None when ``s`` is no SWIFT message at all; raises ``ValueError`` saying what it
    is when it is a SWIFT message but no statement (an MT103, a block 4 with an MT103's fields)."""
    from formats.swift.statement import is_interim
    mt = None
    if isinstance(s, Mapping):
        if not isinstance(s.get("block4"), list):
            return None
        mt = message_type(s)
        s = s["block4"]
    if not isinstance(s, list):
        return None
    problem = not_statement(s, mt)
    if problem is not None:
        raise ValueError(problem)
    if mt is not None:
        return STATEMENT_TYPES[mt], s
    return ("MT942" if is_interim(s) else "MT940"), s


# ----------------------------------------------------------------------------------------- texts

_XML_ROOT = re.compile(r"<(?![?!])(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")
_XMLNS = re.compile(r"xmlns(?::\w+)?=\"urn:iso:std:iso:20022:tech:xsd:([a-z]{4}\.\d{3}\.\d{3}\.\d{2})\"")
_FIN_B2 = re.compile(r"\{2:[IO](\d{3})")
_TAG_LINE = re.compile(r"^:(\d{2}[A-Z]?|NS):", re.M)


def describe_text(text: str) -> tuple[str, int]:
    """What a text that holds no bank statement is, as a phrase ("an XML document (ISO 20022 pain.001.001.03)",
    "an MT103 (Single Customer Credit Transfer)", "CSV text (header 'date,amount')", "text"), and the character
    offset that shows it (the root element, the block 2, the first line)."""
    body = text.lstrip("\ufeff \t\r\n")
    at = len(text) - len(body)
    if not body:
        return "an empty file", 0
    if body.startswith("<"):
        ns = _XMLNS.search(text)
        root = _XML_ROOT.search(text, at)
        if ns is not None:
            return f"an XML document (ISO 20022 {ns[1]})", root.start() if root else at
        return (f"an XML document (root element {root[1]})" if root else "an XML document"), root.start() if root else at
    if body.startswith(("{", "[")) and not _FIN_B2.search(body):
        return "JSON text", at
    b2 = _FIN_B2.search(text)
    if b2 is not None:
        return mt_name(b2[1]), b2.start()
    line = body.split("\n", 1)[0].rstrip("\r")
    shown = line if len(line) <= 60 else line[:57] + "..."
    if "\x00" in body[:512] or sum(not (c.isprintable() or c in "\r\n\t") for c in body[:512]) > 8:
        return "binary data", at
    lines = [ln for ln in body.split("\n")[:2] if ln.strip()]
    if len(lines) == 2 and not _TAG_LINE.match(line) and any(
            lines[0].count(sep) and lines[0].count(sep) == lines[1].count(sep) for sep in (",", ";", "\t", "|")):
        return f"CSV text (first line {shown!r})", at     # two lines of as many separators
    return f"text (first line {shown!r})", at


__all__ = ["ACCEPTED", "NotAStatement", "SHAPE", "STATEMENT_TAGS", "STATEMENT_TYPES", "describe_text", "foreign_field", "guess_mt",
           "message_type", "mt_name", "not_statement", "swift_statement"]
