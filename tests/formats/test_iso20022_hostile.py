"""ISO 20022 XSDs from outside: an XSD never makes the engine fetch a URL (import, include, redefine,
override), while a local import beside it still loads.  A real listener on 127.0.0.1 counts fetches."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from formats.errors import SpecError
from formats.iso20022.schema import load_schema

NS = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.97"
MAIN = '''<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:c="urn:common" targetNamespace="{ns}"
           xmlns="{ns}" elementFormDefault="qualified">
  <xs:import namespace="urn:common" schemaLocation="{loc}"/>
  <xs:element name="Document" type="{type}"/>
</xs:schema>'''
COMMON = '''<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:common">
  <xs:simpleType name="Text"><xs:restriction base="xs:string"/></xs:simpleType>
</xs:schema>'''


@pytest.fixture
def listener():
    """A TCP listener that answers any request with the common XSD and counts connections."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    hits.append(conn.recv(4096))
                    body = COMMON.encode()
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n"
                                 % len(body) + body)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], hits
    stop.set()
    t.join(2)
    srv.close()


@pytest.mark.parametrize("kind", ["import", "include"])
def test_an_xsd_naming_a_url_is_refused_and_nothing_is_fetched(tmp_path: Path, listener, kind: str) -> None:
    port, hits = listener
    url = f"http://127.0.0.1:{port}/common.xsd"
    text = MAIN.format(ns=NS, loc=url, type="xs:string")    # lxml validates without the import
    if kind == "include":
        text = text.replace('<xs:import namespace="urn:common" schemaLocation=', "<xs:include schemaLocation=")
    xsd = tmp_path / f"pacs.002.{kind}.xsd"
    xsd.write_text(text)
    with pytest.raises(SpecError) as e:
        load_schema(str(xsd))
    assert f"<xs:{kind}> names '{url}': an XSD may only load files next to it, never a URL" in str(e.value)
    assert str(xsd) in str(e.value) and e.value.line == 4
    assert hits == []          # before the fix xmlschema fetched the import: hits == [b"GET /common.xsd ..."]


def test_a_local_import_beside_the_xsd_still_loads(tmp_path: Path, listener) -> None:
    (tmp_path / "common.xsd").write_text(COMMON)
    xsd = tmp_path / "pacs.002.001.97.xsd"
    xsd.write_text(MAIN.format(ns=NS, loc="common.xsd", type="c:Text"))
    assert load_schema(str(xsd)).namespace == NS
    assert listener[1] == []


def _outside_setup(tmp_path: Path) -> tuple[Path, Path]:
    """An XSD folder, and a valid schema outside it (a file of the disk the XSD folder's author names)."""
    folder, elsewhere = tmp_path / "xsd", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "common.xsd").write_text(COMMON)
    return folder, elsewhere / "common.xsd"


@pytest.mark.parametrize("how", ["absolute", "relative", "file-url"])
def test_an_xsd_loading_a_local_file_outside_its_folder_is_refused(tmp_path: Path, how: str) -> None:
    folder, outside = _outside_setup(tmp_path)
    loc = {"absolute": str(outside), "relative": "../elsewhere/common.xsd", "file-url": outside.as_uri()}[how]
    xsd = folder / "pacs.002.001.97.xsd"
    xsd.write_text(MAIN.format(ns=NS, loc=loc, type="c:Text"))
    with pytest.raises(SpecError) as e:
        load_schema(str(xsd))
    assert str(xsd) in str(e.value) and e.value.line == 4 and repr(loc) in str(e.value), str(e.value)
    if how != "file-url":          # a URL: refused as one (never read either)
        assert f"outside the XSD folder {folder}" in str(e.value), str(e.value)


def test_a_file_an_xsd_includes_cannot_load_a_file_outside_the_folder_either(tmp_path: Path) -> None:
    folder, outside = _outside_setup(tmp_path)
    (folder / "common").mkdir()
    inner = folder / "common" / "types.xsd"
    inner.write_text(f'<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                     f'targetNamespace="urn:common">\n  <xs:include schemaLocation="{outside}"/>\n</xs:schema>')
    xsd = folder / "messages" / "pacs.002.001.97.xsd"
    xsd.parent.mkdir()
    xsd.write_text(MAIN.format(ns=NS, loc="../common/types.xsd", type="c:Text"))
    with pytest.raises(SpecError) as e:
        load_schema(str(xsd), root=str(folder))
    assert str(inner) in str(e.value) and e.value.line == 3 and repr(str(outside)) in str(e.value), str(e.value)
    # the catalog's folder is the XSD folder: a schema in a subfolder loads the folder's other files
    (folder / "common" / "types.xsd").write_text(COMMON)
    assert load_schema(str(xsd), root=str(folder)).namespace == NS
    with pytest.raises(SpecError, match="outside the XSD folder"):      # its own folder, by default
        load_schema(str(xsd))


def test_a_catalog_schema_whose_include_loads_a_file_outside_xsd_dir_is_refused(tmp_path: Path) -> None:
    from formats.iso20022.codec import Iso20022Codec

    folder, outside = _outside_setup(tmp_path)
    inner = folder / "types.xsd"
    inner.write_text('<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
                     'targetNamespace="urn:common">\n  <xs:include schemaLocation="../elsewhere/common.xsd"/>\n'
                     '</xs:schema>')
    (folder / "pacs.002.001.97.xsd").write_text(MAIN.format(ns=NS, loc="types.xsd", type="c:Text"))
    codec = Iso20022Codec(xsd_dir=str(folder))
    with pytest.raises(SpecError) as e:
        codec.schema_for("pacs.002.001.97")
    assert str(inner) in str(e.value) and e.value.line == 3 and "'../elsewhere/common.xsd'" in str(e.value)
    assert f"outside the XSD folder {folder}" in str(e.value)
