"""The ``xsd_dir`` catalog with several files per namespace, as real ISO 20022 catalogues and usage guidelines
(SEPA, CBPR+) ship them: a message schema and the files it includes (or that merely share its namespace).

The catalog used to take, for a namespace, the FIRST file in name order whose targetNamespace matched, so an
included types file sorting before the message schema (``aaa_types.xsd``, ``common/types.xsd``) was taken for
it and the first message failed with "declares no global Document".  It now takes the file that declares the
global ``<Document>`` (itself or through its includes) and that no other file of the namespace includes;
several such files are refused, naming them.  Built from the corpus's real camt.053.001.08 XSD, split into a
message schema and a same-namespace include of its simple types."""
from __future__ import annotations

import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from dsl.ir import FormatDecl
from engine.cli import app
from formats.errors import FormatError, SpecError
from formats.iso20022 import COMPONENT as ISO20022
from formats.iso20022 import Iso20022Codec
from formats.versioned import versioned

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso20022"
CASE = CORPUS / "genkgo_camt053_v8"
pytestmark = pytest.mark.skipif(not CASE.is_dir(), reason=f"conformance corpus not found at {CORPUS.resolve()}")
XS = "http://www.w3.org/2001/XMLSchema"
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def _real_xsd() -> Path:
    (xsd,) = (CASE / "xsd").glob("*.xsd")
    return xsd


def _statement() -> bytes:
    (xml,) = (CASE / "input").glob("*.xml")
    return xml.read_bytes()


def split_schema(folder: Path, main_rel: str, types_rel: str) -> tuple[Path, Path]:
    """The real camt.053.001.08 XSD as two files of its namespace: ``main_rel`` (the global Document and the
    complex types) including ``types_rel`` (every simple type), both under ``folder``."""
    main, types = folder / main_rel, folder / types_rel
    main.parent.mkdir(parents=True, exist_ok=True)
    types.parent.mkdir(parents=True, exist_ok=True)
    root = etree.parse(str(_real_xsd())).getroot()
    lib = etree.Element(f"{{{XS}}}schema", nsmap=root.nsmap, attrib=dict(root.attrib))
    for el in list(root.iterchildren(f"{{{XS}}}simpleType")):
        lib.append(el)
    inc = etree.Element(f"{{{XS}}}include", schemaLocation=Path(os.path.relpath(types, main.parent)).as_posix())
    root.insert(0, inc)
    main.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    types.write_bytes(etree.tostring(lib, xml_declaration=True, encoding="UTF-8"))
    return main, types


def _decoded_amount(codec: Iso20022Codec) -> Decimal:
    values = codec.decode(_statement())
    return values["BkToCstmrStmt"]["Stmt"][0]["Bal"][0]["Amt"]["value"]


# the include sorts first (beside it, in a folder of its own), and after: the message schema is taken each time
LAYOUTS = [("camt.053.001.08.xsd", "aaa_types.xsd"),
           ("messages/camt.053.001.08.xsd", "common/types.xsd"),
           ("camt.053.001.08.xsd", "types.xsd")]


@pytest.mark.parametrize("main_rel,types_rel", LAYOUTS)
def test_the_catalog_takes_the_schema_that_declares_document(tmp_path: Path, main_rel: str, types_rel: str) -> None:
    main, _ = split_schema(tmp_path / "xsd", main_rel, types_rel)
    codec = Iso20022Codec(xsd_dir=str(tmp_path / "xsd"))
    assert codec.catalog.by_message["camt.053.001.08"] == str(main)
    assert isinstance(_decoded_amount(codec), Decimal)                 # validated and typed through the include
    assert codec.schema_for("camt.053.001.08").path == str(main)


def test_a_same_namespace_file_nobody_includes_is_passed_over(tmp_path: Path) -> None:
    """A usage guideline's code list in the message's namespace, sorting first, included by nothing."""
    folder = tmp_path / "xsd"
    folder.mkdir()
    shutil.copy(_real_xsd(), folder / "camt.053.001.08.xsd")
    (folder / "0_codes.xsd").write_text(
        f'<xs:schema xmlns:xs="{XS}" targetNamespace="{NS}"><xs:simpleType name="Code"><xs:restriction '
        f'base="xs:string"/></xs:simpleType></xs:schema>')
    codec = Iso20022Codec(xsd_dir=str(folder))
    assert codec.catalog.by_message["camt.053.001.08"] == str(folder / "camt.053.001.08.xsd")
    assert isinstance(_decoded_amount(codec), Decimal)


def test_two_schemas_declaring_document_for_one_namespace_are_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "xsd"
    (folder / "cbpr").mkdir(parents=True)
    shutil.copy(_real_xsd(), folder / "camt.053.001.08.xsd")
    shutil.copy(_real_xsd(), folder / "cbpr" / "camt.053.001.08.xsd")
    split_schema(folder, "sepa/camt.053.001.08.xsd", "sepa/types.xsd")        # a third, through its include
    with pytest.raises(SpecError) as info:
        ISO20022.build(FormatDecl("S", "iso20022", {"message": "camt.053", "xsd_dir": str(folder)}))
    text = str(info.value)
    assert "3 XSDs" in text and NS in text and str(folder) in text
    assert "camt.053.001.08.xsd, cbpr/camt.053.001.08.xsd, sepa/camt.053.001.08.xsd" in text
    assert "types.xsd" not in text
    assert "option xsd" in info.value.hint and "xsd_dir" in info.value.hint
    # a format for another message is not refused for it
    ISO20022.build(FormatDecl("P", "iso20022", {"message": "pacs.008", "xsd_dir": str(folder)}))
    errors = ISO20022.check(FormatDecl("S", "iso20022", {"message": "camt.053", "xsd_dir": str(folder)}))
    assert any("cbpr/camt.053.001.08.xsd" in e.message for e in errors)
    assert ISO20022.check(FormatDecl("P", "iso20022", {"message": "pacs.008", "xsd_dir": str(folder)})) == []


def test_no_schema_for_the_namespace_names_the_folder_the_namespace_and_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "xsd"
    _, types = split_schema(folder, "messages/camt.053.001.08.xsd", "common/types.xsd")
    (folder / "messages" / "camt.053.001.08.xsd").unlink()           # only the include is left
    shutil.copy(CORPUS / "moov_io_pacs002_valid" / "xsd" / "pacs.002.001.11.xsd", folder / "pacs.002.001.11.xsd")
    codec = Iso20022Codec(xsd_dir=str(folder))
    with pytest.raises(FormatError) as info:
        codec.decode(_statement())
    text = str(info.value)
    assert text.startswith("byte ") and "no XSD for camt.053.001.08" in text
    assert str(folder) in text and NS in text
    assert "common/types.xsd" in text and "no global <Document>" in text
    with pytest.raises(FormatError) as enc:
        codec.encode({"message": "camt.053.001.08", "BkToCstmrStmt": {}})
    assert str(folder) in str(enc.value) and "common/types.xsd" in str(enc.value)
    shutil.rmtree(folder / "common")                                    # no file of that namespace at all
    with pytest.raises(FormatError) as none:
        Iso20022Codec(xsd_dir=str(folder)).decode(_statement())
    text = str(none.value)
    assert str(folder) in text and NS in text
    assert "seen: pacs.002.001.11.xsd (pacs.002.001.11)" in text          # the files seen, and their messages


def test_the_choice_is_made_on_the_text_the_version_holds(tmp_path: Path) -> None:
    """In the engine's bind the files are read as the configuration's version holds them: files rewritten
    after the version was computed (the schema's Document moved to the include) do not change which file is
    the schema."""
    folder = tmp_path / "xsd"
    main, types = split_schema(folder, "camt.053.001.08.xsd", "aaa_types.xsd")
    held = {str(main): main.read_text(), str(types): types.read_text()}
    document = '<xs:element name="Document" type="Document"/>'
    assert document in held[str(main)]
    main.write_text(re.sub(r"<xs:include [^>]*/>", "", held[str(main)].replace(document, "")))
    types.write_text(held[str(types)].replace("</xs:schema>", document + "</xs:schema>"))
    assert Iso20022Codec(xsd_dir=str(folder)).catalog.by_message["camt.053.001.08"] == str(types)   # on disk
    with versioned(held):
        codec = ISO20022.build(FormatDecl("S", "iso20022", {"xsd_dir": str(folder)}))
    assert codec.catalog.by_message["camt.053.001.08"] == str(main)
    assert isinstance(_decoded_amount(codec), Decimal)


def test_bsp_decode_reads_a_catalogue_whose_include_sorts_first(tmp_path: Path) -> None:
    folder = tmp_path / "xsd"
    split_schema(folder, "camt.053.001.08.xsd", "aaa_types.xsd")
    data = tmp_path / "statement.xml"
    data.write_bytes(_statement())
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--xsd-dir", str(folder), str(data)])
    assert r.exit_code == 0, r.output
    assert "camt.053.001.08" in r.output
    shutil.copy(_real_xsd(), folder / "copy_of_camt.053.001.08.xsd")
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--xsd-dir", str(folder), str(data)])
    assert r.exit_code != 0
    assert "camt.053.001.08.xsd, copy_of_camt.053.001.08.xsd" in r.output


def test_bsp_check_refuses_an_ambiguous_xsd_dir_at_the_option(tmp_path: Path) -> None:
    folder = tmp_path / "xsd"
    split_schema(folder, "camt.053.001.08.xsd", "aaa_types.xsd")
    route = tmp_path / "s.route"
    route.write_text('format Statement = iso20022 camt.053 xsd_dir "xsd"\n')
    r = CliRunner().invoke(app, ["check", str(route)])
    assert r.exit_code == 0, r.output
    (folder / "zz").mkdir()
    shutil.copy(_real_xsd(), folder / "zz" / "camt.053.001.08.xsd")
    r = CliRunner().invoke(app, ["check", str(route)])
    assert r.exit_code == 1, r.output
    assert f"{route}:1:" in r.output and "error[E050]" in r.output
    assert "camt.053.001.08.xsd, zz/camt.053.001.08.xsd" in r.output


def test_bsp_reconcile_reads_the_catalogue_and_refuses_an_ambiguous_one(tmp_path: Path) -> None:
    from engine.reconcile.statement_camt053 import load_camt053
    from engine.reports.model import ReportError

    folder = tmp_path / "xsd"
    split_schema(folder, "camt.053.001.08.xsd", "aaa_types.xsd")
    data = tmp_path / "statement.xml"
    data.write_bytes(_statement())
    assert load_camt053(data, folder)
    shutil.copy(_real_xsd(), folder / "copy.xsd")
    with pytest.raises(ReportError) as info:
        load_camt053(data, folder)
    text = str(info.value)
    assert text.startswith(f"--xsd-dir {folder}: folder ") and "camt.053.001.08.xsd, copy.xsd" in text
    assert "Traceback" not in text and "option" not in text


def test_copies_of_one_schema_are_one_schema(tmp_path: Path) -> None:
    """The same XSD copied into several places of a catalogue (the corpus has camt.053.001.02 three times) is
    not ambiguous: the first in name order is taken; copies whose includes differ are refused."""
    folder = tmp_path / "xsd"
    split_schema(folder, "a/camt.053.001.08.xsd", "a/types.xsd")
    split_schema(folder, "b/camt.053.001.08.xsd", "b/types.xsd")
    codec = Iso20022Codec(xsd_dir=str(folder))
    assert codec.catalog.by_message["camt.053.001.08"] == str(folder / "a" / "camt.053.001.08.xsd")
    assert isinstance(_decoded_amount(codec), Decimal)
    types_b = folder / "b" / "types.xsd"
    types_b.write_text(types_b.read_text().replace("</xs:schema>", "<!-- another guideline --></xs:schema>"))
    with pytest.raises(SpecError, match="a/camt.053.001.08.xsd, b/camt.053.001.08.xsd"):
        Iso20022Codec(xsd_dir=str(folder))


def test_two_namespaces_of_one_message_are_refused_naming_each(tmp_path: Path) -> None:
    """A SIX namespace ``.../pain.001.001.03.xsd`` names the same message as the ISO one: the catalog, keyed
    by message, cannot hold both; the refusal says which namespace each file declares."""
    folder = tmp_path / "xsd"
    folder.mkdir()
    iso = CORPUS / "sepa_king_pain_001_001_03" / "xsd" / "pain.001.001.03.xsd"
    shutil.copy(iso, folder / "pain.001.001.03.xsd")
    six = "http://www.six-interbank-clearing.com/de/pain.001.001.03.xsd"
    (folder / "six").mkdir()
    (folder / "six" / "pain.001.001.03.xsd").write_text(
        iso.read_text().replace("urn:iso:std:iso:20022:tech:xsd:pain.001.001.03", six))
    with pytest.raises(SpecError) as info:
        Iso20022Codec(xsd_dir=str(folder))
    assert (f"for pain.001.001.03: pain.001.001.03.xsd (urn:iso:std:iso:20022:tech:xsd:pain.001.001.03), "
            f"six/pain.001.001.03.xsd ({six})") in str(info.value)


def test_a_schema_broken_before_its_document_is_still_taken_and_its_parse_says_where(tmp_path: Path) -> None:
    """A message schema cut short (a half-copied file) is not taken for a types file: its parse names the line."""
    folder = tmp_path / "xsd"
    split_schema(folder, "camt.053.001.08.xsd", "aaa_types.xsd")
    main = folder / "camt.053.001.08.xsd"
    main.write_text(main.read_text().replace('<xs:element name="Document"', '<xs:element name="Document" <'))
    codec = Iso20022Codec(xsd_dir=str(folder))
    with pytest.raises(SpecError, match="not well-formed") as info:
        codec.decode(_statement())
    assert info.value.path == str(main) and info.value.line
    data = tmp_path / "statement.xml"
    data.write_bytes(_statement())
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--xsd-dir", str(folder), str(data)])
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit)), r.exception
    assert f"record 1, byte 0: the message's schema cannot be used: {main}:" in r.output
    assert "XSD is not well-formed XML" in r.output
