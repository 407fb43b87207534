"""Stories appended to deals already stored (``Ledger.append_story``: a queued reversal's attempts, engine/txn/saf.py)
are group-committed: those asked for while one transaction is written go together in the next one, numbered
per deal as if written one after the other, the audit chain intact, a story whose deal has no row failing alone.
Real DuckDB files, the real journaled ledger."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
import trio

from engine.audit import verify
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep, new_deal_id
from engine.journal import open_ledger_sync
from engine.ledger import LedgerError, open_ledger

KEY = b"s" * 32
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)


def deal(deal_id: str) -> DealRecord:
    return DealRecord(deal_type="PURCHASE", route="purchase", config_version="v1", channel="pos",
                      status="failed", received_at=T0, finished_at=T0, reference=deal_id[-8:],
                      deal_id=deal_id, steps=[DealStep("auth", "call", "timeout", T0, 1.0)],
                      events=[DealEvent(T0, None, "accepted"), DealEvent(T0, "accepted", "failed")],
                      # as the engine stores a failed deal: with its dead letter (bsp audit verify checks it is there)
                      dead_letter=DeadLetter(route="purchase", channel="pos", reason="timeout", raw=b"{}",
                                             config_version="v1", error_kind="timeout", at=T0, id=deal_id))


def attempt(n: int) -> tuple[list[DealStep], list[DealEvent]]:
    return ([DealStep("auth.reversal", "reversal", "timeout", T0, 2.0, None, {"attempt": n})],
            [DealEvent(T0, None, f"reversal {n}")])


def story(path: Path) -> dict[str, tuple[list, list]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out: dict[str, tuple[list, list]] = {}
        for d, seq, name in con.execute("SELECT deal_id, seq, step FROM deal_steps ORDER BY deal_id, seq").fetchall():
            out.setdefault(d, ([], []))[0].append((seq, name))
        for d, seq, frm, to in con.execute("SELECT deal_id, seq, from_state, to_state FROM deal_events "
                                           "ORDER BY deal_id, seq").fetchall():
            out.setdefault(d, ([], []))[1].append((seq, frm, to))
        report = verify(con, path, KEY)
    finally:
        con.close()
    assert report.ok, [str(b) for b in report.breaks]
    return out


@pytest.mark.parametrize("sync", ["none", "journal"])
async def test_stories_asked_together_share_a_transaction_in_order(tmp_path: Path, sync: str) -> None:
    path = tmp_path / "l.duckdb"
    ids = [new_deal_id() for _ in range(40)]
    got: dict[tuple[str, int], bool] = {}

    async def two(deal_id: str) -> None:           # two attempts of one deal, asked one after the other
        for n in (1, 2):
            got[deal_id, n] = await ledger.append_story(deal_id, *attempt(n))

    if sync == "none":
        ctx = open_ledger(path, audit_key=KEY, keyring=None)
    else:
        ctx = open_ledger_sync(path, "journal", audit_key=KEY, keyring=None)
    async with ctx as ledger:
        await ledger.commit_many([deal(d) for d in ids])
        async with trio.open_nursery() as n:
            for d in ids:
                n.start_soon(two, d)
        led = getattr(ledger, "ledger", ledger)
        batches, written = led.stats.story_batches, led.stats.stories
        # a story for a deal with no row fails alone; ``unless`` sees an event added in the same transaction
        results = await ledger.append_stories([
            ("no-such-deal", *attempt(1), None),
            (ids[0], [], [DealEvent(T0, None, "reversed auth")], "reversed auth"),
            (ids[0], [], [DealEvent(T0, None, "reversed auth")], "reversed auth"),
            (ids[1], *attempt(3), None)])
        with pytest.raises(LedgerError, match="deal no-such-deal has no row"):
            await ledger.append_story("no-such-deal", *attempt(1))
    assert all(got.values()) and len(got) == 80
    assert written == 80 and batches <= 4, (written, batches)       # 80 stories, not 80 transactions
    assert isinstance(results[0], LedgerError) and "no-such-deal" in str(results[0])
    assert results[1:] == [True, False, True]
    stories = story(path)
    assert "no-such-deal" not in stories
    for d in ids[2:]:
        steps, events = stories[d]
        assert steps == [(1, "auth"), (2, "auth.reversal"), (3, "auth.reversal")]
        assert events == [(1, None, "accepted"), (2, "accepted", "failed"), (3, "failed", "reversal 1"),
                          (4, "reversal 1", "reversal 2")]
    assert stories[ids[0]][1][-2:] == [(4, "reversal 1", "reversal 2"), (5, "reversal 2", "reversed auth")]
    assert stories[ids[1]][0][-1] == (4, "auth.reversal") and stories[ids[1]][1][-1] == (5, "reversal 2", "reversal 3")


async def test_a_story_that_breaks_the_batch_fails_alone_and_the_others_are_written(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    ids = [new_deal_id() for _ in range(3)]
    bad = ([], [DealEvent("not a time", None, "reversal 1")])      # type: ignore[arg-type]
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.commit_many([deal(d) for d in ids])
        results = await ledger.append_stories([(ids[0], *attempt(1), None), (ids[1], *bad, None),
                                               (ids[2], *attempt(1), None)])
        assert ledger.stats.stories == 2
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], LedgerError)
    assert f"the story of deal {ids[1]} was not stored" in str(results[1]) and str(path) in str(results[1])
    stories = story(path)
    assert stories[ids[1]][1][-1] == (2, "accepted", "failed")         # nothing of the bad story
    for d in (ids[0], ids[2]):
        assert stories[d][1][-1] == (3, "failed", "reversal 1")
