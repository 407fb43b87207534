"""A dead letter of a keyed deal, retried once its counterpart is back (docs/ledger.md "Dead letters",
docs/transactions.md "Idempotency"): which keyed failures keep their deal key and which free it.

The rule: a deal of which it is certain that nothing reached any counterpart (or everything that did was
undone by a compensation that answered, its `expect` holding on that answer) frees its key: a retry (and
a repeat) runs as a new deal. Any other keyed deal keeps its key: a retry is answered as a repeat, refused
with a reason that tells the operator what to do.

Real engine (LiveEngine, the admin API's retry: ``EngineBackend.retry_dead_letter``), real loopback
counterparts (one bound but not listening first: its connects are refused, nothing is sent), a real DuckDB
ledger and transaction log."""
from __future__ import annotations

import os

from collections import Counter
from pathlib import Path

import orjson
import trio

from engine.ledger_query import query_dead_letters
from engine.ops.backend import EngineBackend
from engine.ops.ledger_reads import read_in_process
from formats.framing import LengthPrefixFramer
from opskit import live, rows

CLOSE = "close"

# shaped like the shipped keyed routes (bill payment: checks before the key, the deal key, a call with
# `expect`, an `on error reply`), with a second call and compensations as in docs/transactions.md
ROUTE = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 60s  reconnect_max = 100ms }
channel credit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 60s  reconnect_max = 100ms }

route transfer {
    receive from front as J
    validate { len(trim(msg.ref)) > 0 else reject "30" "reference (ref) missing" }
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"
                    key = msg.ref + "/" + msg.day }
    validate { msg.amount <= 1000 else reject "61" "amount over the single-payment limit" }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
'''


class Host:
    """A JSON counterpart (length4) whose port is bound at once; ``down`` (bound, not listening: every
    connect is refused, nothing can be sent) until ``up``.  Counts each request by (op, ref); ``how``
    maps a ref (and op) to the status it answers ("NO", "REFUSED": a business refusal; else "OK") or
    CLOSE (the request read, the connection closed without an answer)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.how: dict[tuple[str, str], str] = {}
        self.sock: trio.socket.SocketType | None = None
        self.port = 0

    async def bind(self) -> "Host":
        self.sock = trio.socket.socket()
        await self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        return self

    async def up(self, nursery: trio.Nursery) -> None:
        assert self.sock is not None
        self.sock.listen(16)
        await nursery.start(trio.serve_listeners, self._serve, [trio.SocketListener(self.sock)])

    async def _serve(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                for p in f.feed(data):
                    req = orjson.loads(p)
                    op, ref = req.get("op", "post"), req.get("ref")
                    self.counts[(op, ref)] += 1
                    how = self.how.get((op, ref))
                    if how == CLOSE:
                        return
                    status = how or "OK"
                    try:
                        await stream.send_all(f.frame(orjson.dumps({"status": status, "ref": ref})))
                    except trio.BrokenResourceError:
                        return


def req(ref: str, amount: str = "10.00", day: str = "20260301") -> bytes:
    return b'{"ref":"%s","amount":%s,"day":"%s"}' % (ref.encode(), amount.encode(), day.encode())


async def ask(port: int, raw: bytes) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(tx.frame(raw))
    got: list[bytes] = []
    while not got:
        data = await stream.receive_some(65536)
        assert data, "the engine closed the connection without an answer"
        got.extend(rx.feed(data))
    await stream.aclose()
    return orjson.loads(got[0])


async def letter_of(ledger: Path, ref: str) -> dict:
    """The newest dead letter whose message carries ``ref`` (waits for it: it is stored after the commit)."""
    with trio.fail_after(60):
        while True:
            letters = await read_in_process(query_dead_letters, ledger, with_raw=True)
            mine = [x for x in letters if x.get("raw") is not None and orjson.loads(bytes(x["raw"]))["ref"] == ref]
            if mine:
                return mine[0]
            await trio.sleep(0.02)


async def connected(eng, name: str) -> None:
    """The channel reconnected to its counterpart (it retries every reconnect_max, 100 ms here)."""
    with trio.fail_after(60):
        while eng.channels[name].down_since is not None or not eng.channels[name]._connected:
            await trio.sleep(0.02)


async def retry(eng, letter_id: str, again: bool = False) -> dict:
    with trio.fail_after(60):
        return dict(await EngineBackend(eng).retry_dead_letter(letter_id, again=again))


def route_file(tmp_path: Path, debit: Host, credit: Host, route: str = ROUTE) -> Path:
    path = tmp_path / "transfer.route"
    path.write_text(route % (debit.port, credit.port))
    return path


def statuses(ledger: Path, ref: str) -> list[str]:
    return [r[0] for r in rows(ledger, f"SELECT status FROM deals WHERE reference = '{ref}' ORDER BY finished_at")]


async def test_a_first_counterpart_refused_the_connection_retry_runs_once_it_is_back(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("A1"))) == {"ref": "A1", "code": "91"}      # debit down: nothing sent
        letter = await letter_of(ledger, "A1")
        await debit.up(nursery)
        await connected(eng, "debit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is True and res["outcome"].startswith("committed (deal "), res
        # a repeat of the committed deal is answered from the key store, never run again
        assert (await ask(port, req("A1"))) == {"ref": "A1", "code": "00"}
        # retried once more: refused, naming when and the deal it produced; run only with again
        refused = await retry(eng, letter["id"])
        assert refused["skipped"] is True and refused["outcome"].startswith("refused: status retried: "), refused
        assert res["outcome"] in refused["outcome"], refused
        again = await retry(eng, letter["id"], again=True)
        assert again["ok"] is False and again["outcome"].startswith("duplicate: "), again
    assert debit.counts == Counter({("post", "A1"): 1}) and credit.counts == Counter({("post", "A1"): 1})
    assert statuses(ledger, "A1") == ["failed", "committed", "duplicate", "duplicate"]
    [row] = [x for x in query_dead_letters(ledger) if x["id"] == letter["id"]]
    assert row["status"] == "retried"
    # the failed deal says its key was freed, and the ledger's deal key index (a repeat past the key store's
    # retention is looked up there) names only the committed deal
    [(failed,)] = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'A1' AND status = 'failed'")
    [(committed,)] = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'A1' AND status = 'committed'")
    events = rows(ledger, f"SELECT to_state, detail FROM deal_events WHERE deal_id = '{failed}' ORDER BY seq")
    assert events[0] == ("accepted", '{"key_freed":"transfer|A1/20260301"}'), events
    # then its dead letter's status changes (claimed by the retry, retried: chained, docs/ledger.md)
    deal_events = [e for e in events if e[0] != "dead_letter"]
    assert events[len(deal_events):] and all(e[0] == "dead_letter" for e in events[len(deal_events):]), events
    assert deal_events[-1][0] == "failed" and "key_freed" in deal_events[-1][1]
    assert rows(ledger, "SELECT key, deal_id FROM deal_keys") == [("transfer|A1/20260301", committed)]


async def test_a_repeat_from_the_mainframe_runs_again_once_the_counterpart_is_back(nursery, tmp_path: Path) -> None:
    # nothing of the first attempt reached a counterpart: the mainframe's repeat (same key) runs as a new
    # deal, and the counterpart sees the request once; repeats of the committed one are answered from it
    debit, credit = await Host().bind(), await Host().bind()
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("M1"))) == {"ref": "M1", "code": "91"}
        await debit.up(nursery)
        await connected(eng, "debit")
        assert (await ask(port, req("M1"))) == {"ref": "M1", "code": "00"}
        assert (await ask(port, req("M1"))) == {"ref": "M1", "code": "00"}
    assert debit.counts == Counter({("post", "M1"): 1}) and credit.counts == Counter({("post", "M1"): 1})
    assert statuses(ledger, "M1") == ["failed", "committed", "duplicate"]


async def test_b_a_check_before_any_call_keeps_no_key(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    await debit.up(nursery)
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("B1", "5000.00"))) == {"ref": "B1", "code": "61"}   # checked after the key
        letter = await letter_of(ledger, "B1")
        res = await retry(eng, letter["id"])        # a new deal, checked again (not a repeat)
        assert res["ok"] is False and res["outcome"].startswith("rejected (deal "), res
        assert "single-payment limit" in res["outcome"]
        # the key is free: the corrected request under the same key runs
        assert (await ask(port, req("B1", "500.00"))) == {"ref": "B1", "code": "00"}
    assert debit.counts == Counter({("post", "B1"): 1})
    assert statuses(ledger, "B1") == ["rejected", "rejected", "committed"]


async def test_c_request_written_then_connection_closed_stays_in_doubt(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    debit.how[("post", "C1")] = CLOSE
    await debit.up(nursery)
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("C1"))) == {"ref": "C1", "code": "91"}      # lost: it may have been applied
        letter = await letter_of(ledger, "C1")
        debit.how.clear()
        await connected(eng, "debit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
        assert "may have reached" in res["outcome"] and "debit" in res["outcome"], res
        assert "ask the counterpart" in res["outcome"], res
        # a repeat from the mainframe is the original answer, nothing sent
        assert (await ask(port, req("C1"))) == {"ref": "C1", "code": "91"}
    assert debit.counts[("post", "C1")] == 1 and credit.counts[("post", "C1")] == 0
    assert statuses(ledger, "C1") == ["failed", "duplicate", "duplicate"]


async def test_d_business_refusal_is_an_answer_repeated(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    debit.how[("post", "D1")] = "NO"
    await debit.up(nursery)
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("D1"))) == {"ref": "D1", "code": "05"}
        letter = await letter_of(ledger, "D1")
        debit.how.clear()
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
        assert "refused" in res["outcome"] and "new key" in res["outcome"], res
        assert (await ask(port, req("D1"))) == {"ref": "D1", "code": "05"}       # the same answer
    assert debit.counts == Counter({("post", "D1"): 1}) and credit.counts == Counter()
    assert statuses(ledger, "D1") == ["failed", "duplicate", "duplicate"]


async def test_e_later_call_unreachable_after_the_first_was_compensated_retry_runs(nursery,
                                                                                  tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    await debit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("E1"))) == {"ref": "E1", "code": "91"}     # credit down; debit cancelled
        letter = await letter_of(ledger, "E1")
        await credit.up(nursery)
        await connected(eng, "credit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is True and res["outcome"].startswith("committed (deal "), res
    assert debit.counts == Counter({("post", "E1"): 2, ("cancel", "E1"): 1})
    assert credit.counts == Counter({("post", "E1"): 1})
    assert statuses(ledger, "E1") == ["failed", "committed"]


async def test_e_compensation_failed_keeps_the_key(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    debit.how[("cancel", "F1")] = CLOSE          # the cancel is lost: the debit may still stand
    await debit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("F1"))) == {"ref": "F1", "code": "91"}
        letter = await letter_of(ledger, "F1")
        await credit.up(nursery)
        await connected(eng, "credit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
        assert "not undone" in res["outcome"] and "debit" in res["outcome"], res
    assert debit.counts == Counter({("post", "F1"): 1, ("cancel", "F1"): 1}) and credit.counts == Counter()
    assert statuses(ledger, "F1") == ["failed", "duplicate"]


def _undo_of(ledger: Path, ref: str) -> tuple[str, list[tuple], list[str], list[tuple]]:
    """The failed deal of ``ref``: its id, its compensation's trace line, its events and its log phases."""
    from engine.txn.log import read

    [(deal,)] = rows(ledger, f"SELECT deal_id FROM deals WHERE reference = '{ref}' AND status = 'failed'")
    steps = rows(ledger, f"SELECT step, outcome, detail FROM deal_steps WHERE deal_id = '{deal}' "
                         f"AND step LIKE '%.compensate'")
    events = [e for (e,) in rows(ledger, f"SELECT to_state FROM deal_events WHERE deal_id = '{deal}' ORDER BY seq")]
    entries, _ = read(Path(f"{ledger}.txn"))
    phases = [(e["step"], e["phase"]) for e in entries if e.get("t") == "step" and e["id"] == deal]
    return deal, steps, events, phases


async def test_e_cancel_the_counterpart_refused_is_a_failed_compensation_and_keeps_the_key(nursery,
                                                                                         tmp_path: Path) -> None:
    # the compensation's `expect d.status == "OK"` judges the cancel's own answer: a cancel answered
    # "REFUSED" did not undo the debit, so the deal keeps its key and a retry never posts the debit again
    # (until 2026-11-26 `d` there was the post's answer, "OK": the refused cancel counted as undone, the key
    # was freed and the retry posted the debit a second time)
    debit, credit = await Host().bind(), await Host().bind()
    debit.how[("cancel", "R1")] = "REFUSED"
    await debit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    # `on error` reads `d` after the compensation ran: the post's answer again, not the cancel's
    route = ROUTE.replace("code = error.code }", "code = error.code  posted = d.status }")
    assert route != ROUTE
    answer = {"ref": "R1", "code": "91", "posted": "OK"}
    async with live([route_file(tmp_path, debit, credit, route)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("R1"))) == answer      # credit down; the debit's cancel refused
        letter = await letter_of(ledger, "R1")
        await credit.up(nursery)
        await connected(eng, "credit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
        assert "call d to debit went through and was not undone (its compensation failed" in res["outcome"], res
        assert "settle it with the counterpart" in res["outcome"], res
        assert (await ask(port, req("R1"))) == answer      # a repeat: the same answer
    assert debit.counts == Counter({("post", "R1"): 1, ("cancel", "R1"): 1}), debit.counts
    assert credit.counts == Counter()
    assert statuses(ledger, "R1") == ["failed", "duplicate", "duplicate"]
    deal, steps, events, phases = _undo_of(ledger, "R1")
    [(step, outcome, detail)] = steps
    assert (step, outcome) == ("d.compensate", "refused"), steps
    assert "call d.compensate: debit refused (expect at " in detail and "transfer.route:14:84 is false" in detail
    assert "compensation of d failed" in events and "compensated d" not in events, events
    # for an operator (docs); then its dead letter's status changes (the retry's claim and outcome: chained)
    assert [e for e in events if e != "dead_letter"][-3:] == ["compensation of d failed", "flagged", "failed"], events
    assert phases[-1] == ("d", "compensation_failed"), phases
    assert rows(ledger, "SELECT key, deal_id FROM deal_keys") == [("transfer|R1/20260301", deal)]


async def test_e_cancel_accepted_frees_the_key_and_the_retry_runs_once(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    await debit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("K1"))) == {"ref": "K1", "code": "91"}
        letter = await letter_of(ledger, "K1")
        await credit.up(nursery)
        await connected(eng, "credit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is True and res["outcome"].startswith("committed (deal "), res
    assert debit.counts == Counter({("post", "K1"): 2, ("cancel", "K1"): 1})
    assert statuses(ledger, "K1") == ["failed", "committed"]
    _, steps, events, phases = _undo_of(ledger, "K1")
    assert [(s, o) for s, o, _ in steps] == [("d.compensate", "ok")] and "compensated d" in events
    assert phases[-1] == ("d", "compensated"), phases


async def test_e_cancel_without_expect_proves_nothing_the_key_stays(nursery, tmp_path: Path) -> None:
    # a compensation without `expect`: its answer (here "OK", it might as well be "REFUSED") does not say the
    # counterpart accepted the cancel, so the deal keeps its key; the reason says to give it an `expect`
    debit, credit = await Host().bind(), await Host().bind()
    await debit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    route = ROUTE.replace('{ op = "cancel"  ref = msg.ref } expect d.status == "OK"', '{ op = "cancel"  ref = msg.ref }')
    assert route != ROUTE
    async with live([route_file(tmp_path, debit, credit, route)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("U1"))) == {"ref": "U1", "code": "91"}
        letter = await letter_of(ledger, "U1")
        await credit.up(nursery)
        await connected(eng, "credit")
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
        assert "its compensation answered, but has no `expect`" in res["outcome"], res
        assert 'expect d.status == "OK"' in res["outcome"], res
    assert debit.counts == Counter({("post", "U1"): 1, ("cancel", "U1"): 1}) and credit.counts == Counter()
    assert statuses(ledger, "U1") == ["failed", "duplicate"]
    _, steps, events, _ = _undo_of(ledger, "U1")
    assert [(s, o) for s, o, _ in steps] == [("d.compensate", "ok")] and "compensated d" in events


async def test_end_to_end_counterpart_down_dead_letter_up_bsp_dead_retry_deployment(nursery, tmp_path: Path,
                                                                                     monkeypatch) -> None:
    # the operator's story: the debit host is down, the deal fails and goes to the dead letters; the engine
    # stops; the host is back; `bsp dead retry ID --deployment platform.yaml` (the real CLI, its own process)
    # runs the deal: it commits, and the host saw the request once
    import sys

    from engine.ledger_query import query_deals

    for var in ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    debit, credit = await Host().bind(), await Host().bind()
    await credit.up(nursery)
    route = route_file(tmp_path, debit, credit)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        assert (await ask(eng.channels["front"].port, req("X1"))) == {"ref": "X1", "code": "91"}
        letter = await letter_of(ledger, "X1")
    assert debit.counts == Counter() and credit.counts == Counter()
    deployment = tmp_path / "platform.yaml"
    deployment.write_text(f"version: 1\nroutes: [{route.name}]\nledger: {{path: {ledger.name}}}\n")
    await debit.up(nursery)
    with trio.fail_after(60):
        res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter["id"],
                                      "--deployment", str(deployment)],
                                     cwd=str(tmp_path), capture_stdout=True, capture_stderr=True, check=False)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0, out
    assert f"{letter['id']}: retried: committed (deal " in out, out
    assert debit.counts == Counter({("post", "X1"): 1}) and credit.counts == Counter({("post", "X1"): 1})
    assert statuses(ledger, "X1") == ["failed", "committed"]
    [row] = [x for x in query_dead_letters(ledger) if x["id"] == letter["id"]]
    assert row["status"] == "retried" and row["retry_outcome"].startswith("committed (deal ")
    # who retried it, where the admin API records its token's name: the OS user running bsp (engine/operator.py)
    from engine.operator import os_user
    assert row["retry_outcome"].endswith(f" (bsp dead retry, by {os_user()!r})"), row
    # the committed deal holds the key (the failed one never did: not in the ledger's deal key index)
    committed = [d["deal_id"] for d in query_deals(ledger) if d["status"] == "committed"]
    assert rows(ledger, "SELECT key, deal_id FROM deal_keys") == [("transfer|X1/20260301", committed[0])]
    # again, by a named operator: --by recorded instead; the keyed route answers the repeat as a duplicate
    with trio.fail_after(60):
        res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter["id"], "--again",
                                      "--by", "carol", "--deployment", str(deployment)],
                                     cwd=str(tmp_path), capture_stdout=True, capture_stderr=True, check=False)
    [row] = [x for x in query_dead_letters(ledger) if x["id"] == letter["id"]]
    assert row["retry_outcome"].endswith(" (bsp dead retry, by 'carol')"), (row, res.stderr)
    # with --live the engine records the admin token's name: --by is refused, naming why
    res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter["id"], "--live",
                                  "--by", "carol"], capture_stdout=True, capture_stderr=True, check=False,
                                 env={**os.environ, "COLUMNS": "250"})
    assert res.returncode == 2 and b"records the admin token's name" in res.stderr, res.stderr
