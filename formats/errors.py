"""The one error type every decoder and encoder raises for bad input."""
from __future__ import annotations


class FormatError(ValueError):
    """Bad input for a format.

    ``offset`` is the byte offset (or character offset for text formats) where
    the problem was found, ``field`` the dotted path of the field being decoded
    or encoded, ``record`` the 1-based record number for multi-record files,
    ``line`` the 1-based line of a text file where it was found (set when the
    offset is a file's, not a message's: ``engine.channels.file_origin``).
    ``hint`` says how to fix it where that is known.
    ``partial``: the values a decoder read before the failure, when it can tell
    (ISO 8583: the MTI and the fields before the bad one, ``IsoMessage``), else None.
    """

    partial = None

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        field: str | None = None,
        record: int | None = None,
        hint: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.field = field
        self.record = record
        self.hint = hint
        self.line = line

    def __str__(self) -> str:
        where = []
        if self.record is not None:
            where.append(f"record {self.record}")
        if getattr(self, "line", None) is not None:
            where.append(f"line {self.line}")
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        if self.field:
            where.append(f"field {self.field}")
        text = self.message
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class SpecError(ValueError):
    """A bad format definition (copybook, ISO 8583 spec, XSD, field list).

    Carries the definition file and a 1-based line/column so that ``bsp check``
    can print it like any other diagnostic.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 col: int | None = None, hint: str | None = None, warning: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.warning = warning      # told by ``bsp check`` as a warning: the definition is still used
        self.path = path
        self.line = line
        self.col = col
        self.hint = hint

    def __str__(self) -> str:
        loc = ":".join(str(p) for p in (self.path, self.line, self.col) if p is not None)
        return f"{loc}: {self.message}" if loc else self.message
