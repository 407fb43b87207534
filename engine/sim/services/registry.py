"""The registry the service routes compile against.

The service routes use the ``copybook``, ``swift`` and ``iso20022`` format
kinds.  ``engine.registry.BUILTIN_MODULES`` does not list those three yet
(``bsp docs components`` does not show them), so ``services_registry()`` is
``default_registry()`` plus whichever of them is missing.  Once the builtins
list them this adds nothing.
"""
from __future__ import annotations

from engine.registry import Registry, default_registry

SERVICE_FORMAT_MODULES = {
    "copybook": "formats.copybook.component",
    "swift": "formats.swift.component",
    "iso20022": "formats.iso20022.component",
}


def missing_format_kinds(registry: Registry) -> list[str]:
    return [kind for kind in SERVICE_FORMAT_MODULES if registry.get("format", kind) is None]


def services_registry() -> Registry:
    reg = default_registry()
    for kind in missing_format_kinds(reg):
        reg.register_module(SERVICE_FORMAT_MODULES[kind])
    return reg
