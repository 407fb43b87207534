"""ISO 8583 reversals against a real host simulator over TCP that drops the first answer."""
from __future__ import annotations

import functools
from types import SimpleNamespace

import trio

from engine.channels.tcp_connect import TcpConnector
from engine.registry import default_registry
from engine.txn.reversal import original_data_elements, reversal_of, reverse
from formats.framing import LengthPrefixFramer

ORIGINAL = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
            "7": "0501120000", "11": "000123", "32": "12345", "41": "TERM0001", "49": "978", "52": "ABCDEF0123456789"}


def _codec():
    spec = default_registry().get("format", "iso8583")
    return spec.build(SimpleNamespace(name="Auth", kind="iso8583", options={"spec": "iso8583_1987_ascii"},
                                      fields=(), positional=("iso8583_1987_ascii",)))


def test_reversal_carries_de90_and_no_pin() -> None:
    rev = reversal_of(ORIGINAL)
    assert rev["t"] == "0420" and reversal_of(ORIGINAL, repeat=True)["t"] == "0421"
    assert rev["90"] == original_data_elements(ORIGINAL) == "0200" + "000123" + "0501120000" + "00000012345" + "0" * 11
    assert len(rev["90"]) == 42 and "52" not in rev and rev["2"] == ORIGINAL["2"]


async def test_unanswered_reversal_is_repeated_until_acknowledged(nursery) -> None:
    codec = _codec()
    seen: list[str] = []

    async def host(stream):
        f = LengthPrefixFramer(2)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                for p in f.feed(data):
                    msg = codec.decode(p)
                    seen.append(msg["t"])
                    if len(seen) == 1:
                        continue                     # drop the first answer
                    ans = dict(msg)
                    ans.update({"t": "0430", "39": "00"})
                    await stream.send_all(f.frame(codec.encode(ans)))

    ls = await nursery.start(functools.partial(trio.serve_tcp, host, 0, host="127.0.0.1"))
    port = ls[0].socket.getsockname()[1]
    ch = TcpConnector("host", {"address": f"127.0.0.1:{port}", "framing": "length2"})
    call = SimpleNamespace(channel=ch, codec=codec, timeout=0.3)
    attempts = await reverse(ORIGINAL, call)
    assert [a.mti for a in attempts] == ["0420", "0421"]
    assert [a.outcome for a in attempts] == ["timeout", "acknowledged"]
    assert seen == ["0420", "0421"]
