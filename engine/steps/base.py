"""Helpers shared by step kinds (and usable by plugins)."""
from __future__ import annotations

from typing import Any

from dsl.eval_error import EvalError, InputError
from engine.runtime.exchange import Exchange, StepFailure
from engine.runtime.stepfail import input_failure


def evaluate_fields(build: Any, scope: Any, where: str | None, what: str = "") -> dict[str, Any]:
    """A step's ``{ a = expr }`` fields for ``scope`` (``build``: ``ctx.assigns(...)``).  An expression that fails
    is a clean failure, nothing done: a request's value of the wrong shape is the sender's (rejected, 30), any
    other the route's (internal); ``what`` starts its text (``record bordereau: ``)."""
    try:
        return build(scope)
    except StepFailure:
        raise
    except InputError as exc:       # a request's value of the wrong shape: the sender's (rejected, 30)
        raise input_failure(exc, where) from exc
    except Exception as exc:
        text = str(exc) if isinstance(exc, EvalError) else f"{type(exc).__name__}: {exc}"
        raise StepFailure("internal", what + text, where=where) from exc


class SyncStep:
    """Base for synchronous steps: override ``run(ex)``; ``name`` binds the result if not None."""

    batch = False
    # a step kind with side effects (ComponentSpec.side_effects) may set ``undo(ex)``: it undoes what
    # ``run(ex)`` did outside bsp when the deal fails after it, or when it failed in doubt
    # (engine/txn/effects.py; docs/plugins.md#compensation)
    undo: Any = None

    def __init__(self, step: Any) -> None:
        self.step = step
        self.where = str(step.pos) if getattr(step, "pos", None) is not None else None

    def run(self, ex: Exchange) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FunctionStep(SyncStep):
    """A step from a plain function ``fn(values, scope) -> result``: ``values`` are the
    step's evaluated ``{ a = expr }`` fields; the result is bound to the step's name.
    ``compensate(values, scope)`` (optional, for a kind with side effects) undoes what ``fn`` did
    outside bsp; ``values`` are the fields evaluated again, as a call's compensation evaluates its own."""

    def __init__(self, step: Any, ctx: Any, fn: Any, compensate: Any = None) -> None:
        super().__init__(step)
        self.fn = fn
        self.build_values = ctx.assigns(step.options.get("fields", ()))
        self.name = step.name
        # an option the route leaves out has its OptionSpec default (docs/plugins.md#a-step)
        registry = getattr(ctx, "registry", None)
        spec = registry.get("step", step.kind) if registry is not None else None
        self.defaults = {o.name: o.default for o in spec.options if o.default is not None} if spec else {}
        self.compensate = compensate
        if compensate is not None:
            self.undo = self._undo

    def values(self, scope: Any) -> dict[str, Any]:
        """The step's fields for ``scope``.  An expression that fails is a clean failure: ``fn`` was
        not called, so nothing was done (never in doubt)."""
        values = evaluate_fields(self.build_values, scope, self.where)
        return {**self.defaults, **values} if self.defaults else values

    def run(self, ex: Exchange) -> None:
        scope = ex.scope
        result = self.fn(self.values(scope), scope)
        if self.name:
            scope[self.name] = result

    def _undo(self, ex: Exchange) -> None:
        self.compensate(self.values(ex.scope), ex.scope)


def where(step: Any) -> str | None:
    return str(step.pos) if getattr(step, "pos", None) is not None else None


__all__ = ["SyncStep", "FunctionStep", "StepFailure", "Exchange", "where"]
