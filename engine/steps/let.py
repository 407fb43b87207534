"""``let NAME = expr``: bind a value in the exchange's scope."""
from __future__ import annotations

from typing import Any

from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec


class LetStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.name = step.name
        self.fn = ctx.expr(step.options["value"])

    def run(self, ex: Any) -> None:
        ex.scope[self.name] = self.fn(ex.scope)


COMPONENT = ComponentSpec(
    category="step",
    name="let",
    doc="Bind a name to the value of an expression; later steps read it by name.",
    options=(OptionSpec("value", "expr", "The value.", required=True),),
    build=LetStep,
    examples=("let fee = if msg.amount > 1000 then round(msg.amount * 0.001, 2) else 0.50",),
)
