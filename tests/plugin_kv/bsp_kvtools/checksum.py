"""The `checksum` step: ``checksum NAME { value = EXPRESSION }`` binds NAME to the value followed by
its Luhn check digit.  A value that is not all digits rejects the request (code "14")."""
from formats.component import ComponentSpec, OptionSpec


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def build(step, ctx, route):
    """Called once when the route is bound (never per message).  ``step.options["fields"]`` holds the
    ``{ name = expression }`` lines; ``FunctionStep`` evaluates them for each message and binds the
    function's result to the step's NAME."""
    from engine.steps.base import FunctionStep, StepFailure

    def add_check_digit(values, scope):
        value = str(values.get("value", ""))
        if not value.isdigit():
            raise StepFailure("rejected", f"checksum: {value!r} is not all digits", code="14",
                              text="invalid account number")
        return value + luhn_digit(value)

    return FunctionStep(step, ctx, add_check_digit)


COMPONENT = ComponentSpec(
    category="step",
    name="checksum",
    doc="Bind NAME to `value` followed by its Luhn check digit; a value that is not all digits rejects "
        "the request (code 14).",
    options=(OptionSpec("value", "expr", "The digits to protect.", required=True),),
    build=build,
    examples=("checksum acct { value = msg.account }",),
)
