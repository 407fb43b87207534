"""The codec protocol every message format implements."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Codec(Protocol):
    """Turns one message's bytes into values and back.

    ``decode`` returns plain Python values: dict / list / str / int /
    ``decimal.Decimal`` / bool / None / ``datetime.date`` / ``datetime.datetime``.
    Money is always ``Decimal``.  Both raise ``formats.errors.FormatError``
    (and nothing else) for bad input.
    """

    name: str

    def decode(self, data: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes: ...
