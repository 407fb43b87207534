"""card_payments answers what it can of an ISO 8583 request it cannot decode or route (the channel's
`on error reply`, docs/services/card_payments.md#what-no-route-answers): the response MTI with DE 39 = 30
(format error) or 12 (no route takes it), echoing the fields read; nothing when the MTI cannot be read.

Real loopback: the engine serves routes/card_payments/card_payments.route on 127.0.0.1 (port 0) with a real
DuckDB ledger; the acquirer's frames are built with pyiso8583 (an independent encoder), length2 framed."""
from __future__ import annotations

import logging
from pathlib import Path

import iso8583
import pytest
import trio
from iso8583.specs import default_ascii

from dsl.load import compile_paths
from engine.registry import default_registry
from tests.engine.kit import Client, deals, running

ROUTE = Path(__file__).resolve().parents[2] / "routes" / "card_payments" / "card_payments.route"

PURCHASE = {"t": "0200", "2": "6228480000000011", "3": "000000", "4": "000000012550", "7": "1125120000",
            "11": "000042", "37": "CP000000042G", "41": "ATM00001", "49": "156"}


@pytest.fixture
def program():
    res = compile_paths([ROUTE], default_registry())
    assert res.program is not None and not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics
    return res.program


def frame(values: dict) -> bytes:
    raw, _ = iso8583.encode(dict(values), default_ascii)
    return bytes(raw)


def read(raw: bytes) -> dict:
    values, _ = iso8583.decode(raw, default_ascii)
    return {k: v for k, v in values.items() if k not in ("p", "h")}


ECHO = {"t": "0800", "7": "1125120000", "11": "000099", "70": "301"}


async def exchange(program, tmp_path, *requests: bytes) -> tuple[list[dict], list[dict]]:
    """Send ``requests`` then an 0800 echo on one connection; return the decoded answers received before
    the echo's 0810 (replies leave in request order, so an unanswered request shows as a missing one), and
    the deals."""
    ledger = tmp_path / "ledger.duckdb"
    ov = {"cp_mainframe": {"address": "127.0.0.1:0"}, "cp_host": {"address": "127.0.0.1:1"}}
    answers: list[dict] = []
    async with running(program, ledger, ov) as sb:
        c = await Client.open(sb.channel("cp_mainframe").port)
        for r in requests:
            await c.send(r)
        await c.send(frame(ECHO))
        with trio.fail_after(10):
            while True:
                (raw,) = await c.recv()
                got = read(raw)
                if got["t"] == "0810":
                    break
                answers.append(got)
        await c.aclose()
    return answers, deals(ledger)


async def test_garbage_after_a_readable_mti_is_answered_0210_format_error(program, tmp_path) -> None:
    answers, rows = await exchange(program, tmp_path, b"0200" + b"\xffGARBAGE-not-a-bitmap\x00\x01")
    assert answers == [{"t": "0210", "39": "30"}]
    (d,) = [d for d in rows if d["status"] == "rejected"]
    assert (d["route"], d["response_code"]) == ("(malformed)", "30")


async def test_a_bad_field_after_the_identifying_ones_is_answered_with_them_echoed(program, tmp_path) -> None:
    # DE 7 month 13: the strict reader stops there; the wire structure holds, so the answer echoes every
    # other field read (DE 3, 4, 11, 37, 41, 49) and leaves the bad one out
    bad = frame({**PURCHASE, "7": "1325120000"})
    answers, rows = await exchange(program, tmp_path, bad)
    assert answers == [{"t": "0210", "3": "000000", "4": "000000012550", "11": "000042", "37": "CP000000042G",
                        "39": "30", "41": "ATM00001", "49": "156"}]
    (d,) = [d for d in rows if d["status"] == "rejected"]
    assert "field 7" in d["reason"] and d["response_code"] == "30"


async def test_a_truncated_bitmap_is_answered_0210_format_error(program, tmp_path) -> None:
    whole = frame(PURCHASE)
    answers, rows = await exchange(program, tmp_path, whole[:4 + 9])     # MTI + 9 of the bitmap's 16 hex digits
    assert answers == [{"t": "0210", "39": "30"}]
    (d,) = [d for d in rows if d["status"] == "rejected"]
    assert "message ends inside the primary bitmap" in d["reason"]


async def test_an_unrouted_0100_is_answered_0110_with_12_and_its_identifiers(program, tmp_path) -> None:
    answers, rows = await exchange(program, tmp_path, frame({**PURCHASE, "t": "0100"}))
    assert answers == [{"t": "0110", "3": "000000", "4": "000000012550", "7": "1125120000", "11": "000042",
                        "37": "CP000000042G", "39": "12", "41": "ATM00001", "49": "156"}]
    (d,) = [d for d in rows if d["status"] == "rejected"]
    assert (d["route"], d["response_code"]) == ("(unrouted)", "12")


async def test_an_unreadable_mti_gets_no_answer_and_is_logged(program, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    answers, rows = await exchange(program, tmp_path, b"02X0" + frame(PURCHASE)[4:])
    assert answers == []                                  # the next answer on the connection is the 0810
    (d,) = [d for d in rows if d["status"] == "rejected"]
    assert (d["route"], d["response_code"]) == ("(malformed)", "30")
    said = [r.getMessage() for r in caplog.records if "the message type could not be read" in r.getMessage()]
    assert said and "card_payments.route:" in said[0]


async def test_a_response_no_route_takes_is_not_answered(program, tmp_path) -> None:
    # an 0210 sent to the host (a confused peer): never answered, or the two would answer each other for ever
    answers, rows = await exchange(program, tmp_path, frame({**PURCHASE, "t": "0210", "39": "00"}))
    assert answers == []
    assert [d["route"] for d in rows if d["status"] == "rejected"] == ["(unrouted)"]
