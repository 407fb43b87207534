"""Proof: 20k requests over persistent connections while 10 reloads happen lose nothing.

Two valid configurations alternate (their reply differs in one mapping, tag
"A" / "B"); two invalid ones are tried in between.  Every request gets a
reply on the connection it came on, no connection is reset, no reply is an
error, and the tag of every reply matches the configuration version its deal
recorded in the DuckDB ledger.
"""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer
from opskit import ECHO, live, recorded_sources, rows

CONNECTIONS = 4
PER_CONNECTION = 5000           # 20 000 requests in all
WINDOW = 256                    # requests in flight per connection
CHUNK = 32                      # requests per write

BAD_SYNTAX = ECHO.replace('tag = "%s" }', 'tag = }')
BAD_FORMAT = ECHO.replace("reply Req {", "reply Rsp {")
SEQUENCE = ["B", "A", BAD_SYNTAX, "B", "A", BAD_FORMAT, "B", "A", "B", "A"]


async def _client(number: int, port: int, replies: dict[str, str], progress: list[int]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    window = trio.Semaphore(WINDOW)
    sent_refs: list[str] = []

    async def sender() -> None:
        for start in range(0, PER_CONNECTION, CHUNK):
            batch = []
            for i in range(start, min(start + CHUNK, PER_CONNECTION)):
                await window.acquire()
                ref = f"c{number}-{i:06d}"
                sent_refs.append(ref)
                batch.append(tx.frame(orjson.dumps({"ref": ref})))
            await stream.send_all(b"".join(batch))

    async with stream:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            got = 0
            while got < PER_CONNECTION:
                data = await stream.receive_some(65536)     # a reset raises here; EOF is caught below
                assert data, f"connection {number} closed by the engine after {got} replies"
                for frame in rx.feed(data):
                    reply = orjson.loads(frame)
                    assert reply["ref"] == sent_refs[got], (number, got, reply)   # in order, none lost
                    replies[reply["ref"]] = reply["tag"]
                    got += 1
                    progress[0] += 1
                    window.release()


async def test_reload_under_load_loses_nothing(tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger_path = tmp_path / "ledger.duckdb"
    replies: dict[str, str] = {}
    progress = [0]
    results = []
    total = CONNECTIONS * PER_CONNECTION
    async with live([route], ledger_path) as eng:
        first = eng.current.version
        port = eng.current.channels["front"].port
        listener = eng.current.channels["front"]

        async def reloader() -> None:
            for k, step in enumerate(SEQUENCE, start=1):
                while progress[0] < k * total // (len(SEQUENCE) + 1):
                    await trio.sleep(0.005)
                route.write_text(ECHO % step if len(step) == 1 else step)
                results.append(await eng.reload(source="test"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reloader)
            for c in range(CONNECTIONS):
                nursery.start_soon(_client, c, port, replies, progress)
        assert eng.current.channels["front"] is listener        # the socket was kept throughout
        assert listener.connections == CONNECTIONS              # no client had to reconnect

    assert len(results) == 10
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    assert len(ok) == 8 and len(bad) == 2
    for r in bad:                                   # diagnostics name file:line:col
        assert r.diagnostics and all(re.match(rf"{re.escape(str(route))}:\d+:\d+: error", d)
                                     for d in r.diagnostics), r.diagnostics
        assert r.previous_version in {ok[0].version, ok[1].version}
    versions = {first: "A", ok[0].version: "B"}
    assert ok[1].version == first and len(versions) == 2
    assert {r.version for r in ok} == set(versions)

    assert len(replies) == total                    # 0 lost
    assert set(replies.values()) == {"A", "B"}      # both configurations answered
    deals = rows(ledger_path, "SELECT reference, config_version, status FROM deals")
    assert len(deals) == total
    assert {s for _, _, s in deals} == {"committed"}    # 0 error replies
    mismatched = [(ref, v, replies[ref]) for ref, v, _ in deals if versions[v] != replies[ref]]
    assert mismatched == []
    recorded = {v: orjson.dumps(s).decode() for v, s in recorded_sources(ledger_path).items()}
    assert set(versions) <= set(recorded)             # every version's sources are in the ledger
    for v, letter in versions.items():
        assert f'tag = \\"{letter}\\"' in recorded[v]
