"""A request no format can decode: its reason (deal row, dead letter, log) quotes the bytes the codec
choked on, but never a card number in clear: runs of 12+ digits are masked like a PAN."""
from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest
import trio

from formats.classify import mask_digit_runs
from kit import Client, compile_text, running

PAN = "4111111111111111"
ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
route purchase {
    receive from pos as Iso when msg.t == "0200"
    reply Iso { t = "0210"  "11" = msg["11"]  "39" = "00" }
}
"""


def test_mask_digit_runs() -> None:
    assert mask_digit_runs("bitmap 'xy4111111111111' bad") == "bitmap 'xy411111***1111' bad"
    assert mask_digit_runs("field 4 '000000001000' x 12345") == "field 4 '000000**1000' x 12345"
    assert mask_digit_runs("no digits here") == "no digits here"


async def test_undecodable_request_quotes_no_pan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = tmp_path / "l.duckdb"
    caplog.set_level(logging.DEBUG)
    async with running(compile_text(tmp_path, ROUTE), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        await c.send(b"0200\x00\x00\x00" + PAN.encode() + b"junk")      # a bitmap made of the PAN
        with trio.fail_after(30):        # no reply comes: wait for the deal to be recorded (a hang guard)
            while sb.stats.total < 1:
                await trio.sleep(0.01)
        await c.aclose()
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        (reason,) = con.execute("SELECT reason FROM deals").fetchone()
        (dead,) = con.execute("SELECT reason FROM dead_letters").fetchone()
    finally:
        con.close()
    assert reason.startswith("malformed") and "primary bitmap" in reason, reason
    assert "*****1111" in reason
    for text in (reason, dead, caplog.text):
        assert PAN[:12] not in text, text
