"""`bsp dead retry` runs a dead letter once: a letter already retried (or whose retry is running) is refused, naming
when and the deal that retry made, unless --again; the letter is claimed in the ledger (status retrying) in one
update, so two retries of it at once run it once.  And by filters, as `bsp dead list` takes them: --dry-run, --yes
(never a prompt without a terminal), a summary.  Real DuckDB ledgers, the route run in process (no mocks)."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.operator import os_user
from engine.commands.dead import register
from engine.deal import DeadLetter
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters, query_deals

NOW = datetime.now(timezone.utc).replace(microsecond=0)
KEY = bytes(range(32))

# no deal key: a repeat runs again (the shipped unkeyed routes are enquiries; a bank's own may be anything)
ECHO = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { ref = error.code  code = error.code }
}
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
}
"""


def letter(lid: str, ref: str, kind: str = "unreachable", age: timedelta = timedelta(hours=1)) -> DeadLetter:
    return DeadLetter(route="echo", channel="front", reason=f"channel back: {kind}", raw=b'{"ref":"%s"}' % ref.encode(),
                      config_version="v1", error_kind=kind, at=NOW - age, id=lid)


async def fill(path: Path, letters: list[DeadLetter], marks: dict[str, tuple[str, str]] | None = None) -> None:
    async with open_ledger(path, audit_key=KEY) as ledger:
        for one in letters:
            await ledger.dead_letter(one)
        for lid, (status, outcome) in (marks or {}).items():
            await ledger.mark_dead_letters([lid], status=status, retried_at=NOW - timedelta(minutes=30),
                                           retry_outcome=outcome)


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["dead", *args])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    route = tmp_path / "echo.route"
    route.write_text(ECHO)
    return tmp_path / "l.duckdb", route


def one_line(text: str) -> str:
    return " ".join(text.replace("│", " ").split())       # rich wraps a usage error in a box


def test_a_letter_already_retried_is_refused_unless_again(env: tuple[Path, Path]) -> None:
    path, route = env
    trio.run(fill, path, [letter("d1", "R1")])
    res = cli("retry", "d1", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 0, res.output
    [deal] = query_deals(path)
    assert res.output == f"d1: retried: committed (deal {deal['deal_id']})\n"
    # before: run again, a second committed deal for the same exchange on this unkeyed route
    res = cli("retry", "d1", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 1, res.output
    assert res.output.startswith("d1: NOT retried: refused: status retried: already retried at "), res.output
    by = f"(bsp dead retry, by {os_user()!r})"        # who retried it: the OS user running bsp (engine/operator.py)
    assert f"UTC: committed (deal {deal['deal_id']}) {by}; it is not run again. add --again" in res.output
    assert "on a route without one the exchange runs a second time" in res.output
    assert len(query_deals(path)) == 1
    [row] = query_dead_letters(path, ids=["d1"])
    assert row["status"] == "retried" and row["retry_outcome"] == f"committed (deal {deal['deal_id']}) {by}"
    res = cli("retry", "d1", "--again", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 0 and res.output.startswith("d1: retried: committed (deal "), res.output
    assert len(query_deals(path)) == 2


async def test_two_claims_of_one_letter_at_once_give_it_to_one(tmp_path: Path) -> None:
    from engine.deadletter import refusal

    path = tmp_path / "l.duckdb"
    await fill(path, [letter("d1", "R1")])
    got: list = []
    async with open_ledger(path, audit_key=KEY) as ledger:
        async def claim(who: str) -> None:
            got.append(await ledger.claim_dead_letter("d1", at=NOW, note=f"in progress: {who}"))

        async with trio.open_nursery() as nursery:
            for who in ("first", "second", "third"):
                nursery.start_soon(claim, who)
        assert await ledger.claim_dead_letter("nope", at=NOW, note="x") == (False, None)
    assert sorted(ok for ok, _ in got) == [False, False, True], got
    lost = [row for ok, row in got if not ok]
    assert all(row["status"] == "retrying" and row["retry_outcome"].startswith("in progress: ") for row in lost)
    said = refusal(lost[0])
    assert said.startswith("refused: status retrying: a retry of it began at ") and "add --again" in said
    [row] = query_dead_letters(path, ids=["d1"])
    assert row["status"] == "retrying"


async def _claim(path: Path, lid: str) -> None:
    async with open_ledger(path, audit_key=KEY) as ledger:
        assert (await ledger.claim_dead_letter(lid, at=NOW, note="in progress: bsp dead retry (pid 1 on h)"))[0]


def test_a_retry_whose_process_stopped_midway_is_refused_until_again(env: tuple[Path, Path]) -> None:
    path, route = env
    trio.run(fill, path, [letter("d1", "R1")])
    trio.run(_claim, path, "d1")              # as a retry killed after its claim leaves it
    res = cli("retry", "d1", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 1 and res.output.startswith("d1: NOT retried: refused: status retrying: a retry of it "
                                                        "began at "), res.output
    assert "(in progress: bsp dead retry (pid 1 on h)) and has not recorded its outcome yet" in res.output
    assert query_deals(path) == []
    res = cli("retry", "d1", "--again", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 0 and res.output.startswith("d1: retried: committed (deal "), res.output
    [row] = query_dead_letters(path, ids=["d1"])
    assert row["status"] == "retried" and row["retry_outcome"].startswith("committed (deal ")


def test_retry_by_filters_dry_run_yes_and_summary(env: tuple[Path, Path]) -> None:
    path, route = env
    trio.run(fill, path, [
        letter("a1", "R1", age=timedelta(hours=2)), letter("a2", "R2"), letter("rej", "R3", kind="rejected"),
        letter("done", "R4"), letter("again", "R5"), letter("old", "R6", age=timedelta(days=3)),
        letter("nodeal", "R7")], {
        "done": ("retried", "committed (deal 0123)"),
        "again": ("new", "failed (deal 4567): channel back: unreachable"),      # its deal has its own letter
        "nodeal": ("new", "failed: the current configuration has no inbound channel 'front' (inbound: none)")})
    sel = ("--kind", "unreachable", "--since", "1d", "--ledger", str(path))
    res = cli("retry", *sel, "--dry-run")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"would retry 3 dead letter(s) in {path}, oldest first"
    assert [line.split()[0] for line in lines[2:5]] == ["a1", "a2", "nodeal"]
    assert lines[5] == "would skip 2 already retried (--again retries them too)"
    assert sorted(line.split()[0] for line in lines[7:9]) == ["again", "done"]
    assert lines[-1] == "3 to retry, 2 already retried, 0 purged"
    assert query_deals(path) == []
    # more than one selected, no terminal to ask on: a usage error, nothing run
    res = cli("retry", *sel, "--routes", str(route))
    assert res.exit_code == 2 and "add --yes to retry them" in one_line(res.output), res.output
    assert query_deals(path) == []
    res = cli("retry", "a1", *sel, "--routes", str(route))
    assert res.exit_code == 2 and "not both" in one_line(res.output)
    res = cli("retry", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 2 and "their ids, or filters" in one_line(res.output)
    res = cli("retry", *sel, "--routes", str(route), "--yes")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines[:3]] == [["a1", "retried"], ["a2", "retried"],
                                                               ["nodeal", "retried"]]
    assert lines[3] == ("retried 3 of 3 dead letter(s): 3 committed; 0 refused again; 2 skipped because already "
                        "retried (--dry-run lists them; --again retries them too)")
    assert sorted(d["reference"] for d in query_deals(path)) == ["R1", "R2", "R7"]
    # once more: every one is retried now, nothing runs twice
    res = cli("retry", *sel, "--routes", str(route), "--yes")
    assert res.exit_code == 0 and res.output.splitlines() == [
        f"no dead letter to retry in {path}",
        "retried 0 of 0 dead letter(s): 0 committed; 0 refused again; 5 skipped because already retried "
        "(--dry-run lists them; --again retries them too)"], res.output
    assert len(query_deals(path)) == 3
    # one selected: no confirmation needed
    res = cli("retry", "--kind", "rejected", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 0 and res.output.startswith("rej: retried: committed"), res.output


def test_a_long_run_shows_its_progress_on_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.commands.dead_select import PROGRESS_EVERY, Tally

    tally = Tally(PROGRESS_EVERY * 2 + 1)
    for i in range(tally.total):
        ok = i % 10 != 0 and i != 5
        tally.add(f"d{i}", ok, "committed (deal x)" if ok else "failed (deal y): unreachable", skipped=i == 5)
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == tally.total and out.splitlines()[0] == "d0: NOT retried: failed (deal y): unreachable"
    assert err.splitlines() == [
        "progress: 100 of 201 dead letters done (89 committed, 10 refused again, 1 already retried)",
        "progress: 200 of 201 dead letters done (179 committed, 20 refused again, 1 already retried)",
        "progress: 201 of 201 dead letters done (179 committed, 21 refused again, 1 already retried)"], err
    assert tally.summary(None) == ("retried 179 of 201 dead letter(s): 179 committed; 21 refused again; 1 skipped "
                                   "because already retried")


def test_the_waiting_count_and_retry_by_filters_agree_on_a_retry_that_made_no_deal(env: tuple[Path, Path]) -> None:
    # a retry that ran nothing (its channel gone from the configuration, a key missing) puts the letter back to
    # new with its retried_at: it still waits, and bsp dead retry --status new retries it; the count
    # (bsp_dead_letters_new, bsp status, bsp top) left it out, so the gauge said 0 while letters waited
    from engine.ledger_query import count_new_dead_letters

    path, route = env
    trio.run(fill, path, [letter("d1", "R1"), letter("d2", "R2"), letter("d3", "R3"), letter("d4", "R4"),
                          letter("d5", "R5")],
             {"d2": ("new", "failed: the current configuration has no inbound channel 'front' (inbound: none)"),
              "d3": ("new", "rejected (deal 0f0f0f0f): refused by the biller"),
              "d4": ("new", "duplicate: the route's deal key is kept by an earlier deal"),
              "d5": ("retried", "committed (deal 1e1e1e1e)")})
    assert count_new_dead_letters(path) == {"unreachable": 2}           # d1 and d2
    res = cli("retry", "--status", "new", "--dry-run", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    assert "2 to retry, 2 already retried, 0 purged" in res.output, res.output


def test_retry_by_filters_without_any_standard_input_asks_for_yes(env: tuple[Path, Path]) -> None:
    # started with standard input closed (cron, `<&-`), Python's sys.stdin is None: the confirmation's
    # isatty() raised AttributeError, a traceback instead of the usage error saying to add --yes
    import os
    import subprocess
    import sys

    path, route = env
    trio.run(fill, path, [letter("d1", "R1"), letter("d2", "R2")])
    p = subprocess.run([sys.executable, "-m", "engine.cli", "dead", "retry", "--status", "new", "--ledger", str(path),
                        "--routes", str(route)], capture_output=True, text=True, env=dict(os.environ),
                       preexec_fn=lambda: os.close(0), cwd=str(Path(__file__).resolve().parents[2]))
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "add --yes" in one_line(p.stderr), p.stderr
    assert {r["status"] for r in query_dead_letters(path, limit=None)} == {"new"}      # nothing ran


async def test_a_retry_interrupted_while_its_deal_runs_says_so_and_stays_claimed(tmp_path: Path) -> None:
    # the engine stopping (its admin API's retry cancelled) or Ctrl-C on bsp dead retry while the deal runs:
    # whether it went through is unknown, so the letter stays `retrying` (not run twice); but its outcome said
    # "in progress: ... since T" for ever, of a retry that had ended. It says it was interrupted now.
    from engine.deadletter import retry_once

    path = tmp_path / "l.duckdb"
    await fill(path, [letter("d1", "R1")])
    running = trio.Event()

    async def inject(channel: str, raw: bytes) -> str:         # a counterpart that does not answer
        running.set()
        await trio.sleep_forever()
        return "never"

    row = query_dead_letters(path, ids=["d1"], limit=None, with_raw=True)[0]
    async with open_ledger(path, audit_key=KEY) as led:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(retry_once, led, row, inject)
            await running.wait()
            nursery.cancel_scope.cancel()
        claimed, after = await led.claim_dead_letter("d1", at=NOW, note="probe")
    assert not claimed and after is not None and after["status"] == "retrying", after
    assert after["retry_outcome"].startswith("interrupted (cancelled) while its deal ran: bsp dead retry stopped"), after
    assert "bsp deals --since" in after["retry_outcome"]
