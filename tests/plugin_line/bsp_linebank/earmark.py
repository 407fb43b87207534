"""The `earmark` step: ``earmark NAME { ref = ...  account = ...  amount = ... }`` earmarks funds on an
account (side effect outside bsp) and binds NAME to the earmark id; ``compensate`` lifts it."""
from decimal import Decimal

from formats.component import ComponentSpec, OptionSpec


class Earmarks:
    def __init__(self):
        self.marks = {}
        self.lifted = []
        self.lose_answer = 0

    def place(self, ref, account, amount):
        self.marks[ref] = (account, amount)
        if self.lose_answer:
            self.lose_answer -= 1
            raise ConnectionError("earmark system went away before it answered")
        return f"E-{ref}"

    def lift(self, ref):
        if self.marks.pop(ref, None) is not None:
            self.lifted.append(ref)


BOOK = Earmarks()


def build(step, ctx, route):
    from engine.steps.base import FunctionStep, StepFailure

    def place(values, scope):
        amount = values["amount"]
        if not isinstance(amount, Decimal) or amount <= 0:
            raise StepFailure("rejected", f"earmark: amount {amount} is not positive", code="13",
                              text="invalid amount")
        return BOOK.place(str(values["ref"]), str(values["account"]), amount)

    def lift(values, scope):
        BOOK.lift(str(values["ref"]))

    return FunctionStep(step, ctx, place, compensate=lift)


COMPONENT = ComponentSpec(
    category="step",
    name="earmark",
    doc="Earmark `amount` on `account` under `ref`; lifted when the deal fails after it.",
    options=(OptionSpec("ref", "expr", "The reference.", required=True),
             OptionSpec("account", "expr", "The account.", required=True),
             OptionSpec("amount", "expr", "The amount.", required=True)),
    build=build,
    side_effects=True,
    examples=("earmark e { ref = msg.ref  account = msg.account  amount = msg.amount }",),
)
