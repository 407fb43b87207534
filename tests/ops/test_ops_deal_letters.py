"""`GET /deals/{id}` names the deal's dead letter (docs/admin-api.md#get-dealsid): a rejected deal's letter that
was never retried has no status event, so the story the API gave (the deals row, steps, events) said nothing of
it until 2026-11-28; now `dead_letters` lists it with its id, status, reason and retries, and `bsp deals show
--live` prints where its message waits.  The contract is additive: every key the API gave before is still there.

Real engine (run_live) on a real DuckDB ledger, its admin API on 127.0.0.1 port 0, a real loopback client."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import compile_file

ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    validate { msg.amount < 100 else reject "13" "amount over the limit" }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""
TOKEN = "deal-letters-admin-token-" + "x" * 20
REPO = Path(__file__).resolve().parents[2]


async def _ask(port: int, bodies: list[dict]) -> list[dict]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    out: list[bytes] = []
    async with stream:
        with trio.fail_after(60):                    # a guard against a hang, not a timing
            for i, b in enumerate(bodies):
                await stream.send_all(tx.frame(orjson.dumps(b)))
                while len(out) < i + 1:
                    data = await stream.receive_some(65536)
                    assert data
                    out.extend(rx.feed(data))
    return [orjson.loads(o) for o in out]


async def test_get_deal_names_its_dead_letter_never_retried(nursery, tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    registry = default_registry()
    ready = trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops))
    await ready.wait()
    eng = box[0]
    url = f"http://127.0.0.1:{eng.admin_port}"
    got = await _ask(eng.current.channels["front"].port, [{"ref": "K1", "amount": 5}, {"ref": "R1", "amount": 500}])
    assert [g["code"] for g in got] == ["00", "13"], got
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
        ids = {d["reference"]: d["deal_id"] for d in (await api.get("/deals")).json()["deals"]}
        story = (await api.get(f"/deals/{ids['R1']}")).json()
        # additive: what the story had before is all there
        assert {"deal_id", "status", "steps", "events", "calls", "config", "flag", "resolution"} <= story.keys()
        [letter] = story["dead_letters"]
        assert letter["id"] == ids["R1"] and letter["status"] == "new" and letter["retries"] == [], letter
        assert "amount over the limit" in letter["reason"] and letter["message_kept"] is True, letter
        assert "raw" not in letter and "raw_base64" not in letter, letter      # the message: GET /dead-letters/{id}
        assert (await api.get(f"/deals/{ids['K1']}")).json()["dead_letters"] == []
        spec = (await api.get("/openapi.json")).json()
        assert "dead_letters" in spec["components"]["schemas"]["Deal"]["properties"], spec["components"]["schemas"]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    text = await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "engine.cli", "deals", "show", ids["R1"], "--live", "--url", url,
         "--token-file", str(token_file)], cwd=str(REPO), capture_output=True, text=True, timeout=120))
    assert text.returncode == 0, text.stderr
    assert f"its message waits as dead letter {ids['R1']} (new)" in text.stdout, text.stdout
    assert "retries: none" in text.stdout, text.stdout
    nursery.cancel_scope.cancel()
