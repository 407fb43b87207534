"""A MUX (`tcp connect` with `pool`) against a switch that closes idle connections sooner than
`reconnect_max`: no refusal, the channel stays up and calls (and echoes) work; a counterpart that closes
a connection with a request on it unanswered still makes it down.  Real loopback sockets, the ISO 8583
host simulator with its `idle_close` fault."""
from __future__ import annotations

import functools

import trio

from conftest_tls import PKI, pki  # noqa: F401  (fixture)
from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.ops.health import outbound_health
from engine.sim.iso_host import IsoHost
from engine.tls import server_context
from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for

ISO = codec_for("iso8583_1987_ascii")


def req(stan: int, mti: str = "0200") -> bytes:
    values = {"t": mti, "7": "0101120000", "11": f"{stan:06d}", "41": "TERM0001"}
    if mti == "0800":
        values["70"] = "001"                      # sign-on: a network management call
    else:
        values.update({"2": "4111111111111111", "3": "000000", "4": "000000001000", "49": "978"})
    return ISO.encode(values)


async def start(nursery, host: IsoHost, **opts) -> MuxConnector:
    await nursery.start(functools.partial(host.serve, "127.0.0.1", 0))
    ch = MuxConnector("switch", {"address": f"127.0.0.1:{host.port}", "framing": "length2", "match": "iso8583",
                                 "timeout": 5, **opts})
    ch.use_codecs(ISO)
    await nursery.start(ch.run)
    return ch


async def up_all_along(ch: MuxConnector, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while True:
            health = outbound_health(ch)
            assert health["up"] is True and health["circuit"] == "closed", health
            assert not ch.pool.down and ch.down_since is None and not ch.pool.refusing
            await trio.sleep(0.005)


async def test_a_switch_closing_idle_connections_leaves_the_mux_up(nursery) -> None:
    """Every connection of the pool is closed by the switch after 0.4s without traffic, well under
    `reconnect_max` (2s).  (Not shorter: on a loaded CI machine the engine can take 50ms between opening
    a connection and sending on it, and the switch then closes it with the request on it, rightly lost.)  That used to count as a refusal: each slot backing off, the pool `down`
    (bsp_channel_up 0, circuit open, `/ready?strict=1` 503) and calls failing `unreachable` at once
    though the switch answers every one.  Now the slots reopen at the next call, without a spin."""
    host = IsoHost(idle_close=0.4)
    ch = await start(nursery, host, pool=2)
    await up_all_along(ch, 1.0)                   # both slots closed idle at start: up, no reconnect storm
    assert host.idle_closed >= 2 and ch.pool.idle_closes >= 2
    assert ch.pool.connects == 2, ch.pool.connects       # reopened at the next call, not at once
    for i in range(1, 7):
        mti = "0800" if i % 3 == 0 else "0200"
        with trio.fail_after(5):
            reply = await ch.request(req(i, mti))
        assert ISO.decode(reply)["t"] == ("0810" if mti == "0800" else "0210")
        await up_all_along(ch, 0.6)               # the slots closed idle again between calls
    assert ch.pool.connects <= 2 + 6 * 3, ch.pool.connects
    assert host.idle_closed >= 8 and ch.pool.last_error == ""


async def test_echoes_still_work_against_a_switch_closing_idle_connections(nursery) -> None:
    """Echoes more often than the switch's idle timeout keep each connection open and answered; calls
    go through meanwhile; nothing is ever closed or down."""
    host = IsoHost(idle_close=0.8)
    ch = await start(nursery, host, pool=2, echo_every=0.1)
    await up_all_along(ch, 1.5)
    assert ch.echoes >= 10 and host.echoes >= 10 and ch.echo_failures == 0
    assert host.idle_closed == 0 and ch.pool.connects == 2
    with trio.fail_after(5):
        assert ISO.decode(await ch.request(req(1)))["t"] == "0210"


async def test_a_tls_switch_closing_idle_connections_without_close_notify_leaves_the_mux_up(nursery,
                                                                                            pki: PKI) -> None:
    """Over TLS the switch's idle close ends the session without close_notify (a ragged EOF, an SSL
    error on our side): still a close by the counterpart, not a TLS refusal."""
    host = IsoHost(idle_close=0.4, tls=server_context(str(pki.server_cert), str(pki.server_key)))
    ch = await start(nursery, host, pool=2, ca=str(pki.ca), server_name="localhost")
    await up_all_along(ch, 1.0)
    assert host.idle_closed >= 2 and ch.pool.connects == 2
    for i in range(1, 4):
        with trio.fail_after(5):
            assert ISO.decode(await ch.request(req(i)))["t"] == "0210"
        await up_all_along(ch, 0.6)
    assert ch.pool.last_error == "" and ch.pool.tls_failures == 0


async def test_a_request_closed_unanswered_still_makes_the_mux_down(nursery) -> None:
    """The refusal that matters: the counterpart takes the request, then closes without an answer, right
    after the connection opened.  The call is `lost` (in doubt), the slot backs off, the pool is down and
    the next calls fail at once (`unreachable`: not sent) while it is."""
    async def take_and_close(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(2)
        async with stream:
            while data := await stream.receive_some(65536):
                if f.feed(data):
                    return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, take_and_close, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    ch = MuxConnector("switch", {"address": f"127.0.0.1:{port}", "framing": "length2", "pool": 1, "timeout": 2,
                                 "reconnect_max": 1})
    await nursery.start(ch.run)
    with trio.fail_after(5):
        (first,) = await ch.request_many([b"x"])
        assert isinstance(first, ChannelError) and first.kind == "lost", first
        assert ch.pool.down and ch.pool.refusing and ch.down_since is not None
        assert outbound_health(ch)["up"] is False and outbound_health(ch)["circuit"] == "open"
        (second,) = await ch.request_many([b"y"])
    assert isinstance(second, ChannelError) and second.kind == "unreachable", second
    assert f"the counterpart at 127.0.0.1:{port} closed the connection before any answer" in str(second)
    assert "access list" in str(second)
