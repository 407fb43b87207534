"""Which ``--type`` reads a statement file given with another one (``bsp reconcile``'s hint).

A file that is not what ``--type`` says is refused naming what it is (formats.swift.statement_kind
``describe_text``: an MT103, an ISO 20022 pain.001, CSV text ...) and where; when another type reads it, the
error says which.
"""
from __future__ import annotations

import re

from formats.swift.statement_kind import STATEMENT_TYPES, describe_text

_XMLNS = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:(camt\.05[23])\.")
_TAG_LINE = re.compile(r"^:(20|25|28C|60F|61|62F):", re.M)
_FIN_B2 = re.compile(r"\{2:[IO](\d{3})")


def text_of(data: bytes) -> str:
    """A statement file's text: UTF-8, else ISO 8859-1 (banks' .sta exports often are)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def byte_at(data: bytes, text: str, at: int) -> int:
    """The byte offset in ``data`` of character ``at`` of ``text`` (``text_of(data)``)."""
    try:
        return len(text[:at].encode("utf-8")) if data.decode("utf-8") == text else at
    except UnicodeDecodeError:
        return at


def reading_type(data: bytes) -> str | None:
    """The ``--type`` that reads ``data``: camt053 / camt052 (by the document's namespace), mt940 (SWIFT
    statement fields, or a FIN MT940 / MT942 / MT950), csv (CSV text); None when none does."""
    head = data[:4096]
    ns = _XMLNS.search(head)
    if ns is not None:
        return ns[1].decode().replace(".", "")
    text = text_of(head)
    b2 = _FIN_B2.search(text)
    if b2 is not None:
        return "mt940" if b2[1] in STATEMENT_TYPES else None
    if _TAG_LINE.search(text):
        return "mt940"
    what, _ = describe_text(text)
    return "csv" if what.startswith("CSV text") else None


def type_hint(data: bytes, given: str) -> str:
    """"; it reads with --type camt053" when another type reads ``data`` than the one ``given``, else ""."""
    other = reading_type(data)
    return f"; it reads with --type {other}" if other is not None and other != given else ""


__all__ = ["byte_at", "reading_type", "text_of", "type_hint"]
