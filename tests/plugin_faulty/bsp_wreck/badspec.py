"""Option specs that are wrong: an unknown type, a default that is not of the option's type."""
from decimal import Decimal

from formats.component import ComponentSpec, OptionSpec


def register_bad_type(registry):
    registry.register(ComponentSpec(category="step", name="counter", doc="x", build=lambda s, c, r: None,
                                    options=(OptionSpec("count", "integer", "How many."),)))


def register_bad_default(registry):
    registry.register(ComponentSpec(category="step", name="fee", doc="x", build=lambda s, c, r: None,
                                    options=(OptionSpec("rate", "decimal", "The rate.", default=0.25),
                                             OptionSpec("cap", "decimal", "The cap.", default=Decimal(5)))))
