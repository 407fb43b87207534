"""The SWIFT FIN "X" character set and a checker that names the offending offset."""
from __future__ import annotations

import re

from formats.errors import FormatError

X_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ \r\n")
_BAD = re.compile(r"[^a-zA-Z0-9/\-?:().,'+ \r\n]")


def check_x(text: str, *, offset: int = 0, field: str | None = None) -> None:
    m = _BAD.search(text)
    if m:
        ch = m.group()
        raise FormatError(f"character {ch!r} (U+{ord(ch):04X}) is not in the SWIFT X character set",
                          offset=offset + m.start(), field=field,
                          hint="FIN allows a-z A-Z 0-9 / - ? : ( ) . , ' + space and line breaks; "
                               "transliterate other characters")
