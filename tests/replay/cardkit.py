"""A recorded session of a small ISO 8583 card service with message MACs (real loopback sockets:
a terminal -> bsp -> a card host run here, a real ledger, the recording taps on both channels).

``record(tmp, requests, answer)`` runs the service with ``--mask``-style recording and returns the
capture; ``answer(values)`` is what the host sends back for a decoded request (bytes: sent as they are).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.tap import recording
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from formats.framing import LengthPrefixFramer

KEY_ENV = "CARDKIT_MAC_KEY"
KEY = "00112233445566778899aabbccddeeff"
PAN = "4111111111111111"
PIN_BLOCK = "0412AC89ABCDEF67"

ROUTE = """
format Net = iso8583 iso8583_1987_ascii mac_algorithm "cmac-aes" mac_key_env "CARDKIT_MAC_KEY"

channel pos = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Net { t = "0210"  "3" = "000000"  "4" = "000000000000"  "7" = "0101000000"  "11" = "000000"
                         "39" = error.code  "49" = "978" }
}
channel host = tcp connect {
    address = "127.0.0.1:0"
    framing = length2
    timeout = 3s
}
route purchase {
    receive from pos as Net when msg.t == "0200"
    deal CARD { ref = msg["11"]  amount = 1  currency = "EUR" }
    call auth = host as Net reply Net {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
        "49" = msg["49"]  "52" = msg["52"]
    }
    reply Net { t = "0210"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                "38" = "APPROV"  "39" = auth["39"]  "49" = msg["49"] }
    on error reply Net { t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                         "39" = error.code  "49" = msg["49"] }
}
"""


def write_config(dest: Path, edit: Callable[[str], str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    text = ROUTE if edit is None else edit(ROUTE)
    assert edit is None or text != ROUTE, "the edit changed nothing"
    (dest / "card.route").write_text(text)
    return dest / "card.route"


def codec(route: Path) -> Any:
    registry = default_registry()
    program = compile_paths([route], registry).program
    assert program is not None
    return program, registry, Binder(program, registry).codec("Net")


def request(net: Any, stan: int, **extra: str) -> bytes:
    return net.encode({"t": "0200", "2": PAN, "3": "000000", "4": "000000000100", "7": "1126100000",
                       "11": f"{stan:06d}", "49": "978", **extra})


def with_bad_mac(frame: bytes) -> bytes:
    """The frame with its MAC's last hex digit changed (the MAC travels as 16 hex characters)."""
    last = frame[-1:]
    return frame[:-1] + (b"0" if last != b"0" else b"1")


def record(tmp: Path, route: Path, requests: list[bytes], answer: Callable[[dict], bytes | dict],
           *, mask: bool = True) -> tuple[Path, list[bytes]]:
    """Record the service answering ``requests`` (sent one at a time); returns (capture, replies)."""
    program, registry, net = codec(route)
    capture = tmp / "cap.duckdb"
    replies: list[bytes] = []

    async def host_conn(stream: trio.SocketStream) -> None:
        fr = LengthPrefixFramer(2)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for frame in fr.feed(data):
                    out = answer(net.decode(frame))
                    await stream.send_all(fr.frame(out if isinstance(out, bytes) else net.encode(out)))

    async def main() -> None:
        with recording(program, registry, capture, mask=mask) as (reg, _):
            async with trio.open_nursery() as sims:
                (listener,) = await sims.start(partial(trio.serve_tcp, host="127.0.0.1"), host_conn, 0)
                host_port = listener.socket.getsockname()[1]
                async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                    sb = Switchboard(program, reg, ledger=ledger,
                                     overrides={"host": {"address": f"127.0.0.1:{host_port}"}})
                    async with trio.open_nursery() as nursery:
                        await nursery.start(sb.run)
                        fr = LengthPrefixFramer(2)
                        async with await trio.open_tcp_stream("127.0.0.1", sb.channel("pos").port) as s:
                            for req in requests:
                                await s.send_all(fr.frame(req))
                                got: list[bytes] = []
                                with trio.fail_after(10):
                                    while not got:
                                        got.extend(fr.feed(await s.receive_some(65536)))
                                replies.extend(got)
                        sb.drain()
                sims.cancel_scope.cancel()

    trio.run(main)
    return capture, replies


def approve(values: dict) -> dict:
    return {"t": "0210", "2": values["2"], "3": values["3"], "4": values["4"], "7": values["7"], "11": values["11"],
            "38": "A00001", "39": "00", "49": values["49"]}
