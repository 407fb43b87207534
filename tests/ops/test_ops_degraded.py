"""An outbound counterpart that is down: the engine stays ready (GET /ready 200: another instance would reach
it no better) but `GET /status` says `state: degraded` naming the channel, since when, how many calls failed,
its circuit and last error; `bsp_channel_up{channel}` is 0; `GET /ready?strict=1` is 503; `bsp status --table`
shows DEGRADED.  All over real loopback sockets: a refused port, then a counterpart listening on it."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import orjson
import pytest
import trio

from engine.commands.top import render
from formats.framing import LengthPrefixFramer
from opskit import CALL, serve_with_admin

TOKEN = "ops-degraded-token-" + "d" * 20


async def _refused_port() -> int:
    """A loopback port nothing listens on (its listener is closed again): connects are refused."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for lst in listeners:
        await lst.aclose()
    return port


async def _serve(route: Path, tmp_path: Path, nursery: trio.Nursery) -> tuple:
    return await serve_with_admin(route, tmp_path, nursery, TOKEN)


def _up(text: str, channel: str) -> float | None:
    m = re.search(rf'^bsp_channel_up\{{channel="{channel}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def _table(doc: dict) -> str:
    import io

    from rich.console import Console
    out = Console(width=240, record=True, file=io.StringIO())
    out.print(render(doc, None, 0, {}))
    return out.export_text()


async def _counterpart_on(port: int, nursery: trio.Nursery) -> None:
    """A JSON counterpart of length4 frames on this very port, answering every request OK."""
    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for req in f.feed(data):
                    await stream.send_all(f.frame(orjson.dumps({"status": "OK", "ref": orjson.loads(req)["ref"]})))

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, handler, listeners)


async def test_a_refused_counterpart_degrades_the_engine_but_keeps_it_ready(nursery, tmp_path: Path) -> None:
    port = await _refused_port()
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": port, "timeout": "5s", "reply": ""})
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        doc = (await client.get("/status")).json()
        assert doc["state"] == "ready" and doc["reasons"] == []
        assert doc["channels"]["back"]["up"] is True            # not tried yet: connects on first use

        tx = LengthPrefixFramer(2)
        front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await front.send_all(tx.frame(orjson.dumps({"ref": "r1"})))
        with trio.fail_after(10):
            while engine.stats.failed < 1:
                await trio.sleep(0.01)

        doc = (await client.get("/status")).json()
        back = doc["channels"]["back"]
        assert doc["state"] == "degraded"
        assert back["up"] is False and back["connected"] is False
        assert back["failed_calls"] == 1
        assert back["down_since"].endswith("+00:00")
        assert back["circuit"] in ("open", "half_open")
        assert f"cannot connect to 127.0.0.1:{port}" in back["last_error"]
        assert back["last_error_at"].endswith("+00:00") and back["last_error_at"] >= back["down_since"], back
        [reason] = doc["reasons"]
        assert reason.startswith(f"channel back (127.0.0.1:{port}) down since {back['down_since']}: 1 call failed, "
                                 f"circuit {back['circuit']}; last error: cannot connect to 127.0.0.1:{port}")

        assert (await client.get("/ready")).status_code == 200       # the instance still takes traffic
        strict = await client.get("/ready", params={"strict": "1"})
        assert strict.status_code == 503
        assert strict.json()["reason"].startswith(f"strict: channel back (127.0.0.1:{port}) down since")
        assert _up((await client.get("/metrics")).text, "back") == 0

        table = _table({**doc, "ready": True})
        assert "DEGRADED (1 outbound channel down)" in table
        assert f"degraded: channel back (127.0.0.1:{port}) down since" in table
        assert "DOWN 1 failed" in table

        # the counterpart comes back on the same port: the next call is answered, the engine is ready again
        await _counterpart_on(port, nursery)
        with trio.fail_after(10):
            while engine.stats.committed < 1:
                await front.send_all(tx.frame(orjson.dumps({"ref": "r2"})))
                await trio.sleep(0.2)
        doc = (await client.get("/status")).json()
        assert doc["state"] == "ready" and doc["reasons"] == []
        back = doc["channels"]["back"]
        assert back["up"] is True and "failed_calls" not in back
        # the error is past: not last_error (read as the channel's state), but previous_error and when it was
        assert "last_error" not in back and f"cannot connect to 127.0.0.1:{port}" in back["previous_error"], back
        assert back["previous_error_at"].endswith("+00:00"), back
        assert (await client.get("/ready", params={"strict": "1"})).status_code == 200
        assert _up((await client.get("/metrics")).text, "back") == 1
        assert "DEGRADED" not in _table({**doc, "ready": True})
        await front.aclose()
    engine.drain()


async def test_a_mux_without_breaker_reports_its_pool_down_before_any_call(nursery, tmp_path: Path) -> None:
    """A MUX (`pool`) connects at start: every connect refused makes it down at once, circuit `open` (it
    said `closed`, whatever its connections did, when it had no breaker)."""
    port = await _refused_port()
    route = tmp_path / "pay.route"
    route.write_text((CALL % {"back": port, "timeout": "5s", "reply": ""}).replace(
        "timeout = 5s", "timeout = 5s\n    pool = 2"))
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        with trio.fail_after(10):
            while (doc := (await client.get("/status")).json())["state"] != "degraded":
                await trio.sleep(0.02)
        back = doc["channels"]["back"]
        assert back["circuit"] == "open" and back["up"] is False and back["failed_calls"] == 0
        assert back["down_since"] is not None
        assert doc["reasons"][0].startswith(f"channel back (127.0.0.1:{port}) down since {back['down_since']}: "
                                            f"no call failed yet, circuit open; last error: ")
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get("/ready", params={"strict": "true"})).status_code == 503
        text = (await client.get("/metrics")).text
        assert _up(text, "back") == 0
        assert 'bsp_channel_circuit_state{channel="back"} 2.0' in text
    engine.drain()


async def test_a_plain_tcp_connect_comes_back_up_without_traffic(nursery, tmp_path: Path) -> None:
    """Out of rotation (`/ready?strict=1` 503) an instance gets no calls: its plain `tcp connect` must reconnect
    by itself once the counterpart listens again, and the engine must be ready (strictly) again with no call."""
    port = await _refused_port()
    route = tmp_path / "pay.route"
    route.write_text((CALL % {"back": port, "timeout": "5s", "reply": ""}).replace(
        "timeout = 5s", "timeout = 5s\n    reconnect_max = 200ms"))
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        tx = LengthPrefixFramer(2)
        front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await front.send_all(tx.frame(orjson.dumps({"ref": "r1"})))
        with trio.fail_after(10):
            while engine.stats.failed < 1:
                await trio.sleep(0.01)
        assert (await client.get("/ready", params={"strict": "1"})).status_code == 503
        assert _up((await client.get("/metrics")).text, "back") == 0

        accepted: list = []
        requests: list = []

        async def handler(stream: trio.SocketStream) -> None:
            accepted.append(stream)
            async with stream:
                while data := await stream.receive_some(65536):
                    requests.append(data)

        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        await nursery.start(trio.serve_listeners, handler, listeners)
        with trio.fail_after(5):                 # reconnect_max 200ms: back within a few back-offs
            while (doc := (await client.get("/status")).json())["state"] != "ready":
                await trio.sleep(0.05)
        back = doc["channels"]["back"]
        assert back["up"] is True and back["connected"] is True and "failed_calls" not in back
        assert back["circuit"] == "closed" and doc["reasons"] == []
        assert (await client.get("/ready", params={"strict": "1"})).status_code == 200
        text = (await client.get("/metrics")).text
        assert _up(text, "back") == 1
        assert 'bsp_channel_circuit_state{channel="back"} 0.0' in text
        assert len(accepted) == 1 and requests == []            # no call was made to get there
        assert engine.stats.failed == 1 and engine.stats.committed == 0
        await front.aclose()
    engine.drain()


async def test_a_channel_removed_by_a_reload_loses_its_up_and_circuit_series(nursery, tmp_path: Path) -> None:
    """`bsp_channel_up{channel}` 0 of a channel a reload removed would keep an alert firing for ever: its
    series (and its `bsp_channel_circuit_state`) go with it; the remaining channel's stay."""
    port = await _refused_port()
    route = tmp_path / "pay.route"
    base = CALL % {"back": port, "timeout": "5s", "reply": ""}
    spare = f'channel spare = tcp connect {{\n    address = "127.0.0.1:{port}"\n    framing = length4\n    pool = 2\n}}\n'
    route.write_text(base + spare)
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        with trio.fail_after(10):                # a MUX connects at start: refused, it is down
            while _up((await client.get("/metrics")).text, "spare") != 0:
                await trio.sleep(0.02)
        text = (await client.get("/metrics")).text
        assert 'bsp_channel_circuit_state{channel="spare"} 2.0' in text and _up(text, "back") == 1

        route.write_text(base)
        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        text = (await client.get("/metrics")).text
        assert 'channel="spare"' not in "\n".join(
            ln for ln in text.splitlines() if ln.startswith(("bsp_channel_up", "bsp_channel_circuit_state")))
        assert _up(text, "back") == 1 and 'bsp_channel_circuit_state{channel="back"} 0.0' in text
        assert (await client.get("/status")).json()["state"] == "ready"
    engine.drain()


async def test_a_reload_that_removes_a_retrying_tcp_connect_stops_its_retries(nursery, tmp_path: Path) -> None:
    """The background reconnects of a failed plain `tcp connect` end with the channel: a reload that removes it
    cancels them (no connect attempt to a counterpart the configuration no longer names)."""
    port = await _refused_port()
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": port, "timeout": "5s", "reply": ""})
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        old = engine.current.channels["back"]
        tx = LengthPrefixFramer(2)
        front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await front.send_all(tx.frame(orjson.dumps({"ref": "r1"})))
        with trio.fail_after(10):
            while engine.stats.failed < 1:
                await trio.sleep(0.01)
        first = old._down_until                  # each failed connect sets it anew: retrying in the background
        with trio.fail_after(10):
            while old._down_until == first:
                await trio.sleep(0.02)
        assert not old._closed and engine.stats.failed == 1
        route.write_text(CALL.split("channel back")[0] + 'route pay {\n    receive from front as Req\n'
                         '    reply Req { ref = msg.ref }\n}\n')
        assert (await client.post("/reload")).status_code == 200
        with trio.fail_after(10):
            while not old._closed:
                await trio.sleep(0.02)
        assert "back" not in (await client.get("/status")).json()["channels"]
        await front.aclose()
    engine.drain()


def _pending(stream: trio.SocketStream) -> bool:
    """Bytes arrived on ``stream`` and not read yet."""
    dup = socket.fromfd(stream.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    try:
        return bool(dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:                 # BlockingIOError: nothing there
        return False
    finally:
        dup.close()


@pytest.mark.parametrize("kind", ["plain", "mux"])
async def test_a_counterpart_closing_idle_connections_leaves_the_channel_up(nursery, tmp_path: Path,
                                                                            kind: str) -> None:
    """A counterpart that closes every connection idle for 50ms (well under `reconnect_max`) refuses nothing:
    the background reconnect's idle connection closed by it used to count as a refusal (channel down,
    `/ready?strict=1` 503, `bsp_channel_up` 0) though no call failed; a MUX's pool (`pool = 2`) too, each
    slot connecting at start and after every close.  It stays up, the next call is answered; a counterpart
    that is gone (connect refused) still makes it down."""
    closed_idle: list = []

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                with trio.move_on_after(0.05):
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    for req in f.feed(data):
                        await stream.send_all(f.frame(orjson.dumps({"status": "OK",
                                                                     "ref": orjson.loads(req)["ref"]})))
                    continue
                if _pending(stream):      # a request came as the idle time ended: a polite counterpart serves it
                    continue              # (closing then resets it unanswered, which the pool takes as a refusal)
                closed_idle.append(stream)
                return

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    server = trio.CancelScope()

    async def run_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
        with server:
            await trio.serve_listeners(handler, listeners, task_status=task_status)

    await nursery.start(run_server)
    route = tmp_path / "pay.route"
    route.write_text((CALL % {"back": port, "timeout": "5s", "reply": ""}).replace(
        "timeout = 5s", "timeout = 5s\n    pool = 2" if kind == "mux" else "timeout = 5s"))
    engine, client = await _serve(route, tmp_path, nursery)
    async with client:
        assert type(engine.current.channels["back"]).__name__ == ("MuxConnector" if kind == "mux" else "TcpConnector")
        tx = LengthPrefixFramer(2)
        front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        for i, ref in enumerate(("r1", "r2", "r3"), 1):
            await front.send_all(tx.frame(orjson.dumps({"ref": ref})))
            with trio.fail_after(10):
                while engine.stats.committed < i:
                    await trio.sleep(0.01)
            before = len(closed_idle)
            with trio.move_on_after(0.5):        # several idle closes' worth: up all along
                while True:
                    doc = (await client.get("/status")).json()
                    assert doc["state"] == "ready" and doc["reasons"] == [], doc["reasons"]
                    assert doc["channels"]["back"]["up"] is True
                    assert (await client.get("/ready", params={"strict": "1"})).status_code == 200
                    assert _up((await client.get("/metrics")).text, "back") == 1
                    await trio.sleep(0.02)
            assert len(closed_idle) > before        # the counterpart did close the channel's idle connection
        assert engine.stats.failed == 0

        # the counterpart goes away: the next call's connect is refused, and that makes the channel down
        server.cancel()
        await front.send_all(tx.frame(orjson.dumps({"ref": "r4"})))
        with trio.fail_after(10):
            while engine.stats.failed < 1:
                await trio.sleep(0.01)
        doc = (await client.get("/status")).json()
        assert doc["state"] == "degraded" and doc["channels"]["back"]["up"] is False
        assert f"cannot connect to 127.0.0.1:{port}" in doc["channels"]["back"]["last_error"]
        assert (await client.get("/ready", params={"strict": "1"})).status_code == 503
        assert _up((await client.get("/metrics")).text, "back") == 0
        await front.aclose()
    engine.drain()
