"""``on refusal keep|free`` (docs/transactions.md#which-failures-keep-the-key): a keyed deal a counterpart
refused (a call's ``expect`` false) keeps its key by default, so that every repeat gets the refusal again;
``on refusal free`` frees it when nothing else of the deal stands, so that a repeat runs again. Premium
collection needs it: a debit refused for insufficient funds took nothing, and the insurer presents the
premium again under the same key (policy and due date) within the grace period; until 2026-11-28 it was
answered with the first refusal for 35 days.

Real engine in process, real JSON counterparts over TCP on 127.0.0.1 port 0, a real DuckDB ledger and
transaction log."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from test_txn_key_conflict import ask
from txnkit import Counterpart, compile_text, json_counterpart, rows, running

ONE_CALL = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route premium {
    receive from front as J
    %s
    deal PREMIUM { ref = msg.ref  amount = msg.amount  currency = "CNY"  party = msg.policy  key = msg.policy }
    call d = debit as J reply J { op = "post"  ref = msg.policy  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""


def notice(ref: str, policy: str = "PL1") -> bytes:
    return orjson.dumps({"ref": ref, "policy": policy, "amount": orjson.Fragment(b"75.50")})


async def _present_twice(nursery, tmp_path: Path, policy_line: str) -> tuple[list[dict], Counterpart, Path]:
    debit = Counterpart(refuse={"PL1"})
    program = compile_text(tmp_path, ONE_CALL % (await json_counterpart(nursery, debit.answer), policy_line))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        (first,) = await ask(sb.channel("front").port, orjson.loads(notice("N1")))
        debit.refuse.clear()                        # the customer's account is funded again
        (second,) = await ask(sb.channel("front").port, orjson.loads(notice("N2")))
    return [first, second], debit, ledger


@pytest.mark.parametrize("policy_line", ["", "on refusal keep"])
async def test_by_default_a_refusal_keeps_the_key(nursery, tmp_path: Path, policy_line: str) -> None:
    (first, second), debit, ledger = await _present_twice(nursery, tmp_path, policy_line)
    assert first == {"ref": "N1", "code": "05", "kind": "refused"}
    assert second == first                          # the refusal again, N1's answer: nothing debited
    assert debit.counts[("post", "PL1")] == 1
    assert [r["status"] for r in rows(ledger, "SELECT status FROM deals ORDER BY received_at")] == \
        ["failed", "duplicate"]


async def test_on_refusal_free_runs_the_next_presentment(nursery, tmp_path: Path) -> None:
    (first, second), debit, ledger = await _present_twice(nursery, tmp_path, "on refusal free")
    assert first == {"ref": "N1", "code": "05", "kind": "refused"}
    assert second == {"ref": "N2", "code": "00", "conf": "C-PL1-post"}
    assert debit.counts[("post", "PL1")] == 2
    assert [r["status"] for r in rows(ledger, "SELECT status FROM deals ORDER BY received_at")] == \
        ["failed", "committed"]
    # the refused deal's key was freed, and the ledger's key index names only the committed one
    keys = rows(ledger, "SELECT d.reference FROM deal_keys k JOIN deals d USING (deal_id) WHERE k.key = 'premium|PL1'")
    assert keys == [{"reference": "N2"}]


TWO_CALLS = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route transfer {
    receive from front as J
    on refusal free
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } %s
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


@pytest.mark.parametrize("cancel_expect, runs_again", [('expect d.status == "OK"', True), ("", False)])
async def test_on_refusal_free_frees_only_when_the_calls_before_were_undone(
        nursery, tmp_path: Path, cancel_expect: str, runs_again: bool) -> None:
    """The credit refused after the debit went through: the key is freed only when the debit's cancel was
    proven (its `expect` held on its own answer); a cancel without `expect` leaves the key taken."""
    debit, credit = Counterpart(), Counterpart(refuse={"T1"})
    program = compile_text(tmp_path, TWO_CALLS % (await json_counterpart(nursery, debit.answer),
                                                 await json_counterpart(nursery, credit.answer), cancel_expect))
    async with running(program, tmp_path / "l.duckdb") as sb:
        body = {"ref": "T1", "amount": orjson.Fragment(b"10.00")}
        (first,) = await ask(sb.channel("front").port, body)
        credit.refuse.clear()
        (second,) = await ask(sb.channel("front").port, body)
    assert first == {"ref": "T1", "code": "05"}
    assert debit.counts[("cancel", "T1")] == 1
    if runs_again:
        assert second == {"ref": "T1", "code": "00"} and debit.counts[("post", "T1")] == 2
    else:
        assert second == first and debit.counts[("post", "T1")] == 1
