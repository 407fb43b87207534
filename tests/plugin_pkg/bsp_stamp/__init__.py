"""A third-party step kind: ``stamp NAME { text = expr }`` binds NAME to "STAMPED:<text>"
(``prefix = expr`` changes "STAMPED:"; a step option the route leaves out has its default).

The generic plugin step syntax ``KIND [NAME] { a = expr }`` reaches the step's
constructor as ``step.options["fields"]`` (assignments); each assignment's
name must be one of the component's options.
"""
from formats.component import ComponentSpec, OptionSpec


def _build(step, ctx, route):
    from engine.steps.base import FunctionStep

    return FunctionStep(step, ctx, lambda values, scope: str(values["prefix"]) + str(values.get("text", "")))


COMPONENT = ComponentSpec(
    category="step",
    name="stamp",
    doc="Bind NAME to the text prefixed with STAMPED: (a test plugin).",
    options=(OptionSpec("text", "expr", "The text to stamp."),
             OptionSpec("prefix", "expr", "What comes before the text.", default="STAMPED:")),
    build=_build,
    examples=('stamp s { text = msg.ref }',),
)


def register(registry):
    registry.register_module(__name__)      # as bsp's own modules: COMPONENT (or COMPONENTS)
