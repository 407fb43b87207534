"""SwiftCodec: one FIN message's bytes <-> values (see formats.swift.fin for the shape)."""
from __future__ import annotations

from typing import Any

from formats.errors import FormatError
from formats.swift.classes import classification_tags
from formats.swift.fin import parse_fin, write_fin
from formats.swift.messages import MESSAGES, validate


class SwiftCodec:
    """``message``: "103", "mt103" or None (any message type; per-message checks where a spec exists)."""

    def __init__(self, message: str | None = None, name: str | None = None) -> None:
        mt = (message or "").lower().removeprefix("mt") or None
        if mt is not None and mt not in MESSAGES:
            raise ValueError(f"no SWIFT message spec for MT{mt}; known: {', '.join('mt' + m for m in MESSAGES)}")
        self.mt = mt
        self.name = name or (f"mt{mt}" if mt else "swift")

    def classification_tags(self) -> dict[str, str]:
        """The personal fields of every SWIFT message (formats.swift.classes), for formats.classify.tags_of;
        a format's ``classify`` option adds to them."""
        return classification_tags()

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FormatError(f"expected bytes, got {type(data).__name__}")
        try:
            text = bytes(data).decode("ascii")
        except UnicodeDecodeError as exc:
            raise FormatError(f"byte {data[exc.start]:#04x} is not ASCII: FIN text uses the SWIFT X set",
                              offset=exc.start, field="block4") from None
        offsets: list[int] = []
        values, end = parse_fin(text, offsets=offsets)
        if text[end:].strip():
            raise FormatError("unexpected text after the last block", offset=end,
                              hint="one message per frame; split RJE batches with split_rje")
        self._check(values, offsets, end)
        return values

    def _check(self, values: dict[str, Any], offsets: list[int] | None, where: int | None) -> None:
        b2 = values.get("block2")
        mt = b2.get("type") if isinstance(b2, dict) else None
        if self.mt is not None:
            if mt != self.mt:
                raise FormatError(f"expected an MT{self.mt}, got MT{mt}", field="block2",
                                  offset=None if offsets is None else 0)
            if not isinstance(values.get("block4"), list):
                raise FormatError(f"MT{self.mt} needs a text block 4", field="block4", offset=where)
        if mt and isinstance(values.get("block4"), list):
            validate(mt, values["block4"], offsets)

    def encode(self, values: Any) -> bytes:
        if not isinstance(values, dict):
            raise FormatError(f"expected a mapping of blocks, got {type(values).__name__}")
        self._check(values, None, None)
        return write_fin(values).encode("ascii")
