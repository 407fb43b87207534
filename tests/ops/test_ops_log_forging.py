"""A sender cannot forge log lines, drive the reader's terminal or flood the log through values it sends.

Found by the hostile pass against a running engine (claims payout's http listen): a claim id holding a
line feed wrote a second, forged ``bsp.deal`` line into the text log; ANSI escapes and NUL were written
raw (``grep`` saw the log as binary); a 900 KB claim id made a 900 KB log line.  A `file watch` file named
with a line feed forged lines the same way (its name is in the warning).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from opskit import live

from kit import Client  # noqa: E402  (opskit puts tests/engine on the path)
from engine.ops.logs import JsonFormatter, Scrubber, TextFormatter

FORGED = "2026-11-26 00:00:00,000 INFO bsp.deal: deal 0 pay committed ref=FORGED"
ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { code = error.code }
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    validate { len(msg.ref) < 10 else reject "30" "reference too long" }
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def test_a_senders_reference_cannot_forge_or_flood_deal_lines(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bsp.deal")
    route = tmp_path / "r.route"
    route.write_text(ROUTE)
    refs = [f"X\n{FORGED}", "\x1b[2J\x1b[31mRED\x00\r\u2028", "A" * 50_000]
    async with live([route], tmp_path / "l.duckdb") as eng:
        c = await Client.open(eng.current.channels["front"].port)
        for ref in refs:
            await c.send(json.dumps({"ref": ref}).encode())
            with trio.fail_after(10):
                await c.recv()
        await c.aclose()
    deal_records = [r for r in caplog.records if r.name == "bsp.deal"]
    assert len(deal_records) == 3
    text = TextFormatter(Scrubber())
    lines = [text.format(r) for r in deal_records]
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line, line
        assert "\u2028" not in line and len(line) < 3000, line[:300]
    assert f"ref=X\\n{FORGED}" in lines[0]
    assert "ref=\\x1b[2J\\x1b[31mRED\\x00\\r\\u2028 " in lines[1]
    assert "...(50000 characters)" in lines[2]
    doc = json.loads(JsonFormatter(Scrubber()).format(deal_records[2]))
    assert len(doc["reference"]) < 300 and len(doc["msg"]) < 3000


def test_a_file_name_with_a_line_feed_stays_on_its_line() -> None:
    record = logging.LogRecord("bsp.channel.file", logging.WARNING, __file__, 1,
                               "channel %s: %s -> error/%s: %s", ("in", f"evil\n{FORGED}.csv",
                                                                  f"evil\n{FORGED}.csv", "bad"), None)
    line = TextFormatter(Scrubber()).format(record)
    assert line.count("\n") == 0 and f"evil\\n{FORGED}.csv" in line


def test_a_traceback_keeps_its_lines_and_loses_its_escapes() -> None:
    try:
        raise ValueError("bad value \x1b[31m")
    except ValueError:
        import sys
        record = logging.LogRecord("bsp.x", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",), sys.exc_info())
    out = TextFormatter(Scrubber()).format(record)
    assert out.startswith(out.split("\n")[0]) and "failed: a\\nb" in out.split("\n")[0]
    assert "\nTraceback (most recent call last):\n" in out and "\x1b" not in out and "\\x1b[31m" in out


@pytest.mark.parametrize("control", ["\x01", "\x02", "\x19", "\x85", "\x99"])
@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_a_card_number_after_a_control_character_is_still_masked(control: str, formatter: type) -> None:
    # the escape of the control character ends in digits (\x01, \u0001): written before the card number it
    # made one longer run of digits that failed the Luhn check, so the number was logged in clear
    record = logging.LogRecord("bsp.deal", logging.INFO, __file__, 1, "ref=%s", (f"{control}4111111111111111",),
                               None)
    line = formatter(Scrubber()).format(record)
    assert "4111111111111111" not in line and "1111" in line, line
