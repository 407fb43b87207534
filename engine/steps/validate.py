"""``validate { cond else reject CODE TEXT ... }``: the first failing rule rejects the deal."""
from __future__ import annotations

from typing import Any

from engine.runtime.exchange import StepFailure
from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec


class ValidateStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.rules = [
            (ctx.expr(r.cond), r.code, r.text, str(r.pos) if r.pos is not None else self.where)
            for r in step.options["rules"]
        ]

    def run(self, ex: Any) -> None:
        scope = ex.scope
        for fn, code, text, where in self.rules:
            if not fn(scope):
                raise StepFailure("rejected", text, code=code, where=where, text=text)


COMPONENT = ComponentSpec(
    category="step",
    name="validate",
    doc=(
        "Check rules in order; the first false one rejects the request with the rule's code "
        "and text (deal status `rejected`, error kind `rejected`), and the route's "
        "`on error` steps run."
    ),
    options=(OptionSpec("rules", "list", "The rules: `condition else reject CODE TEXT`.", required=True),),
    build=ValidateStep,
    examples=(
        'validate {\n'
        '    msg.amount > 0            else reject "13" "invalid amount"\n'
        '    msg.biller_id in billers  else reject "12" "unknown biller"\n'
        '}',
    ),
)
