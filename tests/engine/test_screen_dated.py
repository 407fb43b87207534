"""The `screen` step against an effective-dated list (``table sanctions = csv "list.csv" key entry_id effective
from listed_from``): a name is screened against the list as in force on the deal's day (today by the engine's
clock), each entry by its row in force that day; an entry listed from a later day is no hit before it, and is
one from that day on, in the same running engine.  ``bsp check`` accepts such a list."""
from __future__ import annotations

from datetime import date, datetime, timezone

import orjson

from dsl import ir
from dsl.clock import engine_clock
from dsl.tables import load_table
from kit import Client, compile_text, framed_counterpart, running
from test_screen import ROUTE, req

DATED = ("entry_id,listed_from,source,name,aliases,ids\n"
         "SYN-1,2020-01-01,UN,Viktor Alexandrovich Kurganov,Viktor Kurganoff,P7730112\n"
         "SYN-4,2026-12-01,EU,Marta Elena Rossi Vance,,\n"                 # listed from 1 December
         "SYN-5,2020-01-01,UN,Ilse Brandauer,,\n"                            # renamed from 1 December:
         "SYN-5,2026-12-01,UN,Ilse Brandauer Kovac,Ilse Kovac,\n")         # a new alias from then

DATED_ROUTE = ROUTE.replace('key entry_id', 'key entry_id effective from listed_from')


def test_the_index_is_the_list_in_force_on_the_day(tmp_path) -> None:
    from engine.steps.screen import index_of_table
    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    table = load_table(ir.TableDecl("sanctions", "csv", str(tmp_path / "list.csv"), "entry_id",
                                    effective="listed_from"))
    before, after = index_of_table(table, date(2026, 11, 20)), index_of_table(table, date(2026, 12, 2))
    assert sorted(e.entry_id for e in before.entries) == ["SYN-1", "SYN-5"]
    assert sorted(e.entry_id for e in after.entries) == ["SYN-1", "SYN-4", "SYN-5"]
    assert before.screen("Marta Rossi Vance").score < 0.9 <= after.screen("Marta Rossi Vance").score
    assert before.screen("Ilse Kovac").score < 0.9 <= after.screen("Ilse Kovac").score
    assert table.since(date(2026, 11, 30)) == date(2020, 1, 1) and table.since(date(2026, 12, 2)) == date(2026, 12, 1)


async def test_a_deal_is_screened_against_the_list_in_force_on_its_day(nursery, tmp_path) -> None:
    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    program = compile_text(tmp_path, DATED_ROUTE)
    sent = [req("OLD", "Viktor Alexandrovich Kurganov"), req("NEW", "Marta Elena Rossi Vance"),
            req("ALIAS", "Ilse Kovac")]

    async def codes(ledger, day: datetime, tag: str) -> dict[str, str]:
        with engine_clock(day):
            async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
                c = await Client.open(sb.channel("front").port)
                await c.send(*[orjson.dumps({**orjson.loads(r), "ref": orjson.loads(r)["ref"] + tag}) for r in sent])
                replies = await c.recv_json(len(sent))
                await c.aclose()
        return {r["ref"].removesuffix(tag): r["code"] for r in replies}

    # the newest rows would refuse NEW and ALIAS before 1 December: an entry not yet listed is no hit
    assert await codes(tmp_path / "a.duckdb", datetime(2026, 11, 20, 10, tzinfo=timezone.utc), "1") == \
        {"OLD": "62", "NEW": "00", "ALIAS": "00"}
    assert await codes(tmp_path / "b.duckdb", datetime(2026, 12, 2, 10, tzinfo=timezone.utc), "2") == \
        {"OLD": "62", "NEW": "62", "ALIAS": "62"}


async def test_one_running_engine_moves_on_to_the_next_days_list(nursery, tmp_path) -> None:
    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    program = compile_text(tmp_path, DATED_ROUTE)
    with engine_clock(datetime(2026, 11, 30, 10, tzinfo=timezone.utc)):
        async with running(program, tmp_path / "l.duckdb", {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
            c = await Client.open(sb.channel("front").port)
            await c.send(req("D1", "Marta Elena Rossi Vance"))
            [first] = await c.recv_json(1)
            with engine_clock(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)):
                await c.send(req("D2", "Marta Elena Rossi Vance"))
                [second] = await c.recv_json(1)
            await c.aclose()
    assert (first["code"], second["code"]) == ("00", "62")


def test_check_accepts_a_dated_list(tmp_path) -> None:
    (tmp_path / "list.csv").write_text(DATED, encoding="utf-8")
    compile_text(tmp_path, DATED_ROUTE)         # no error: the list is screened as in force on the deal's day
