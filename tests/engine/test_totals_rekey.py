"""``Totals.carry`` (engine/totals.py): a classified key's figure under an old digest moves into its current
digest's bucket; what is given back later under the old digest is taken from where it went; a bucket under a
field key the keyring no longer holds is reported at the rebuild.  In memory, no engine."""
from __future__ import annotations

import logging
from decimal import Decimal

from engine.fieldcrypt import Keyring
from engine.limit_key import LimitKeys
from engine.totals import Hold, Totals

OLD = ("cap", "#0123456789abcdef0123", "EUR", "")
NEW = ("cap", "#k2:0123456789abcdef0123", "EUR", "")


def test_a_moved_figure_given_back_under_the_old_digest_is_taken_from_the_new_bucket() -> None:
    t = Totals()
    t.confirmed[OLD] = Decimal("40.00")
    moved = t.carry(NEW, (OLD,))
    assert moved == [{"total": "cap", "key": NEW[1], "from": OLD[1], "currency": "EUR", "day": "",
                      "amount": "40.00"}]
    assert t.confirmed == {NEW: Decimal("40.00")}
    assert t.carry(NEW, (OLD,)) == []                       # nothing left there: nothing to say
    assert t.reserve(Hold(*NEW, Decimal("30.00")), Decimal("100.00"), (OLD,))
    t.settle([Hold(*NEW, Decimal("30.00"))], True)
    t.uncount([Hold(*OLD, Decimal("40.00"))])               # an operator gives back a deal counted under OLD
    assert t.confirmed == {NEW: Decimal("30.00")}
    t.uncount([Hold(*OLD, Decimal("99.00"))])               # never below nothing
    assert t.confirmed == {}


def test_a_total_under_a_field_key_no_longer_in_the_ring_is_reported(caplog) -> None:
    t = Totals()
    t.keys = LimitKeys(Keyring("k2", {"k2": bytes(range(32))}))
    t.confirmed[("cap", "#k1:00112233445566778899", "EUR", "")] = Decimal("70.00")
    t.confirmed[NEW] = Decimal("5.00")
    with caplog.at_level(logging.WARNING, logger="bsp.totals"):
        t._dropped_keys()
    (r,) = caplog.records
    assert "1 `limit` total(s) (70.00 in all) were counted under field key 'k1'" in r.getMessage()


def test_a_deal_counted_again_for_a_day_before_yesterday_leaves_no_bucket() -> None:
    """An operator's `applied` resolution counts a daily total's deal again in its own day (engine/deal_resolve.py
    ``recounts``): a day before yesterday is over, its bucket gone; yesterday's still takes it."""
    t = Totals()
    t._new_day("2026-11-27")
    t.confirm([Hold("day", "A", "EUR", "2026-11-25", Decimal("10.00")),
               Hold("day", "A", "EUR", "2026-11-26", Decimal("20.00"))])
    assert t.confirmed == {("day", "A", "EUR", "2026-11-26"): Decimal("20.00")}
