"""A file's end message left in flight by a SIGKILL (its route's call sent, unanswered) whose channel's index
(``done/.bsp-files``, which noted the header and trailer records with the message) is gone at the restart: the
recovery does not run the route's ``on restart`` policy with ``file.header`` / ``file.trailer`` null (before
2026-11-28 its compensation went out with them null).  As ``bsp dead retry`` refuses such a message, the deal is
flagged for an operator (nothing sent), its reason naming the channel, the index and what to do."""
from __future__ import annotations

import json
from pathlib import Path

import trio

from test_txn_file_end_recovery import ROUTE, Seen
from txnkit import deals, engine_serving, json_counterpart, rows, start_engine

# the end route makes two calls: `seen` answers before the kill, `post` is held
TWO_CALLS = ROUTE.replace("""    on restart compensate
    call post""", """    on restart compensate
    call seen = back as J reply J { op = "seen"  ref = file.name  company = file.header.company  total = 0 }
    call post""")
assert TWO_CALLS != ROUTE


async def test_a_recovered_end_message_without_its_index_is_flagged_not_run(nursery, tmp_path: Path) -> None:
    gate = Seen()
    gate.answer_first = 1                           # `seen` answered, `post` held
    port = await json_counterpart(nursery, gate)
    route = tmp_path / "pay.route"
    route.write_text(TWO_CALLS % port)
    ledger = tmp_path / "l.duckdb"
    inbox = tmp_path / "in"
    inbox.mkdir()
    served = await start_engine(route, ledger)
    try:
        (inbox / "a.csv").write_bytes(b"ACME,2\nA1,1.50\nA2,3.25\nT,4.75\n")
        with trio.fail_after(60):                   # a guard against a hang, not a timing
            await gate.holding.wait()               # the end route's call reached the counterpart, unanswered
        served.proc.kill()                          # SIGKILL with the end message's deal in flight
        await served.proc.wait()
    finally:
        gate.open()
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    index = inbox / "done" / ".bsp-files"
    index.unlink()                                  # the channel's index lost (a wiped done/ folder)

    async with engine_serving(route, ledger):
        with trio.fail_after(60):
            # the channel starts after the recovery: once the file has left the folder, the deal is resolved
            while (inbox / "a.csv").exists():
                await trio.sleep(0.05)
    # nothing was sent with the file's header and trailer null: no cancel (its compensation) went out
    assert [r["op"] for r in gate.requests].count("cancel") == 0, gate.requests
    assert all(r["company"] == "ACME" for r in gate.requests), gate.requests
    ends = [d for d in deals(ledger) if d["route"] == "file_ended"]
    flagged = ends[0]
    assert flagged["status"] == "failed" and flagged["response_code"] == "96", flagged
    reason = flagged["reason"]
    assert "flagged for an operator" in reason
    assert "channel inbox" in reason and str(index) in reason and "is gone" in reason
    assert "post may have reached the counterpart" in reason
    assert "bsp dead retry" in reason and "bsp dead purge" in reason
    events = [r["to_state"] for r in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ?",
                                          [flagged["deal_id"]])]
    assert "flagged" in events
    # the call that answered before the crash is noted: a retry of the letter (the index put back) does not make
    # it again (engine/channels/file_end_calls.py)
    (done,) = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'end calls done'",
                   [flagged["deal_id"]])
    assert list(json.loads(done["detail"])["calls"]) == ["seen"], done
    (letter,) = rows(ledger, "SELECT error_kind, status FROM dead_letters WHERE id = ?", [flagged["deal_id"]])
    assert letter == {"error_kind": "in_doubt", "status": "new"}
