"""The charset of a request's Content-Type (engine/channels/http_media.py), pure: JSON and forms are UTF-8
only (RFC 8259, WHATWG URL); XML is read in the document's own encoding, so a charset naming another one is
refused rather than read otherwise by the parser than the sender meant."""
from __future__ import annotations

import pytest

from engine.channels.http_media import JSON_TYPES, XML_TYPES, charset_of, refusal, xml_encoding

LATIN1_XML = '<?xml version="1.0" encoding="ISO-8859-1"?><a>Müller</a>'.encode("latin-1")


@pytest.mark.parametrize("header, charset", [
    ("application/json", None), ("application/json; charset=utf-8", "utf-8"),
    ('application/json;CHARSET="ISO-8859-1"', "ISO-8859-1"), ("application/json; charset=", None),
    ("application/xml; version=1; charset = utf-16", "utf-16"),
])
def test_charset_of(header: str, charset: str | None) -> None:
    assert charset_of(header) == charset


@pytest.mark.parametrize("media, charset", [
    ("application/json", None), ("application/json", "UTF-8"), ("application/json", "utf8"),
    ("application/json", "us-ascii"), ("application/vnd.bank+json", "utf-8"),
    ("application/x-www-form-urlencoded", "utf-8"),
])
def test_json_and_forms_in_utf8_are_read(media: str, charset: str | None) -> None:
    assert refusal(media, b'{"a": 1}' if "json" in media else b"a=1", JSON_TYPES, charset) is None


@pytest.mark.parametrize("media, charset", [
    ("application/json", "iso-8859-1"), ("application/json", "latin-1"), ("application/json", "utf-16"),
    ("application/json", "windows-1252"), ("application/problem+json", "utf-32"),
    ("application/x-www-form-urlencoded", "iso-8859-1"),
])
def test_json_or_a_form_declared_in_another_charset_is_refused_naming_utf8(media: str, charset: str) -> None:
    why = refusal(media, b'{"a": 1}' if "json" in media else b"a=1", JSON_TYPES, charset)
    assert why is not None and why.startswith(f"Content-Type declares charset={charset}, but ")
    assert "send the body in UTF-8 with charset=utf-8 (or no charset)" in why


def test_an_unknown_charset_is_refused() -> None:
    assert refusal("application/json", b"{}", JSON_TYPES, "klingon") == (
        "Content-Type declares charset=klingon, which is not a known character set: send charset=utf-8")
    assert "x" * 41 not in refusal("application/json", b"{}", JSON_TYPES, "x" * 500)     # bounded in the log


@pytest.mark.parametrize("body, encoding", [
    (b"<a/>", "utf-8"), (LATIN1_XML, "ISO-8859-1"), (b"<?xml version='1.0' encoding='cp1252'?><a/>", "cp1252"),
    ("<a/>".encode("utf-16"), "utf-16"), (b"\xef\xbb\xbf<a/>", "utf-8"), ("<a/>".encode("utf-16-be"), "utf-16"),
])
def test_the_encoding_an_xml_parser_reads(body: bytes, encoding: str) -> None:
    assert xml_encoding(body)[0] == encoding


@pytest.mark.parametrize("body, charset", [
    (b"<a/>", None), (b"<a/>", "utf-8"), (b"<a/>", "us-ascii"), (LATIN1_XML, "iso-8859-1"), (LATIN1_XML, "latin1"),
    ("<a/>".encode("utf-16"), "utf-16"), ("<a/>".encode("utf-16"), "UTF-16LE"),
])
def test_xml_whose_charset_agrees_with_the_document_is_read(body: bytes, charset: str | None) -> None:
    for media in ("application/xml", "text/xml", "application/vnd.bank+xml"):
        assert refusal(media, body, XML_TYPES, charset) is None, (media, charset)


def test_xml_whose_charset_contradicts_the_document_is_refused_naming_the_documents() -> None:
    why = refusal("text/xml", b"<a>M\xc3\xbcller</a>", XML_TYPES, "iso-8859-1")
    assert why == ("Content-Type declares charset=iso-8859-1, but the XML document is read as utf-8: it declares "
                   "no encoding (XML's default: UTF-8); make them agree: send charset=utf-8 (or no charset), or "
                   'the document in iso-8859-1 declaring it (<?xml version="1.0" encoding="iso-8859-1"?>)')
    why = refusal("application/xml", LATIN1_XML, XML_TYPES, "utf-8")
    assert why is not None and 'read as ISO-8859-1: it declares encoding="ISO-8859-1"' in why
