"""Kinds whose names are taken: one built into bsp, one of another plugin (bsp-kvtools)."""
from formats.component import ComponentSpec


def _codec(decl):
    return None


def register_json(registry):
    registry.register(ComponentSpec(category="format", name="json", doc="A json of our own.", build=_codec),
                      replace=True)


def register_kv(registry):
    registry.register(ComponentSpec(category="format", name="kv", doc="A kv of our own.", build=_codec))
