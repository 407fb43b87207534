"""``validate { cond else reject CODE TEXT ... }``: the first failing rule rejects the deal."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.runtime.exchange import StepFailure
from engine.steps.base import SyncStep
from engine.steps.deal import settles
from formats.component import ComponentSpec, OptionSpec


class ValidateStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.rules = [
            (ctx.expr(r.cond), r.code, r.text, str(r.pos) if r.pos is not None else self.where,
             ctx.expr(r.more) if getattr(r, "more", None) is not None else None)
            for r in step.options["rules"]
        ]
        # the last validate step right after a deal step refuses the deal's amount finer than its currency
        # once its own rules pass (engine/steps/deal.py)
        self.settles = settles(route, step)

    def run(self, ex: Any) -> None:
        scope = ex.scope
        for fn, code, text, where, more in self.rules:
            if not fn(scope):
                if more is not None:
                    text = text + _more(more, scope)
                raise StepFailure("rejected", text, code=code, where=where, text=text)
        if self.settles and ex.unfit_amount is not None:
            raise ex.unfit_amount


def _more(fn: Any, scope: Any) -> str:
    """The rule's ``+ EXPR``: its text (null as nothing, a decimal written plainly, as ``+`` joins text);
    an expression that cannot be evaluated adds nothing: the rejection stands with its own text."""
    try:
        value = fn(scope)
    except Exception:       # noqa: BLE001 - never turn a rejection into an internal error
        return ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


COMPONENT = ComponentSpec(
    category="step",
    name="validate",
    doc=(
        "Check rules in order; the first false one rejects the request with the rule's code "
        "and text (deal status `rejected`, error kind `rejected`), and the route's "
        "`on error` steps run."
    ),
    options=(OptionSpec("rules", "list", "The rules: `condition else reject CODE TEXT [+ EXPRESSION]` (the "
                                         "expression's text is added to TEXT when the rule fails).", required=True),),
    build=ValidateStep,
    examples=(
        'validate {\n'
        '    msg.amount > 0            else reject "13" "invalid amount"\n'
        '    msg.biller_id in billers  else reject "12" "unknown biller"\n'
        '}',
    ),
)
