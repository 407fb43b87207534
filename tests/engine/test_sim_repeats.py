"""engine.sim.repeats: the plan of sends with repeats is seeded, keeps the number of sends, and puts each
repeat a window after its original on the same connection."""
from __future__ import annotations

import random
from itertools import count

from engine.sim.repeats import plan_sends


def _plan(seed: int = 7, share: float = 0.1, gap: int = 8) -> list:
    n = count(1)
    return plan_sends([100, 99], lambda: next(n), lambda i: i % 3 != 0, random.Random(seed), share, gap)


def test_plan_keeps_the_count_and_places_repeats_a_window_later():
    plans = _plan()
    assert [len(p) for p in plans] == [100, 99]
    repeats = 0
    for plan in plans:
        for j, send in enumerate(plan):
            if send.repeat_of is not None:
                repeats += 1
                assert j - send.repeat_of >= 8
                assert plan[send.repeat_of].repeat_of is None and plan[send.repeat_of].item == send.item
                assert send.item % 3 != 0
    assert repeats > 0
    originals = [s.item for p in plans for s in p if s.repeat_of is None]
    assert originals == list(range(1, len(originals) + 1)) and len(originals) + repeats == 199


def test_plan_is_the_same_for_the_same_seed_and_none_without_a_share():
    assert _plan() == _plan()
    assert not any(s.repeat_of is not None for p in _plan(share=0.0) for s in p)
    assert not any(s.repeat_of is not None for p in _plan(gap=200) for s in p)     # no room for a repeat
