"""A retry of a dead letter that stopped midway (its process killed between the claim and the outcome) left the
letter `retrying` for ever, until an operator used --again.  The claim now names the deal the retry runs under,
and the next start settles the letter from the ledger once its channel is recovered (engine/txn/retry_settle.py):
the deal's outcome when it has a row, released when it provably never began, else left claimed and said so.
Real `bsp dead retry` killed with SIGKILL, real DuckDB ledgers, loopback counterparts (no mocks)."""
from __future__ import annotations

import logging
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio

from engine.deadletter import WAITS_AGAIN, retry_once, switchboard_injector
from engine.deal import DeadLetter, new_deal_id
from engine.commands.dead_select import retried_before
from engine.ledger import open_ledger
from engine.ledger_query import count_new_dead_letters, query_dead_letters, query_deals
from kit import REPO, compile_text, json_counterpart, running, switchboard

NOW = datetime.now(timezone.utc).replace(microsecond=0)

ECHO = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
}
"""

PAY = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 60s }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00 }
    call post = back as J reply J { ref = msg.ref } expect post.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


class Stopped(BaseException):
    """What stops a process between its retry's deal and the outcome (Ctrl-C lands as such an exception)."""


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)


async def fill(path: Path, route: str, lid: str = "d1", ref: str = "R1") -> None:
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:
        await ledger.dead_letter(DeadLetter(route=route, channel="front", reason="channel back: unreachable",
                                            raw=b'{"ref":"%s"}' % ref.encode(), config_version="v1",
                                            error_kind="unreachable", at=NOW - timedelta(hours=1), id=lid))


def letter_row(path: Path, lid: str = "d1") -> dict:
    return query_dead_letters(path, ids=[lid], limit=None, with_raw=True)[0]


async def test_a_retry_killed_while_its_call_is_out_is_settled_from_its_deal_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, "pay")
    counts: Counter = Counter()
    holding = trio.Event()

    def hold(req: dict) -> None:            # the counterpart receives the call and never answers
        counts[req["ref"]] += 1
        holding.set()
        return None

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, hold)
        route = tmp_path / "pay.route"
        route.write_text(PAY % port)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "engine.cli", "dead", "retry", "d1", "--ledger", str(path), "--routes", str(route)],
            cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with trio.fail_after(60):
                await holding.wait()        # the call left: its deal was logged before it did
        finally:
            proc.kill()                     # SIGKILL: between the claim and the outcome
            await proc.wait()
        assert letter_row(path)["status"] == "retrying"
        program = compile_text(tmp_path, PAY % port, "pay2.route")
        async with running(program, path):   # the next start: recovery, then the letter
            pass
        nursery.cancel_scope.cancel()
    [deal] = query_deals(path)
    assert deal["status"] == "failed" and "flagged" in deal["reason"], deal     # in doubt: flagged for an operator
    row = letter_row(path)
    # its deal has its own dead letter, where the message waits now: this one is retried, naming it
    assert row["status"] == "retried", row
    assert row["retry_outcome"].startswith(f"failed (deal {deal['deal_id']}): "), row
    assert "settled on restart" in row["retry_outcome"], row
    assert row["retry_outcome"].endswith(f"; {WAITS_AGAIN}{deal['deal_id']}"), row
    assert retried_before(row)           # a retry by filters leaves this one
    assert one_waiting(path) == deal["deal_id"]
    assert counts == Counter({"R1": 1})  # nothing ran twice


def one_waiting(path: Path) -> str:
    """The id of the one letter of the message that waits (status new), checked to be the only one."""
    waiting = [r["id"] for r in query_dead_letters(path, limit=None) if r["status"] == "new"]
    assert len(waiting) == 1, query_dead_letters(path, limit=None)
    assert count_new_dead_letters(path) == {"unreachable": 1} if waiting == ["d1"] else sum(
        count_new_dead_letters(path).values()) == 1
    return waiting[0]


async def test_a_retry_stopped_after_its_deal_failed_and_left_its_letter_is_linked_on_the_next_start(
        tmp_path: Path) -> None:
    """Stopped between the retry's deal (refused again, its own dead letter written with it) and the outcome on
    the first letter: one letter of the message waits at every moment, and the next start links the first."""
    path = tmp_path / "l.duckdb"
    await fill(path, "pay")
    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, lambda req: {"status": "NO", "ref": req["ref"]})
        program = compile_text(tmp_path, PAY % port)
        row = letter_row(path)
        async with open_ledger(path, audit_key=None, keyring=None) as ledger, switchboard(program, ledger) as sb:
            real = switchboard_injector(sb)

            async def inject(channel: str, raw: bytes, deal_id: str | None = None) -> str:
                await real(channel, raw, deal_id=deal_id)
                raise Stopped               # the deal and its letter are written; the process stops here

            inject.names_deal = True        # type: ignore[attr-defined]
            with pytest.raises(Stopped):
                await retry_once(ledger, row, inject)
        [deal] = query_deals(path)
        assert deal["status"] == "failed", deal       # refused by the counterpart (expect false)
        assert letter_row(path)["status"] == "retrying"
        assert one_waiting(path) == deal["deal_id"]           # the deal's own letter; d1 is claimed, not waiting
        async with running(program, path):
            pass
        nursery.cancel_scope.cancel()
    row = letter_row(path)
    assert row["status"] == "retried", row
    assert row["retry_outcome"].startswith(f"failed (deal {deal['deal_id']}): "), row
    assert row["retry_outcome"].endswith(f"; {WAITS_AGAIN}{deal['deal_id']}"), row
    assert one_waiting(path) == deal["deal_id"]
    assert len(query_deals(path)) == 1


async def test_a_retry_stopped_after_its_deal_committed_is_marked_retried_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, "echo")
    program = compile_text(tmp_path, ECHO)
    row = letter_row(path)
    async with open_ledger(path, audit_key=None, keyring=None) as ledger, switchboard(program, ledger) as sb:
        real = switchboard_injector(sb)

        async def inject(channel: str, raw: bytes, deal_id: str | None = None) -> str:
            await real(channel, raw, deal_id=deal_id)
            raise Stopped                   # the deal committed; the process stops before the outcome is written

        inject.names_deal = True            # type: ignore[attr-defined]
        with pytest.raises(Stopped):
            await retry_once(ledger, row, inject)
    assert letter_row(path)["status"] == "retrying"
    [deal] = query_deals(path)
    assert deal["status"] == "committed"
    async with running(program, path):
        pass
    row = letter_row(path)
    assert row["status"] == "retried", row
    assert row["retry_outcome"].startswith(f"committed (deal {deal['deal_id']}) (settled on restart at "), row
    assert len(query_deals(path)) == 1


async def test_a_retry_that_stopped_before_its_deal_began_is_released(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, "echo")
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:     # the claim, then the kill
        claimed, _ = await ledger.claim_dead_letter("d1", at=NOW, note="in progress: bsp dead retry (pid 1 on h)",
                                                    deal_id=new_deal_id())
        assert claimed
    program = compile_text(tmp_path, ECHO)
    with caplog.at_level(logging.WARNING, logger="bsp.dead"):
        async with running(program, path):
            pass
    row = letter_row(path)
    assert row["status"] == "new", row
    assert row["retry_outcome"].startswith("not run: the retry claimed at "), row
    assert not retried_before(row)      # waiting again: a retry by filters takes it
    assert "dead letter d1: its retry (claimed " in caplog.text and "released to new" in caplog.text
    assert query_deals(path) == []
    row = letter_row(path)
    async with open_ledger(path, audit_key=None, keyring=None) as ledger, switchboard(program, ledger) as sb:
        res = await retry_once(ledger, row, switchboard_injector(sb))
    assert res.ok and res.outcome.startswith("committed (deal "), res


async def test_a_claim_that_names_no_deal_stays_claimed_and_says_what_to_check(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path, "echo")
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:     # as an older bsp claimed
        assert (await ledger.claim_dead_letter("d1", at=NOW, note="in progress: bsp dead retry (pid 1 on h)"))[0]
    program = compile_text(tmp_path, ECHO)
    with caplog.at_level(logging.WARNING, logger="bsp.dead"):
        for _ in range(2):          # said once in the letter, and on every start in the log
            async with running(program, path):
                pass
    row = letter_row(path)
    assert row["status"] == "retrying", row
    out = row["retry_outcome"]
    assert out.startswith("unsettled since ") and "does not name the deal its retry ran" in out, out
    assert "`bsp dead retry d1 --again`" in out and "(its claim said: in progress: bsp dead retry (pid 1 on h))" in out
    assert out.count("unsettled") == 1
    assert caplog.text.count("dead letter d1: a retry claimed it at ") == 2, caplog.text


async def test_a_retry_whose_deal_row_the_ledger_refused_is_linked_to_that_deals_letter(tmp_path: Path) -> None:
    """The retry's deal ran, the ledger refused its row and kept its message as a dead letter of the deal's id
    (kind unrecorded), then the process stopped: the next start links the first letter to that one, where the
    message waits (before: left retrying, `unsettled`, a warning on every start)."""
    path = tmp_path / "l.duckdb"
    await fill(path, "echo")
    deal_id = new_deal_id()
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:     # the claim, the refused row, the kill
        claimed, _ = await ledger.claim_dead_letter("d1", at=NOW, note="in progress: bsp dead retry (pid 1 on h)",
                                                    deal_id=deal_id)
        assert claimed
        await ledger.dead_letter(DeadLetter(route="echo", channel="front", reason="unrecorded: deal ... was not "
                                            "recorded", raw=b'{"ref":"R1"}', config_version="v1",
                                            error_kind="unrecorded", id=deal_id))
    assert one_waiting(path) == deal_id
    async with running(compile_text(tmp_path, ECHO), path):
        pass
    row = letter_row(path)
    assert row["status"] == "retried", row
    assert row["retry_outcome"].startswith(f"failed: its deal {deal_id} ran but the ledger refused its row"), row
    assert row["retry_outcome"].endswith(f"; {WAITS_AGAIN}{deal_id}"), row
    assert one_waiting(path) == deal_id


async def test_ctrl_c_on_a_retry_by_filters_says_what_was_done_and_leaves_the_rest_untouched(tmp_path: Path) -> None:
    """Ctrl-C while the first of three letters selected by filters runs: the command said only `Aborted!`.  Now it
    names the letter whose retry was running (left retrying, settled on the next start) and says the others
    are untouched, then the summary; exit 130.  Nothing is lost: the next start settles the first."""
    import signal

    path = tmp_path / "l.duckdb"
    for lid, ref in (("d1", "R1"), ("d2", "R2"), ("d3", "R3")):
        await fill(path, "pay", lid, ref)
    holding = trio.Event()

    def hold(req: dict) -> None:            # the counterpart receives the call and never answers
        holding.set()
        return None

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, hold)
        route = tmp_path / "pay.route"
        route.write_text(PAY % port)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "engine.cli", "dead", "retry", "--route", "pay", "--yes", "--ledger", str(path),
             "--routes", str(route)], cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = bytearray(), bytearray()

        async def read(stream, into: bytearray) -> None:
            while data := await stream.receive_some(65536):
                into += data

        async with trio.open_nursery() as io:
            io.start_soon(read, proc.stdout, out)
            io.start_soon(read, proc.stderr, err)
            with trio.fail_after(60):       # a hang guard
                await holding.wait()        # the first letter's call is out
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 130, (out, err)
        assert letter_row(path, "d1")["status"] == "retrying"
        after = {r["id"]: r["status"] for r in query_dead_letters(path, limit=None)}
        async with running(compile_text(tmp_path, PAY % port, "pay2.route"), path):   # the next start settles d1
            pass
        nursery.cancel_scope.cancel()
    said = err.decode()
    assert ("interrupted (Ctrl-C) after 0 of 3 dead letter(s); d1 was being retried: it is left retrying, its "
            "outcome `interrupted`") in said, said
    assert "the 2 not reached are untouched: run the same command again to go on" in said, said
    assert out.decode().splitlines()[-1].startswith("retried 0 of 3 dead letter(s): 0 committed"), out
    # nothing else ran; the interrupted retry's own deal may have failed and written its letter before the
    # command stopped (a loaded machine): that letter is the message's, settled below either way
    assert {k: after.pop(k) for k in ("d1", "d2", "d3")} == {"d1": "retrying", "d2": "new", "d3": "new"}, after
    assert len(after) <= 1 and set(after.values()) <= {"new"}, after
    # settled from its deal (left in flight by the interruption, failed on restart): d1 names its deal's letter,
    # where the message waits; d2 and d3 untouched
    [deal] = query_deals(path)
    assert set(after) <= {deal["deal_id"]}, after
    row = letter_row(path, "d1")
    assert row["status"] == "retried" and row["retry_outcome"].endswith(f"; {WAITS_AGAIN}{deal['deal_id']}"), row
    assert {r["id"]: r["status"] for r in query_dead_letters(path, limit=None)} == {
        "d1": "retried", deal["deal_id"]: "new", "d2": "new", "d3": "new"}
