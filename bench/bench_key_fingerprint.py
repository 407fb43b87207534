"""What the deal key fingerprint (engine/txn/fingerprint.py) costs on the serving path.

Per keyed deal, once: ``of`` when its ``end`` is written (``TxnManager.fill``), and the ``fp`` field's bytes in
that log record.  Per repeat of a key: ``of`` again and a string compare (``differs`` on equal strings); only
a repeat whose values differ goes on to the per-field comparison.  A first-time key costs nothing at admission
(no stored end to compare with).  Routes without a deal key never run any of it.

    .venv/bin/python bench/bench_key_fingerprint.py [--n 200000]
"""
from __future__ import annotations

import argparse
import time
from decimal import Decimal

import orjson

from engine.txn import fingerprint
from engine.txn.log import _ANSWER, _answer_only, _frame


def per_call(fn, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    amount, ccy, party = Decimal("1250.00"), "EUR", "DE89370400440532013000"
    fp = fingerprint.of(amount, ccy, party)
    other = fingerprint.of(Decimal("1250.01"), ccy, party)
    base = per_call(lambda: None, n)
    end = {"t": "end", "id": "0" * 32, "key": "bill|BILLER-7/REF-000123/2026-11-27", "status": "committed",
           "code": "00", "reason": None, "reply": b'{"ref":"REF-000123","code":"00"}'.hex(), "route": "bill",
           "channel": "front", "version": "v1", "at": "2026-11-27T06:00:00+00:00", "type": "BILL",
           "ref": "REF-000123", "amount": amount, "currency": ccy, "party": party, "fin": 1.8e9}
    with_fp = {**end, "fp": fp}
    from engine.fieldcrypt import Keyring
    keyed = fingerprint.Digests(Keyring("k1", {"k1": bytes(range(32))}))
    kfp = fingerprint.of(amount, ccy, party, keyed(party), keyed)
    rows = [
        ("of(amount, currency, party)", per_call(lambda: fingerprint.of(amount, ccy, party), n) - base),
        ("of(amount, currency, None)", per_call(lambda: fingerprint.of(amount, ccy, None), n) - base),
        ("of(..., party) keyed (keyring)", per_call(lambda: fingerprint.of(amount, ccy, party, None, keyed), n) - base),
        ("match digest unkeyed", per_call(lambda: fingerprint.unkeyed(party), n) - base),
        ("match digest keyed", per_call(lambda: keyed(party), n) - base),
        ("differs(old unkeyed, keyed)", per_call(lambda: fingerprint.differs(
            fp + "|" + fingerprint.unkeyed(party), kfp, lambda f: party, keyed), n // 4) - base),
        ("differs(same)", per_call(lambda: fingerprint.differs(fp, fp), n) - base),
        ("differs(other amount)", per_call(lambda: fingerprint.differs(fp, other), n // 4) - base),
        ("frame(end) without fp", per_call(lambda: _frame([end]), n // 4) - base),
        ("frame(end) with fp", per_call(lambda: _frame([with_fp]), n // 4) - base),
    ]
    for name, us in rows:
        print(f"{name:32s} {us:6.3f} us")
    print(f"end record bytes: {len(_frame([end]))} -> {len(_frame([with_fp]))} (+{len(_frame([with_fp])) - len(_frame([end]))})")
    kept, kept_fp = _answer_only(end), _answer_only(with_fp)
    print(f"key store entry (recorded, orjson bytes): {len(orjson.dumps(kept))} -> {len(orjson.dumps(kept_fp))}; "
          f"fp string {len(fp)} chars; fields kept {len(_ANSWER)}")


if __name__ == "__main__":
    main()
