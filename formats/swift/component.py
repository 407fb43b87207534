"""The ``swift`` format kind: ``format Payment = swift mt103`` (one FIN message per frame)."""
from __future__ import annotations

from typing import Any

from formats.classify import parse_spec
from formats.component import ComponentSpec, FieldKind, OptionSpec
from formats.errors import SpecError
from formats.swift.classes import classification_tags
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


def classification(decl: Any, base_dir: Any = None) -> dict[str, str]:
    """The personal block 4 fields of every SWIFT message (formats.swift.classes), as the codec masks them."""
    return classification_tags()


def fields(decl: Any, base_dir: Any = None) -> list[str]:
    return ["block1", "block2", "block3", "block4", "block5"]


# the parts of a typed block 4 field's value (formats.swift.fields) that are numbers; the others but
# dates are text
_NUMBER_PARTS = {"amount": "decimal", "count": "integer"}
_DATE_PARTS = ("date", "value_date")
_TEXT = frozenset({"string"})


def field_kind(decl: Any, base_dir: Any = None, parts: tuple = ()) -> FieldKind | None:
    """Header blocks' values and block 4 tags are text; a block 4 value is text (or, for a typed field
    such as 32A or 60F, its parts): never a number.  Of a typed field's parts, ``amount`` is a decimal
    (the encoder takes a number only), ``count`` an integer, the others but dates text."""
    if not parts or parts[0] not in ("block1", "block2", "block3", "block4", "block5"):
        return None
    if parts[0] != "block4":
        return FieldKind("string", f"a SWIFT {parts[0]} value") if len(parts) == 2 else None
    if len(parts) == 2 and isinstance(parts[1], str):           # a service message's block 4 (F21 ACK)
        return FieldKind("string", "a SWIFT block 4 value")
    if len(parts) < 3 or not isinstance(parts[1], int):
        return None
    if parts[2:] == ("tag",):
        return FieldKind("string", "a SWIFT block 4 tag (\"32A\")", sends=_TEXT)
    if parts[2:] == ("value",):
        return FieldKind("string", "a SWIFT block 4 value: text, or the parts of a typed field (32A, 60F ...)",
                         sends=_TEXT)
    if len(parts) == 4 and parts[2] == "value" and isinstance(parts[3], str) and parts[3] not in _DATE_PARTS:
        t = _NUMBER_PARTS.get(parts[3], "string")
        what = f"the {parts[3]} of a typed SWIFT field (32A, 60F ...)"
        return FieldKind(t, what, sends=frozenset({"decimal", "integer", "number"}) if t == "decimal" else
                         frozenset())
    return None


COMPONENT = ComponentSpec(
    category="format",
    name="swift",
    doc="SWIFT MT (FIN) messages: blocks 1-5, block 4 fields split and typed (32A date/currency/Decimal "
        "amount, 61 statement lines, balances), per-message checks of mandatory tags and option letters, "
        "X character set. See docs/formats-swift.md.",
    options=(OptionSpec("message", "ident", "the message type, e.g. mt103 (any: every type, checked where a "
                        "spec exists)", default="any", choices=CHOICES),
             OptionSpec("classify", "list", 'more classified paths of the decoded values (as bsp decode shows them), '
                        'added to the built-in ones (accounts, names and addresses personal: 25, 50a, 59a, 70, 77B, '
                        '86 ...; BICs, amounts, dates not; docs/formats-swift.md): block 4 is a list of {tag, value}, '
                        '["block4.tag=72.value:personal"] classifies field 72\'s value'),),
    build=build,
    check=check,
    fields=fields,
    classification=classification,
    field_kind=field_kind,
    examples=("format Payment = swift mt103", "format Statement = swift mt940"),
    positional="message",
)
