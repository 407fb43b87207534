"""bsp-kvtools: the example plugin of docs/plugins.md.

The entry point (pyproject.toml, group ``bsp.plugins``) names ``register``; bsp
calls it with its registry when it starts.  Keep this module light: import
each kind's module, register its ``COMPONENT``.
"""
from bsp_kvtools import checksum, hold, kv, udp_listen


def register(registry):
    registry.register(kv.COMPONENT)
    registry.register(checksum.COMPONENT)
    registry.register(hold.COMPONENT)
    registry.register(udp_listen.COMPONENT)
