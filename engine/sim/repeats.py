"""Repeats: the requesting side sends a small share of its good requests again, byte for byte, as a
mainframe does after a time-out.

``plan_sends(slots, make_next, repeatable, rng, share, gap)`` lays out each connection's sends before
any is made: ``slots[i]`` sends on connection ``i``, each an original (``make_next()``) or a repeat of
an original sent earlier on the same connection.  A repeatable original is picked with probability
``share`` (``rng``: seeded, so the plan is the same every run) and its repeat is placed at least
``gap`` sends after it.  With ``gap`` the connection's window (at most ``window`` requests
unanswered, replies in order), a send at index ``j`` leaves only after the replies to every request
at index ``j - window`` or before have come back: a repeat leaves after its original's reply, a
clean duplicate and not a concurrent copy.  The number of sends is ``sum(slots)`` as before; the
repeats take the place of as many new requests.  An original too near its connection's end for its
repeat to fit is not picked.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

REPEAT_SHARE = 0.02


@dataclass(frozen=True)
class Send(Generic[T]):
    item: T
    repeat_of: int | None = None        # index (on the same connection) of the original it repeats


def plan_sends(slots: list[int], make_next: Callable[[], T], repeatable: Callable[[T], bool],
               rng: random.Random, share: float, gap: int) -> list[list[Send[T]]]:
    plans: list[list[Send[T]]] = []
    gap = max(1, gap)
    for n in slots:
        plan: list[Send[T]] = []
        due: deque[tuple[int, int]] = deque()           # (earliest index, original's index)
        for j in range(n):
            if due and due[0][0] <= j:
                _, orig = due.popleft()
                plan.append(Send(plan[orig].item, orig))
                continue
            item = make_next()
            plan.append(Send(item))
            # the pick is drawn for every repeatable original, so the plan does not depend on timing
            if share > 0 and repeatable(item) and rng.random() < share and j + gap + len(due) < n:
                due.append((j + gap, j))
        assert not due, "a planned repeat did not fit"
        plans.append(plan)
    return plans
