"""MUX over a pool of persistent connections, against the ISO 8583 host simulator on loopback."""
from __future__ import annotations

import functools
import logging
import re

import pytest
import trio
import trio.testing

from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.channels.options import ChannelConfigError
from engine.channels.tcp_connect import TcpConnector, build
from engine.sim.iso_host import IsoHost
from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for
from kit import REPO

ISO = codec_for("iso8583_1987_ascii")


def req(stan: int, term: str = "TERM0001", mti: str = "0200", amount: str = "000000001000") -> bytes:
    return ISO.encode({"t": mti, "2": "4111111111111111", "3": "000000", "4": amount, "7": "0101120000", "11": f"{stan:06d}",
                       "41": term, "49": "978"})


async def start_host(nursery, port: int = 0, **kw) -> IsoHost:
    host = IsoHost(**kw)
    await nursery.start(functools.partial(host.serve, "127.0.0.1", port))
    return host


async def start_mux(nursery, port: int, **opts) -> MuxConnector:
    ch = MuxConnector("host", {"address": f"127.0.0.1:{port}", "framing": "length2", "match": "iso8583",
                               "timeout": 5, **opts})
    ch.use_codecs(ISO)
    await nursery.start(ch.run)
    return ch


def test_build_picks_mux_only_for_mux_options() -> None:
    class Decl:
        name = "x"
        options = {"address": "127.0.0.1:1", "framing": "length2", "backoff": 0.2, "breaker_window": 30}
    assert isinstance(build(Decl), TcpConnector)
    Decl.options = {**Decl.options, "pool": 2}
    assert isinstance(build(Decl), MuxConnector)


def test_config_errors_name_option_and_fix() -> None:
    with pytest.raises(ChannelConfigError, match="retries = 2 needs idempotent = true"):
        MuxConnector("x", {"address": "127.0.0.1:1", "retries": 2})
    with pytest.raises(ChannelConfigError, match="echo_every .* needs match = iso8583"):
        MuxConnector("x", {"address": "127.0.0.1:1", "echo_every": 30})
    with pytest.raises(ChannelConfigError, match="option match: expected iso8583 or a list"):
        MuxConnector("x", {"address": "127.0.0.1:1", "match": "stan"})


async def test_out_of_order_replies_matched_on_one_connection(nursery) -> None:
    # replies come back reversed per chunk and with delays that invert the order
    host = await start_host(nursery, reverse=True, delay=lambda r: 0.002 * (50 - int(r["11"]) % 50))
    ch = await start_mux(nursery, host.port, pool=1)
    got = await ch.request_many([req(i) for i in range(1, 41)])
    assert host.connections == 1 and ch.connects == 1
    for i, r in enumerate(got, 1):
        assert not isinstance(r, ChannelError), r
        rsp = ISO.decode(r)
        assert (rsp["t"], rsp["11"], rsp["41"]) == ("0210", f"{i:06d}", "TERM0001")
    # concurrent callers too, same STAN on different terminals
    results: dict[str, bytes] = {}

    async def one(term: str) -> None:
        results[term] = await ch.request(req(7, term))

    async with trio.open_nursery() as n:
        for t in ("TERMA001", "TERMB001", "TERMC001"):
            n.start_soon(one, t)
    assert {t: ISO.decode(r)["41"] for t, r in results.items()} == {t: t for t in results}
    assert ch.unmatched == 0


async def test_unmatched_reply_is_logged_and_counted(nursery, caplog) -> None:
    host = await start_host(nursery, unsolicited=True)
    ch = await start_mux(nursery, host.port)
    with caplog.at_level(logging.WARNING, "bsp.channel.mux"):
        (r,) = await ch.request_many([req(1)])
        await trio.sleep(0.05)
    assert ISO.decode(r)["11"] == "000001"
    assert ch.unmatched == 1
    assert "key 020/999999/NOBODY01 matches no request waiting" in caplog.text


async def test_missing_key_field_is_a_clear_error_not_a_timeout(nursery, autojump_clock) -> None:
    host = await start_host(nursery)
    ch = await start_mux(nursery, host.port, timeout=30)
    no_terminal = ISO.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000000100", "7": "0101120000",
                              "11": "000009", "49": "978"})
    t0 = trio.current_time()
    ok, bad = await ch.request_many([req(1), no_terminal])
    assert trio.current_time() - t0 < 1          # answered at once, not after the 30s timeout
    assert not isinstance(ok, ChannelError)
    assert isinstance(bad, ChannelError) and bad.kind == "internal"
    assert "DE 41 (terminal id) missing from the 0200 message" in str(bad)
    assert host.requests == 1


async def test_duplicate_key_in_flight_is_refused(nursery) -> None:
    host = await start_host(nursery, delay=0.05)
    ch = await start_mux(nursery, host.port)
    a, b = await ch.request_many([req(5), req(5)])
    assert not isinstance(a, ChannelError)
    assert isinstance(b, ChannelError) and "key 020/000005/TERM0001 is still waiting" in str(b)


def rev(mti: str = "0420", de90: str = "0200" + "000005" + "0101120000" + "0" * 22, de7: str = "0101120100") -> bytes:
    return ISO.encode({"t": mti, "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": de7,
                       "11": "000005", "41": "TERM0001", "49": "978", "90": de90})


async def test_the_same_reversal_in_flight_is_not_sent_twice_it_shares_the_answer(nursery) -> None:
    # two 0420s with one key (MTI class, DE 11, DE 41) and one original (DE 90): the second, built by another
    # sender (its own DE 7), is the same reversal at the host: not sent, it gets the first one's answer
    host = await start_host(nursery, delay=0.05)
    ch = await start_mux(nursery, host.port)
    a, b = await ch.request_many([rev(), rev("0421", de7="0101120200")])
    assert not isinstance(a, ChannelError) and b == a
    assert (ISO.decode(a)["t"], ISO.decode(a)["11"]) == ("0430", "000005")
    assert host.requests == 1 and ch.joined == 1
    # another original (DE 90) with that key: two requests the host could not tell apart, refused as before
    c, d = await ch.request_many([rev(), rev(de90="0200" + "000006" + "0101120000" + "0" * 22)])
    assert not isinstance(c, ChannelError)
    assert isinstance(d, ChannelError) and "key 042/000005/TERM0001 is still waiting" in str(d)
    # a 0200 is never joined, even with the same key and fields
    e, f = await ch.request_many([req(5), req(5)])
    assert isinstance(f, ChannelError) and "is still waiting" in str(f)
    assert ch.joined == 1


async def test_a_reversal_riding_on_one_unanswered_times_out_with_it(nursery, autojump_clock) -> None:
    host = await start_host(nursery, drop=lambda r: r["t"] == "0420")
    ch = await start_mux(nursery, host.port, timeout=3)
    got: dict[str, object] = {}

    async def first() -> None:
        (got["first"],) = await ch.request_many([rev()])

    async with trio.open_nursery() as n:
        n.start_soon(first)
        await trio.sleep(1)                        # the first is at the host
        (got["second"],) = await ch.request_many([rev("0421", de7="0101120200")], 10)
    assert isinstance(got["first"], ChannelError) and got["first"].kind == "timeout"
    assert isinstance(got["second"], ChannelError) and got["second"].kind == "timeout"
    assert (host.dropped, host.requests, ch.joined, ch._pending) == (1, 0, 1, {})     # one 0420 at the host


async def test_garbled_reply_counted_and_request_times_out(nursery, autojump_clock) -> None:
    host = await start_host(nursery, garble=lambda r: r["11"] == "000002")
    ch = await start_mux(nursery, host.port, timeout=3)
    a, b = await ch.request_many([req(1), req(2)])
    assert not isinstance(a, ChannelError)
    assert isinstance(b, ChannelError) and b.kind == "timeout"
    assert ch.garbled == 1


async def test_host_restart_reconnects(nursery) -> None:
    host = await start_host(nursery)
    port = host.port
    ch = await start_mux(nursery, port, pool=2, reconnect_max=0.1)
    assert not isinstance(await ch.request(req(1)), ChannelError)
    host.stop()
    await trio.sleep(0.05)
    (down,) = await ch.request_many([req(2)])
    assert isinstance(down, ChannelError) and down.kind in ("unreachable", "lost")
    host2 = await start_host(nursery, port=port)
    with trio.fail_after(5):
        while not ch.pool.connected:
            await trio.sleep(0.02)
    assert not isinstance(await ch.request(req(3)), ChannelError)
    assert ch.connects >= 3 and host2.requests == 1


async def test_pool_spreads_requests_over_connections(nursery) -> None:
    host = await start_host(nursery)
    ch = await start_mux(nursery, host.port, pool=3)
    with trio.fail_after(5):
        while len(ch.pool.conns) < 3:
            await trio.sleep(0.01)
    async with trio.open_nursery() as n:
        for i in range(30):
            n.start_soon(ch.request, req(100 + i))
    assert host.connections == 3 and host.requests == 30
    assert all(c.sends > 0 for c in ch.pool.conns)


async def test_fifo_pool_without_match(nursery) -> None:
    host = await start_host(nursery)
    ch = MuxConnector("host", {"address": f"127.0.0.1:{host.port}", "framing": "length2", "pool": 2})
    await nursery.start(ch.run)
    got = await ch.request_many([req(i) for i in range(1, 11)])
    assert [ISO.decode(r)["11"] for r in got] == [f"{i:06d}" for i in range(1, 11)]


async def test_echo_keeps_connection_and_unanswered_echo_reconnects(nursery, autojump_clock) -> None:
    host = await start_host(nursery)
    ch = await start_mux(nursery, host.port, echo_every=30, timeout=5)
    await trio.sleep(95)
    assert host.echoes == 3 and ch.echoes == 3 and ch.connects == 1
    host.echo_ok = False
    await trio.sleep(40)                   # next echo at 120s, unanswered by 125s
    assert ch.echo_failures == 1
    with trio.fail_after(10):
        while ch.connects < 2:
            await trio.sleep(0.1)
    assert not isinstance(await ch.request(req(1)), ChannelError)


async def test_echo_the_format_cannot_encode_keeps_engine_and_connection(nursery, tmp_path, caplog,
                                                                         autojump_clock) -> None:
    """A network spec whose 0800 needs more than DE 7, 11 and 70 (here DE 33): building the echo used
    to raise out of the pool and stop the whole engine at the first echo_every; now it is logged once,
    counted, echoes stop and the connection keeps carrying calls."""
    spec = (REPO / "formats" / "specs" / "iso8583_1987_ascii.yaml").read_text()
    assert "    mandatory: [7, 11, 70]\n" in spec
    path = tmp_path / "net.yaml"
    path.write_text(spec.replace("    mandatory: [7, 11, 70]\n", "    mandatory: [7, 11, 33, 70]\n", 1))
    host = await start_host(nursery)
    ch = MuxConnector("host", {"address": f"127.0.0.1:{host.port}", "framing": "length2", "match": "iso8583",
                               "timeout": 5, "echo_every": 30})
    ch.use_codecs(codec_for(path))
    await nursery.start(ch.run)
    with caplog.at_level(logging.ERROR, logger="bsp.channel.mux"):
        await trio.sleep(95)                  # three echo intervals
    assert ch.echo_failures == 1 and "field 33" in (ch.echo_error or "")
    assert sum("cannot build the echo 0800" in r.getMessage() for r in caplog.records) == 1
    assert host.echoes == 0 and ch.connects == 1
    assert not isinstance(await ch.request(req(1)), ChannelError)


def mux_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.getMessage().startswith("channel host:")]


async def test_a_counterpart_flooding_bad_replies_is_logged_once_per_kind_then_counted(nursery, caplog) -> None:
    # before: one warning per bad reply (a counterpart gone wrong sends thousands)
    n = 500
    framer = LengthPrefixFramer(2)
    stray = ISO.encode({"t": "0210", "3": "000000", "4": "000000000001", "7": "0101000000", "11": "999999",
                        "39": "00", "41": "NOBODY01", "49": "978"})
    sent = trio.Event()

    async def counterpart(stream) -> None:          # answers the first request after a flood of bad replies
        rx = LengthPrefixFramer(2)
        while not (got := rx.feed(await stream.receive_some(65536))):
            pass
        reply = ISO.decode(got[0]) | {"t": "0210", "39": "00"}
        await stream.send_all(framer.frame(stray) * n)
        await stream.send_all(framer.frame(ISO.encode(reply)))
        await stream.send_all(framer.frame(b"\x00garbage"))           # another kind: logged at once
        sent.set()
        await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, counterpart, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    caplog.set_level(logging.WARNING, "bsp.channel.mux")
    async with trio.open_nursery() as engine:
        ch = await start_mux(engine, port)
        (r,) = await ch.request_many([req(1)])
        assert ISO.decode(r)["11"] == "000001"      # the good reply among them is still matched
        await sent.wait()
        with trio.fail_after(10):
            while ch.garbled < 1:
                await trio.sleep(0.01)
        assert ch.unmatched == n
        lines = mux_lines(caplog)
        assert len(lines) == 2, lines
        assert re.fullmatch(rf"channel host: connection \d+ to 127.0.0.1:{port}: reply with key 020/999999/"
                            r"NOBODY01 matches no request waiting \(late after a timeout, or never asked for\); "
                            r"dropped", lines[0]), lines
        assert re.match(rf"channel host: connection \d+ to 127.0.0.1:{port}: reply of 8 bytes cannot be read "
                        r"\(byte 0, field t: MTI '\\x00gar' is not 4 digits", lines[1]), lines
        engine.cancel_scope.cancel()                # the engine stops: the count not yet written
    lines = mux_lines(caplog)
    assert len(lines) == 3, lines
    assert re.match(rf"channel host: {n - 1} more replies matching no request since \d\d:\d\d:\d\d \(counted, "
                    r"not logged one by one\), last from connection \d+: reply with key 020/999999/NOBODY01 matches "
                    r"no request waiting", lines[2]), lines
