"""`bsp replay --to-tests` masks classified values in the tests it writes.  A classified field of a call
that the route takes from its configuration (the claims payout's settlement account, read from a table),
not from the request, is sent in clear by the test's route: its masked value (`I***`) in `expect call`
could never be equal, and the generated test failed on a recording of a good exchange.  Such a field is
left out (a comment says why); a classified value the call carries from the request is still expected
masked, as the test's route masks it too.  Real loopback sockets, a real ledger, a recording in clear."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.tap import recording
from engine.replay.totests import write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from engine.sim.framed import FramedServer

ROUTE = """
format Req  = json classify ["payer:personal"]
format Post = json classify ["payer:personal", "acct:personal"]
format Ack  = json

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:0"
    framing = length2
    timeout = 3s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1 }
    call post = back as Post reply Ack { ref = msg.ref  payer = msg.payer  acct = "SETTLE-000123" }
    reply Ack { ref = msg.ref  status = post.status }
}
"""


class _Back(FramedServer):
    framing = "length2"

    def reply_frame(self, payload: bytes) -> bytes:
        return json.dumps({"status": "OK", "ref": json.loads(payload)["ref"]}).encode()


def _record(tmp: Path, route: Path) -> Path:
    registry = default_registry()
    program = compile_paths([route], registry).program
    path = tmp / "pay.duckdb"
    with recording(program, registry, path) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(_Back().serve)
                    sb = Switchboard(program, rreg, ledger=ledger, overrides={
                        "front": {"address": "127.0.0.1:0"}, "back": {"address": f"127.0.0.1:{port}"}})
                    await nursery.start(sb.run)
                    stream = await trio.open_tcp_stream("127.0.0.1", sb.channel("front").port)
                    body = json.dumps({"ref": "R-1", "payer": "ANNA SCHMIDT"}).encode()
                    await stream.send_all(struct.pack(">H", len(body)) + body)
                    buf = b""
                    with trio.fail_after(10):
                        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                            buf += await stream.receive_some()
                    assert b'"OK"' in buf, buf
                    await stream.aclose()
                    sb.drain()
                    nursery.cancel_scope.cancel()

        trio.run(main)
    return path


def test_a_classified_value_made_from_the_configuration_is_not_expected_masked(tmp_path: Path) -> None:
    route = tmp_path / "cfg" / "pay.route"
    route.parent.mkdir()
    route.write_text(ROUTE)
    capture = _record(tmp_path, route)
    registry = default_registry()
    program = compile_paths([route], registry).program
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec),
                      tmp_path / "gen", [route], Profile())
    assert res.written == 1, res.skipped
    text = res.path.read_text()
    assert "ANNA" not in text and "SETTLE-000123" not in text, text
    assert 'payer = "A***"' in text.split("expect call back")[1], text      # carried from the request: expected
    ran = run_paths([res.path], registry)
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert len(ran.outcomes) == 1 and ran.outcomes[0].passed, ran.outcomes[0].failures
    assert "# acct: classified" in text, text
