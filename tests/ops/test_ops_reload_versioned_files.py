"""The files a route's formats name (a copybook, a JSON Schema) are parsed from the text the configuration
version holds (the ledger's config_versions), not read again when the engine binds: a file replaced between
the version's computation and the bind (a deploy job writing a copybook while a reload, or `bsp run`, loads)
is taken by the next reload, under its own version, so a deal's version's stored sources are what decoded it.
Real engine (LiveEngine as `bsp run` serves it), real loopback sockets, a real DuckDB ledger."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import orjson
import trio

from opskit import recorded_sources, rows
from kit import Client      # noqa: E402 (tests/engine, put on the path by opskit)

COPYBOOK = """
format C = copybook "req.cpy" encoding cp037
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route pay {
    receive from front as C
    deal PAY { ref = msg.REF  amount = msg.AMT  currency = "EUR"  key = msg.REF }
    reply J { ref = msg.REF  amount = msg.AMT }
}
"""
CPY_V1 = "       01 REQ.\n          05 REF PIC X(4).\n          05 AMT PIC 9(3)V99.\n"
CPY_V2 = "       01 REQ.\n          05 REF PIC X(2).\n          05 AMT PIC 9(5)V99.\n"     # the same 9 bytes, cut elsewhere

SCHEMA = """
format J = json schema "req.schema.json"
format R = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2  on error reply R { code = error.code } }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00  currency = "EUR"  key = msg.ref }
    reply R { ref = msg.ref  code = "00" }
}
"""
SCHEMA_V1 = {"type": "object", "required": ["ref"], "properties": {"ref": {"type": "string"}}}
SCHEMA_V2 = {"type": "object", "required": ["ref", "iban"], "properties": {"ref": {"type": "string"}}}


async def _ask(port: int, data: bytes) -> dict | None:
    c = await Client.open(port)
    try:
        await c.send(data)
        with trio.move_on_after(10):
            (r,) = await c.recv_json()
            return r
        return None
    finally:
        await c.aclose()


def _versioned(route: Path):
    from dsl.load import compile_paths
    from engine.ops.files import with_referenced_files
    from engine.registry import default_registry

    registry = default_registry()
    return registry, with_referenced_files(compile_paths([route], registry).program)


async def _serve(registry, program, route: Path, ledger_path: Path, talk) -> str:
    from engine.ledger import open_ledger
    from engine.metrics import Metrics
    from engine.ops.live import LiveEngine
    from engine.ops.observe import Observer

    async with open_ledger(ledger_path) as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([route], {}), observer=Observer(Metrics()), grace=5.0)
        async with trio.open_nursery() as n:
            await n.start(eng.run, program, None)
            assert eng.version == program.version
            v2 = await talk(eng)
            eng.drain()
    return v2


async def test_a_copybook_replaced_before_the_bind_is_not_the_one_decoding_under_that_version(tmp_path: Path) -> None:
    """The version is computed over req.cpy as read then; the copybook is replaced before the engine binds
    that configuration.  The deal recorded under that version was decoded with the copybook its sources
    hold (REF 4 bytes); the next reload takes the new one (REF 2 bytes), under its own version.  (The bind
    read the file again: the first deal was cut by a copybook its version's sources do not hold.)"""
    cpy = tmp_path / "req.cpy"
    cpy.write_text(CPY_V1, encoding="utf-8")
    route = tmp_path / "pay.route"
    route.write_text(COPYBOOK)
    registry, program = _versioned(route)
    assert program.sources[str(cpy)] == CPY_V1
    cpy.write_text(CPY_V2, encoding="utf-8")                    # replaced meanwhile
    replies: dict[str, dict | None] = {}

    async def talk(eng) -> str:
        replies["first"] = await _ask(eng.channels["front"].port, "A00101234".encode("cp037"))
        result = await eng.reload()
        assert result.ok, result
        replies["second"] = await _ask(eng.channels["front"].port, "B00201234".encode("cp037"))
        return eng.version

    v2 = await _serve(registry, program, route, tmp_path / "l.duckdb", talk)
    first = replies["first"]
    assert first is not None and first["ref"] == "A001", replies        # REF 4 bytes: the version's copybook
    assert Decimal(str(first["amount"])) == Decimal("12.34"), replies
    assert replies["second"]["ref"] == "B0", replies                  # the new copybook, after the reload
    assert v2 != program.version
    deals = dict(rows(tmp_path / "l.duckdb", "SELECT reference, config_version FROM deals"))
    assert deals == {"A001": program.version, "B0": v2}
    kept = recorded_sources(tmp_path / "l.duckdb")[program.version]
    assert "PIC X(4)" in str(kept) and "PIC X(2)" not in str(kept)   # the copybook that cut A001


async def test_a_schema_replaced_before_the_bind_is_not_the_one_validating_under_that_version(tmp_path: Path) -> None:
    """The JSON Schema is replaced (iban now required) between the version's computation and the bind: a
    request without iban is accepted under the version whose schema does not require it, and refused after
    the reload that takes the new schema."""
    schema = tmp_path / "req.schema.json"
    schema.write_text(json.dumps(SCHEMA_V1), encoding="utf-8")
    route = tmp_path / "pay.route"
    route.write_text(SCHEMA)
    registry, program = _versioned(route)
    schema.write_text(json.dumps(SCHEMA_V2), encoding="utf-8")     # replaced meanwhile
    replies: dict[str, dict | None] = {}

    async def talk(eng) -> str:
        replies["S1"] = await _ask(eng.channels["front"].port, orjson.dumps({"ref": "S1"}))
        result = await eng.reload()
        assert result.ok, result
        replies["S2"] = await _ask(eng.channels["front"].port, orjson.dumps({"ref": "S2"}))
        return eng.version

    v2 = await _serve(registry, program, route, tmp_path / "l.duckdb", talk)
    assert replies["S1"] == {"ref": "S1", "code": "00"}, replies
    assert replies["S2"] != {"ref": "S2", "code": "00"}, replies       # refused by the new schema
    deals = dict(rows(tmp_path / "l.duckdb", "SELECT reference, config_version FROM deals"))
    assert deals == {"S1": program.version, None: v2}      # S2: not decoded (no reference), under the new one
    kept = recorded_sources(tmp_path / "l.duckdb")[program.version]
    assert kept and "iban" not in str(kept)
    assert v2 != program.version


def test_a_schema_kept_as_its_digest_and_changed_meanwhile_refuses_the_bind(tmp_path: Path) -> None:
    """A schema over 1 MB is kept in the version as its digest: read again to bind, it must still have it;
    replaced meanwhile, the bind (a reload's: the running configuration stays) is refused, naming the file."""
    import pytest

    from engine.runtime.binder import BindError, Binder

    schema = tmp_path / "req.schema.json"
    big = dict(SCHEMA_V1, description="x" * 1_100_000)
    schema.write_text(json.dumps(big), encoding="utf-8")
    route = tmp_path / "pay.route"
    route.write_text(SCHEMA)
    registry, program = _versioned(route)
    assert program.sources[str(schema)].startswith("sha256:")
    assert Binder(program, registry).codec("J").decode(b'{"ref": "A"}') == {"ref": "A"}
    schema.write_text(json.dumps(dict(big, required=["ref", "iban"])), encoding="utf-8")     # replaced meanwhile
    with pytest.raises(BindError) as info:
        Binder(program, registry).codec("J")
    text = str(info.value)
    assert str(schema) in text and "changed after the configuration was read" in text and "reload again" in text
    assert "pay.route:2:" in text                                          # the format's declaration
