"""The ``swift`` format kind: ``format Payment = swift mt103`` (one FIN message per frame)."""
from __future__ import annotations

from typing import Any

from formats.classify import parse_spec
from formats.component import ComponentSpec, OptionSpec
from formats.errors import SpecError
from formats.swift.codec import SwiftCodec
from formats.swift.messages import MESSAGES

CHOICES = tuple(f"mt{m}" for m in MESSAGES) + ("any",)


def _message(decl: Any) -> str | None:
    msg = (decl.options or {}).get("message", "any")
    return None if msg in (None, "any") else str(msg).lower()


def build(decl: Any) -> SwiftCodec:
    codec = SwiftCodec(_message(decl), name=decl.name)
    codec.classify = parse_spec(decl.options.get("classify"))
    return codec


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    try:
        parse_spec(decl.options.get("classify"))
    except SpecError as exc:
        return [exc]
    msg = _message(decl)
    if msg is not None and msg.removeprefix("mt") not in MESSAGES:
        pos = getattr(decl, "pos", None)
        return [SpecError(f"format {decl.name}: no SWIFT message spec for {msg!r}",
                          path=getattr(pos, "file", None), line=getattr(pos, "line", None),
                          col=getattr(pos, "col", None), hint=f"use one of {', '.join(CHOICES)}")]
    return []


def fields(decl: Any, base_dir: Any = None) -> list[str]:
    return ["block1", "block2", "block3", "block4", "block5"]


COMPONENT = ComponentSpec(
    category="format",
    name="swift",
    doc="SWIFT MT (FIN) messages: blocks 1-5, block 4 fields split and typed (32A date/currency/Decimal "
        "amount, 61 statement lines, balances), per-message checks of mandatory tags and option letters, "
        "X character set. See docs/formats-swift.md.",
    options=(OptionSpec("message", "ident", "the message type, e.g. mt103 (any: every type, checked where a "
                        "spec exists)", default="any", choices=CHOICES),
             OptionSpec("classify", "list", 'classified paths of the decoded values (as bsp decode shows them): '
                        'block 4 is a list of {tag, value}: ["block4.tag=25.value:personal"] classifies field 25\'s value, '
                        '["block4.value:personal"] every block-4 value'),),
    build=build,
    check=check,
    fields=fields,
    examples=("format Payment = swift mt103", "format Statement = swift mt940"),
    positional="message",
)
