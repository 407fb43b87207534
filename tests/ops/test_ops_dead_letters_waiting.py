"""Dead letters piling up while a counterpart is down, and going once retried: `bsp status` `dead_letters_new`,
`bsp_dead_letters_new` and a yellow line in `bsp status --table` / `bsp top` say how many wait now, whatever run
wrote them (before, only the route counters since the start, which a retry does not lower, said anything).
A real `run_live` with its admin API; the counterpart a refused port, then a listener on it."""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import trio

from engine.ops import deadcount
from formats.framing import LengthPrefixFramer
from opskit import CALL
from test_ops_degraded import _counterpart_on, _serve, _table


def _gauge(text: str, kind: str) -> float | None:
    m = re.search(rf'^bsp_dead_letters_new\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


async def _waiting(client, n: int) -> dict:
    with trio.fail_after(60):
        while (doc := (await client.get("/status")).json()).get("dead_letters_new") != n:
            await trio.sleep(0.05)
    return doc


async def test_dead_letters_waiting_are_counted_and_leave_the_count_once_retried(nursery, tmp_path: Path,
                                                                                   monkeypatch, held_port) -> None:
    monkeypatch.setattr(deadcount, "REFRESH", 0.1)          # counted every 0.1 s instead of 5 s
    port = held_port.port                                   # bound, not listening: refused
    route = tmp_path / "pay.route"
    route.write_text((CALL % {"back": port, "timeout": "60s", "reply": ""}).replace(
        'currency = "CNY" }', 'currency = "CNY"  key = msg.ref }'))        # keyed: never run twice
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        doc = await _waiting(client, 0)
        assert doc["dead_letters_new_by_kind"] == {} and "bsp_dead_letters_new{" not in (await client.get("/metrics")).text
        tx = LengthPrefixFramer(2)
        front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        for ref in ("r1", "r2", "r3"):
            await front.send_all(tx.frame(orjson.dumps({"ref": ref})))
        doc = await _waiting(client, 3)                       # three failed deals (91): three letters
        assert doc["dead_letters_new_by_kind"] == {"unreachable": 3}
        assert _gauge((await client.get("/metrics")).text, "unreachable") == 3
        assert "dead letters waiting: 3 (unreachable 3): " in _table({**doc, "ready": True})

        letters = (await client.get("/dead-letters", params={"status": "new"})).json()
        ids = [x["id"] for x in letters["dead_letters"]]
        assert len(ids) == 3, letters
        # retried while the counterpart is still down: not through, so the letter stays `new` (with its
        # retry outcome) and the retry's deal leaves a letter of its own: the payment counts once, not twice
        again = (await client.post(f"/dead-letters/{ids[0]}/retry")).json()
        assert again["ok"] is False and again["outcome"].startswith("failed ("), again
        await trio.sleep(0.5)                                 # a few counts (every 0.1 s)
        doc = await _waiting(client, 3)
        assert doc["dead_letters_new_by_kind"] == {"unreachable": 3}

        await _counterpart_on(held_port.release(), nursery)
        with trio.fail_after(60):                             # it reconnects by itself (a retry failing before
            while not (await client.get("/status")).json()["channels"]["back"].get("connected"):   # would leave
                await trio.sleep(0.05)                        # a dead letter of its own, counted too)
        for i in ids:
            assert (await client.post(f"/dead-letters/{i}/retry")).json()["ok"]
        # the letter the failed retry left: its payment is committed now, so its retry is a duplicate (not
        # through, nothing run again) and it leaves the count all the same: an operator has seen to it
        fresh = [x["id"] for x in (await client.get("/dead-letters", params={"status": "new"})).json()["dead_letters"]
                 if x["retried_at"] is None]
        assert len(fresh) == 1, fresh
        dup = (await client.post(f"/dead-letters/{fresh[0]}/retry")).json()
        assert dup["ok"] is False and dup["outcome"].startswith("duplicate: "), dup
        doc = await _waiting(client, 0)
        assert "dead letters waiting" not in _table({**doc, "ready": True})
        assert _gauge((await client.get("/metrics")).text, "unreachable") == 0      # 0, not gone: alerts resolve
        await front.aclose()
    engine.drain()
