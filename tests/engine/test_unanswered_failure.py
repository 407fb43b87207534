"""A route on a tcp listen channel whose step fails, with no error reply of its own nor of its channel:
the engine sends nothing (the sender waits for its own timeout; `bsp check` W010 says so), and the log
says why in one line naming the route, the step's place, the channel and the reason.  Until 2026-11-27
that line carried the codec's whole traceback.  Real engine, real sockets, the shipped answer copybook."""
from __future__ import annotations

import logging

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from tests.engine.kit import REPO, Client, compile_text, running

MF_RSP = REPO / "routes" / "common" / "copybooks" / "MF-RSP.cpy"


def _route(on_error: str = "") -> str:
    return (f'format Req = json\nformat Rsp = copybook "{MF_RSP}" encoding cp037 names lower\n'
            'channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }\n'
            'route mfpay {\n    receive from front as Req\n'
            '    reply Rsp { trace_no = msg.ref  resp_code = msg.code }\n' + on_error + '}\n')


def _decode(raw: bytes) -> dict:
    return CopybookCodec.from_file(MF_RSP, CopybookOptions(encoding="cp037", names="lower")).decode(raw)


async def _exchange(tmp_path, text: str) -> list[dict]:
    """Sends a request whose reply cannot be encoded (RESP-CODE is PIC X(2)), then a good one, on one
    connection; returns the replies that came, the first taken as soon as any came."""
    prog = compile_text(tmp_path, text)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "BAD1", "code": "000"}')
        await c.send(b'{"ref": "GOOD2", "code": "00"}')
        first = await c.recv(1)
        await c.aclose()
    return [_decode(r) for r in first]


async def test_a_failed_route_without_an_error_reply_answers_nothing_and_logs_one_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bsp.dispatch")
    got = await _exchange(tmp_path, _route())
    # replies go back in the order of the requests: the first to come is the good one's, so the failed
    # request got none (its sender waits for its own timeout)
    assert [(r["trace_no"], r["resp_code"]) for r in got] == [("GOOD2", "00")]
    lines = [r.getMessage() for r in caplog.records if r.name == "bsp.dispatch" and r.levelno == logging.ERROR]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith(f"route mfpay: step at {tmp_path / 'test.route'}:6:5 failed on channel front, deal ")
    assert "reply Rsp: cannot encode: byte 16, field resp_code: 3 bytes do not fit PIC X(2)" in line


async def test_the_route_on_error_reply_answers_the_failure(tmp_path):
    got = await _exchange(tmp_path, _route('    on error reply Rsp { trace_no = msg.ref  resp_code = error.code }\n'))
    assert [(r["trace_no"], r["resp_code"]) for r in got] == [("BAD1", "96")]
