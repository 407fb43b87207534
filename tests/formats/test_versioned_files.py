"""A format's files as the configuration's version holds them (formats/versioned.py): in a ``versioned``
block (the engine's bind) a copybook, an ISO 8583 spec, a JSON Schema and an XSD are parsed from the text
read when the version was computed, not the file read again; a file kept only as its digest, an XSD's
include the XSD libraries read themselves, and a file that appeared in an XSD folder are checked, and a
change refuses the build (reload again)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dsl.ir import FormatDecl
from formats.copybook.component import COMPONENT as COPYBOOK
from formats.iso20022.component import COMPONENT as ISO20022
from formats.iso8583.component import COMPONENT as ISO8583
from formats.iso8583.spec import SPECS_DIR
from formats.json_codec import COMPONENT as JSON
from formats.versioned import FileChanged, read_bytes, versioned

CPY_V1 = "       01 REQ.\n          05 REF PIC X(4).\n          05 AMT PIC 9(3)V99.\n"
CPY_V2 = "       01 REQ.\n          05 REF PIC X(2).\n          05 AMT PIC 9(5)V99.\n"
NS = "urn:iso:std:iso:20022:tech:xsd:pacs.999.001.01"
MAIN = (f'<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{NS}" '
        f'targetNamespace="{NS}" elementFormDefault="qualified">\n%s</xs:schema>\n')
DOC = '  <xs:element name="Document" type="Doc"/>\n'
DOC_TYPE = ('  <xs:complexType name="Doc"><xs:sequence><xs:element name="%s" type="xs:decimal"/>'
            '</xs:sequence></xs:complexType>\n')


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_bytes_gives_the_text_held_and_checks_a_digest(tmp_path: Path) -> None:
    f = tmp_path / "a.cpy"
    f.write_text("new")
    assert read_bytes(f) == b"new"                                      # no block: the file
    with versioned({str(f): "old"}):
        assert read_bytes(f) == b"old"
        assert read_bytes(tmp_path / "a.cpy") == b"old"
    with versioned({str(f): _digest(f)}):
        assert read_bytes(f) == b"new"
    kept = {str(f): _digest(f)}
    f.write_text("newer")
    with versioned(kept), pytest.raises(FileChanged) as info:
        read_bytes(f)
    assert str(f) in str(info.value) and "reload again" in str(info.value)


def test_a_copybook_is_cut_as_the_version_holds_it(tmp_path: Path) -> None:
    cpy = tmp_path / "req.cpy"
    cpy.write_text(CPY_V2)
    decl = FormatDecl("C", "copybook", {"path": str(cpy), "encoding": "cp037"})
    with versioned({str(cpy): CPY_V1}):
        codec = COPYBOOK.build(decl)
    assert codec.decode("A00101234".encode("cp037"))["REF"] == "A001"
    assert COPYBOOK.build(decl).decode("A00101234".encode("cp037"))["REF"] == "A0"      # outside: the file


def test_a_json_schema_is_the_one_the_version_holds(tmp_path: Path) -> None:
    schema = tmp_path / "req.schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["ref", "iban"]}))
    decl = FormatDecl("J", "json", {"schema": str(schema)})
    with versioned({str(schema): json.dumps({"type": "object", "required": ["ref"]})}):
        codec = JSON.build(decl)
    assert codec.decode(b'{"ref": "A"}') == {"ref": "A"}


def test_an_iso8583_spec_is_the_one_the_version_holds(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    good = (SPECS_DIR / "iso8583_1987_ascii.yaml").read_text(encoding="utf-8")
    spec.write_text("fields: [this is not the spec\n")                  # replaced meanwhile by a broken one
    decl = FormatDecl("I", "iso8583", {"spec": str(spec)})
    with versioned({str(spec): good}):
        codec = ISO8583.build(decl)
    assert codec.spec is not None
    with pytest.raises(Exception):
        ISO8583.build(decl)                                               # outside: the file read


def test_an_xsd_and_its_include_are_the_version_s(tmp_path: Path) -> None:
    main, types = tmp_path / "pacs.999.xsd", tmp_path / "types.xsd"
    v1_main = MAIN % ('  <xs:include schemaLocation="types.xsd"/>\n' + DOC)
    v1_types = MAIN % (DOC_TYPE % "Amt")
    main.write_text(MAIN % (DOC + DOC_TYPE % "Other"))                  # the main file replaced meanwhile
    types.write_text(v1_types)
    decl = FormatDecl("X", "iso20022", {"xsd": str(main)})
    with versioned({str(main): v1_main, str(types): v1_types}):
        codec = ISO20022.build(decl)
    assert list(codec.schema_for("pacs.999.001.01").root.children) == ["Amt"]
    types.write_text(MAIN % (DOC_TYPE % "Amount"))                      # the include replaced meanwhile
    with versioned({str(main): v1_main, str(types): v1_types}):       # read as the version holds it
        codec = ISO20022.build(decl)
    assert list(codec.schema_for("pacs.999.001.01").root.children) == ["Amt"]
    assert list(ISO20022.build(decl).schema_for("pacs.999.001.01").root.children) == ["Other"]   # outside: the files


def test_an_xsd_include_kept_as_its_digest_and_changed_refuses_the_build(tmp_path: Path) -> None:
    """An include the version keeps as its digest (over 1 MB) is read and must still have it."""
    main, types = tmp_path / "pacs.999.xsd", tmp_path / "types.xsd"
    v1_main = MAIN % ('  <xs:include schemaLocation="types.xsd"/>\n' + DOC)
    main.write_text(v1_main)
    types.write_text(MAIN % (DOC_TYPE % "Amt"))
    kept = {str(main): v1_main, str(types): _digest(types)}
    decl = FormatDecl("X", "iso20022", {"xsd": str(main)})
    with versioned(kept):
        assert list(ISO20022.build(decl).schema_for("pacs.999.001.01").root.children) == ["Amt"]
    types.write_text(MAIN % (DOC_TYPE % "Amount"))                      # the include replaced meanwhile
    with versioned(kept), pytest.raises(FileChanged) as info:
        ISO20022.build(decl)
    assert str(types) in str(info.value) and "reload again" in str(info.value)


def test_a_catalog_schema_loaded_after_the_bind_reads_its_include_as_the_version_holds_it(tmp_path: Path) -> None:
    """An ``xsd_dir`` schema is parsed when a message first needs it, after the bind (outside its
    ``versioned`` block): its include used to be read from disk then, unchecked, so a file rewritten after
    the version was computed validated the messages of a version whose sources hold another."""
    folder = tmp_path / "xsd"
    folder.mkdir()
    main, types = folder / "pacs.999.001.01.xsd", folder / "types.xsd"
    v1_main = MAIN % ('  <xs:include schemaLocation="types.xsd"/>\n' + DOC)
    v1_types = MAIN % (DOC_TYPE % "Amt")
    main.write_text(v1_main)
    types.write_text(v1_types)
    decl = FormatDecl("X", "iso20022", {"xsd_dir": str(folder)})
    with versioned({str(main): v1_main, str(types): v1_types}):
        codec = ISO20022.build(decl)
    types.write_text(MAIN % (DOC_TYPE % "Amount"))                      # after the bind, before the first message
    doc = f'<Document xmlns="{NS}"><Amt>1.50</Amt></Document>'.encode()
    assert str(codec.decode(doc)["Amt"]) == "1.50"                     # validated by the version's include
    other = f'<Document xmlns="{NS}"><Amount>1.50</Amount></Document>'.encode()
    with pytest.raises(Exception, match="not valid pacs.999.001.01"):
        codec.decode(other)


def test_an_xsd_folder_is_the_files_the_version_holds(tmp_path: Path) -> None:
    folder = tmp_path / "xsd"
    folder.mkdir()
    one = folder / "pacs.999.001.01.xsd"
    v1 = MAIN % (DOC + DOC_TYPE % "Amt")
    one.write_text(MAIN % (DOC + DOC_TYPE % "Amount"))                  # replaced meanwhile
    decl = FormatDecl("X", "iso20022", {"xsd_dir": str(folder)})
    with versioned({str(one): v1}):
        codec = ISO20022.build(decl)
    assert list(codec.schema_for("pacs.999.001.01").root.children) == ["Amt"]      # parsed later: the held text
    ns2 = NS.replace("999", "998")
    (folder / "pacs.998.001.01.xsd").write_text((MAIN % (DOC + DOC_TYPE % "Amt")).replace(NS, ns2))
    with versioned({str(one): v1}), pytest.raises(FileChanged) as info:          # appeared meanwhile
        ISO20022.build(decl)
    assert "pacs.998.001.01.xsd" in str(info.value) and "reload again" in str(info.value)


def test_an_xsd_edited_in_place_is_read_again_by_the_next_build(tmp_path: Path) -> None:
    """The schemas were cached by path for the process's life: a reload after an XSD was edited kept
    validating against the old one, under a version whose sources hold the new one."""
    main = tmp_path / "pacs.999.xsd"
    main.write_text(MAIN % (DOC + DOC_TYPE % "Amt"))
    decl = FormatDecl("X", "iso20022", {"xsd": str(main)})
    assert list(ISO20022.build(decl).schema_for("pacs.999.001.01").root.children) == ["Amt"]
    main.write_text(MAIN % (DOC + DOC_TYPE % "Amount"))
    assert list(ISO20022.build(decl).schema_for("pacs.999.001.01").root.children) == ["Amount"]
