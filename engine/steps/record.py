"""``record NAME { field = expression ... }``: values of the route's own kept with the deal.

A deal row has its columns (reference, amount, currency, party); what a business line works out besides them
(insurance brokerage's commission on a premium, its VAT, the policy number) is kept as one ledger event on the
deal, ``recorded``, in the same transaction as its row (``deal_events``, chained and protected as every event:
docs/ledger.md#deal_events)::

    {"record": "commission", "values": {"policy": "PL-0001", "premium": "1000.00", "commission": "30.00"}}

Amounts are written as exact decimal text (never a float), numbers as they are, text as it is.  The values are
the ones the step saw when it ran (after the ``let`` steps before it); a deal that fails afterwards keeps them
too (its status says it was not committed).  NAME is bound to the values.  ``bsp reconcile --type bordereau``
reads the ``bordereau`` record of committed deals (``policy``, ``commission``; ``premium`` when negative: a
cancellation's line, reversed) (engine/reconcile/bordereau.py).  A route test expects a kept value as
``expect deal TYPE { record.NAME.FIELD = .. }`` (engine/routetest/expect.py).

Any field name is taken (the kind declares none: ``open_options``); ``bsp check`` requires the name and a field
(E130) and warns of a classified value, which the event would keep in clear (W017).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from engine.steps.base import SyncStep, evaluate_fields
from formats.component import ComponentSpec

EVENT = "recorded"


def plain(v: Any) -> Any:
    """A value as the event's JSON keeps it: a Decimal as its exact digits (``30.00``, never ``3E+1``)."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return str(v)


class RecordStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        fields = tuple(step.options.get("fields", ()))
        if not step.name or not fields:
            raise ValueError(f"{self.where}: record needs a name and at least one field: "
                             f"record commission {{ amount = ... }}")
        self.name = step.name
        self.values = ctx.assigns(fields)

    def run(self, ex: Any) -> None:
        scope = ex.scope
        values = evaluate_fields(self.values, scope, self.where, f"record {self.name}: ")
        kept = {str(k): plain(v) for k, v in values.items()}
        notes = ex.notes if ex.notes is not None else []
        ex.notes = notes
        notes.append((EVENT, {"record": self.name, "values": kept}))
        scope[self.name] = values


COMPONENT = ComponentSpec(
    category="step",
    name="record",
    doc=(
        "Keep values the route works out with the deal: one ledger event `recorded` "
        "({\"record\": NAME, \"values\": {...}}), written with the deal's row; amounts as exact decimal text. "
        "Any field names. NAME is bound to the values. A classified value is kept in clear (bsp check W017). "
        "bsp reconcile --type bordereau reads a committed deal's `record bordereau { policy  commission }`."
    ),
    options=(),
    open_options=True,
    build=RecordStep,
    examples=('record commission {\n    policy     = trim(msg.policy_no)\n    commission = commission\n}',),
)
