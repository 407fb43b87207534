"""`bsp dead retry --live` (the admin API's POST /dead-letters/{id}/retry) re-injects a dead letter into the
running engine while traffic flows: its outcome is that message's own deal.  It used to be read from the
engine-wide outcome counters, so a deal of other traffic that ended during the retry was taken for it: a
retry that failed again was reported committed and its letter marked retried.

Real engine (LiveEngine), real sockets on 127.0.0.1 (port 0), a real DuckDB ledger."""
from __future__ import annotations

import functools
from pathlib import Path

import orjson
import trio

from engine.ledger_query import query_dead_letters
from engine.ops.backend import EngineBackend
from engine.ops.ledger_reads import read_in_process
from formats.framing import LengthPrefixFramer
from opskit import live, rows

ROUTE = '''
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel slow = tcp connect { address = "127.0.0.1:%d"  framing = length2  timeout = 60s }

route forward {
    receive from front as Req when msg.ref == "S1"
    deal FORWARD { ref = msg.ref  amount = 1  currency = "EUR" }
    call x = slow as Req { ref = msg.ref }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}

route local {
    receive from front as Req when msg.ref != "S1"
    deal LOCAL { ref = msg.ref  amount = 1  currency = "EUR" }
    reply Req { ref = msg.ref  code = "00" }
}
'''


async def _ask(port: int, ref: str) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(tx.frame(orjson.dumps({"ref": ref})))
    got: list[bytes] = []
    while not got:
        data = await stream.receive_some(65536)
        if not data:
            break
        got.extend(rx.feed(data))
    await stream.aclose()
    return orjson.loads(got[0]) if got else {}


async def _silent(arrived: list[bytes], go: trio.Event, stream: trio.SocketStream) -> None:
    """A counterpart that never answers: it closes the connection on the first request it reads (the call
    fails, lost: a dead letter) and on any later one once ``go`` is set (the call it holds fails then).  The
    calls fail when the test says, not at a timeout: other traffic that took longer than a short timeout on
    a loaded machine would have met the retry already over."""
    async with stream:
        while data := await stream.receive_some(65536):
            arrived.append(data)
            if len(arrived) > 1:
                await go.wait()
            return


async def _reconnected(channel) -> None:
    """The channel connected again after the close (a close before any answer counts as a failed connect: the
    channel is down, a call would fail unsent, until its back-off reconnect)."""
    while channel.down_since is not None or not channel._connected:
        await trio.sleep(0.02)


async def test_a_live_retry_reports_its_own_deal_not_other_traffic(nursery, tmp_path: Path) -> None:
    arrived: list[bytes] = []                           # what the slow counterpart read: it never answers
    go = trio.Event()
    silent = functools.partial(_silent, arrived, go)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % listeners[0].socket.getsockname()[1])
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        port = eng.channels["front"].port
        with trio.fail_after(30):                # a hang guard
            assert (await _ask(port, "S1"))["code"] == "91"       # closed without an answer: failed, a dead letter
            while not (letters := await read_in_process(query_dead_letters, ledger)):
                await trio.sleep(0.02)
            await _reconnected(eng.channels["slow"])
        backend = EngineBackend(eng)
        result: dict = {}

        async def retry() -> None:
            result.update(await backend.retry_dead_letter(letters[0]["id"]))

        with trio.fail_after(30):                # a hang guard
            async with trio.open_nursery() as inner:
                inner.start_soon(retry)
                while len(arrived) < 2:                            # the retry's call is at the slow counterpart,
                    await trio.sleep(0.005)                        # which holds it without an answer
                assert (await _ask(port, "G1"))["code"] == "00"    # other traffic commits meanwhile
                assert not result
                go.set()                                           # then the retry's call fails
    assert result["ok"] is False and result["outcome"].startswith("failed"), result
    got = sorted(rows(ledger, "SELECT reference, status FROM deals"))
    assert got == [("G1", "committed"), ("S1", "failed"), ("S1", "failed")], got
    (letter, *_) = [x for x in query_dead_letters(ledger) if x["id"] == letters[0]["id"]]
    # not taken for committed: the retry's own deal failed and its dead letter is where the message waits now;
    # the first letter is retried only as linked to it (its outcome the failure, naming that letter)
    (retry_deal,) = [d for d, in rows(ledger, f"SELECT deal_id FROM deals WHERE reference = 'S1' "
                                              f"AND deal_id <> '{letters[0]['id']}'")]
    assert letter["retry_outcome"] == result["outcome"], letter
    assert result["outcome"].endswith(f"; the message waits again as dead letter {retry_deal}"), result
    assert letter["status"] == "retried", letter
    waiting = [x["id"] for x in query_dead_letters(ledger) if x["status"] == "new"]
    assert waiting == [retry_deal], waiting


async def test_two_live_retries_of_one_letter_at_once_run_it_once(nursery, tmp_path: Path) -> None:
    """Two `POST /dead-letters/{id}/retry` of one letter at the same time (two operators, a script run twice):
    the first claims it in the ledger (status retrying) and runs it; the second is refused at once, naming the
    retry in progress, and nothing reaches the counterpart twice.  Before, both read status new and both ran."""
    arrived: list[bytes] = []
    go = trio.Event()
    silent = functools.partial(_silent, arrived, go)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % listeners[0].socket.getsockname()[1])
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        port = eng.channels["front"].port
        with trio.fail_after(30):                # a hang guard
            assert (await _ask(port, "S1"))["code"] == "91"
            while not (letters := await read_in_process(query_dead_letters, ledger)):
                await trio.sleep(0.02)
            await _reconnected(eng.channels["slow"])
        lid = letters[0]["id"]
        backend = EngineBackend(eng)
        first: dict = {}

        async def retry() -> None:
            first.update(await backend.retry_dead_letter(lid))

        with trio.fail_after(30):                # a hang guard
            async with trio.open_nursery() as inner:
                inner.start_soon(retry)
                while b"".join(arrived).count(b"S1") < 2:          # the first retry's call is at the counterpart
                    await trio.sleep(0.005)
                second = await backend.retry_dead_letter(lid)      # meanwhile: refused, nothing sent
                assert not first
                go.set()                                           # then the first retry's call fails
    assert second["skipped"] is True and second["ok"] is False, second
    assert second["outcome"].startswith("refused: status retrying: a retry of it began at "), second
    assert "(in progress: the engine's admin API (pid " in second["outcome"]
    assert first["ok"] is False and first["outcome"].startswith("failed"), first
    assert b"".join(arrived).count(b"S1") == 2, arrived                # the original and one retry
    assert sorted(rows(ledger, "SELECT reference, status FROM deals")) == [("S1", "failed"), ("S1", "failed")]
    (letter, *_) = [x for x in query_dead_letters(ledger) if x["id"] == lid]
    # the first retry's deal failed and left its own letter, where the message waits now (one of the message)
    assert letter["status"] == "retried" and letter["retry_outcome"] == first["outcome"], letter
    assert "; the message waits again as dead letter " in first["outcome"], first
    assert [x["status"] for x in query_dead_letters(ledger)].count("new") == 1
