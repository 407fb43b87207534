"""`bsp deals --live` and `bsp dead list --live` page through the admin API (its `cursor`, each page's
`next`): `--limit 0` lists every match and a limit over a page is met, where they used to stop at the
API's 1,000 rows a call.  The page size is made 3 here (`engine.commands.live.PAGE`; the API takes any
`limit` from 1 to 1,000) so that a handful of deals spans several pages.

Real engine (`run_live` with its admin API on 127.0.0.1 port 0), real ledger, the real CLI in a thread."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import httpx
import trio
from typer.testing import CliRunner

import engine.commands.live as live_cli
from engine.cli import app
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import ECHO, compile_file

TOKEN = "ops-live-paging-token-" + "p" * 24


async def _start(nursery, tmp_path: Path):
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN),
                     hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    return box[0]


async def _send(port: int, frames: list[bytes], *, answered: bool = True) -> None:
    """Each frame on a connection of its own, one at a time, its answer waited for (``answered``)."""
    for frame in frames:
        f = LengthPrefixFramer(2)
        s = await trio.open_tcp_stream("127.0.0.1", port)
        async with s:
            await s.send_all(f.frame(frame))
            with trio.fail_after(10):
                while answered and not f.feed(await s.receive_some(65536)):
                    pass


async def _asked(url: str) -> float:
    """GET /deals requests the admin API has answered (its own metric)."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        text = (await client.get("/metrics")).text
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith("bsp_admin_requests_total{") and 'endpoint="/deals"' in ln)


def _bsp(url: str, *args: str) -> list[dict]:
    r = CliRunner().invoke(app, [*args, "--live", "--url", url, "--json"], env={"BSP_ADMIN_TOKEN": TOKEN})
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


async def test_live_listings_page_through_the_admin_api(nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(live_cli, "PAGE", 3, raising=False)
    engine = await _start(nursery, tmp_path)
    port = engine.current.channels["front"].port
    refs = [f"R{i}" for i in range(8)]
    await _send(port, [json.dumps({"ref": r}).encode() for r in refs])
    await _send(port, [b"not json %d" % i for i in range(7)], answered=False)   # unreadable: dead letters
    url = f"http://127.0.0.1:{engine.admin_port}"
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        with trio.fail_after(10):
            while (await client.get("/dead-letters", params={"limit": "100"})).json()["count"] < 7:
                await trio.sleep(0.05)
        whole = (await client.get("/deals", params={"limit": "100"})).json()
        first = (await client.get("/deals", params={"limit": "3"})).json()
    assert whole["count"] >= 8 and whole["next"] is None     # the echoes (and the unreadable frames' deals)
    assert first["count"] == 3 and first["next"], first
    every = [d["deal_id"] for d in whole["deals"]]

    before = await _asked(url)
    deals = await trio.to_thread.run_sync(_bsp, url, "deals", "--limit", "0")
    assert [d["deal_id"] for d in deals] == every                  # pages of 3, none twice, none left out
    assert await _asked(url) - before == -(-len(every) // 3)        # one request a page
    five = await trio.to_thread.run_sync(_bsp, url, "deals", "--limit", "5")
    assert [d["deal_id"] for d in five] == every[:5]
    letters = await trio.to_thread.run_sync(_bsp, url, "dead", "list", "--limit", "0")
    assert len(letters) == 7 and len({d["id"] for d in letters}) == 7, letters
    assert [d["at"] for d in letters] == sorted((d["at"] for d in letters), reverse=True)
    engine.drain()


async def test_live_listings_keep_the_numbers_a_deal_was_received_with(nursery, tmp_path: Path) -> None:
    """A request is stored as received (1.50, 1e400, a 25-digit integer); the admin API writes those numbers
    back as stored, and `--live` read them as floats: 1.5, Infinity (printed `null`), 1.2345678901234568e+24."""
    engine = await _start(nursery, tmp_path)
    big = "1234567890123456789012345"
    await _send(engine.current.channels["front"].port, [b'{"ref":"NUM","x":1.50,"y":1e400,"z":%s}' % big.encode()])
    url = f"http://127.0.0.1:{engine.admin_port}"
    r = await trio.to_thread.run_sync(partial(CliRunner().invoke, app, ["deals", "--live", "--url", url, "--json",
                                                                         "--ref", "NUM"],
                                              env={"BSP_ADMIN_TOKEN": TOKEN}))
    assert r.exit_code == 0, r.output
    assert f'"x":1.50,"y":1e400,"z":{big}' in r.stdout.replace(" ", ""), r.stdout
    (deal,) = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    shown = await trio.to_thread.run_sync(partial(CliRunner().invoke, app, ["deals", "show", deal["deal_id"],
                                                                             "--live", "--url", url],
                                                  env={"BSP_ADMIN_TOKEN": TOKEN}))
    assert shown.exit_code == 0, shown.output
    assert '"x": 1.50' in shown.stdout and '"y": 1e400' in shown.stdout and f'"z": {big}' in shown.stdout, shown.stdout
    engine.drain()


def test_api_json_keeps_floats_the_api_wrote_as_floats() -> None:
    """orjson writes a small duration as 1e-7 (repr: 1e-07): it is a float still, which `deals show` formats."""
    import orjson

    from engine.exact_json import api_json
    got = api_json('{"duration_ms":1e-7,"p":0.25,"amount":"1.50","x":1.50,"big":12345678901234567890123}')
    assert got["duration_ms"] == 1e-7 and got["p"] == 0.25 and got["amount"] == "1.50"
    assert orjson.dumps({"x": got["x"], "big": got["big"]}) == b'{"x":1.50,"big":12345678901234567890123}'
