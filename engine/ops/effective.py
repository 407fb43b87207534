"""The effective deployment in the configuration version: route files, the files they name, and the
deployment file's channel overrides.

    program = with_deployment(with_referenced_files(program), overrides, registry)

A deployment file that overrides channel options (an address, a timeout, a TLS certificate, per
environment) changes what runs without changing a route file.  The overrides the engine binds (the
environment's merged over the base ``channels:``, relative paths made absolute) are therefore written as
one more entry of ``Program.sources``, keyed ``<deployment file>#channels`` and holding them as sorted
JSON, and every file they name is added as ``with_referenced_files`` adds a route's (text, or
``sha256:`` for binary files); the version is the hash of it all.  Options naming a secret
(``OptionSpec.secret``: TLS keys, key files) are left out, as they are of the route files' entries.
Without overrides the program is returned unchanged: its version is the route files' version
(``bsp check``, ``bsp replay``, ``bsp test``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from dsl.lower import program_version

DEPLOYMENT_KEY = "#channels"       # suffix of the sources entry holding the overrides


def deployment_key(overrides: Any) -> str:
    base, source = getattr(overrides, "base", None), getattr(overrides, "source", "")
    name = str(Path(base) / source) if base is not None and source else (source or "deployment")
    return name + DEPLOYMENT_KEY


def effective_overrides(overrides: Mapping[str, Mapping[str, Any]] | None, program: Any,
                        registry: Any) -> dict[str, dict[str, Any]]:
    """The channel overrides as bound (paths absolute), without the options naming a secret."""
    from engine.ops.overrides import resolve_paths
    out: dict[str, dict[str, Any]] = {}
    for name, opts in resolve_paths(overrides, program, registry).items():
        decl = program.channels.get(name)
        spec = registry.get("channel", decl.kind) if decl is not None else None
        if spec is None:
            continue      # a channel no route declares: its options' secrecy is unknown (check_overrides refuses it)
        kept = {}
        for key, value in opts.items():
            opt = spec.option(key)
            if opt is not None and getattr(opt, "secret", False):     # `record` (every kind's) has no spec
                continue
            kept[key] = value
        if kept:
            out[name] = kept
    return out


def with_deployment(program: Any, overrides: Mapping[str, Mapping[str, Any]] | None, registry: Any) -> Any:
    """``program`` whose sources and version also cover the deployment's channel overrides."""
    from engine.ops.files import _paths_in, _text_or_digest, file_digest
    try:
        effective = effective_overrides(overrides, program, registry) if overrides else {}
    except (TypeError, ValueError, AttributeError):
        return program            # overrides that cannot bind: the binder reports them (check_overrides)
    if not effective:
        return program
    key = deployment_key(overrides)
    text = json.dumps(effective, sort_keys=True, indent=1, default=str)
    sources = dict(program.sources)
    if sources.get(key) == text:
        return program
    sources[key] = text
    for raw in _paths_in(effective):
        p = Path(raw)
        if p.is_file() and str(p) not in sources:
            sources[str(p)] = _text_or_digest(str(p), file_digest(p))
    return dataclasses.replace(program, sources=sources, version=program_version(sources))
