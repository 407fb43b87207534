"""``end_message = true``: a file's end route writes a summary line, then tells a counterpart, which is down: its
deal fails after the line was written.  ``bsp dead retry`` does not write the line again: the failed deal noted
the calls that went through (event ``end calls done``, engine/channels/file_end_calls.py), and the retry binds
their answers (``line.offset`` as first written) and makes only the calls after them; a retry that fails again
passes the note on to the letter where the message waits next.  And a retry whose channel's index (``done/``,
which noted the file's header and trailer records) is gone is refused, not run with ``file.header`` null."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import trio

from engine.ledger_query import query_dead_letters
from kit import REPO, compile_text, deals, running
from test_channels_file_end_retry import Host

ROUTE = """
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

format Head = csv header false {
    company  string
    count    integer
}

format EndLine = csv header false {
    name     string
    status   string
    company  string
}

format J = json

channel inbox = file watch {
    dir           = "in"
    pattern       = "*.csv"
    record        = "csv"
    skip_header   = 1
    header        = Head
    header_count  = "count"
    end_message   = true
}

channel results = file write { dir = "%s"  name = "RESULT-{source}"  mode = "append" }

channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}

route file_ended {
    receive from inbox when file.end
    call line = results as EndLine reply J {
        name    = file.name
        status  = file.status
        company = file.header.company
    } name { source = file.name }
    call done = back as J reply J {
        op      = "end"
        name    = file.name
        at      = line.offset
        company = file.header.company
    } expect done.status == "OK"
}
"""


async def _retry(route: Path, ledger: Path, letter_id: str) -> str:
    with trio.fail_after(60):
        res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter_id,
                                      "--routes", str(route), "--ledger", str(ledger)],
                                     cwd=str(REPO), capture_stdout=True, capture_stderr=True, check=False)
    return (res.stdout + res.stderr).decode()


async def _ran_and_failed(tmp_path: Path, host: Host) -> tuple[Path, Path, Path, Path, dict]:
    out = tmp_path / "out"
    out.mkdir()
    inbox = tmp_path / "in"
    inbox.mkdir()
    ledger = tmp_path / "l.duckdb"
    prog = compile_text(tmp_path, ROUTE % (out, host.port), name="pay.route")
    (inbox / "a.csv").write_bytes(b"ACME,2\nA1,1.50\nA2,3.25\n")
    async with running(prog, ledger):
        with trio.fail_after(30):
            while not (inbox / "done" / "a.csv").exists():       # the end message ran (and failed) before the move
                await trio.sleep(0.05)
    [letter] = [x for x in query_dead_letters(ledger)]
    assert letter["route"] == "file_ended" and letter["error_kind"] == "unreachable", letter
    assert (out / "RESULT-a.csv").read_text() == "a.csv,done,ACME\n"     # the line went, the call after it did not
    return tmp_path / "pay.route", ledger, inbox, out, letter


async def test_a_retried_end_message_does_not_write_its_summary_line_again(nursery, tmp_path: Path) -> None:
    host = await Host().bind()
    route, ledger, _, out, letter = await _ran_and_failed(tmp_path, host)

    said = await _retry(route, ledger, letter["id"])     # the counterpart still down: it fails again
    assert f"{letter['id']}: NOT retried: failed" in said and "waits again as dead letter" in said, said
    assert (out / "RESULT-a.csv").read_text() == "a.csv,done,ACME\n"     # not written a second time
    [again] = [x for x in query_dead_letters(ledger) if x["status"] == "new"]
    assert again["id"] != letter["id"] and again["route"] == "file_ended"

    await host.up(nursery)                   # back: the letter where the message waits now is retried
    said = await _retry(route, ledger, again["id"])
    assert f"{again['id']}: retried: committed (deal " in said, said
    assert (out / "RESULT-a.csv").read_text() == "a.csv,done,ACME\n"     # still one summary line
    # the call after it ran, reading the line's answer as it came the first time (offset 0) and the header
    assert host.requests == [{"op": "end", "name": "a.csv", "at": 0, "company": "ACME"}], host.requests
    ends = [d for d in deals(ledger) if d["route"] == "file_ended"]
    assert [d["status"] for d in ends] == ["failed", "failed", "committed"]


async def test_a_retry_without_the_channels_index_is_refused_not_run_with_a_null_header(nursery,
                                                                                         tmp_path: Path) -> None:
    host = await Host().bind()
    route, ledger, inbox, out, letter = await _ran_and_failed(tmp_path, host)
    shutil.rmtree(inbox / "done")            # the index that noted the header record went with it
    await host.up(nursery)
    said = await _retry(route, ledger, letter["id"])
    assert f"{letter['id']}: NOT retried: failed: the end message of file 'a.csv' on channel inbox would run route " \
           f"'file_ended' with file.header and file.trailer null: the channel reads header = Head" in said, said
    assert "nothing ran and the letter still waits" in said and ".bsp-files, which is gone" in said, said
    assert host.requests == []
    assert (out / "RESULT-a.csv").read_text() == "a.csv,done,ACME\n"
    [row] = [x for x in query_dead_letters(ledger)]
    assert row["status"] == "new"            # it waits, to be retried once the folder is back
    assert [d["status"] for d in deals(ledger) if d["route"] == "file_ended"] == ["failed"]
