"""A reload that removes a route and channels: once the old generation has drained, their per-route and
per-channel series leave `GET /metrics` (a dashboard or an alert on them would show a channel that no longer
exists for ever), and `bsp status` forgets their counts; the routes and channels that remain keep theirs.
Real loopback sockets, a real ledger, the admin API as `bsp run` serves it."""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import httpx
import orjson
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import CALL, compile_file, json_counterpart

TOKEN = "ops-reload-metrics-token-" + "m" * 20

SIDE = """
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel aside = tcp connect {
    address = "127.0.0.1:%(back)d"
    framing = length4
    timeout = 5s
}
route echo {
    receive from side as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = aside as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref }
}
"""


def _series(text: str, label: str, value: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith("#") and f'{label}="{value}"' in ln]


def _value(text: str, sample: str) -> float:
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert m, sample
    return float(m.group(1))


async def _exchange(port: int, ref: str) -> dict:
    f = LengthPrefixFramer(2)
    s = await trio.open_tcp_stream("127.0.0.1", port)
    async with s:
        await s.send_all(f.frame(orjson.dumps({"ref": ref})))
        with trio.fail_after(10):
            while True:
                frames = f.feed(await s.receive_some(65536))
                if frames:
                    return orjson.loads(frames[0])


async def test_a_reload_removing_a_route_and_channels_drops_their_series(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    route = tmp_path / "pay.route"
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    both = base + SIDE % {"back": back}
    route.write_text(both)
    registry = default_registry()
    box: list = []
    ready = trio.Event()

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    engine = box[0]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        for i in range(3):
            assert (await _exchange(engine.current.channels["front"].port, f"p{i}"))["ref"] == f"p{i}"
        for i in range(2):
            assert (await _exchange(engine.current.channels["side"].port, f"s{i}"))["ref"] == f"s{i}"
        text = (await client.get("/metrics")).text
        for label, name in (("route", "echo"), ("channel", "side"), ("channel", "aside")):
            assert _series(text, label, name), (label, name)
        kept = {s: _value(text, s) for s in (
            'bsp_route_received_total{route="pay"}', 'bsp_route_outcomes_total{outcome="committed",route="pay"}',
            'bsp_route_latency_seconds_count{route="pay"}', 'bsp_channel_received_total{channel="front"}',
            'bsp_channel_sent_total{channel="front"}', 'bsp_channel_sent_total{channel="back"}',
            'bsp_channel_received_total{channel="back"}', 'bsp_channel_latency_seconds_count{channel="back"}')}
        assert kept['bsp_route_received_total{route="pay"}'] == 3 and kept['bsp_channel_sent_total{channel="back"}'] == 3
        status = (await client.get("/status")).json()
        assert status["routes"]["echo"]["received"] == 2

        route.write_text(base)                       # the reload removes route echo, channels side and aside
        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        with trio.fail_after(10):                    # once the old generation has drained
            while engine.generations_in_flight() > 1 or engine._retiring:
                await trio.sleep(0.02)
        text = (await client.get("/metrics")).text
        for label, name in (("route", "echo"), ("channel", "side"), ("channel", "aside")):
            assert _series(text, label, name) == [], (label, name)
        for sample, n in kept.items():               # what remains keeps its counts
            assert _value(text, sample) == n, sample
        status = (await client.get("/status")).json()
        assert "echo" not in status["routes"] and "side" not in status["channels"]
        assert status["routes"]["pay"]["received"] == 3

        route.write_text(both)                       # back again: its counts start over, in both
        assert (await client.post("/reload")).status_code == 200
        status = (await client.get("/status")).json()
        assert status["routes"]["echo"]["received"] == 0
        assert status["channels"]["side"]["frames_in"] == 0
        assert (await _exchange(engine.current.channels["side"].port, "s9"))["ref"] == "s9"
        text = (await client.get("/metrics")).text
        assert _value(text, 'bsp_route_received_total{route="echo"}') == 1
        assert _value(text, 'bsp_channel_sent_total{channel="aside"}') == 1
        assert _value(text, 'bsp_route_received_total{route="pay"}') == 3
    engine.drain()


ISSUER = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = 300ms
}
route purchase {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


async def test_a_reversal_stranded_on_a_removed_channel_leaves_only_its_pending_series(
        nursery, tmp_path: Path) -> None:
    """A reload removes the route and the outbound channel of a deal whose reversal is stored and forwarded
    and never acknowledged: once the old generation drained and `Metrics.forget` dropped the channel's
    series, the reversal is stranded (kept, not sent: tests/ops/test_ops_reload_saf.py), so nothing brings
    `bsp_channel_errors_total{channel="issuer"}` back (each attempt on the removed channel used to, and the
    attempts went on for ever); the one series naming the channel is the stranded reversal's
    `bsp_reversals_pending{channel="issuer",state="stranded"}`."""
    from engine.sim.reversal_host import CODEC, ReversalHost

    async def never(n: int, msg: dict) -> bool:
        return False

    host = ReversalHost(never)
    issuer = await host.serve(nursery)
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    route = tmp_path / "pay.route"
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    route.write_text(base + ISSUER % issuer)
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[lambda e: (box.append(e),
                                                                                          ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    engine = box[0]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        f = LengthPrefixFramer(2)
        s = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["pos"].port)
        async with s:
            await s.send_all(f.frame(CODEC.encode({
                "t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": "0501120000",
                "11": "000123", "41": "TERM0001", "49": "978"})))
            with trio.fail_after(10):
                while not f.feed(await s.receive_some(65536)):
                    pass
        with trio.fail_after(10):
            await host.saw_reversal.wait()               # stored, and forwarded: never acknowledged
        assert _series((await client.get("/metrics")).text, "channel", "issuer")

        route.write_text(base)                           # the reload removes route purchase and channel issuer
        assert (await client.post("/reload")).status_code == 200
        with trio.fail_after(10):
            while engine.generations_in_flight() > 1 or engine._retiring:
                await trio.sleep(0.02)
        [q] = [q for q in engine.saf if q.items]
        with trio.fail_after(10):                        # an attempt in flight at the reload ends first
            while not q.stranded:
                await trio.sleep(0.02)
        attempts = q.attempts
        await trio.sleep(1.0)
        assert q.attempts == attempts                    # not repeated on the removed channel
        text = (await client.get("/metrics")).text
        assert _series(text, "channel", "issuer") == ['bsp_reversals_pending{channel="issuer",state="stranded"} 1.0'], \
            _series(text, "channel", "issuer")
        assert _series(text, "channel", "pos") == []
        assert "issuer" not in (await client.get("/status")).json()["channels"]
    engine.drain()
