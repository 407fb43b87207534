"""A dead letter is as durable as its deal: a real `bsp run` SIGKILLed while a rejected deal is in its
journal (durable, so it reaches the ledger) and its answer has not left still has, after a restart, one dead
letter per rejected deal (transactions.md: "Every rejected or failed exchange is also a dead letter").
Found by bench/chaos.py: the dead letter was written to DuckDB on its own after the journal write, so a kill
in between kept the deal and lost its dead letter (for a keyed route's failed deal, the repeat is a
`duplicate` and no dead letter was ever written for the exchange)."""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import orjson
import trio

from engine.journal import decode_record, journal_dir, read_segment, segments
from engine.txn import log as txnlog
from txnkit import Client, deals, engine_serving, json_counterpart, rows, start_engine

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00 }
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


def request(ref: str) -> bytes:
    return orjson.dumps({"ref": ref, "amount": 0})


def in_duckdb(ledger: Path, ref: str) -> bool:
    """Whether a dead letter of ``ref`` has reached DuckDB's write-ahead log (its ``raw_sha256`` is there):
    the frozen engine has written it, so a kill now keeps it whether or not it travels with its deal."""
    wal = Path(str(ledger) + ".wal")
    return wal.exists() and hashlib.sha256(request(ref)).hexdigest().encode() in wal.read_bytes()


def journaled(ledger: Path) -> set[str]:
    """The references of the deals in the journal's segments (durable: they reach the ledger)."""
    out: set[str] = set()
    for seg in segments(journal_dir(ledger)):
        records, _, _ = read_segment(seg.path)
        for payload, _ in records:
            out.update(d.row["reference"] for d in decode_record(payload))
    return out


async def test_a_kill_between_the_journal_and_the_answer_keeps_each_rejected_deals_dead_letter(tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    ledger = tmp_path / "ledger.duckdb"
    served = await start_engine(route, ledger)
    proc = served.proc
    answered: set[str] = set()
    caught = False
    try:
        c = await Client.open(served.ports["front"])
        with trio.fail_after(20):
            sent = 0
            while not caught:
                # small pipelined batches of rejections; now and then the engine is frozen (SIGSTOP) and, when
                # its journal holds a deal whose answer has not come and whose dead letter is not in DuckDB's
                # write-ahead log, killed there: the controlled point
                while sent - len(answered) < 30:
                    await c.send(*[request(f"R{i:05d}") for i in range(sent, sent + 10)])
                    sent += 10
                for r in await c.recv_json(1):
                    answered.add(r["ref"])
                if sent % 50 == 0:
                    os.kill(proc.pid, signal.SIGSTOP)
                    with trio.move_on_after(0.05):         # answers already on their way
                        while True:
                            answered.update(r["ref"] for r in await c.recv_json(1))
                    if any(not in_duckdb(ledger, r) for r in journaled(ledger) - answered):
                        caught = True
                        proc.kill()                         # SIGKILL: the frozen engine never resumes
                        await proc.wait()
                    else:
                        os.kill(proc.pid, signal.SIGCONT)
        await c.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    async with engine_serving(route, ledger):   # the restart loads the journal
        pass
    rejected = {d["deal_id"] for d in deals(ledger) if d["status"] == "rejected"}
    assert len(rejected) > len(answered)        # some were journaled, never answered
    dead = {r["id"] for r in rows(ledger, "SELECT id FROM dead_letters")}
    assert len(rejected - dead) == 0            # each rejected deal kept its dead letter
    assert dead == rejected


KEYED = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 5s }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00  key = msg.ref }
    call post = back as J reply J { ref = msg.ref } expect post.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


def failed_ends(ledger: Path) -> set[str]:
    """The deal ids of the transaction log's ``end`` entries of failed deals (their answer, logged first)."""
    entries, _ = txnlog.read(txnlog.log_path(ledger))
    return {e["id"] for e in entries if e.get("t") == "end" and e.get("status") == "failed"}


def journaled_ids(ledger: Path) -> set[str]:
    out: set[str] = set()
    for seg in segments(journal_dir(ledger)):
        for payload, _ in read_segment(seg.path)[0]:
            out.update(d.row["deal_id"] for d in decode_record(payload))
    return out


async def test_a_failed_deals_row_written_again_from_the_log_keeps_its_dead_letter(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "NO", "ref": req["ref"]})   # every call refused
    route = tmp_path / "pay.route"
    route.write_text(KEYED % back)
    ledger = tmp_path / "ledger.duckdb"
    served = await start_engine(route, ledger)
    proc = served.proc
    caught: set[str] = set()
    try:
        c = await Client.open(served.ports["front"])
        with trio.fail_after(20):
            sent = answered = 0
            while not caught:
                # the controlled point: frozen with a failed deal's `end` in the transaction log (fdatasync'ed)
                # and its row not yet in the journal: the restart writes that row again from the log
                while sent - answered < 30:
                    await c.send(*[orjson.dumps({"ref": f"F{i:05d}"}) for i in range(sent, sent + 10)])
                    sent += 10
                await c.recv(1)
                answered += 1
                os.kill(proc.pid, signal.SIGSTOP)
                caught = failed_ends(ledger) - journaled_ids(ledger)
                if caught:
                    proc.kill()
                    await proc.wait()
                else:
                    os.kill(proc.pid, signal.SIGCONT)
        await c.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    async with engine_serving(route, ledger):       # recovery writes the rows again from the log
        pass
    failed = {d["deal_id"] for d in deals(ledger) if d["status"] == "failed"}
    assert caught <= failed
    dead = {r["id"] for r in rows(ledger, "SELECT id FROM dead_letters")}
    assert sorted(caught - dead) == []              # the rows written again have their dead letters
    assert dead == failed
    raw = rows(ledger, "SELECT raw FROM dead_letters WHERE id = ?", [sorted(caught)[0]])[0]["raw"]
    assert orjson.loads(raw)["ref"].startswith("F")  # the request as received, for `bsp dead retry`
