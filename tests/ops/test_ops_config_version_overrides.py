"""The configuration version covers the deployment's channel overrides: a reload that changes only an
override in platform.yaml (a timeout, a certificate) gives deals a new `config_version`, and the ledger's
`config_versions` row of that version holds the overrides (never an option naming a secret) and the files
they name, so `bsp deals show` leads to the configuration that really ran.  Without overrides the version
is the route files' own (what `bsp check`, `bsp replay` and `bsp test` print).  Real engine, real sockets,
a real DuckDB ledger."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import trio

from engine.ops.files import with_referenced_files
from formats.framing import LengthPrefixFramer
from opskit import ECHO, compile_file, live, recorded_sources, rows
from conftest_tls import PKI, pki  # noqa: F401,E402  (fixture)


async def _one(port: int, ref: str, ctx=None) -> None:
    f = LengthPrefixFramer(2)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    if ctx is not None:
        stream = trio.SSLStream(stream, ctx, server_hostname="localhost")
    with trio.fail_after(5):
        await stream.send_all(f.frame(orjson.dumps({"ref": ref})))
        got: list[bytes] = []
        while not got:
            got = f.feed(await stream.receive_some(4096))
    await trio.aclose_forcefully(stream)


async def test_an_override_changed_by_a_reload_changes_the_recorded_version(tmp_path: Path, pki: PKI) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    plain = with_referenced_files(compile_file(route)).version
    overrides = {"front": {"idle_timeout": "30s"}}
    async with live([route], ledger, overrides=overrides) as eng:
        first = eng.version
        assert first != plain                               # the override is part of it
        await _one(eng.channels["front"].port, "before")
        overrides["front"] = {"idle_timeout": "40s"}
        result = await eng.reload(source="test")
        assert result.ok and result.version != first, result
        await _one(eng.channels["front"].port, "after")
        overrides["front"] = {"idle_timeout": "40s", "cert": str(pki.server_cert), "key": str(pki.server_key)}
        result = await eng.reload(source="test")
        assert result.ok, result
        tls_version = result.version
    deals = dict(rows(ledger, "SELECT reference, config_version FROM deals"))
    assert deals == {"before": first, "after": eng.history[0]["version"]}
    versions = recorded_sources(ledger)
    assert set(versions) == {first, deals["after"], tls_version}
    key = next(k for k in versions[first] if k.endswith("#channels"))
    assert json.loads(versions[first][key]) == {"front": {"idle_timeout": "30s"}}
    assert json.loads(versions[deals["after"]][key]) == {"front": {"idle_timeout": "40s"}}
    tls_sources = versions[tls_version]
    assert json.loads(tls_sources[key]) == {"front": {"idle_timeout": "40s", "cert": str(pki.server_cert)}}
    assert tls_sources[str(pki.server_cert)].startswith("-----BEGIN CERTIFICATE")   # the file it names
    assert str(pki.server_key) not in tls_sources and "PRIVATE KEY" not in json.dumps(tls_sources)


async def test_without_overrides_the_version_is_the_route_files_version(tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    async with live([route], tmp_path / "l.duckdb") as eng:
        assert eng.version == with_referenced_files(compile_file(route)).version
