"""An acquirer certification script against routes/card_payments/card_payments.route: reversals (0400 / 0420)
and their repeats (0401 / 0421) from the card front end, a duplicate 0200, a card host answering after the
time-out, the 0800 echo, and requests that do not decode.  Each answer is read back with the project's own
strict decoder (the built-in spec's per-MTI rules: an 0410 must carry DE 2, 3, 4, 7, 11, 39, 49 and 90, as
the corpus's moov 0410 samples do) and with pyiso8583 (an independent decoder).

Real loopback: the engine serves the route in process on 127.0.0.1 port 0 with a real DuckDB ledger; the
card host is a scripted TCP server (length2) on 127.0.0.1 port 0; trio's MockClock where a time-out is
waited for.  docs/services/card_payments.md#reversals-from-the-front-end"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

import duckdb
import iso8583
import pytest
import trio
from iso8583.specs import default_ascii
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for
from tests.engine.kit import Client, deals, running

ROUTE = Path(__file__).resolve().parents[2] / "routes" / "card_payments" / "card_payments.route"
STRICT = codec_for("iso8583_1987_ascii")                 # the project's decoder, message rules on
LENIENT = codec_for("iso8583_1987_ascii", validate=False)

PURCHASE = {"t": "0200", "2": "6228480000000011", "3": "000000", "4": "000000012550", "7": "1125120000",
            "11": "000042", "37": "CP000000042G", "41": "ATM00001", "49": "156"}
# DE 90 of the purchase above: original MTI, STAN, DE 7, acquirer and forwarding institution (none: zeros)
DE90 = "0200" + "000042" + "1125120000" + "0" * 22
REVERSAL = {"t": "0400", "2": "6228480000000011", "3": "000000", "4": "000000012550", "7": "1125120105",
            "11": "000043", "37": "CP000000042G", "41": "ATM00001", "49": "156", "90": DE90}


@pytest.fixture
def program():
    res = compile_paths([ROUTE], default_registry())
    assert res.program is not None and not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics
    return res.program


def frame(values: dict) -> bytes:
    return STRICT.encode(dict(values))


def strict(raw: bytes) -> dict:
    """The answer as the project's strict decoder reads it (fails on a broken message rule), checked against
    pyiso8583's reading of the same bytes."""
    ours = dict(STRICT.decode(raw))
    theirs, _ = iso8583.decode(bytearray(raw), default_ascii)
    assert {k: v for k, v in theirs.items() if k not in ("p", "h", "1")} == ours
    return ours


class Host:
    """A scripted card host on 127.0.0.1: ``answer(msg, send)`` runs in a task of its own per request and
    sends what it likes (``await send(values)``) whenever it likes; every request is kept in ``seen``."""

    def __init__(self, answer: Callable[[dict, Callable[[dict], Awaitable[None]]], Awaitable[None]]) -> None:
        self.answer = answer
        self.seen: list[dict] = []

    async def serve(self, nursery: trio.Nursery) -> int:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self._conn, 0, host="127.0.0.1"))
        return listeners[0].socket.getsockname()[1]

    async def _conn(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(2)
        lock = trio.Lock()

        async def send(values: dict) -> None:
            async with lock:
                await stream.send_all(f.frame(LENIENT.encode(values)))

        async with stream, trio.open_nursery() as n:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                for p in f.feed(data):
                    msg = dict(LENIENT.decode(p))
                    self.seen.append(msg)
                    n.start_soon(self.answer, msg, send)

    def mtis(self) -> list[str]:
        return [m["t"] for m in self.seen if m["t"] != "0800"]


def answered(msg: dict, code: str = "00", **extra: Any) -> dict:
    out = {k: msg[k] for k in ("2", "3", "4", "7", "11", "37", "41", "49", "90") if k in msg}
    out.update({"t": {"0200": "0210", "0420": "0430", "0421": "0430", "0400": "0410"}[msg["t"]], "39": code})
    if msg["t"] == "0200":
        out.pop("2", None)
        if code == "00":
            out["38"] = "A" + msg["11"][-5:]
    out.update(extra)
    return out


def overrides(port: int, timeout: str | None = None) -> dict:
    host: dict[str, Any] = {"address": f"127.0.0.1:{port}"}
    if timeout:
        host["timeout"] = timeout
    return {"cp_mainframe": {"address": "127.0.0.1:0"}, "cp_host": host}


def rows(ledger: Path, sql: str, params: list | None = None) -> list[dict]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


async def ask(port: int, *requests: dict | bytes) -> list[bytes]:
    """Send ``requests`` one after the other on one connection, each after the answer to the one before."""
    c = await Client.open(port)
    out = []
    try:
        for r in requests:
            await c.send(r if isinstance(r, bytes) else frame(r))
            with trio.fail_after(30):
                (raw,) = await c.recv()
            out.append(raw)
    finally:
        await c.aclose()
    return out


# ----------------------------------------------------------------------------- reversals from the front end

async def test_a_reversal_of_an_original_nobody_knows_is_acknowledged_25(program, tmp_path, nursery) -> None:
    # the front end reverses a 0200 that never reached bsp (lost on the way): the card host does not know the
    # original either and acknowledges with 25 (unable to locate the original). Before: 0410 with 12 (invalid
    # transaction, "unrouted") and without DE 2 / DE 90, so the strict decoder refused bsp's own answer.
    async def answer(msg, send):
        await send(answered(msg, "25"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port, REVERSAL)
    got = strict(raw)
    assert got == {"t": "0410", "2": REVERSAL["2"], "3": "000000", "4": "000000012550", "7": "1125120105",
                   "11": "000043", "37": "CP000000042G", "39": "25", "41": "ATM00001", "49": "156", "90": DE90}
    (sent,) = host.seen                            # forwarded once to the card host as a reversal advice
    assert sent["t"] == "0420" and sent["90"] == DE90 and sent["11"] == "000043" and "52" not in sent
    # a refusal of the call recorded with the host's own code, the one the terminal got: 25, not the engine's 05
    # for a refusal (before 2026-11-27 the row said 05 while the 0410 said 25)
    (d,) = deals(ledger)
    assert (d["route"], d["status"], d["response_code"]) == ("card_reversal", "failed", "25")
    (dl,) = _dead(ledger)
    assert (dl["error_kind"], dl["error_code"]) == ("refused", "25")
    shown = CliRunner().invoke(app, ["deals", "show", d["deal_id"], "--ledger", str(ledger)])
    assert shown.exit_code == 0, shown.output
    assert "CARD_REVERSAL  failed  code 25\n" in shown.output, shown.output       # the headline
    assert "reason: refused: call rev: cp_host refused with DE 39 25 (expect at " in shown.output, shown.output
    as_json = json.loads(CliRunner().invoke(app, ["deals", "show", d["deal_id"], "--ledger", str(ledger),
                                                  "--json"]).output)
    assert as_json["response_code"] == "25" and as_json["response"]["39"] == "25", as_json


async def test_a_reversal_is_applied_once_and_its_repeats_acknowledged_with_the_same_answer(
        program, tmp_path, nursery) -> None:
    async def answer(msg, send):
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port)) as sb:
        purchase, first, *repeats = await ask(
            sb.channel("cp_mainframe").port, PURCHASE, REVERSAL, {**REVERSAL, "t": "0401"},
            {**REVERSAL, "t": "0401"})
        advice, advice_repeat = await ask(sb.channel("cp_mainframe").port,
                                          {**REVERSAL, "t": "0420", "11": "000044"},
                                          {**REVERSAL, "t": "0421", "11": "000044"})
    assert strict(purchase)["39"] == "00"
    got = strict(first)
    assert (got["t"], got["39"], got["11"], got["90"]) == ("0410", "00", "000043", DE90)
    assert repeats == [first, first]               # the repeats get the first answer, byte for byte
    # an 0420 advice of the same original (and its 0421 repeat) is answered 0430, never 0410
    adv = strict(advice)
    assert (adv["t"], adv["39"], adv["11"]) == ("0430", "00", "000044") and advice_repeat == advice
    # the card host saw the purchase, one reversal for the 0400 and its repeats, one for the 0420 and its repeat
    assert host.mtis() == ["0200", "0420", "0420"]
    rev = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    assert sorted(d["status"] for d in rev) == ["committed", "committed", "duplicate", "duplicate", "duplicate"]


async def test_a_repeat_sent_while_the_reversal_is_at_the_host_waits_for_it(
        program, tmp_path, nursery, mock_clock) -> None:
    # the front end repeats (0401) before the 0410 came: the repeat waits for the first and gets its answer;
    # the host sees one 0420
    mock_clock.autojump_threshold = 0.1

    async def answer(msg, send):
        await trio.sleep(2)                        # within the 3 s time-out
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port, "3s")) as sb:
        c = await Client.open(sb.channel("cp_mainframe").port)
        await c.send(frame(REVERSAL), frame({**REVERSAL, "t": "0401"}))
        with trio.fail_after(30):
            first, repeat = await c.recv(2)
        await c.aclose()
    assert strict(first)["39"] == "00" and repeat == first
    assert host.mtis() == ["0420"]
    assert sorted(d["status"] for d in deals(ledger)) == ["committed", "duplicate"]


# ----------------------------------------------------------------------------- a duplicate 0200

async def test_a_duplicate_0200_gets_the_original_answer_and_is_not_sent_again(program, tmp_path, nursery) -> None:
    async def answer(msg, send):
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port)) as sb:
        first, again, stamped_again = await ask(sb.channel("cp_mainframe").port, PURCHASE, PURCHASE,
                                                {**PURCHASE, "7": "1125120030"})   # DE 7's time stamped again
    assert again == first and stamped_again == first
    assert strict(first)["39"] == "00"
    assert host.mtis() == ["0200"]                 # one debit
    assert sorted(d["status"] for d in deals(ledger)) == ["committed", "duplicate", "duplicate"]


# ----------------------------------------------------------------------------- a late 0210

async def test_a_late_0210_after_the_timeout_is_not_used_and_the_reversal_stands(
        program, tmp_path, nursery, mock_clock) -> None:
    # the host answers the first 0200 only after the engine timed out (68) and reversed it; meanwhile the
    # front end sends another purchase with the same STAN and terminal (its MUX key): the late 0210 must not
    # be taken as that purchase's answer
    mock_clock.autojump_threshold = 0.1
    late_sent, second_in = trio.Event(), trio.Event()
    held: list[tuple[dict, Any]] = []

    async def answer(msg, send):
        if msg["t"] == "0200" and msg["37"] == PURCHASE["37"]:
            held.append((msg, send))               # answered later, by the 0420
        elif msg["t"] == "0420":
            (orig, orig_send), = held
            await second_in.wait()                 # the other purchase is waiting for its answer
            await orig_send(answered(orig, "00", **{"38": "LATE01"}))     # the late approval, first
            late_sent.set()
            await trio.sleep(1)
            await send(answered(msg, "00"))
        elif msg["t"] == "0200":
            second_in.set()
            await late_sent.wait()
            await trio.sleep(2)
            await send(answered(msg, "00", **{"38": "OWN002"}))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    second = {**PURCHASE, "37": "CP000000043G", "4": "000000000100"}
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (timed_out,) = await ask(sb.channel("cp_mainframe").port, PURCHASE)
        (other,) = await ask(sb.channel("cp_mainframe").port, second)
        (queue,) = sb.saf
        with trio.fail_after(60):
            await queue.wait_empty()
        unmatched = sb.channel("cp_host").unmatched
    assert strict(timed_out)["39"] == "68"
    got = strict(other)
    assert (got["39"], got["38"], got["37"], got["4"]) == ("00", "OWN002", "CP000000043G", "000000000100")
    assert host.mtis() == ["0200", "0420", "0200"]
    assert unmatched == 1                          # the late 0210, dropped
    first, = [d for d in deals(ledger) if d["reference"] == PURCHASE["37"]]
    assert (first["status"], first["response_code"]) == ("failed", "68")
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? "
                                          "ORDER BY seq", [first["deal_id"]])]
    assert "reversed auth" in events


# ----------------------------------------------------------------------------- network management

@pytest.mark.parametrize("code", ["001", "002", "301"])      # sign-on, sign-off, echo test
async def test_0800_is_answered_0810_00_with_its_de70(program, tmp_path, nursery, code) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(1)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port,
                           {"t": "0800", "7": "1125120000", "11": "000099", "70": code})
    assert strict(raw) == {"t": "0810", "7": "1125120000", "11": "000099", "39": "00", "70": code}


# ----------------------------------------------------------------------------- requests that do not decode

def _dead(ledger: Path) -> list[dict]:
    return rows(ledger, "SELECT route, channel, reason, error_kind, error_code, raw FROM dead_letters")


async def test_a_field_length_overrun_is_answered_30_and_dead_lettered_with_its_offset(program, tmp_path) -> None:
    whole = frame(PURCHASE)
    # DE 2's LL prefix (bytes 20-21) says 25: over the field's max of 19
    bad = whole[:20] + b"25" + whole[22:]
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(1)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port, bad)
    assert dict(LENIENT.decode(raw)) == {"t": "0210", "39": "30"}
    (dl,) = _dead(ledger)
    assert (dl["channel"], dl["error_code"]) == ("cp_mainframe", "30") and bytes(dl["raw"]) == bad
    assert "byte 20, field 2" in dl["reason"], dl["reason"]


async def test_a_bitmap_that_is_not_hex_is_answered_30_and_dead_lettered_with_its_offset(program, tmp_path) -> None:
    whole = frame(PURCHASE)
    bad = whole[:4] + b"72ZZ" + whole[8:]          # "Z" at byte 6: not a hex digit
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(1)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port, bad)
    assert dict(LENIENT.decode(raw)) == {"t": "0210", "39": "30"}
    (dl,) = _dead(ledger)
    assert dl["error_code"] == "30" and bytes(dl["raw"]) == bad
    assert "byte 6, field bitmap" in dl["reason"], dl["reason"]


@pytest.mark.parametrize("ack", ["00", "25"])
async def test_a_reversal_the_card_host_does_not_answer_is_stored_and_forwarded_until_acknowledged(
        program, tmp_path, nursery, mock_clock, ack) -> None:
    # a 0420 the host leaves unanswered is handed to the engine's store and forward (`store and forward` on the
    # route's call): the front end gets 0430 00 ("accepted for forwarding") at once, and so does its repeat
    # (0421), which sends nothing more; the engine repeats the 0420 as 0421 until the host acknowledges it
    # (here the second 0421; 00 or 25 alike), the attempts and the acknowledgement are on the deal, and the
    # deal is not flagged for an operator (docs/services/card_payments.md#a-reversal-the-card-host-does-not-answer)
    mock_clock.autojump_threshold = 0.1

    async def answer(msg, send):
        if len(host.seen) >= 3:                    # silent to the 0420 and the first 0421
            await send(answered(msg, ack))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    advice = {**REVERSAL, "t": "0420"}
    async with running(program, ledger, overrides(port, "3s")) as sb:
        first, repeat = await ask(sb.channel("cp_mainframe").port, advice, {**advice, "t": "0421"})
        (queue,) = sb.saf
        with trio.fail_after(600):                 # a guard against a hang (MockClock time), not a timing
            await queue.wait_empty()
        assert queue.status()["acknowledged"] == 1 and queue.status()["flagged_total"] == 0
    got = strict(first)
    assert (got["t"], got["39"], got["90"]) == ("0430", "00", DE90) and repeat == first
    assert host.mtis() == ["0420", "0421", "0421"]
    sent = {k: v for k, v in advice.items() if k != "t"}
    assert all({k: m.get(k) for k in sent} == sent for m in host.seen)     # the advice as forwarded, DE 90 too
    failed, dup = deals(ledger)
    assert (failed["status"], failed["response_code"], dup["status"]) == ("failed", "68", "duplicate")
    assert "flagged" not in failed["reason"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq",
                  [failed["deal_id"]])
    names = [e["to_state"] for e in events]
    assert names[-4:] == ["failed", "reversal 0421", "reversal 0421", "reversed rev"], names
    assert "reversal queued" in names and not [n for n in names if "flagged" in n], names
    done = json.loads(events[-1]["detail"])
    assert (done["attempts"], done["mti"], done["response_code"], done["approved"]) == \
        (3, "0421", ack, ack == "00"), done
    steps = rows(ledger, "SELECT step, outcome FROM deal_steps WHERE deal_id = ? ORDER BY seq", [failed["deal_id"]])
    assert [(s["step"], s["outcome"]) for s in steps][-2:] == [("rev.reversal.repeat", "timeout"),
                                                               ("rev.reversal.repeat", "acknowledged")]


async def _crash_while_the_host_holds(program, ledger: Path, port: int, held: trio.Event, request: dict) -> None:
    """Serve the route, send ``request`` and stop the engine as a crash would (no drain, no answer, no deal row)
    once the card host holds what the engine sent for it (``held``)."""
    with trio.CancelScope() as crash:
        async with running(program, ledger, overrides(port, "30s")) as sb:
            c = await Client.open(sb.channel("cp_mainframe").port)
            try:
                await c.send(frame(request))
                with trio.fail_after(30):          # a guard against a hang (MockClock time), not a timing
                    await held.wait()
                crash.cancel()
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert deals(ledger) == []


async def test_a_repeat_of_a_reversal_a_crash_left_at_the_host_gets_00_accepted_for_forwarding(
        program, tmp_path, nursery, mock_clock) -> None:
    # the engine stops (a crash) while the card host holds the 0420 it forwarded; on restart `on restart
    # compensate` hands the advice to store and forward (0421 until acknowledged). The front end, which never got
    # its 0430, repeats (0421): it must get 0430 00 "accepted for forwarding", as a repeat does while the engine
    # runs, and nothing more goes to the host than the store-and-forward 0421. Before 2026-11-27 it got 96 (the
    # restart kept no answer for the deal key), and a front end repeats a 96 until its own limit.
    mock_clock.autojump_threshold = 0.1
    restarted, held = trio.Event(), trio.Event()

    async def answer(msg, send):
        if restarted.is_set():
            await send(answered(msg, "00"))
        else:
            held.set()                             # held unanswered: the engine stops meanwhile

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    advice = {**REVERSAL, "t": "0420"}
    await _crash_while_the_host_holds(program, ledger, port, held, advice)
    assert host.mtis() == ["0420"]
    restarted.set()
    async with running(program, ledger, overrides(port, "30s")) as sb:
        repeat, again = await ask(sb.channel("cp_mainframe").port, {**advice, "t": "0421"},
                                  {**advice, "t": "0421"})
        (queue,) = sb.saf
        with trio.fail_after(600):                 # a guard against a hang (MockClock time), not a timing
            await queue.wait_empty()
        assert queue.status()["acknowledged"] == 1 and queue.status()["flagged_total"] == 0
    got = strict(repeat)
    assert got == {"t": "0430", "2": REVERSAL["2"], "3": "000000", "4": "000000012550", "7": "1125120105",
                   "11": "000043", "37": "CP000000042G", "39": "00", "41": "ATM00001", "49": "156", "90": DE90}
    assert again == repeat
    assert host.mtis() == ["0420", "0421"]         # the store-and-forward 0421 alone: the repeats sent nothing
    original, *dups = deals(ledger)
    assert (original["status"], original["response_code"]) == ("failed", "96")
    assert "flagged" not in original["reason"], original["reason"]
    assert [(d["status"], d["response_code"]) for d in dups] == [("duplicate", "96")] * 2
    names = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                         [original["deal_id"]])]
    assert "recovered" in names and "reversal queued" in names and names[-1] == "reversed rev", names
    assert not [n for n in names if "flagged" in n], names


@pytest.mark.parametrize("host_answers", [True, False], ids=["answered", "unanswered"])
async def test_a_front_end_reversal_reusing_the_stan_while_the_engines_own_0420_is_in_flight_shares_it(
        program, tmp_path, nursery, mock_clock, host_answers) -> None:
    # the 0200 times out (68): the engine reverses it itself (0420, stored and forwarded, DE 11 and DE 41 the
    # 0200's). While that 0420 is at the card host, the front end sends its own reversal of the same purchase
    # (DE 90 the same) reusing the purchase's STAN, as many front ends do: on the one MUX connection its 0420
    # would have the key (MTI class, DE 11, DE 41) of the one in flight. It is the same reversal: it waits for
    # the in-flight one's answer and gets the host's code (00 here), or, when the host leaves that attempt
    # unanswered, 00 "accepted for forwarding", the engine's store and forward repeating the one 0420 as 0421
    # until acknowledged. No second 0420 goes to the host. Before 2026-11-27 it failed at once with 96 (the MUX
    # refused a second request with a key in flight) and the front end repeated it.
    mock_clock.autojump_threshold = 0.1
    rev_held, joined = trio.Event(), trio.Event()

    async def answer(msg, send):
        if msg["t"] == "0200":
            return                                 # never answered: the engine times out and reverses it
        if msg["t"] == "0420" and not rev_held.is_set():
            rev_held.set()
            await joined.wait()                    # the front end's reversal is waiting beside it
            await trio.sleep(1)                    # within the 3 s time-out
            if not host_answers:
                return
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    front = {**REVERSAL, "11": PURCHASE["11"]}     # the purchase's STAN again
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (timed_out,) = await ask(sb.channel("cp_mainframe").port, PURCHASE)
        with trio.fail_after(60):
            await rev_held.wait()                  # the engine's own 0420 is at the host
        c = await Client.open(sb.channel("cp_mainframe").port)
        await c.send(frame(front))
        with trio.move_on_after(30):               # (none ever joined before 2026-11-27: it failed at once)
            while not getattr(sb.channel("cp_host"), "joined", 0):
                await trio.sleep(0.25)
        joined.set()
        with trio.fail_after(60):
            (raw,) = await c.recv()
        await c.aclose()
        (queue,) = sb.saf
        with trio.fail_after(600):                 # a guard against a hang (MockClock time), not a timing
            await queue.wait_empty()
        assert queue.status()["acknowledged"] == 1
    assert strict(timed_out)["39"] == "68"
    got = strict(raw)
    assert (got["t"], got["39"], got["11"], got["90"]) == ("0410", "00", PURCHASE["11"], DE90)
    # one reversal of the purchase: the engine's 0420 (and, unanswered, its 0421); never the front end's own
    assert host.mtis() == (["0200", "0420"] if host_answers else ["0200", "0420", "0421"])
    assert [m["7"] for m in host.seen if m["t"] != "0200"] == [PURCHASE["7"]] * (1 if host_answers else 2)
    rev = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    assert len(rev) == 1
    if host_answers:                               # the host's answer to the 0420 in flight, shared
        assert (rev[0]["status"], rev[0]["response_code"]) == ("committed", "00")
    else:                                          # stored and forwarded: the engine's own 0420 is repeated
        assert (rev[0]["status"], rev[0]["response_code"]) == ("failed", "68")
        assert "flagged" not in rev[0]["reason"], rev[0]["reason"]
        events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq",
                      [rev[0]["deal_id"]])
        (queued,) = [json.loads(e["detail"]) for e in events if e["to_state"] == "reversal queued"]
        purchase, = [d for d in deals(ledger) if d["route"] == "card_purchase"]
        assert queued["joined"] == purchase["deal_id"], queued


@pytest.mark.parametrize("code", ["00", "25"])
async def test_a_front_end_reversal_answered_while_the_engines_own_waits_between_attempts_acknowledges_it(
        program, tmp_path, nursery, mock_clock, code) -> None:
    # the 0200 times out (68) and the engine's own 0420 of it goes unanswered too: store and forward waits
    # before its 0421. Meanwhile the front end sends its own reversal of the purchase (its STAN, DE 90 the
    # same), forwarded as a 0420, and the host answers it: the host has the reversal, so the engine's queued one
    # is acknowledged by that answer and never repeated (before 2026-11-28 its 0421 followed later all the
    # same). Both deals say so: the purchase's `reversed rev` names the front end's deal, the front end's deal
    # has `queued reversal acknowledged` naming the purchase. A 25 (original not found) acknowledges too.
    mock_clock.autojump_threshold = 0.1
    silent = trio.Event()

    async def answer(msg, send):
        if msg["t"] == "0200":
            return                                 # never answered: the engine times out and reverses it
        if msg["t"] == "0420" and not silent.is_set():
            silent.set()                           # the engine's own 0420: unanswered
            return
        await send(answered(msg, code))

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    front = {**REVERSAL, "11": PURCHASE["11"]}     # the purchase's STAN again
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (queue,) = sb.saf
        queue.backoff_first = 3600.0               # a long pause after the first attempt: the front end comes first
        (timed_out,) = await ask(sb.channel("cp_mainframe").port, PURCHASE)
        with trio.fail_after(60):                  # a guard against a hang (MockClock time), not a timing
            while queue.attempts < 1:
                await trio.sleep(0.25)
        (raw,) = await ask(sb.channel("cp_mainframe").port, front)
        with trio.fail_after(4 * 3600):
            await queue.wait_empty()
        assert queue.status()["acknowledged"] == 1 and queue.status()["flagged_total"] == 0
    assert strict(timed_out)["39"] == "68"
    got = strict(raw)
    assert (got["t"], got["39"], got["90"]) == ("0410", code, DE90)
    assert host.mtis() == ["0200", "0420", "0420"]  # the engine's 0420, the front end's: no 0421 after them
    purchase, = [d for d in deals(ledger) if d["route"] == "card_purchase"]
    rev, = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq",
                  [purchase["deal_id"]])
    done = json.loads(events[-1]["detail"])
    assert events[-1]["to_state"].startswith("reversed ") and done["by_deal"] == rev["deal_id"], events[-1]
    assert (done["response_code"], done["approved"], done["attempts"]) == (code, code == "00", 1), done
    (told,) = [json.loads(e["detail"]) for e in rows(ledger, "SELECT to_state, detail FROM deal_events WHERE "
                                                    "deal_id = ? ORDER BY seq", [rev["deal_id"]])
               if e["to_state"] == "queued reversal acknowledged"]
    assert told["deal"] == purchase["deal_id"] and told["response_code"] == code, told


async def test_resolving_a_purchase_flags_the_front_end_reversal_that_joined_its_cancelled_reversal(
        program, tmp_path, nursery, mock_clock) -> None:
    # the front end's reversal joined the engine's own queued reversal of the purchase (same STAN and DE 90, the
    # host silent) and was answered 00 "accepted for forwarding". An operator then resolves the purchase's deal
    # offline (`bsp deals resolve`, the engine stopped): that cancels the one reversal both relied on. The
    # resolution says so, naming the front end's deal, and the next start, cancelling it, flags that deal for an
    # operator (event `reversal flagged` naming the purchase): nothing the front end asked for is dropped unseen.
    # Before 2026-11-28 the front end's deal stayed `failed` 68, unflagged, its reversal never sent.
    from engine.deal_resolve import flag_state, resolve_in_file
    from engine.ledger_query import get_deal

    mock_clock.autojump_threshold = 0.1
    rev_held, joined = trio.Event(), trio.Event()

    async def answer(msg, send):                  # never answers anything
        if msg["t"] == "0420" and not rev_held.is_set():
            rev_held.set()
            await joined.wait()

    host = Host(answer)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    front = {**REVERSAL, "11": PURCHASE["11"]}
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (queue,) = sb.saf
        queue.alert_after, queue.backoff_cap = 2, 0.2
        await ask(sb.channel("cp_mainframe").port, PURCHASE)
        with trio.fail_after(60):
            await rev_held.wait()
        c = await Client.open(sb.channel("cp_mainframe").port)
        await c.send(frame(front))
        with trio.move_on_after(30):
            while not getattr(sb.channel("cp_host"), "joined", 0):
                await trio.sleep(0.25)
        joined.set()
        with trio.fail_after(60):
            (raw,) = await c.recv()
        await c.aclose()
        with trio.fail_after(600):
            while queue.flagged < 1:
                await trio.sleep(0.25)
    assert strict(raw)["39"] == "00"
    purchase, = [d for d in deals(ledger) if d["route"] == "card_purchase"]
    rev, = [d for d in deals(ledger) if d["route"] == "card_reversal"]
    done = resolve_in_file(ledger, purchase["deal_id"], "applied", "the host kept the purchase", "ops-1", None)
    assert any(rev["deal_id"] in w and "next starts" in w for w in done["warnings"]), done["warnings"]
    async with running(program, ledger, overrides(port, "3s")) as sb:
        (queue,) = sb.saf
        with trio.move_on_after(60):               # a guard (MockClock time): the flag follows the cancel at once
            while queue.joined_flagged < 1 or queue.cancelled < 1:
                await trio.sleep(0.25)
    events = get_deal(ledger, rev["deal_id"])["events"]
    flags = [e for e in events if e["to_state"] == "reversal flagged"]
    assert len(flags) == 1 and flags[0]["detail"]["joined"] == purchase["deal_id"], events
    assert flags[0]["detail"]["resolution"]["outcome"] == "applied", flags[0]
    assert flag_state(events)[0] == "open"
    assert "0421" not in host.mtis()[host.mtis().index("0420") + 3:]     # nothing sent after the restart


async def test_a_malformed_reversal_is_answered_0410_30_with_its_de90(program, tmp_path) -> None:
    # DE 7 month 13: the answer echoes every other field read, DE 2 and DE 90 included (an 0410 carries them:
    # the front end matches a reversal's answer by them), and the request is dead-lettered with its offset
    bad = LENIENT.encode({**REVERSAL, "7": "1325120105"})
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(1)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port, bad)
    assert dict(LENIENT.decode(raw)) == {
        "t": "0410", "2": REVERSAL["2"], "3": "000000", "4": "000000012550", "11": "000043",
        "37": "CP000000042G", "39": "30", "41": "ATM00001", "49": "156", "90": DE90}
    (dl,) = _dead(ledger)
    assert "field 7" in dl["reason"] and "byte " in dl["reason"] and "6228480000000011" not in dl["reason"]


# ----------------------------------------------------------------------------- message MACs
# The shipped route carries no MACs; a network that MACs its messages turns them on in the format line. The
# same route with retail-des MACs (0800 / 0810 exempt): a request whose MAC does not verify is refused with
# 63, dead-lettered, and never processed (no deal step, no call to the card host).

MAC_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MAC_OPTIONS = ' mac_algorithm "retail-des" mac_key_env "BSP_CERT_MAC_KEY" mac_exempt ["0800", "0810"]'


@pytest.fixture
def macd_program(tmp_path, monkeypatch):
    from formats.iso8583.macs import MacPolicy, plan_mac
    monkeypatch.setenv("BSP_CERT_MAC_KEY", MAC_KEY.hex().upper())
    folder = tmp_path / "route"
    folder.mkdir()
    for f in ROUTE.parent.glob("*.csv"):
        (folder / f.name).write_bytes(f.read_bytes())
    text = ROUTE.read_text()
    for line in ("format CardIso = iso8583 iso8583_1987_ascii",
                 "format CardIsoAnswer = iso8583 iso8583_1987_ascii validate false"):
        assert line in text
        text = text.replace(line, line + MAC_OPTIONS)
    (folder / ROUTE.name).write_text(text)
    res = compile_paths([folder / ROUTE.name], default_registry())
    assert res.program is not None and not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics
    net = STRICT.with_mac(MacPolicy("retail-des", MAC_KEY, plan_mac(STRICT.spec, "retail-des", None), None,
                                    frozenset({"0800", "0810"})))
    return res.program, net


@pytest.mark.parametrize("request_", [PURCHASE, REVERSAL], ids=["0200", "0400"])
async def test_a_request_whose_mac_does_not_verify_is_refused_63_and_never_processed(
        macd_program, tmp_path, nursery, request_) -> None:
    program, net = macd_program

    async def answer(msg, send):
        await send(answered(msg, "00"))

    host = Host(answer)
    port = await host.serve(nursery)
    tampered = bytearray(net.encode(request_))
    at = tampered.index(b"000000012550") + 7                   # DE 4: 125.50 becomes 125.90
    tampered[at] = ord("9")
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger, overrides(port)) as sb:
        (raw,) = await ask(sb.channel("cp_mainframe").port, bytes(tampered))
    got = net.decode(raw)                                      # the refusal is MAC'd like every reply
    assert (got["t"], got["11"], got["39"]) == (request_["t"][:2] + "10", request_["11"], "63")
    assert host.seen == []                                     # never processed
    (d,) = deals(ledger)
    assert (d["status"], d["response_code"]) == ("rejected", "63")
    (dl,) = _dead(ledger)
    assert (dl["error_kind"], dl["error_code"], bytes(dl["raw"])) == ("unauthenticated", "63", bytes(tampered))
    # the MAC field by the ISO convention: 64, or 128 in a message with a secondary bitmap (the 0400's DE 90)
    field = "128" if request_["t"] == "0400" else "64"
    assert f"field {field}: MTI {request_['t']}: the MAC in field {field} does not verify" in dl["reason"]
