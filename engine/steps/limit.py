"""``limit NAME { key = ..  max = ..  per = "day"  code = ".."  text = ".." }``: a running total with a cap.

After the route's ``deal`` step and before its first call: the deal's amount is reserved in the total
``NAME`` for ``key`` (and the deal's currency, and the business day with ``per = "day"``) unless it
would pass ``max``, in which case the deal is rejected with ``code`` / ``text``.  The reservation is
confirmed when the deal commits, released when it is rejected, fails or is compensated
(``engine.totals``, docs/language.md#limit-a-running-total-with-a-cap).
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from dsl import clock
from dsl.eval_error import InputError
from dsl.inbound import got
from engine.runtime.exchange import StepFailure
from engine.runtime.stepfail import input_failure
from engine.steps.base import SyncStep
from engine.totals import REKEYED, Hold, Holds, Totals
from formats.component import ComponentSpec, OptionSpec

LIMIT_OPTIONS = ("key", "max", "per", "code", "text")
LITERAL_OPTIONS = ("per", "code", "text")
PERIODS = ("day",)
_NUMBER = re.compile(r"\d{1,20}(\.\d{1,4})?")


def _literal(step: Any, name: str) -> Any:
    for a in step.options.get("fields", ()):
        if a.path == name:
            return getattr(a.value, "value", None)
    return None


class LimitStep(SyncStep):
    counts_total = True          # engine/txn/plan.py: its route is transactional (its holds ride in the begin)

    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        if not step.name:
            raise ValueError(f"{self.where}: limit needs a name: the total it counts into")
        self.total = step.name
        exprs = {a.path: a.value for a in step.options.get("fields", ())}
        for need in ("key", "max"):
            if need not in exprs:
                raise ValueError(f"{self.where}: limit {self.total}: needs `{need} = ...`")
        self.key = ctx.expr(exprs["key"])
        self.max = ctx.expr(exprs["max"])
        self.daily = _literal(step, "per") == "day"
        self.code = str(_literal(step, "code") or "61")
        self.text = str(_literal(step, "text") or f"limit {self.total} exceeded")
        totals = getattr(ctx, "totals", None)
        self.totals: Totals = totals if totals is not None else Totals()

    def run(self, ex: Any) -> None:
        scope = ex.scope
        held = ex.holds
        if held is not None and (held.recovered or held.repeat):
            # a deal recovery resolves (reserved at the rebuild), or a repeat of a key already answered (a
            # duplicate at its admission, engine/txn/manager.py _answered: it counts nothing)
            scope[self.total] = None
            return
        amount = ex.amount
        if amount is None or amount <= 0:           # nothing to count (the deal step refuses bad amounts)
            scope[self.total] = None
            return
        try:
            key = self.key(scope)
            cap = self.max(scope)
        except InputError as exc:       # read from a request value of the wrong shape: the sender's (30)
            raise input_failure(exc, self.where) from exc
        if isinstance(key, (int, Decimal)) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key.strip():
            raise StepFailure("rejected", f"limit {self.total}: the key must be text or a number, not blank, "
                              f"got {got(key)}", code="30", text=f"invalid request (no key for {self.total})",
                              where=self.where)
        t = self.totals
        known, clear = ex.classified(), None
        if known and any(v == key or (len(v) >= 4 and v in key) or (len(key) >= 4 and key in v) for v in known):
            # a classified value (an investor's account): kept and shown as a keyed digest, never in clear
            clear, key = key, t.keys(self.total, key)
        if isinstance(cap, int) and not isinstance(cap, bool):
            cap = Decimal(cap)
        elif isinstance(cap, str) and _NUMBER.fullmatch(cap.strip()):     # a table's cell: text of a number
            cap = Decimal(cap.strip())
        if not isinstance(cap, Decimal) or not cap.is_finite():
            # no maximum known for this key (a table without its row): refused, never unlimited
            raise StepFailure("rejected", f"limit {self.total}: no maximum for key {key!r}: max gave {got(cap)}",
                              code=self.code, text=self.text, where=self.where)
        day = t.day_of(clock.now()) if self.daily else ""
        hold = Hold(self.total, key, ex.currency or "", day, amount)
        also = t.others(self.total, clear, ex.currency or "", day) if clear is not None else ()
        if also:
            # what the key counted under another digest (before keyed digests, an older field key) moves into
            # the current digest's bucket, said by an event `rekeyed` on this deal's row: it still counts once
            # the old field key leaves the keyring (engine/totals.py Totals.carry)
            moved = t.carry(hold.bucket, also)
            if moved:
                ex.notes = [*(ex.notes or ()), *((REKEYED, m) for m in moved)]
        if not t.reserve(hold, cap, also):
            used = t.used(hold.bucket) + sum((t.used(a) for a in also), Decimal(0))
            raise StepFailure("rejected", f"limit {self.total}: key {key!r}{_in(hold)}: {used} already counted + "
                              f"{amount} would pass the maximum {cap}", code=self.code, text=self.text,
                              where=self.where)
        if held is None:
            held = ex.holds = Holds()
        held.append(hold)
        used = t.used(hold.bucket)
        scope[self.total] = {"used": used, "max": cap, "left": cap - used}


def _in(h: Hold) -> str:
    parts = [p for p in (h.currency, f"day {h.day}" if h.day else "") if p]
    return f" ({', '.join(parts)})" if parts else ""


COMPONENT = ComponentSpec(
    category="step",
    name="limit",
    doc=(
        "A running total with a cap: reserve the deal's amount in total NAME for `key` (per currency, and per "
        "business day with per = \"day\") and reject the deal with `code` / `text` when it would pass `max`. "
        "Confirmed when the deal commits, released when it is rejected, fails or is compensated; rebuilt from "
        "the ledger on start. After the `deal` step, before the first call."
    ),
    options=(
        OptionSpec("key", "expr", "What the total is kept per: an investor, an issue, an LC number.",
                   required=True),
        OptionSpec("max", "expr", "The maximum: a decimal, or a table's column (limits[msg.investor].daily).",
                   required=True),
        OptionSpec("per", "string", "\"day\": the total starts again each business day (deployment "
                   "business_day); without it the total runs on.", choices=PERIODS),
        OptionSpec("code", "string", "The response code of a deal the limit refuses (default \"61\")."),
        OptionSpec("text", "string", "Its text (default \"limit NAME exceeded\")."),
    ),
    build=LimitStep,
    examples=('limit investor_day {\n    key  = msg.investor_id\n    max  = 1000000.00\n    per  = "day"\n'
              '    code = "61"\n    text = "daily subscription limit exceeded"\n}',),
)
