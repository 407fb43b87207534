"""A recorded session of a small ISO 8583 service where nothing arrives or is answered in order (real
loopback sockets): two terminals' connections to bsp, each pipelining its requests (sent without waiting
for a reply, the two connections interleaved), and a card host on a MUX channel (``match = iso8583``,
STAN + terminal) that waits for a second request on its connection and answers the two in reverse order.

``record(tmp, route)`` runs the service with the recording taps and returns (capture, replies by STAN).
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

TERMINALS = ("TERM0001", "TERM0002")
PER_CONN = 6
PAN = "4111111111111111"

ROUTE = """
format Net = iso8583 iso8583_1987_ascii

channel pos = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel host = tcp connect {
    address = "127.0.0.1:0"
    framing = length2
    timeout = 5s
    match = iso8583
    pool = 2
}
route purchase {
    receive from pos as Net when msg.t == "0200"
    deal CARD { ref = msg["41"] + msg["11"]  amount = 1  currency = "EUR" }
    call auth = host as Net reply Net {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "41" = msg["41"]
        "49" = msg["49"]
    }
    reply Net { t = "0210"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "41" = msg["41"]
                "38" = auth["38"]  "39" = auth["39"]  "49" = msg["49"] }
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


def request(net: Any, term: str, stan: int) -> bytes:
    return net.encode({"t": "0200", "2": PAN, "3": "000000", "4": f"{stan * 100:012d}", "7": "1126100000",
                       "11": f"{stan:06d}", "41": term, "49": "978"})


def host_answer(values: dict) -> dict:
    """The host's answer: approval code from STAN and terminal; a STAN ending in 7 is declined."""
    stan, term = values["11"], values["41"]
    declined = stan.endswith("7")
    return {"t": "0210", "2": values["2"], "3": values["3"], "4": values["4"], "7": values["7"], "11": stan, "41": term,
            "38": f"A{term[-1]}{stan[-3:]}", "39": "05" if declined else "00", "49": values["49"]}


def record(tmp: Path, route: Path, *, mask: bool = False) -> tuple[Path, dict[tuple[str, str], dict]]:
    program, registry, net = codec(route)
    capture = tmp / "cap.duckdb"
    replies: dict[tuple[str, str], dict] = {}
    answered_out_of_order = []

    async def host_conn(stream: trio.SocketStream) -> None:
        fr = LengthPrefixFramer(2)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                batch = [net.decode(f) for f in fr.feed(data)]
                with trio.move_on_after(0.5):           # wait for a second request, then answer backwards
                    while len(batch) < 2:
                        more = await stream.receive_some(65536)
                        if not more:
                            break
                        batch.extend(net.decode(f) for f in fr.feed(more))
                if len(batch) > 1:
                    answered_out_of_order.append(len(batch))
                for values in reversed(batch):
                    await stream.send_all(fr.frame(net.encode(host_answer(values))))

    async def terminal(port: int, term: str, stans: list[int], go: list[trio.Event]) -> None:
        fr = LengthPrefixFramer(2)
        async with await trio.open_tcp_stream("127.0.0.1", port) as s:
            for i, stan in enumerate(stans):           # pipelined: the next request before any reply
                await go[i].wait()
                await s.send_all(fr.frame(request(net, term, stan)))
            got: list[bytes] = []
            with trio.fail_after(20):
                while len(got) < len(stans):
                    got.extend(fr.feed(await s.receive_some(65536)))
            for raw in got:
                v = net.decode(raw)
                replies[(v["41"], v["11"])] = v

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
                        port = sb.channel("pos").port
                        gates = [[trio.Event() for _ in range(PER_CONN)] for _ in TERMINALS]
                        async with trio.open_nursery() as terms:
                            for n, term in enumerate(TERMINALS):
                                stans = [1 + n + 2 * i for i in range(PER_CONN)]     # 1,3,5.. and 2,4,6..
                                terms.start_soon(terminal, port, term, stans, gates[n])
                            for i in range(PER_CONN):                               # interleaved
                                for g in gates:
                                    g[i].set()
                                    await trio.sleep(0.002)
                        sb.drain()
                sims.cancel_scope.cancel()

    trio.run(main)
    assert len(replies) == len(TERMINALS) * PER_CONN
    assert answered_out_of_order, "the host never had two requests to answer out of order"
    return capture, replies
