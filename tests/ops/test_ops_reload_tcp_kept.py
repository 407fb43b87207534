"""A reload that keeps the TCP channels (their options unchanged) while the routes using them change
(docs/operations.md, reload).  A kept `tcp connect` with `match` reads the keys of the requests sent after the
swap with the new call formats and matches their replies with the new reply format, while a call in flight at
the swap is answered with the old one (its deal on the old version); a dry run and a refused reload change
nothing of it.  It holds no configuration alive: after reloads, dry runs and reloads refused after their bind,
with calls in flight across them, every configuration but the running one is freed (it held the binder of
the last dry run or refused reload, with its program, tables and codecs, until the next reload that switched:
engine/channels/mux.py over engine/channels/staged.py), and the formats of the configuration a swap replaced
go once that configuration's last call is answered.  A kept `tcp listen` names, in its warnings at
`max_connections`, the place of that option in the running configuration: moved at the swap, not by a dry
run (it named the line of the configuration that built it for as long as it was kept).  The other kept
channel kinds hold no configuration but the running one either.

Real engine (LiveEngine as `bsp run` serves it), real clients and counterparts on 127.0.0.1 (port 0), a real
nats-server for the NATS kinds, real DuckDB ledgers."""
from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import pytest
import trio
from lxml import etree

from engine.testing.nats_server import nats_server
from formats.framing import LengthPrefixFramer
from opskit import configuration_version, configurations_reachable, live, rows

MUX = """
format J = json
format X = xml
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel host = tcp connect {
    address = "127.0.0.1:%(back)d"  framing = length4  pool = 1  match = ["Pay.ref"]  timeout = 20s
}
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00  currency = "EUR"  key = msg.ref }
    call post = host as %(fmt)s { Pay.ref = msg.ref  Pay.op = "post" } expect post.Pay.status == "OK"
    reply J { ref = msg.ref  code = "00"  tag = "%(tag)s"  via = post.Pay.via }
    on error reply J { ref = msg.ref  code = error.code  tag = "%(tag)s" }
}
%(extra)s
"""


def mux(back: int, *, fmt: str = "J", tag: str = "v1", extra: str = "") -> str:
    return MUX % {"back": back, "fmt": fmt, "tag": tag, "extra": extra}


@pytest.fixture
async def taken() -> AsyncIterator[Any]:
    """A listening socket on 127.0.0.1: a channel added on its address makes a reload refused at its start."""
    sock = trio.socket.socket()
    with sock:
        await sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock


def taken_listen(taken: Any) -> str:
    """A channel on an address already taken: the reload binds the configuration, then is refused at start."""
    return 'channel more = tcp listen { address = "127.0.0.1:%d"  framing = length2 }' % taken.getsockname()[1]


class Host:
    """A counterpart that answers each request in the encoding it came in (JSON or XML), echoing its
    `Pay.ref`, once ``open``ed; the answers of one connection in the reverse order of arrival (a
    `match` channel pairs them by key).  Real loopback TCP, length4 framing."""

    def __init__(self) -> None:
        self.is_open = False
        self.arrived = 0
        self._arrival = trio.Condition()
        self._kick = trio.Event()            # set (and replaced) at each arrival and each open / close

    def open(self, value: bool = True) -> None:
        """Answer what is held and what comes (``False``: hold the answers from now on)."""
        self.is_open = value
        self._wake()

    def _wake(self) -> None:
        self._kick.set()
        self._kick = trio.Event()

    async def serve(self, nursery: trio.Nursery) -> int:
        listeners = await nursery.start(trio.serve_tcp, self._handler, 0)
        return listeners[0].socket.getsockname()[1]

    async def wait_for(self, n: int) -> None:
        async with self._arrival:
            while self.arrived < n:
                await self._arrival.wait()

    @staticmethod
    def answer(req: bytes) -> bytes:
        if req.lstrip().startswith(b"{"):
            ref = orjson.loads(req)["Pay"]["ref"]
            return orjson.dumps({"Pay": {"ref": ref, "status": "OK", "via": "json"}})
        ref = etree.fromstring(req).findtext("ref")
        return b"<Pay><ref>%s</ref><status>OK</status><via>xml</via></Pay>" % ref.encode()

    async def _handler(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        held: list[bytes] = []
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(self._release, stream, held)
            while data := await stream.receive_some(65536):
                for req in f.feed(data):
                    held.append(f.frame(self.answer(req)))
                    self._wake()
                    async with self._arrival:
                        self.arrived += 1
                        self._arrival.notify_all()
            nursery.cancel_scope.cancel()

    async def _release(self, stream: trio.SocketStream, held: list[bytes]) -> None:
        while True:
            while self.is_open and held:
                await stream.send_all(held.pop())
            await self._kick.wait()


async def _ask(port: int, ref: str, out: dict[str, Any]) -> None:
    f = LengthPrefixFramer(2)
    async with await trio.open_tcp_stream("127.0.0.1", port) as s:
        await s.send_all(f.frame(orjson.dumps({"ref": ref})))
        got: list[bytes] = []
        while not got:
            data = await s.receive_some(65536)
            assert data, f"{ref}: connection closed without a reply"
            got = f.feed(data)
    out[ref] = orjson.loads(got[0])


async def test_a_kept_match_channel_matches_new_calls_with_the_new_formats_and_old_ones_with_the_old(
        nursery: trio.Nursery, tmp_path: Path, taken: Any) -> None:
    """The route's call changes from JSON to XML; the channel (its options unchanged) is kept.  A call sent
    before the reload is answered (in JSON) after it: matched with the old reply format, its deal finishes
    on the old version.  A dry run and a refused reload of the XML version, in between, leave requests read
    as JSON.  A call sent after the swap is keyed with the new request format (XML; with the old one its
    key could not be read) and its XML answer matched with the new reply format."""
    host = Host()
    back = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(mux(back))
    ledger = tmp_path / "l.duckdb"
    out: dict[str, Any] = {}
    async with live([route], ledger) as eng:
        port = eng.channels["front"].port
        channel = eng.channels["host"]
        v1 = eng.version
        with trio.fail_after(30):
            async with trio.open_nursery() as clients:
                clients.start_soon(_ask, port, "OLD", out)
                await host.wait_for(1)                      # at the counterpart across the reloads
                route.write_text(mux(back, fmt="X", tag="dry"))
                assert (await eng.reload(dry_run=True)).ok
                route.write_text(mux(back, fmt="X", tag="refused", extra=taken_listen(taken)))
                refused = await eng.reload()
                assert not refused.ok and refused.refused == "start", refused
                clients.start_soon(_ask, port, "MID", out)  # still keyed and matched as JSON
                await host.wait_for(2)
                route.write_text(mux(back, fmt="X", tag="v2"))
                result = await eng.reload()
                assert result.ok, result.diagnostics
                assert result.plan["channels"]["kept"] == ["front", "host"], result.plan
                assert eng.channels["host"] is channel
                v2 = eng.version
                clients.start_soon(_ask, port, "NEW", out)
                await host.wait_for(3)
                host.open()
    assert out == {"OLD": {"ref": "OLD", "code": "00", "tag": "v1", "via": "json"},
                   "MID": {"ref": "MID", "code": "00", "tag": "v1", "via": "json"},
                   "NEW": {"ref": "NEW", "code": "00", "tag": "v2", "via": "xml"}}, out
    assert (channel.garbled, channel.unmatched, channel.keyless) == (0, 0, 0)
    deals = {r: (s, v) for r, s, v in rows(ledger, "SELECT reference, status, config_version FROM deals")}
    assert deals == {"OLD": ("committed", v1), "MID": ("committed", v1), "NEW": ("committed", v2)}



def _held(eng: Any, name: str) -> set[tuple[str, str]]:
    """(kind, version) of the configurations channel ``name`` reaches, other than the running one."""
    reached = configurations_reachable(eng.channels[name], (eng, *eng.channels.values()))
    return {(type(c).__name__, configuration_version(c)) for c in reached if configuration_version(c) != eng.version}


async def _settled(eng: Any) -> None:
    with trio.fail_after(10):
        while eng._retiring:                      # the old generations end once their last exchange is done
            await trio.sleep(0.01)
    gc.collect()


async def test_a_kept_match_channel_holds_no_configuration_but_the_running_one(
        nursery: trio.Nursery, tmp_path: Path, taken: Any) -> None:
    """Reloads that change the call (JSON and XML in turn; the channel kept each time), each with a call in
    flight across it; a dry run and a reload refused after its bind in between, and last.  Once the calls are
    answered and the garbage collected, every configuration but the running one is freed, the formats of
    those a swap replaced too, and the channel reaches no configuration but the running one (it held the last
    dry run's or refused reload's binder and program)."""
    host = Host()
    back = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(mux(back))
    weak: list[tuple[str, weakref.ref[Any]]] = []
    out: dict[str, Any] = {}
    formats = ["J", "X"]
    async with live([route], tmp_path / "l.duckdb") as eng:
        port = eng.channels["front"].port
        channel = eng.channels["host"]
        for n in range(2, 6):
            host.open(False)
            with trio.fail_after(30):
                async with trio.open_nursery() as clients:
                    clients.start_soon(_ask, port, f"R{n}", out)
                    await host.wait_for(n - 1)
                    old = eng.current
                    weak += [(f"generation {old.number}", weakref.ref(old)),
                             (f"binder {old.number}", weakref.ref(old.sb.ctx)),
                             (f"codec {old.number}", weakref.ref(old.sb.ctx.codec(formats[n % 2])))]
                    del old
                    fmt = formats[(n + 1) % 2]
                    route.write_text(mux(back, fmt=fmt, tag=f"dry{n}"))
                    assert (await eng.reload(dry_run=True)).ok
                    route.write_text(mux(back, fmt=fmt, tag=f"refused{n}", extra=taken_listen(taken)))
                    assert not (await eng.reload()).ok
                    route.write_text(mux(back, fmt=fmt, tag=f"v{n}"))
                    result = await eng.reload()
                    assert result.ok, result.diagnostics
                    assert result.plan["channels"]["kept"] == ["front", "host"], result.plan
                    host.open()
            assert out[f"R{n}"]["tag"] == f"v{n - 1}", out
        # the last reloads do not switch: a dry run, then one refused after its bind
        route.write_text(mux(back, fmt="J", tag="dry"))
        assert (await eng.reload(dry_run=True)).ok
        route.write_text(mux(back, fmt="J", tag="refused", extra=taken_listen(taken)))
        assert not (await eng.reload()).ok
        await _ask(port, "LAST", out)
        assert out["LAST"] == {"ref": "LAST", "code": "00", "tag": "v5", "via": "json"}, out
        assert eng.channels["host"] is channel
        await _settled(eng)
        alive = [what for what, ref in weak if ref() is not None]
        assert alive == [], alive
        assert _held(eng, "host") == set()
        assert channel.staging.before is None


NO_CALL = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel host = tcp connect {
    address = "127.0.0.1:%(back)d"  framing = length4  pool = 1  match = ["Pay.ref"]  timeout = 20s
}
route pay {
    receive from front as J
    reply J { ref = msg.ref  code = "00"  tag = "quiet" }
}
"""


async def test_a_kept_match_channel_a_version_makes_no_calls_on_takes_no_dry_runs_formats(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """A reload keeps the match channel in a version that makes no calls on it (it binds nothing of it); once
    the version before is freed, the formats in force are not "none": a dry run then stages its formats, to be
    dropped with it, and does not put them in force at once (they were, and stayed until the next reload).  The
    next reload that calls the channel puts its own in force at the swap."""
    host = Host()
    host.open()
    back = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(mux(back))
    out: dict[str, Any] = {}
    async with live([route], tmp_path / "l.duckdb") as eng:
        port = eng.channels["front"].port
        channel = eng.channels["host"]
        with trio.fail_after(30):
            await _ask(port, "V1", out)
            in_force = (channel.codec, channel.reply_codec)
            route.write_text(NO_CALL % {"back": back})
            result = await eng.reload()
            assert result.ok, result.diagnostics
            assert result.plan["channels"]["kept"] == ["front", "host"], result.plan
            await _settled(eng)
            assert channel.staging.bound is None            # the version that bound it is freed
            route.write_text(mux(back, fmt="X", tag="dry"))
            assert (await eng.reload(dry_run=True)).ok
            gc.collect()
            assert (channel.codec, channel.reply_codec) == in_force     # not the dry run's XML
            assert channel.staging.staged is None                       # dropped with the dry run
            await _ask(port, "QUIET", out)
            route.write_text(mux(back, fmt="X", tag="v3"))
            result = await eng.reload()
            assert result.ok, result.diagnostics
            assert eng.channels["host"] is channel
            await _ask(port, "NEW", out)
    assert out == {"V1": {"ref": "V1", "code": "00", "tag": "v1", "via": "json"},
                   "QUIET": {"ref": "QUIET", "code": "00", "tag": "quiet"},
                   "NEW": {"ref": "NEW", "code": "00", "tag": "v3", "via": "xml"}}, out
    assert (channel.garbled, channel.unmatched, channel.keyless) == (0, 0, 0)


TCP_CAP = """
format J = json
channel front = tcp listen {
    address         = "127.0.0.1:0"
    max_connections = 1
    framing         = length2
}
route echo {
    receive from front as J
    reply J { ref = msg.ref }
}
"""


async def _evict(listener: Any) -> None:
    """An idle connection holds the only slot; a new one makes it close for room (the warning)."""
    f = LengthPrefixFramer(2)
    with trio.fail_after(10):                         # a guard, not a timing
        async with await trio.open_tcp_stream("127.0.0.1", listener.port) as idle:
            while not listener.room.open:             # accepted before the next one connects
                await trio.sleep(0.01)
            async with await trio.open_tcp_stream("127.0.0.1", listener.port) as new:
                await new.send_all(f.frame(b'{"ref":"N"}'))
                got: list[bytes] = []
                while not got:
                    got = f.feed(await new.receive_some(4096))
                assert await idle.receive_some(10) == b""         # closed by the engine for room


async def test_a_kept_tcp_listen_names_the_place_of_the_running_configuration(tmp_path: Path, caplog,
                                                                              taken: Any) -> None:
    """The warnings at max_connections name where the channel's max_connections is declared.  A reload that
    keeps the channel but moves its declaration (lines added above it) moves that place at the swap; a dry
    run, and a reload refused after its bind, do not.  (It named the line of the configuration that built
    the listener for as long as it was kept.)"""
    route = tmp_path / "echo.route"
    route.write_text(TCP_CAP)
    caplog.set_level(logging.WARNING)
    async with live([route], tmp_path / "l.duckdb") as eng:
        listener = eng.channels["front"]
        assert listener.room.place == f"{route}:5:5", listener.room.place
        route.write_text("# a comment\n# and another\n" + TCP_CAP)
        assert (await eng.reload(dry_run=True)).ok
        assert listener.room.place == f"{route}:5:5"
        route.write_text("# a comment\n" + TCP_CAP + taken_listen(taken))
        assert not (await eng.reload()).ok
        assert listener.room.place == f"{route}:5:5"
        route.write_text("# a comment\n# and another\n" + TCP_CAP)
        result = await eng.reload()
        assert result.ok and result.plan["channels"]["kept"] == ["front"], result.plan
        assert eng.channels["front"] is listener and listener.room.place == f"{route}:7:5", listener.room.place
        caplog.clear()
        await _evict(listener)
    assert f"raise max_connections of channel front ({route}:7:5)" in caplog.text, caplog.text


KINDS = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2  max_connections = 5 }
channel api = http listen { address = "127.0.0.1:0"  path = "/pay" }
channel mem = memory { framing = length2 }
channel inbox = file watch { dir = "%(inbox)s"  pattern = "*.csv"  record = "csv" }
channel tick = timer { every = 1h }
channel orders = nats consume { url = "%(url)s"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp" }
channel plain = tcp connect { address = "127.0.0.1:%(back)d"  framing = length4  timeout = 5s }
channel host = tcp connect { address = "127.0.0.1:%(back)d"  framing = length4  timeout = 5s  match = ["ref"] }
channel web = http call { url = "http://127.0.0.1:%(back)d/x"  timeout = 1s }
channel out = file write { dir = "%(out)s"  name = "P-{seq}.csv" }
channel pub = nats publish { url = "%(url)s"  subject = "sent.orders"  stream = "SENT"  timeout = 1s }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00  currency = "EUR"  key = msg.ref }
    call a = plain as J { ref = msg.ref }
    call b = host as J { ref = msg.ref }
    reply J { ref = msg.ref  tag = "%(tag)s" }
    on error reply J { ref = msg.ref  tag = error.code }
}
route api { receive from api as J  deal API { ref = msg.ref  amount = 1.00  currency = "EUR" }  reply J { ref = msg.ref } }
route mem { receive from mem as J  deal MEM { ref = msg.ref  amount = 1.00  currency = "EUR" }  reply J { ref = msg.ref } }
route file {
    receive from inbox as J
    deal FILE { ref = msg.ref  amount = 1.00  currency = "EUR"  key = msg.ref }
    call c = web as J { ref = msg.ref }
    call d = out as J { ref = msg.ref }
    call e = pub as J { ref = msg.ref }
}
route tick { receive from tick as J  deal TICK { ref = "T"  amount = 1.00  currency = "EUR" } }
route orders { receive from orders as J  deal ORDER { ref = msg.ref  amount = 1.00  currency = "EUR" } }
"""


async def test_no_kept_channel_holds_a_configuration_but_the_running_one(
        nursery: trio.Nursery, tmp_path: Path, taken: Any) -> None:
    """Every channel kind kept by a reload that changes the routes, then a dry run and a reload refused after
    its bind (each binds every channel with its configuration): none reaches a configuration but the running
    one (a `match` channel held the last dry run's or refused reload's)."""
    host = Host()
    host.open()
    back = await host.serve(nursery)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    async with nats_server(tmp_path / "nats") as srv:
        def text(tag: str, extra: str = "") -> str:
            return KINDS % {"inbox": tmp_path / "in", "out": tmp_path / "out", "url": srv.url, "back": back,
                            "tag": tag} + extra

        route = tmp_path / "all.route"
        route.write_text(text("v1"))
        async with live([route], tmp_path / "l.duckdb") as eng:
            channels = dict(eng.channels)
            route.write_text(text("v2"))
            result = await eng.reload()
            assert result.ok and sorted(result.plan["channels"]["kept"]) == sorted(channels), result.plan
            route.write_text(text("dry"))
            assert (await eng.reload(dry_run=True)).ok
            route.write_text(text("refused", taken_listen(taken)))
            assert not (await eng.reload()).ok
            assert eng.channels == channels
            await _settled(eng)
            held = {name: _held(eng, name) for name in channels}
            assert held == {name: set() for name in channels}, held
