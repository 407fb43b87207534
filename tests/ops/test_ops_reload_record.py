"""Recording (`bsp run --record`) across reloads: a channel a reload adds is recorded too, and every
exchange of the capture names the configuration version that served it.

Real engine (LiveEngine, as `bsp run`), real sockets on 127.0.0.1 (port 0), real DuckDB files."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import orjson
import trio

from engine.replay.capture import Capture
from formats.framing import LengthPrefixFramer
from opskit import ECHO, live_recording, rows

SECOND = '''
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route side_echo {
    receive from side as Req
    deal SIDE { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  tag = "side" }
}
'''


async def ask(port: int, refs: list[str]) -> list[dict]:
    """Send ``refs`` on one connection (one write) and read their replies."""
    fr = LengthPrefixFramer(2)
    out: list[dict] = []
    async with await trio.open_tcp_stream("127.0.0.1", port) as s:
        await s.send_all(b"".join(fr.frame(orjson.dumps({"ref": r})) for r in refs))
        with trio.fail_after(10):
            while len(out) < len(refs):
                data = await s.receive_some(65536)
                assert data, "the engine closed the connection"
                out.extend(orjson.loads(f) for f in fr.feed(data))
    return out


async def test_a_channel_a_reload_adds_is_recorded(tmp_path: Path) -> None:
    """The channels to record used to be fixed at start: one a reload added served, but no frame of it
    reached the capture."""
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    async with live_recording([route], ledger, capture) as eng:
        v1 = eng.version
        assert [r["tag"] for r in await ask(eng.channels["front"].port, ["F1", "F2"])] == ["A", "A"]
        route.write_text(ECHO % "B" + SECOND)
        result = await eng.reload()
        assert result.ok, result.diagnostics
        assert result.plan["channels"]["added"] == ["side"]
        v2 = eng.version
        assert [r["tag"] for r in await ask(eng.channels["side"].port, ["S1", "S2"])] == ["side", "side"]
        assert [r["tag"] for r in await ask(eng.channels["front"].port, ["F3"])] == ["B"]
    cap = Capture(capture)
    got = sorted((ex.request.channel, ex.key, ex.request.config_version, orjson.loads(ex.reply.raw)["tag"])
                 for ex in cap.exchanges)
    assert got == [("front", "F1", v1, "A"), ("front", "F2", v1, "A"), ("front", "F3", v2, "B"),
                   ("side", "S1", v2, "side"), ("side", "S2", v2, "side")], got
    assert cap.versions() == [v1, v2]
    assert sorted(r[0] for r in rows(ledger, "SELECT reference FROM deals")) == ["F1", "F2", "F3", "S1", "S2"]
    con = duckdb.connect(str(capture), read_only=True)
    try:
        info = dict(con.execute("SELECT key, value FROM capture_info").fetchall())
        versions = {v for (v,) in con.execute("SELECT DISTINCT config_version FROM capture_sources").fetchall()}
    finally:
        con.close()
    assert json.loads(info["channels"]) == ["front", "side"]     # every channel recorded, also the added one
    assert versions == {v1, v2}                                  # the sources of both versions are kept


CARDS = '''
format Card = json classify ["card:pan"]
channel cards = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route card {
    receive from cards as Card
    deal CARD { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Card { ref = msg.ref  tag = "card" }
}
'''
PAN = "4111111111111111"


async def ask_with(port: int, docs: list[dict]) -> list[dict]:
    fr = LengthPrefixFramer(2)
    out: list[dict] = []
    async with await trio.open_tcp_stream("127.0.0.1", port) as s:
        await s.send_all(b"".join(fr.frame(orjson.dumps(d)) for d in docs))
        with trio.fail_after(10):
            while len(out) < len(docs):
                data = await s.receive_some(65536)
                assert data, "the engine closed the connection"
                out.extend(orjson.loads(f) for f in fr.feed(data))
    return out


async def test_masking_follows_the_configuration_a_reload_brings(tmp_path: Path) -> None:
    """`--record --mask` masked with the classification of the configuration the engine started with: a
    channel a reload added (its formats unknown to the recorder) and a field a reload classified were
    stored in clear in the capture."""
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    async with live_recording([route], ledger, capture, mask=True) as eng:
        assert [r["tag"] for r in await ask_with(eng.channels["front"].port, [{"ref": "F1", "card": PAN}])] == ["A"]
        route.write_text((ECHO % "B").replace("format Req = json", 'format Req = json classify ["card:pan"]')
                         + CARDS)
        result = await eng.reload()
        assert result.ok, result.diagnostics
        assert result.plan["channels"]["added"] == ["cards"]
        got = await ask_with(eng.channels["cards"].port, [{"ref": "C1", "card": PAN}])
        assert [r["tag"] for r in got] == ["card"]
        got = await ask_with(eng.channels["front"].port, [{"ref": "F2", "card": PAN}])
        assert [r["tag"] for r in got] == ["B"]
    cap = Capture(capture)
    requests = {ex.key: orjson.loads(ex.request.raw) for ex in cap.exchanges}
    assert requests["F1"]["card"] == PAN                   # not classified by the first configuration
    assert requests["C1"]["card"] == "411111******1111"    # the channel the reload added
    assert requests["F2"]["card"] == "411111******1111"    # the field the reload classified
