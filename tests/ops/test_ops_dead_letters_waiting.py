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
        # retried while the counterpart is still down: not through, and the retry's deal leaves a letter of its
        # own, where the message waits now: the first letter is retried, naming it; the payment counts once
        again = (await client.post(f"/dead-letters/{ids[0]}/retry")).json()
        assert again["ok"] is False and again["outcome"].startswith("failed ("), again
        assert "; the message waits again as dead letter " in again["outcome"], again
        moved = again["outcome"].rsplit(" ", 1)[1]
        await trio.sleep(0.5)                                 # a few counts (every 0.1 s)
        doc = await _waiting(client, 3)
        assert doc["dead_letters_new_by_kind"] == {"unreachable": 3}
        waiting = [x["id"] for x in (await client.get("/dead-letters", params={"status": "new"})).json()["dead_letters"]]
        assert sorted(waiting) == sorted([moved, *ids[1:]]), waiting
        first = (await client.get(f"/dead-letters/{ids[0]}")).json()
        assert first["status"] == "retried" and first["retry_outcome"].endswith(moved), first

        await _counterpart_on(held_port.release(), nursery)
        with trio.fail_after(60):                             # it reconnects by itself (a retry failing before
            while not (await client.get("/status")).json()["channels"]["back"].get("connected"):   # would leave
                await trio.sleep(0.05)                        # a dead letter of its own, counted too)
        # the first letter is not run again, even with again=true: its message waits in the other one
        refused = await client.post(f"/dead-letters/{ids[0]}/retry", params={"again": "true"})
        assert refused.status_code == 409 and f"bsp dead retry {moved}" in refused.json()["detail"], refused.text
        for i in waiting:
            assert (await client.post(f"/dead-letters/{i}/retry")).json()["ok"]
        doc = await _waiting(client, 0)
        assert "dead letters waiting" not in _table({**doc, "ready": True})
        assert _gauge((await client.get("/metrics")).text, "unreachable") == 0      # 0, not gone: alerts resolve
        await front.aclose()
    engine.drain()
