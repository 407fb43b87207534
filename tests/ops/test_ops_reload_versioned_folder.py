"""A configuration folder (an ``xsd_dir``) is versioned whole: every file the format reads of it (``*.xsd``),
however many, up to ``MAX_DIR_FILES`` (2000), beyond which the configuration is refused naming the folder and
the count (E132).  Before, the first 500 files of the folder (any files, README included, in name order) were
versioned and the others read from disk when the engine bound: an XSD past the 500th, rewritten after the
version was computed, validated the messages of a version whose sources do not hold it.

Real engine (LiveEngine as `bsp run` serves it) on 127.0.0.1, a real DuckDB ledger."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from opskit import ECHO, live, rows
from kit import Client      # noqa: E402 (tests/engine, put on the path by opskit)

MAIN = ('<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{ns}" '
        'targetNamespace="{ns}" elementFormDefault="qualified">\n'
        '  <xs:element name="Document" type="Doc"/>\n'
        '  <xs:complexType name="Doc"><xs:sequence><xs:element name="{leaf}" type="xs:decimal"/>'
        '</xs:sequence></xs:complexType>\n</xs:schema>\n')
NS = "urn:iso:std:iso:20022:tech:xsd:"


def xsd_folder(folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(start, start + count):
        mid = f"pacs.{i // 100:03d}.001.{i % 100:02d}"
        f = folder / f"{mid}.xsd"
        f.write_text(MAIN.format(ns=NS + mid, leaf="Amt"))
        out.append(f)
    return out


def test_every_xsd_of_a_folder_of_600_is_versioned_and_bound_as_the_version_holds_it(tmp_path: Path) -> None:
    """600 XSDs (and a README, which the format does not read, and is not versioned): all 600 are in the
    version; the last one, rewritten after the version was computed, is bound as the version holds it."""
    from dsl.load import compile_paths
    from engine.ops.files import with_referenced_files
    from engine.registry import default_registry
    from engine.runtime.binder import Binder

    folder = tmp_path / "xsd"
    files = xsd_folder(folder, 600)
    (folder / "README.txt").write_text("the bank's ISO 20022 schemas\n")
    route = tmp_path / "iso.route"
    route.write_text('format X = iso20022 xsd_dir "xsd"\n' + ECHO % "A")
    registry = default_registry()
    program = with_referenced_files(compile_paths([route], registry).program)
    held = {k for k in program.sources if k.startswith(f"{folder}/")}
    assert held == {str(f) for f in files}                 # all of them, the README left out
    last = files[-1]                                        # pacs.005.001.99: past the old 500
    last.write_text(MAIN.format(ns=NS + "pacs.005.001.99", leaf="Amount"))      # rewritten meanwhile
    codec = Binder(program, registry).codec("X")
    doc = f'<Document xmlns="{NS}pacs.005.001.99"><Amt>2.50</Amt></Document>'.encode()
    assert str(codec.decode(doc)["Amt"]) == "2.50"           # the version's schema
    with pytest.raises(Exception, match="not valid pacs.005.001.99"):
        codec.decode(doc.replace(b"Amt>", b"Amount>"))



async def ask(eng, body: bytes) -> dict:
    """One request to the engine's ``front`` channel, its JSON answer."""
    c = await Client.open(eng.current.channels["front"].port)
    try:
        await c.send(body)
        (r,) = await c.recv_json()
        return r
    finally:
        await c.aclose()

async def test_a_folder_grown_past_the_limit_refuses_the_reload_naming_it_and_nothing_is_lost(tmp_path: Path) -> None:
    """A full catalogue copied into the folder of a running configuration: the reload is refused with E132
    naming the folder, the count and the limit; the running version goes on answering."""
    folder = tmp_path / "xsd"
    xsd_folder(folder, 3)
    route = tmp_path / "iso.route"
    route.write_text('format X = iso20022 xsd_dir "xsd"\n' + ECHO % "A")
    ledger = tmp_path / "l.duckdb"

    async def ask(eng, ref: str) -> dict:
        c = await Client.open(eng.current.channels["front"].port)
        try:
            await c.send(orjson.dumps({"ref": ref}))
            (r,) = await c.recv_json()
            return r
        finally:
            await c.aclose()

    async with live([route], ledger) as eng:
        before = eng.version
        assert await ask(eng, "R1") == {"ref": "R1", "tag": "A"}
        xsd_folder(folder, 2000, start=3)
        result = await eng.reload(source="test")
        assert not result.ok
        text = "\n".join(map(str, result.diagnostics))
        assert "E132" in text and f"folder '{folder}' holds 2003 files (*.xsd)" in text, text
        assert "at most 2000" in text, text
        assert eng.version == before
        assert await ask(eng, "R2") == {"ref": "R2", "tag": "A"}
    assert sorted(r for (r,) in rows(ledger, "SELECT reference FROM deals")) == ["R1", "R2"]


INCLUDING = ('<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{ns}" '
             'targetNamespace="{ns}" elementFormDefault="qualified">\n'
             '  <xs:include schemaLocation="common/types.xsd"/>\n'
             '  <xs:element name="Document" type="Doc"/>\n</xs:schema>\n')
# no targetNamespace (a "chameleon" include: it takes the including schema's), so the catalog does not take
# it for the message's schema
TYPES = ('<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
         'elementFormDefault="qualified">\n'
         '  <xs:complexType name="Doc"><xs:sequence><xs:element name="{leaf}" type="xs:decimal"/>'
         '</xs:sequence></xs:complexType>\n</xs:schema>\n')
XML_ROUTE = """
format X = iso20022 xsd_dir "xsd"
format R = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply R { code = error.code  text = error.text }
}
route pay {
    receive from front as X
    reply R { code = "00" }
}
"""


async def test_an_include_rewritten_after_the_start_is_not_the_one_a_late_parse_reads(tmp_path: Path) -> None:
    """An ``xsd_dir`` schema is parsed when its first message arrives, after the engine bound the
    configuration; its include, rewritten in between (a deploy job copying new schemas), used to be read
    from disk by that late parse: messages were validated by a schema the running version does not hold.
    Now the include is read as the version holds it; the next reload takes the new one."""
    folder = tmp_path / "xsd"
    (folder / "common").mkdir(parents=True)
    mid = "pacs.999.001.01"
    (folder / f"{mid}.xsd").write_text(INCLUDING.format(ns=NS + mid))
    types = folder / "common" / "types.xsd"
    types.write_text(TYPES.format(leaf="Amt"))
    route = tmp_path / "iso.route"
    route.write_text(XML_ROUTE)
    amt = f'<Document xmlns="{NS}{mid}"><Amt>1.50</Amt></Document>'.encode()
    amount = amt.replace(b"Amt>", b"Amount>")

    async with live([route], tmp_path / "l.duckdb") as eng:
        types.write_text(TYPES.format(leaf="Amount"))      # after the bind, before a message
        assert await ask(eng, amt) == {"code": "00"}                      # the version's include
        assert (await ask(eng, amount))["code"] != "00"
        result = await eng.reload(source="test")
        assert result.ok, result
        assert await ask(eng, amount) == {"code": "00"}                   # the new version's


async def test_an_include_of_the_message_namespace_sorting_first_and_a_second_schema_refusing_the_reload(
        tmp_path: Path) -> None:
    """The include declares the message's own namespace (as ISO 20022 usage guidelines ship them) and sorts
    before the message schema (``common/`` < ``pacs...``): the catalog used to take it for the schema and the
    first message failed ("declares no global Document").  A second schema of that message copied into the
    folder refuses the reload (E050, naming both files); the running version goes on answering."""
    folder = tmp_path / "xsd"
    (folder / "common").mkdir(parents=True)
    mid = "pacs.999.001.01"
    (folder / f"{mid}.xsd").write_text(INCLUDING.format(ns=NS + mid))
    typed = TYPES.format(leaf="Amt").replace('elementFormDefault', f'xmlns="{NS}{mid}" targetNamespace="{NS}{mid}" '
                                             'elementFormDefault')
    (folder / "common" / "types.xsd").write_text(typed)
    route = tmp_path / "iso.route"
    route.write_text(XML_ROUTE)
    amt = f'<Document xmlns="{NS}{mid}"><Amt>1.50</Amt></Document>'.encode()

    async with live([route], tmp_path / "l.duckdb") as eng:
        assert await ask(eng, amt) == {"code": "00"}
        before = eng.version
        (folder / "cbpr").mkdir()
        (folder / "cbpr" / f"{mid}.xsd").write_text(MAIN.format(ns=NS + mid, leaf="Amount"))
        result = await eng.reload(source="test")
        assert not result.ok
        text = "\n".join(map(str, result.diagnostics))
        assert "E050" in text and f"cbpr/{mid}.xsd, {mid}.xsd" in text, text
        assert eng.version == before
        assert await ask(eng, amt) == {"code": "00"}
