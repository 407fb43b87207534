"""An ISO 8583 MUX (``match = iso8583``) does not send a reversal twice: one with the key and original (DE 90) of
a reversal already at the counterpart waits for that one's answer and shares it (``MuxConnector.joined``,
engine/channels/mux.py).  That count is shown with the MUX's other counters: `joined` on the channel's row of
`bsp status` (and the table), `bsp_channel_reversals_joined_total{channel}` in /metrics, and never as a channel
error.  Real loopback sockets, the engine in process with its admin API."""
from __future__ import annotations

import functools
import re
from pathlib import Path


from engine.sim.iso_host import IsoHost
from formats.iso8583 import codec_for
from opskit import serve_with_admin
from test_ops_degraded import _table

TOKEN = "ops-mux-joined-token-" + "j" * 20
ISO = codec_for("iso8583_1987_ascii")

ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = 5s
}
route purchase {
    receive from pos as Iso when msg.t == "0200"
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    }
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


def _reversal(mti: str, de7: str) -> bytes:
    return ISO.encode({"t": mti, "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": de7,
                       "11": "000005", "41": "TERM0001", "49": "978",
                       "90": "0200" + "000005" + "0101120000" + "0" * 22})


def _sample(text: str, name: str, channel: str) -> float | None:
    m = re.search(rf'^{name}\{{channel="{channel}"(?:,kind="[^"]*")?\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


async def test_a_reversal_joined_to_one_in_flight_is_in_status_and_metrics_not_an_error(nursery,
                                                                                       tmp_path: Path) -> None:
    host = IsoHost(delay=0.05)
    await nursery.start(functools.partial(host.serve, "127.0.0.1", 0))
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % host.port)
    engine, client = await serve_with_admin(route, tmp_path, nursery, TOKEN)
    mux = engine.current.channels["issuer"]
    # the engine's own 0420 and a front end's 0421 of the same original: one goes, the other shares its answer
    a, b = await mux.request_many([_reversal("0420", "0101120100"), _reversal("0421", "0101120200")])
    assert b == a and ISO.decode(a)["t"] == "0430" and host.requests == 1
    async with client:
        doc = (await client.get("/status")).json()
        row = doc["channels"]["issuer"]
        assert row["joined"] == 1, row
        assert "1 joined" in _table({**doc, "ready": True})
        text = (await client.get("/metrics")).text
        assert _sample(text, "bsp_channel_reversals_joined_total", "issuer") == 1.0, text
        errors = re.findall(r'^bsp_channel_errors_total\{channel="issuer",kind="\w+"\} (\S+)$', text, re.M)
        assert errors and all(float(v) == 0 for v in errors), text      # not counted as an error (each kind at 0)
    engine.drain()
