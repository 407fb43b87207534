"""A repeated deal key is its own outcome everywhere counts are shown: the admin API's route counts
(`bsp status`, `bsp top`), the Prometheus metric and the engine's totals (its stop line).  It used to
count as `failed` in one place and `committed` in another."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.ops.backend import EngineBackend
from formats.framing import LengthPrefixFramer
from opskit import live, rows

KEYED = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAY { key = msg.ref  ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def _ask(port: int, refs: list[str]) -> list[dict]:
    f = LengthPrefixFramer(2)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out: list[dict] = []
    async with stream:
        for ref in refs:                       # one at a time: a repeat comes after its original ended
            await stream.send_all(f.frame(orjson.dumps({"ref": ref})))
            with trio.fail_after(10):
                while not (got := f.feed(await stream.receive_some(65536))):
                    pass
            out += [orjson.loads(g) for g in got]
    return out


async def test_duplicates_are_counted_as_duplicates(tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(KEYED)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        replies = await _ask(eng.current.channels["front"].port, ["P1", "P1", "P2", "P1"])
        assert replies == [{"ref": r, "code": "00"} for r in ("P1", "P1", "P2", "P1")]
        status = await EngineBackend(eng, eng.observer).status()
        counts = {k: status["routes"]["pay"][k] for k in ("received", "committed", "rejected", "failed", "duplicate")}
        assert counts == {"received": 4, "committed": 2, "rejected": 0, "failed": 0, "duplicate": 2}
        metrics = eng.observer.metrics.render().decode()
        assert 'bsp_route_outcomes_total{outcome="duplicate",route="pay"} 2.0' in metrics
        assert 'bsp_route_outcomes_total{outcome="committed",route="pay"} 2.0' in metrics
        s = eng.stats
        assert (s.committed, s.rejected, s.failed, s.duplicate, s.total) == (2, 0, 0, 2, 4)
    assert sorted(r[0] for r in rows(ledger, "SELECT status FROM deals")) == [
        "committed", "committed", "duplicate", "duplicate"]
