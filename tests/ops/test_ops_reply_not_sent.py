"""A `tcp listen` reply the framing cannot carry (longer than max_frame) is not sent and the connection is
closed; the deal stays as the route ended it (its counterpart side effects happened: never rolled back
silently), but it now carries the truth: an event `reply_not_sent` with the reason, shown by `bsp deals show`,
counted in `bsp_channel_errors_total{kind="reply_not_sent"}`, and the log line names the deal.  The deals whose
replies were dropped behind it on that connection get the event too.

Real engine (LiveEngine), a real loopback connection, a real DuckDB ledger."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import trio
import typer
from typer.testing import CliRunner

from engine.commands.deals import register
from formats.framing import LengthPrefixFramer
from opskit import live, rows

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2  max_frame = 64 }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00 }
    reply J { ref = msg.ref  note = msg.note  again = msg.note }
}
"""


def deals_cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["deals", *args])


async def test_a_reply_too_long_for_the_framing_is_an_event_on_its_deal(tmp_path: Path, caplog) -> None:
    path = tmp_path / "pay.route"
    path.write_text(ROUTE)
    ledger = tmp_path / "l.duckdb"
    f = LengthPrefixFramer(2)
    long_note = "x" * 40          # the request fits in 64 bytes; the reply (ref, note and more) does not
    with caplog.at_level(logging.ERROR, logger="bsp.channel"):
        async with live([path], ledger) as eng:
            port = eng.channels["front"].port
            conn = await trio.open_tcp_stream("127.0.0.1", port)
            # one chunk, one batch: the short reply first, the long one, then one more behind it
            await conn.send_all(f.frame(b'{"ref":"A1","note":"ok"}') +
                                f.frame(b'{"ref":"B2","note":"%s"}' % long_note.encode()) +
                                f.frame(b'{"ref":"C3","note":"ok"}'))
            got: list[bytes] = []
            with trio.fail_after(10):            # a guard, not a timing
                while True:
                    data = await conn.receive_some(4096)
                    if not data:
                        break                    # closed by the engine
                    got += f.feed(data)
            await conn.aclose()
            metric = eng.observer.metrics.value("bsp_channel_errors_total",
                                                {"channel": "front", "kind": "reply_not_sent"})
    assert got == [b'{"ref":"A1","note":"ok","again":"ok"}'], got
    by_ref = {r[0]: (r[1], r[2]) for r in rows(ledger, "SELECT reference, status, deal_id FROM deals")}
    assert {k: v[0] for k, v in by_ref.items()} == {"A1": "committed", "B2": "committed", "C3": "committed"}
    events = {r[0]: json.loads(r[1]) for r in rows(
        ledger, "SELECT deal_id, detail FROM deal_events WHERE to_state = 'reply_not_sent'")}
    b2, c3 = by_ref["B2"][1], by_ref["C3"][1]
    assert set(events) == {b2, c3}, events
    assert "cannot be framed" in events[b2]["reason"] and "64" in events[b2]["reason"], events[b2]
    assert "an earlier reply on the connection could not be framed" in events[c3]["reason"], events[c3]
    assert metric == 2
    assert f"deal {b2}" in caplog.text, caplog.text
    shown = deals_cli("show", b2, "--ledger", str(ledger))
    assert shown.exit_code == 0, shown.output
    assert "reply_not_sent" in shown.output and "cannot be framed" in shown.output, shown.output
