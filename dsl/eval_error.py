"""The one error an expression raises at run time (re-exported by ``dsl.compiler``)."""
from __future__ import annotations

from dsl.ir import Pos


class EvalError(ValueError):
    """An expression failed while running: carries the expression's position."""

    def __init__(self, message: str, pos: Pos | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}" if self.pos is not None else self.message
