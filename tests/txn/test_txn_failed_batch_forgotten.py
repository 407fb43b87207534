"""A batch whose transaction log write fails leaves nothing behind in the transaction manager.

The log refuses a write (the OS returns EBADF, as in test_txn_groupcommit.py) while a keyed deal is
about to call its counterpart: the batch fails (no reply: nothing was sent), and its exchanges' state,
and its deal key's "running" mark, are dropped.  Before, they stayed for good (bench/soak.py counts
them as ``txn.states`` / ``txn.inflight_keys``), and a repeat of that key waited for ever for an
original that would never end.  Real switchboard, client and counterpart on 127.0.0.1 (port 0), a real
ledger and log."""
from __future__ import annotations

import os
from pathlib import Path

import orjson
import trio

from engine.txn import manager_for
from txnkit import Client, Counterpart, compile_text, json_counterpart, running

ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY"  key = msg.ref }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  conf = post.conf }
}
"""


async def test_a_failed_log_write_drops_the_batch_state_and_a_repeat_runs(nursery, tmp_path: Path) -> None:
    cp = Counterpart()
    port = await json_counterpart(nursery, cp.answer)
    program = compile_text(tmp_path, ROUTE % port)
    async with running(program, tmp_path / "l.duckdb") as sb:
        client = await Client.open(sb.channel("front").port)
        await client.send(b'{"ref": "K0"}')
        assert orjson.loads((await client.recv())[0])["conf"] == "C-K0-post"
        mgr = manager_for(sb.dispatchers["front"].ledger)
        for n in range(3):                                 # the same failure, several times
            good_fd = mgr.log._fd
            mgr.log._fd = os.open(mgr.log.path, os.O_RDONLY)    # the OS refuses the next write (EBADF)
            try:
                await client.send(b'{"ref": "K%d"}' % (n + 1))
                with trio.move_on_after(0.5):               # the batch failed: no reply comes
                    await client.recv()
                    raise AssertionError("a reply came for a deal whose log write failed")
            finally:
                os.close(mgr.log._fd)
                mgr.log._fd = good_fd
        assert (len(mgr.states), len(mgr._inflight), len(mgr.light)) == (0, 0, 0)
        with trio.fail_after(5):                            # a repeat of a failed key runs as a new deal
            await client.send(b'{"ref": "K1"}')
            assert orjson.loads((await client.recv())[0])["conf"] == "C-K1-post"
        await client.aclose()
    assert cp.counts[("post", "K1")] == 1 and cp.counts[("post", "K2")] == 0
