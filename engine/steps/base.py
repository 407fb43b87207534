"""Helpers shared by step kinds (and usable by plugins)."""
from __future__ import annotations

from typing import Any

from engine.runtime.exchange import Exchange, StepFailure


class SyncStep:
    """Base for synchronous steps: override ``run(ex)``; ``name`` binds the result if not None."""

    batch = False

    def __init__(self, step: Any) -> None:
        self.step = step
        self.where = str(step.pos) if getattr(step, "pos", None) is not None else None

    def run(self, ex: Exchange) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FunctionStep(SyncStep):
    """A step from a plain function ``fn(values, scope) -> result``: ``values`` are the
    step's evaluated ``{ a = expr }`` fields; the result is bound to the step's name."""

    def __init__(self, step: Any, ctx: Any, fn: Any) -> None:
        super().__init__(step)
        self.fn = fn
        self.build_values = ctx.assigns(step.options.get("fields", ()))
        self.name = step.name
        # an option the route leaves out has its OptionSpec default (docs/plugins.md#a-step)
        registry = getattr(ctx, "registry", None)
        spec = registry.get("step", step.kind) if registry is not None else None
        self.defaults = {o.name: o.default for o in spec.options if o.default is not None} if spec else {}

    def run(self, ex: Exchange) -> None:
        scope = ex.scope
        values = self.build_values(scope)
        if self.defaults:
            values = {**self.defaults, **values}
        result = self.fn(values, scope)
        if self.name:
            scope[self.name] = result


def where(step: Any) -> str | None:
    return str(step.pos) if getattr(step, "pos", None) is not None else None


__all__ = ["SyncStep", "FunctionStep", "StepFailure", "Exchange", "where"]
