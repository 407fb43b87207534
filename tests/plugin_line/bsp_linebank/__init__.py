"""bsp-linebank: one module per kind, ``register`` only registers."""
from bsp_linebank import earmark, line_connect, piperec


def register(registry):
    registry.register(line_connect.COMPONENT)
    registry.register(piperec.COMPONENT)
    registry.register(earmark.COMPONENT)
