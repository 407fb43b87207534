"""`bsp run --record FILE` in a real subprocess: the capture holds both channels' frames,
tied together, and replays against the same route with 0 differences."""
from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import trio

from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file
from formats.framing import LengthPrefixFramer

REPO = Path(__file__).resolve().parents[2]

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:%d"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:%d"
    framing = length4
    timeout = 5s
}
channel spare = tcp connect {
    address = "127.0.0.1:1"
    record  = false
}
table parties = csv "parties.csv" key id
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY"  party = parties["P1"].name }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00"  conf = post.conf }
}
route never {
    receive from front as Req when msg.ref == "never"
    call x = spare as Req { ref = msg.ref }
    reply Req { code = "99" }
}
"""


async def test_bsp_run_record_then_replay(nursery, tmp_path: Path) -> None:
    async def handler(stream):
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                await stream.send_all(b"".join(
                    f.frame(orjson.dumps({"status": "OK", "conf": "C" + orjson.loads(p)["ref"]}))
                    for p in f.feed(data)))

    ls = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    back = ls[0].socket.getsockname()[1]
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (0, back))          # port 0: the engine binds one and names it in its banner
    (tmp_path / "parties.csv").write_text("id,name\nP1,ACME\n")
    capture = tmp_path / "cap.duckdb"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(tmp_path / "l.duckdb"),
         "--record", str(capture)], cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    try:
        with trio.fail_after(60):                # a hang guard: a loaded CI machine starts Python slowly
            while b"serving" not in buf:
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, f"bsp run exited early: {buf.decode()}"
                buf += chunk
        assert b"recording channel(s) back, front to" in buf
        front = int(re.search(rb"channel front: listen 127\.0\.0\.1:(\d+)", buf)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", front)
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        await stream.send_all(b"".join(tx.frame(b'{"ref":"R%d"}' % i) for i in range(20)))
        got: list[bytes] = []
        with trio.fail_after(10):
            while len(got) < 20:
                got.extend(rx.feed(await stream.receive_some(65536)))
        await stream.aclose()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            while True:
                chunk = await proc.stderr.receive_some(4096)
                if not chunk:
                    break
                buf += chunk
            rc = await proc.wait()
        assert rc == 0, buf.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    assert b"frame(s) of 20 exchange(s)" in buf
    cap = Capture(capture)
    assert len(cap.exchanges) == 20 and all(len(ex.calls) == 1 for ex in cap.exchanges)
    assert {ex.key for ex in cap.exchanges} == {f"R{i}" for i in range(20)}
    assert cap.channels() == ["back", "front"]
    # one configuration, one version: the capture's is the ledger's (route files and the table they name)
    import duckdb
    con = duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True)
    try:
        versions = {v for (v,) in con.execute("SELECT DISTINCT config_version FROM deals").fetchall()}
    finally:
        con.close()
    assert versions == {cap.info["config_version"]}
    from dsl.load import compile_paths
    assert cap.info["config_version"] != compile_paths([route], default_registry()).program.version
    report = await trio.to_thread.run_sync(lambda: replay_file(capture, [route], default_registry()))
    assert report.passed and report.diff.exchanges == 20 and report.diff.differences == []
