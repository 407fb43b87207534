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


class InputError(EvalError):
    """An expression failed on a value read from the received message that is not of the shape the route
    needs (``dsl.inbound``): the sender's error, answered as a rejected request (code 30), not ``internal``.

    ``path`` is the field path in the message (``beneficiary``, ``items[0]``; ``""`` for the message
    itself: a body that is not an object, a ``malformed`` request); the message (without the place, which
    is ``pos``) names the path, what was expected and what came: "beneficiary: expected an object, got text
    'ACME'"."""

    def __init__(self, message: str, pos: Pos | None = None, *, path: str = "") -> None:
        super().__init__(message, pos)
        self.path = path

    @property
    def root(self) -> bool:
        """The message itself is not of the shape the route reads (a JSON list or text for an object)."""
        return self.path == ""
