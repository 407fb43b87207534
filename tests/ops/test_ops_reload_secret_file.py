"""A secret file rewritten in place (a bearer token rotated at the same path) counts as a change for a
reload: the channel is rebuilt and reads it, the plan names the option (never the content), and the next
request carries the new token; the configuration version stays (secrets are not versioned)."""
from __future__ import annotations

import functools
import struct
from pathlib import Path

import orjson
import trio

from opskit import live

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel partner = http call {
    url              = "http://127.0.0.1:%(port)d/pay"
    auth_bearer_file = "partner.token"
    timeout          = 10s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call p = partner as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref  status = p.status }
}
"""


class Partner:
    """A plain HTTP/1.1 server answering every POST 200 ``{"status": "OK"}``; keeps each Authorization header."""

    def __init__(self) -> None:
        self.auth: list[str] = []

    async def handler(self, stream: trio.SocketStream) -> None:
        buf = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.decode().partition(":") for line in head.split(b"\r\n")[1:])}
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    buf += await stream.receive_some(65536)
                buf = buf[length:]
                self.auth.append(headers.get("authorization", ""))
                body = orjson.dumps({"status": "OK"})
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                                      + str(len(body)).encode() + b"\r\n\r\n" + body)


async def ask(port: int, ref: str) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        body = orjson.dumps({"ref": ref})
        await stream.send_all(struct.pack(">H", len(body)) + body)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            buf += await stream.receive_some(65536)
        return orjson.loads(buf[2:])


async def test_a_rewritten_secret_file_is_a_change_and_is_read_again(tmp_path: Path) -> None:
    partner = Partner()
    (tmp_path / "partner.token").write_text("TOKEN-ONE-4f1c9e\n")
    route = tmp_path / "r.route"
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, partner.handler, 0, host="127.0.0.1"))
        route.write_text(ROUTE % {"port": listeners[0].socket.getsockname()[1]})
        async with live([route], tmp_path / "l.duckdb") as eng:
            front = eng.channels["front"].port
            with trio.fail_after(30):
                assert (await ask(front, "A1"))["status"] == "OK"
            version = eng.version
            (tmp_path / "partner.token").write_text("TOKEN-TWO-77aa01\n")       # rotated at the same path
            dry = await eng.reload(dry_run=True, source="test")
            assert dry.ok and dry.plan["channels"]["changed"] == ["partner"], dry.plan
            why = dry.plan["why"]["channels"]["partner"]
            assert why.startswith("secret file changed (auth_bearer_file): a new channel reads it"), why
            assert "TOKEN" not in str(dry.plan) and "partner.token" not in why
            result = await eng.reload(source="test")
            assert result.ok and result.plan["channels"]["changed"] == ["partner"], result.plan
            assert result.version == version            # the version covers no secret
            with trio.fail_after(30):
                assert (await ask(front, "A2"))["status"] == "OK"
            again = await eng.reload(dry_run=True, source="test")      # nothing rewritten since: kept
            assert again.plan["channels"]["changed"] == [], again.plan
            # taken away (a rotation halfway: deleted, not written yet): the reload is refused, naming the
            # channel, the option and the file; the channel in force goes on with the token it read
            (tmp_path / "partner.token").unlink()
            gone = await eng.reload(source="test")
            assert not gone.ok and any("channel partner: option auth_bearer_file" in d and "partner.token" in d
                                       for d in gone.diagnostics), gone.diagnostics
            assert eng.current.channels["partner"] is not None
            with trio.fail_after(30):
                assert (await ask(front, "A3"))["status"] == "OK"
        listeners[0].socket.close()
        nursery.cancel_scope.cancel()
    assert partner.auth == ["Bearer TOKEN-ONE-4f1c9e", "Bearer TOKEN-TWO-77aa01", "Bearer TOKEN-TWO-77aa01"]
