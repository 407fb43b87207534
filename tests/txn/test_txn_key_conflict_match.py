"""``deal { match = ... }``: what a repeat of a deal key must carry unchanged besides amount, currency and party,
kept only as a digest (engine/txn/fingerprint.py, docs/transactions.md#a-repeat-that-is-another-deal-key_conflict).
Claims payout names the product as its party, so a claim id posted again with another beneficiary IBAN was
answered PAID from the first payout (a fraud signal answered as a retry); its ``match`` is the IBAN.

Real engine in process, a real JSON counterpart over TCP on 127.0.0.1 port 0, a real DuckDB ledger and
transaction log; time moves through the manager's injectable clock."""
from __future__ import annotations

from pathlib import Path

import orjson

from engine.txn import fingerprint, manager_for
from test_txn_key_conflict import ask
from test_txn_key_retention import DAY, Clock, serving
from txnkit import Counterpart, compile_text, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route payout {
    receive from front as J
    deal CLAIM {
        ref = msg.claim  amount = msg.amount  currency = "EUR"  party = msg.product  key = msg.claim
        match = replace(upper(trim(msg.iban)), " ", "")
    }
    validate { len(trim(msg.iban)) > 0 else reject "16" "iban missing" }
    call c = credit as J reply J { op = "post"  ref = msg.claim  amount = msg.amount } expect c.status == "OK"
    reply J { ref = msg.claim  code = "00"  conf = c.conf }
    on error reply J { ref = msg.claim  code = error.code  kind = error.kind }
}
"""

IBAN = "DE89370400440532013000"
OTHER = "DE44500105175407324931"


def claim(ref: str, iban: str = IBAN, amount: str = "100.00") -> dict:
    return {"claim": ref, "amount": orjson.Fragment(amount.encode()), "product": "HEALTH01", "iban": iban}


async def test_a_repeat_with_another_match_is_a_key_conflict_also_after_a_restart(nursery, tmp_path: Path) -> None:
    credit = Counterpart()
    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, credit.answer))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        first, spaced, other = await ask(sb.channel("front").port, claim("C1"),
                                         claim("C1", "de89 3704 0044 0532 0130 00"), claim("C1", OTHER))
    assert first == spaced == {"ref": "C1", "code": "00", "conf": "C-C1-post"}     # the same account, written so
    assert other == {"ref": "C1", "code": "12", "kind": "key_conflict"}
    async with running(program, ledger) as sb:      # the digest read back from the transaction log
        again, other2 = await ask(sb.channel("front").port, claim("C1"), claim("C1", OTHER))
        fp = manager_for(sb.ledger).log.ends["payout|C1"]["fp"]
    assert again == first and other2 == other
    assert credit.counts[("post", "C1")] == 1
    refused = rows(ledger, "SELECT deal_id, reason, party FROM deals WHERE status = 'rejected' ORDER BY received_at")
    assert len(refused) == 2
    assert all("match (a different value; not shown)" in r["reason"] and r["party"] == "HEALTH01" for r in refused)
    events = rows(ledger, "SELECT detail FROM deal_events WHERE to_state = 'key_conflict' AND deal_id = ?",
                  [refused[0]["deal_id"]])
    assert orjson.loads(events[0]["detail"])["fields"] == ["match"]
    # the IBAN is never written out: neither in a refusal, nor in the key store's fingerprint
    assert fp.endswith("|" + fingerprint.digest(IBAN)) and IBAN not in fp
    assert all(IBAN not in r["reason"] and OTHER not in r["reason"] for r in refused)


async def test_past_the_retention_the_match_is_not_compared(nursery, tmp_path: Path) -> None:
    """The ledger row has no match: past the key store's retention a repeat is compared on amount, currency and
    party only (a repeat with another IBAN is then refused 94 as any repeat past the retention, not run)."""
    credit = Counterpart()
    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, credit.answer))
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        first, _ = await ask(sb.channel("front").port, claim("P1"), claim("P0"))
    clock.t += 40 * DAY
    async with serving(program, ledger, clock) as sb:
        assert "payout|P1" not in manager_for(sb.ledger).log.ends
        other, more = await ask(sb.channel("front").port, claim("P1", OTHER), claim("P1", OTHER, "100.01"))
    assert first["code"] == "00"
    assert other == {"ref": "P1", "code": "94", "kind": "duplicate"}
    assert more == {"ref": "P1", "code": "12", "kind": "key_conflict"}
    assert credit.counts[("post", "P1")] == 1


def test_fingerprints_with_and_without_a_match_compare_on_what_both_have() -> None:
    three = fingerprint.of("10.00", "EUR", "HEALTH01")
    four = fingerprint.of("10.0", "EUR", "HEALTH01", fingerprint.digest(IBAN))
    assert three is not None and three.count("|") == 2 and four is not None and four.count("|") == 3
    assert fingerprint.differs(three, four) == [] and fingerprint.differs(four, three) == []
    other = fingerprint.of("10.00", "EUR", "HEALTH01", fingerprint.digest(OTHER))
    assert fingerprint.differs(four, other) == [("match", None, None)]
    assert fingerprint.describe(fingerprint.differs(four, other)) == "match (a different value; not shown)"
    assert fingerprint.of(None, None, None, fingerprint.digest(IBAN)) is not None
    assert fingerprint.of(None, None, None) is None
