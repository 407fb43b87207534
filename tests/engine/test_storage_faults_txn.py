"""When the transaction log cannot be written (a full disk), seen from the admin on call and the client.

A real engine process whose files cannot grow past a limit (``RLIMIT_FSIZE``, SIGXFSZ ignored: writes
fail with EFBIG as on a full disk with ENOSPC), a real counterpart, real sockets on 127.0.0.1 port 0,
real DuckDB files.  The journal (4 KiB segments) still takes deals; the transaction log (made
ahead, 256 KiB) cannot take more past the limit.  A request to a keyed route or to a light route then fails
with a clear reason ("request not sent": nothing left the engine), the client gets the channel's error
reply, the deal is recorded failed with a dead letter, the fault is logged once (no traceback, no line
per deal), and once there is room the engine writes again and says so."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio

from engine.journal import open_journaled_ledger
from engine.txn.log import read
from fsizekit import fsize_engine
from kit import Client, json_counterpart

import duckdb

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { code = error.code }
}
channel back = tcp connect {
    address = "127.0.0.1:%d"
    framing = length4
    timeout = 5s
}
route pay {
    receive from front as Req when msg.kind == "pay"
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY"  key = msg.ref }
    call post = back as Req reply Req { ref = msg.ref  pad = msg.pad } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
route look {
    receive from front as Req when msg.kind == "look"
    deal LOOK { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""

WARM = 100_000          # bytes of transaction log before the limit: over the journal's 4 KiB segments

# The engine of fsizekit.py with a 256 KiB transaction log and a loader that waits (DuckDB is not written
# while the limit holds but for dead letters: the journal keeps the deals).
OPTIONS = {"segment_bytes": 4096, "load_wait": 3600, "load_rows": 10**9, "txn_segment_bytes": 1 << 18}


async def _ask(c: Client, kind: str, ref: str, pad: int = 0) -> dict:
    await c.send(b'{"kind":"%s","ref":"%s","pad":"%s"}' % (kind.encode(), ref.encode(), b"x" * pad))
    with trio.fail_after(10):
        (reply,) = await c.recv_json(1)
    return reply


async def test_a_transaction_log_that_cannot_be_written_fails_requests_not_sent_and_says_so_once(
        tmp_path: Path, nursery) -> None:
    counts: Counter = Counter()

    def answer(req: dict) -> dict:
        counts[req["ref"]] += 1
        return {"status": "OK", "ref": req["ref"]}
    back = await json_counterpart(nursery, answer)
    ok: list[str] = []
    refused: dict[str, dict] = {}
    async with fsize_engine(tmp_path, ROUTE % back, **OPTIONS) as eng:
        with trio.fail_after(90):
            c = await Client.open(eng.port)
            txn = Path(f"{eng.ledger}.txn")
            i = 0
            while read(txn)[1] < WARM:               # deals whose entries take the log past the journal's size
                i += 1
                ref = f"W{i:04d}"
                assert (await _ask(c, "pay" if i % 2 else "look", ref, pad=600))["code"] == "00"
                ok.append(ref)
            await eng.command("limit %d" % read(txn)[1])   # the disk is full: the log cannot grow
            reply = await _ask(c, "look", "L0001")   # a light route's request is refused first
            assert reply["code"] == "96", reply
            refused["L0001"] = reply
            for i in range(1, 6):                    # then keyed ones: refused too, and the engine goes on
                ref = f"K{i:04d}"
                reply = await _ask(c, "pay", ref)
                assert reply["code"] == "96", reply
                refused[ref] = reply
                reply = await _ask(c, "look", f"M{i:04d}")
                assert reply["code"] == "96", reply
                refused[f"M{i:04d}"] = reply
            await eng.command("unlimit")                                     # space is back
            for _ in range(40):                      # a compaction is tried again within a second
                reply = await _ask(c, "pay", "K0001")   # a repeat of a refused key: runs as a new deal
                if reply["code"] == "00":
                    break
                await trio.sleep(0.1)
            else:
                raise AssertionError("the engine did not write the transaction log again")
            await c.aclose()
            assert await eng.stop() == 0             # stop: drain, the journal loads into DuckDB
    ledger, text = eng.ledger, eng.err.decode()
    assert "Traceback" not in text, text
    assert "deal not recorded" not in text and "handler failed" not in text, text
    fault = [ln for ln in text.splitlines() if ln.startswith("ERROR bsp.txn: transaction log:")]
    assert len(fault) == 1, text                                    # the fault, once
    assert f"{ledger}.txn" in fault[0] and "(EFBIG)" in fault[0] and "free space on that disk" in fault[0], fault
    assert "transaction log: write works again after" in text, text
    assert all(counts[ref] == 0 for ref in refused if ref != "K0001"), counts   # nothing refused left
    assert counts["K0001"] == 1
    async with open_journaled_ledger(ledger):
        pass
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT reference, status, reason, deal_id FROM deals ORDER BY finished_at").fetchall()}
        dead = {r[0] for r in con.execute("SELECT id FROM dead_letters").fetchall()}
        keys = {r[0] for r in con.execute("SELECT key FROM deal_keys").fetchall()}
    finally:
        con.close()
    for ref in refused:
        if ref == "K0001":
            continue
        status, reason, deal_id = rows[ref]
        assert status == "failed" and "request not sent to post" in reason and "(EFBIG)" in reason, rows[ref]
        assert deal_id in dead, ref                                   # a dead letter kept
    assert rows["K0001"][0] == "committed" and all(rows[r][0] == "committed" for r in ok)
    assert "pay|K0002" not in keys                                   # a refused deal holds no key
    entries, _ = read(Path(f"{ledger}.txn"))
    assert not any(e.get("key") == "pay|K0002" for e in entries)
