"""`bsp run --record --mask` on card traffic whose 0200s carry the expiry date (DE 14, `n` 4, YYMM, classified
personal): the mask `2***` with its hidden digits as zeros is `2000`, month 00, which the codec refuses, so
every such request was stored without its bytes and the exchange was not replayable (a masked capture of real
card traffic replayed nothing).  A date field whose mask does not fit now takes a valid date of its layout
that carries nothing of the value (`0001`: YYMM's smallest), and the capture replays with no difference.
The shipped card payments service, real loopback sockets, a real ledger."""
from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.session import replay_file
from engine.replay.tap import recording
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from engine.sim.iso_host import IsoHost

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "routes" / "card_payments"
PAN, EXPIRY = "6228481234567890", "2812"


def _record(tmp: Path) -> Path:
    registry = default_registry()
    program = compile_paths([CONFIG / "card_payments.route"], registry).program
    iso = Binder(program, registry).codec("CardIso")
    path = tmp / "cards.duckdb"
    with recording(program, registry, path, mask=True) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(IsoHost().serve)
                    sb = Switchboard(program, rreg, ledger=ledger, overrides={
                        "cp_mainframe": {"address": "127.0.0.1:0"}, "cp_host": {"address": f"127.0.0.1:{port}"}})
                    await nursery.start(sb.run)
                    stream = await trio.open_tcp_stream("127.0.0.1", sb.channel("cp_mainframe").port)
                    buf = b""
                    for stan in (1, 2):
                        body = iso.encode({"t": "0200", "2": PAN, "3": "000000", "4": "000000012550",
                                           "7": "1127051500", "11": f"{stan:06d}", "14": EXPIRY,
                                           "37": f"TX{stan:010d}", "41": "ATM00001", "49": "156"})
                        await stream.send_all(struct.pack(">H", len(body)) + body)
                        with trio.fail_after(10):
                            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                                buf += await stream.receive_some()
                        assert b"00ATM00001" in buf or b"A00001" in buf or buf, buf
                        buf = buf[2 + struct.unpack(">H", buf[:2])[0]:]
                    await stream.aclose()
                    sb.drain()
                    nursery.cancel_scope.cancel()

        trio.run(main)
    return path


def test_a_masked_capture_of_0200s_with_an_expiry_date_is_stored_and_replays(tmp_path: Path) -> None:
    capture = _record(tmp_path)
    with duckdb.connect(str(capture), read_only=True) as con:
        rows = con.execute("SELECT channel, direction, raw, masked FROM frames "
                           "WHERE channel = 'cp_mainframe' AND direction = 'in'").fetchall()
    assert len(rows) == 2
    registry = default_registry()
    iso = Binder(compile_paths([CONFIG / "card_payments.route"], registry).program, registry).codec("CardIso")
    for _ch, _d, raw, masked in rows:
        assert raw is not None, masked                      # stored, not "unmaskable"
        values = iso.decode(bytes(raw))
        assert values["14"] == "0001" and values["2"] == "6228480000007890", dict(values)
        assert "14 as a same-length filler of its layout" in masked
    report = replay_file(capture, [CONFIG], default_registry())
    assert not report.not_replayable, [n.reason for n in report.not_replayable]
    assert report.passed and not report.diff.differences, report.text()
