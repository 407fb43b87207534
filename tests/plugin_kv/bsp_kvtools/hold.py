"""The `hold` step: ``hold NAME { ref = ...  account = ...  amount = ... }`` places a hold for the amount
on the account, under the reference, and binds NAME to the hold's id; a deal that fails after it releases
the hold (``compensate``).  It acts outside bsp, so its COMPONENT says ``side_effects=True``.

``BOOK`` stands in for the client of the bank system that keeps the holds (in a real plugin: that
system's library).  Its calls return at once: a step runs on the engine's event loop and must not block.
"""
from decimal import Decimal

from formats.component import ComponentSpec, OptionSpec


class HoldBook:
    """The holds system as its client shows it: one hold per reference (placing it again keeps one).
    ``drop_answers`` plays a link that drops: the hold is placed, its answer is lost."""

    def __init__(self):
        self.holds = {}                 # reference -> (account, amount)
        self.drop_answers = 0

    def place(self, ref, account, amount):
        self.holds.setdefault(ref, (account, amount))
        if self.drop_answers:
            self.drop_answers -= 1
            raise ConnectionError("the hold system closed the connection before it answered")
        return f"H-{ref}"

    def release(self, ref):
        self.holds.pop(ref, None)       # a hold that is not there: nothing to do


BOOK = HoldBook()


def build(step, ctx, route):
    from engine.steps.base import FunctionStep, StepFailure

    def place(values, scope):
        amount = values["amount"]
        if not isinstance(amount, Decimal) or amount <= 0:
            # a refusal before anything was sent: nothing happened, nothing to undo
            raise StepFailure("rejected", f"hold: amount {amount} is not a positive decimal", code="13",
                              text="invalid amount")
        try:
            return BOOK.place(str(values["ref"]), str(values["account"]), amount)
        except ConnectionError as exc:
            # sent and not answered: the hold may be there.  in_doubt=True: the deal fails in doubt,
            # `release` below runs, and the calls before are compensated
            raise StepFailure("internal", f"hold {values['ref']}: {exc}", in_doubt=True) from exc

    def release(values, scope):
        # the deal failed after `place`, or `place` failed in doubt: work from the values, not from
        # NAME (a step in doubt bound nothing), and make releasing twice or in vain harmless
        BOOK.release(str(values["ref"]))

    return FunctionStep(step, ctx, place, compensate=release)


COMPONENT = ComponentSpec(
    category="step",
    name="hold",
    doc="Place a hold for `amount` on `account` under `ref` and bind NAME to its id; released when the deal "
        "fails after it. An amount that is not positive rejects the request (code 13).",
    options=(OptionSpec("ref", "expr", "The hold's reference (one hold per reference).", required=True),
             OptionSpec("account", "expr", "The account.", required=True),
             OptionSpec("amount", "expr", "The amount (a decimal).", required=True)),
    build=build,
    side_effects=True,
    examples=("hold h { ref = msg.ref  account = msg.account  amount = msg.amount }",),
)
