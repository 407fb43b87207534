"""`limit` steps (engine/totals.py) on real sockets and real DuckDB ledgers: concurrent deals at a cap's
edge, a total per currency, release on failure, repeats counted once, the totals rebuilt after a SIGKILL of
a real `bsp run` (deals in flight at the kill counted until resolved)."""
from __future__ import annotations

import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import trio

from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running, start_engine

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 60s }
route pay {
    receive from front as J
    on restart %s
    deal PAY { ref = msg.ref  amount = msg.amount  currency = msg.ccy  key = msg.ref }
    limit cap { key = msg.who  max = 100.00  code = "61"  text = "over the limit" }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
        compensate call back as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


def _req(ref: str, amount: str, who: str = "A", ccy: str = "EUR") -> bytes:
    return b'{"ref": "%s", "amount": %s, "who": "%s", "ccy": "%s"}' % (ref.encode(), amount.encode(),
                                                                        who.encode(), ccy.encode())


async def _one(port: int, payload: bytes) -> dict:
    c = await Client.open(port)
    try:
        await c.send(payload)
        (r,) = await c.recv_json()
        return r
    finally:
        await c.aclose()


async def test_concurrent_deals_at_the_cap_edge_pass_only_what_fits_per_currency(nursery, tmp_path: Path) -> None:
    """Ten deals of 30.00 for one key, each on its own connection, all in flight at once (the counterpart
    answers after a pause): 3 fit under 100.00, 7 are refused 61 before any call; the counterpart sees 3
    posts.  The same key in JPY is a total of its own: 3 more pass there."""
    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer, delay=0.3)     # keeps the deals that passed in flight
    prog = compile_text(tmp_path, ROUTE % (back, "flag"))
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        got: dict[str, dict] = {}

        async def send(ref: str, ccy: str) -> None:
            got[ref] = await _one(port, _req(ref, "30.00", ccy=ccy))

        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(send, f"E{i}", "EUR")
                n.start_soon(send, f"J{i}", "JPY")
    for ccy in "EJ":
        codes = Counter(r["code"] for ref, r in got.items() if ref[0] == ccy)
        assert codes == {"00": 3, "61": 7}, (ccy, codes)
    assert sum(v for (op, _), v in cp.counts.items() if op == "post") == 6
    rows_ = deals(ledger)
    assert sum(d["status"] == "committed" for d in rows_) == 6
    refused = [d for d in rows_ if d["status"] == "rejected"]
    assert len(refused) == 14 and all("limit cap" in d["reason"] for d in refused)
    counted = rows(ledger, "SELECT detail FROM deal_events WHERE to_state = 'counted'")
    assert sorted(orjson.loads(r["detail"])["currency"] for r in counted) == ["EUR"] * 3 + ["JPY"] * 3


async def test_a_failed_deal_gives_its_amount_back_and_a_repeat_counts_once(nursery, tmp_path: Path) -> None:
    cp = Counterpart(refuse={"R1"})
    back = await json_counterpart(nursery, cp.answer)
    prog = compile_text(tmp_path, ROUTE % (back, "flag"))
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        assert (await _one(port, _req("R1", "80.00")))["code"] == "05"     # refused by the counterpart
        assert (await _one(port, _req("R2", "80.00")))["code"] == "00"     # fits: R1 gave its 80.00 back
        assert (await _one(port, _req("R3", "30.00")))["code"] == "61"     # 80 + 30 > 100
        assert (await _one(port, _req("R2", "80.00")))["code"] == "00"     # a repeat: the first's answer
        assert (await _one(port, _req("R4", "20.00")))["code"] == "00"     # exactly 100.00
        assert (await _one(port, _req("R5", "0.01")))["code"] == "61"
    statuses = Counter(d["status"] for d in deals(ledger))
    assert statuses == {"committed": 2, "failed": 1, "rejected": 2, "duplicate": 1}
    counted = rows(ledger, "SELECT d.reference FROM deal_events e JOIN deals d USING (deal_id) "
                           "WHERE e.to_state = 'counted' ORDER BY 1")
    assert [r["reference"] for r in counted] == ["R2", "R4"]


class _Hold:
    """Answers the first ``answer_first`` posts, holds the later ones (in flight at the kill); ``holding``
    is set once ``want`` are held."""

    def __init__(self, answer_first: int, want: int) -> None:
        self.answer_first, self.want = answer_first, want
        self.answered = self.held = 0
        self.holding = trio.Event()
        self.counts: Counter = Counter()

    def __call__(self, req: dict) -> dict | None:
        self.counts[(req["op"], req["ref"])] += 1
        if req["op"] == "post" and self.answered >= self.answer_first:
            self.held += 1
            if self.held >= self.want:
                self.holding.set()
            return None
        self.answered += req["op"] == "post"
        return {"status": "OK", "ref": req["ref"]}


async def _kill_with_two_in_flight(nursery, tmp_path: Path, policy: str) -> tuple[Path, Path, _Hold]:
    """`bsp run`: 4 deals of 10.00 committed, 2 more held at the counterpart, then SIGKILL."""
    hold = _Hold(4, 2)
    back = await json_counterpart(nursery, hold)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (back, policy))
    ledger = tmp_path / "ledger.duckdb"
    served = await start_engine(route, ledger)
    proc = served.proc
    try:
        port = served.ports["front"]
        for i in range(4):
            with trio.fail_after(30):
                assert (await _one(port, _req(f"K{i}", "10.00")))["code"] == "00"
        clients = [await Client.open(port) for _ in range(2)]
        for i, c in enumerate(clients):
            await c.send(_req(f"F{i}", "10.00"))
        with trio.fail_after(30):                    # a guard against a hang, not a timing
            await hold.holding.wait()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        for c in clients:
            await c.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    hold.answer_first = 10 ** 6                       # the restart's compensations are answered
    return route, ledger, hold


async def _fill_after_restart(route: Path, ledger: Path) -> Counter:
    """Restart, send ten deals of 10.00 one by one; the codes they got."""
    served = await start_engine(route, ledger)
    proc = served.proc
    codes: Counter = Counter()
    try:
        for i in range(10):
            with trio.fail_after(30):
                codes[(await _one(served.ports["front"], _req(f"N{i}", "10.00")))["code"]] += 1
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    return codes


async def test_sigkill_then_restart_rebuilds_the_totals_and_counts_flagged_in_flight_deals(nursery, tmp_path) -> None:
    """40.00 committed, 20.00 in flight at the kill; `on restart flag`: the two are flagged (their posts may
    stand) and keep counting: after the restart only 40.00 more fit (4 of 10 pass), not 100.00."""
    route, ledger, _ = await _kill_with_two_in_flight(nursery, tmp_path, "flag")
    codes = await _fill_after_restart(route, ledger)
    assert codes == {"00": 4, "61": 6}
    counted = rows(ledger, "SELECT count(*) AS n FROM deal_events WHERE to_state = 'counted'")[0]["n"]
    assert counted == 10            # K0..K3, the two flagged, N0..N3


async def test_sigkill_then_restart_gives_back_what_recovery_compensates(nursery, tmp_path) -> None:
    """The same with `on restart compensate`: the two deals in flight are undone at the restart, so their
    20.00 is free again: 6 of 10 pass."""
    route, ledger, hold = await _kill_with_two_in_flight(nursery, tmp_path, "compensate")
    codes = await _fill_after_restart(route, ledger)
    assert codes == {"00": 6, "61": 4}
    assert hold.counts[("cancel", "F0")] == hold.counts[("cancel", "F1")] == 1


async def test_a_row_written_again_from_the_log_counts_what_its_end_counted(nursery, tmp_path: Path) -> None:
    """A crash between the log's ``end`` of a counted deal (90.00) and its ledger row: the restart writes the
    row from the log with its ``counted`` event, and the total holds it: 20.00 more does not fit, 10.00 does."""
    from engine.txn.log import TxnLog, log_path

    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    prog = compile_text(tmp_path, ROUTE % (back, "flag"))
    ledger = tmp_path / "l.duckdb"
    log = TxnLog(log_path(ledger))
    log.append([{"t": "end", "id": "0" * 31 + "1", "key": "pay|G1", "status": "committed", "code": "00",
                 "reason": None, "reply": b'{"ref":"G1","code":"00"}'.hex(), "route": "pay", "channel": "front",
                 "version": "v0", "at": "2027-01-15T08:00:00+00:00", "type": "PAY", "ref": "G1", "amount": "90.00",
                 "currency": "EUR", "party": None, "fin": 0.0,
                 "holds": [{"total": "cap", "key": "A", "currency": "EUR", "day": "", "amount": "90.00"}]}])
    log.close()
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        assert (await _one(port, _req("G2", "20.00")))["code"] == "61"
        assert (await _one(port, _req("G3", "10.00")))["code"] == "00"
    counted = rows(ledger, "SELECT d.reference FROM deal_events e JOIN deals d USING (deal_id) "
                           "WHERE e.to_state = 'counted' ORDER BY 1")
    assert [r["reference"] for r in counted] == ["G1", "G3"]


DAILY = ROUTE.replace('max = 100.00  code', 'max = 100.00  per = "day"  code')


async def test_a_daily_total_is_read_back_for_its_business_day_only(nursery, tmp_path: Path) -> None:
    """A daily total with the bank's day (Shanghai, cut-off 17:00): 90.00 counted at 17:30 local on the 25th
    belongs to the 26th; an engine started again at 16:00 on the 26th reads it back (20.00 more does not
    fit), one started on the 27th does not (90.00 fits again)."""
    from datetime import datetime

    from dsl.clock import engine_clock
    from engine.journal import open_ledger_sync
    from engine.totals import totals_for
    from txnkit import switchboard

    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    prog = compile_text(tmp_path, DAILY % (back, "flag"))
    ledger = tmp_path / "l.duckdb"

    async def serve_at(instant: str, sends: list[tuple[str, str]]) -> list[str]:
        with engine_clock(datetime.fromisoformat(instant)):
            async with open_ledger_sync(ledger, "duckdb") as led:
                totals_for(led).set_business_day("Asia/Shanghai", "17:00")
                async with switchboard(prog, led) as sb:
                    port = sb.channel("front").port
                    return [(await _one(port, _req(ref, amount)))["code"] for ref, amount in sends]

    assert await serve_at("2026-11-25T09:30:00+00:00", [("D1", "90.00")]) == ["00"]
    assert await serve_at("2026-11-26T08:00:00+00:00", [("D2", "20.00"), ("D3", "10.00")]) == ["61", "00"]
    assert await serve_at("2026-11-27T08:00:00+00:00", [("D4", "90.00")]) == ["00"]
    days = rows(ledger, "SELECT d.reference, json_extract_string(e.detail, '$.day') AS day FROM deal_events e "
                        "JOIN deals d USING (deal_id) WHERE e.to_state = 'counted' ORDER BY 1")
    assert [(r["reference"], r["day"]) for r in days] == [("D1", "2026-11-26"), ("D3", "2026-11-26"),
                                                          ("D4", "2026-11-27")]


async def test_a_classified_key_is_kept_as_a_digest_never_in_clear(nursery, tmp_path: Path) -> None:
    """An investor's account, classified personal in the request's format, keys the total: the ledger's
    `counted` event and the engine's totals hold a digest of it, and the account is nowhere in deal_events."""
    from engine.totals import existing_totals

    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    text = (ROUTE % (back, "flag")).replace("format J = json", 'format J = json classify ["who:personal"]')
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        assert (await _one(port, _req("P1", "60.00", who="6222000011112222")))["code"] == "00"
        assert (await _one(port, _req("P2", "50.00", who="6222000011112222")))["code"] == "61"
        (bucket,) = existing_totals(sb.ledger).confirmed
    assert bucket[1].startswith("#") and "6222000011112222" not in bucket[1]
    (e,) = rows(ledger, "SELECT detail FROM deal_events WHERE to_state = 'counted'")
    assert orjson.loads(e["detail"])["key"] == bucket[1]
    every = rows(ledger, "SELECT string_agg(CAST(detail AS VARCHAR), ' ') AS t FROM deal_events")[0]["t"]
    assert "6222000011112222" not in every


async def test_a_classified_key_counted_before_keyed_digests_still_counts_after(nursery, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """With a field keyring a classified key's digest is keyed (``#k1:...``, engine/limit_key.py); until
    2026-11-27 it was an unkeyed BLAKE2b digest an account number could be tried against.  What was counted
    under the old digest (a total without a day: it never expires) still counts for the same key after the
    upgrade and after a key rotation: the deal that would pass the maximum is refused.  The key's first deal
    after each moves the old digest's figure into the current one's bucket (event `rekeyed`), so it still
    counts once the rotated key k1 leaves the keyring."""
    import base64

    from engine.fieldcrypt import Keyring
    from engine.limit_key import LimitKeys
    from engine.totals import existing_totals, totals_for

    k1, k2 = bytes(range(32)), bytes(range(1, 33))
    monkeypatch.setenv("BSP_FIELD_KEYS", "k1:" + base64.b64encode(k1).decode())
    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    text = (ROUTE % (back, "flag")).replace("format J = json", 'format J = json classify ["who:personal"]')
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    who = "6222000011112222"
    async with running(prog, ledger) as sb:                       # before the upgrade
        totals_for(sb.ledger).keys = LimitKeys()                  # the unkeyed digest, as it was made
        assert (await _one(sb.channel("front").port, _req("U1", "40.00", who=who)))["code"] == "00"
    async with running(prog, ledger) as sb:                       # upgraded: keyed with k1
        port = sb.channel("front").port
        assert (await _one(port, _req("U2", "30.00", who=who)))["code"] == "00"
        assert (await _one(port, _req("U3", "40.00", who=who)))["code"] == "61"      # 40 + 30 + 40 > 100
        buckets = dict(existing_totals(sb.ledger).confirmed)
    old = LimitKeys().like("cap", who, "")
    (new,) = buckets                                              # U1's 40.00 moved into the keyed bucket
    assert new[1].startswith("#k1:") and new[1] != old and who not in new[1]
    assert buckets[new] == Decimal("70.00")
    (moved,) = rows(ledger, "SELECT d.reference, e.detail FROM deal_events e JOIN deals d USING (deal_id) "
                            "WHERE e.to_state = 'rekeyed'")
    assert moved["reference"] == "U2" and orjson.loads(moved["detail"]) == {
        "total": "cap", "key": new[1], "from": old, "currency": "EUR", "day": "", "amount": "40.00"}
    monkeypatch.setenv("BSP_FIELD_KEYS", "k2:%s,k1:%s" % (base64.b64encode(k2).decode(),
                                                          base64.b64encode(k1).decode()))
    async with running(prog, ledger) as sb:                       # rotated: k2 current, k1 kept
        port = sb.channel("front").port
        assert (await _one(port, _req("U4", "40.00", who=who)))["code"] == "61"      # 40 + 30 + 40 > 100
        assert (await _one(port, _req("U5", "30.00", who=who)))["code"] == "00"      # 40 + 30 + 30
    assert LimitKeys(Keyring("k2", {"k2": k2}))("cap", who).startswith("#k2:")
    # k1 dropped once the transaction log holds nothing sealed with it (its key retention over: here the log
    # of the deals, all recorded, is removed, with its answers files); its figures were moved to k2's bucket
    import shutil

    from engine.txn.answers import answers_dir
    from engine.txn.log import log_path

    txn = log_path(ledger)
    shutil.rmtree(txn) if txn.is_dir() else txn.unlink()
    shutil.rmtree(answers_dir(txn))
    monkeypatch.setenv("BSP_FIELD_KEYS", "k2:%s" % base64.b64encode(k2).decode())
    async with running(prog, ledger) as sb:
        assert (await _one(sb.channel("front").port, _req("U6", "0.01", who=who)))["code"] == "61"
        assert {b[1][:4] for b in existing_totals(sb.ledger).confirmed} == {"#k2:"}
    every = rows(ledger, "SELECT string_agg(CAST(detail AS VARCHAR), ' ') AS t FROM deal_events")[0]["t"]
    assert who not in every and (d := {r["reference"]: r["reason"] for r in deals(ledger)})["U4"]
    assert "70.00 already counted" in d["U4"], d["U4"]


async def test_a_maximum_the_table_does_not_hold_refuses_the_deal_never_unlimited(nursery, tmp_path: Path) -> None:
    """``max`` from a table's column: a currency the table has no row for refuses the deal with the limit's
    code (no call made), and one it has is counted against its row."""
    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    (tmp_path / "caps.csv").write_text("ccy,daily\nEUR,100.00\n")
    text = (ROUTE % (back, "flag")).replace("max = 100.00", "max = lookup(caps, msg.ccy, \"daily\", null)")
    prog = compile_text(tmp_path, 'table caps = csv "caps.csv" key ccy\n' + text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        assert (await _one(port, _req("M1", "10.00", ccy="JPY")))["code"] == "61"
        assert (await _one(port, _req("M2", "95.00")))["code"] == "00"
        assert (await _one(port, _req("M3", "10.00")))["code"] == "61"
    assert cp.counts == Counter({("post", "M2"): 1})
    reasons = {d["reference"]: d["reason"] for d in deals(ledger)}
    assert "no maximum for key 'A'" in reasons["M1"] and "95.00 already counted" in reasons["M3"]


async def test_a_repeat_of_an_answered_deal_reserves_nothing_beside_a_new_deal_in_its_batch(nursery,
                                                                                         tmp_path: Path) -> None:
    """O1 (30.00) committed.  Then one chunk holds a repeat of O1 and a new deal N1 of 70.00: the repeat's key
    is answered already, so it is O1's duplicate and reserves nothing (checked right after the deal step,
    before the limit): N1 takes the total to exactly 100.00 and passes; before, the repeat's 30.00 stayed
    reserved until its admission and N1 was refused 61 at 130.00."""
    cp = Counterpart()
    back = await json_counterpart(nursery, cp.answer)
    prog = compile_text(tmp_path, ROUTE % (back, "flag"))
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("front").port
        assert (await _one(port, _req("O1", "30.00")))["code"] == "00"
        c = await Client.open(port)
        try:
            await c.send(_req("O1", "30.00"), _req("N1", "70.00"))      # one batch
            got = {r["ref"]: r["code"] for r in await c.recv_json(2)}
        finally:
            await c.aclose()
        assert (await _one(port, _req("N2", "0.01")))["code"] == "61"  # 100.00 counted: O1 once, N1
    assert got == {"O1": "00", "N1": "00"}, got
    statuses = sorted((d["reference"], d["status"]) for d in deals(ledger))
    assert statuses == [("N1", "committed"), ("N2", "rejected"), ("O1", "committed"), ("O1", "duplicate")]
    assert cp.counts[("post", "O1")] == 1
