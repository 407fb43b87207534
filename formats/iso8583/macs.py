"""Message MACs on ISO 8583 messages: DE 64 / DE 128 (``formats.mac`` does the arithmetic).

By the ISO convention the MAC is the message's last field: DE 64 when the
message has no secondary bitmap, DE 128 when it has one (``field=None``), or
always the one field the format names (``mac_field 64`` / ``128``).  It is
computed over the message bytes that precede the MAC field's encoded bytes:
the MTI, the bitmaps (with the MAC bit set) and every other field.  Framing
(length prefix, TPDU header) is not covered.

The MAC field's wire form is what the spec says: a fixed ``b`` field (raw bytes,
or two ASCII/EBCDIC hex characters per byte), or a fixed ``an``/``ans`` field
holding hex characters.  ``plan_mac`` checks a spec without a key (``bsp
check``); ``MacPolicy`` holds the key and is used by ``Iso8583Codec``.

Error texts name the field, the byte offset and what was expected; never the
key, and never the MAC that was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from formats.mac import ALGORITHMS, OUTPUT_LENGTH, MacError, check_algorithm, check_key, compute, verify
from formats.iso8583.spec import FieldSpec, IsoSpec

MAC_FIELDS = (64, 128)
_TEXT_TYPES = ("an", "ans")


@dataclass(frozen=True)
class MacSlot:
    """How one MAC field (64 or 128) travels: ``wire`` bytes at the end of the message."""
    number: int
    wire: int                 # bytes on the wire
    length: int               # MAC bytes it carries
    form: str                 # "binary" | "hex" (ASCII hex chars) | "ebcdic-hex"
    cp: str = "cp500"

    @property
    def key(self) -> str:
        return str(self.number)

    def read(self, raw: bytes) -> bytes | None:
        """The MAC bytes of the field's wire bytes; None when they are not hex."""
        if self.form == "binary":
            return raw
        text = raw.decode(self.cp if self.form == "ebcdic-hex" else "latin-1", "replace")
        try:
            mac = bytes.fromhex(text)
        except ValueError:
            return None
        return mac if len(mac) == self.length and len(text) == 2 * self.length else None

    @property
    def placeholder(self) -> str:
        """A value of the right shape, written before the MAC is known (then replaced)."""
        return "00" * self.length

    def wire_bytes(self, mac: bytes) -> bytes:
        """The field's encoded bytes for ``mac``."""
        if self.form == "binary":
            return mac
        text = mac.hex().upper()
        return text.encode(self.cp) if self.form == "ebcdic-hex" else text.encode("ascii")


def slot_for(spec: IsoSpec, number: int, algorithm: str) -> MacSlot:
    """The MAC slot of field ``number`` in ``spec``; MacError when the field cannot carry a MAC."""
    if number not in MAC_FIELDS:
        raise MacError(f"mac_field {number!r}: the MAC travels in field 64 or 128",
                       hint="leave mac_field out: 64 without a secondary bitmap, 128 with one")
    f: FieldSpec | None = spec.fields.get(number)
    if f is None:
        raise MacError(f"spec {spec.name} defines no field {number} to carry the MAC",
                       hint=f"add field {number} to the spec, e.g. {{type: b, length: 8}}")
    if number == 128 and not spec.secondary_bitmap:
        raise MacError(f"spec {spec.name} has no secondary bitmap, so field 128 cannot carry the MAC",
                       hint="use mac_field 64, or set secondary_bitmap in the spec")
    if f.length is None:
        raise MacError(f"field {number} of spec {spec.name} has a variable length; a MAC field has a fixed one",
                       hint="define it as {type: b, length: 8}")
    if f.type == "b":
        length = f.length
        if f.data_encoding == "binary":
            form, wire = "binary", length
        else:
            form, wire = ("ebcdic-hex" if f.data_encoding == "ebcdic" else "hex"), 2 * length
    elif f.type in _TEXT_TYPES and f.data_encoding in ("ascii", "ebcdic"):
        if f.length % 2:
            raise MacError(f"field {number} of spec {spec.name} ({f.type} {f.length}) holds an odd number of "
                           f"characters; a MAC in hex takes two per byte", hint="e.g. an 16 for an 8-byte MAC")
        length = f.length // 2
        form, wire = ("ebcdic-hex" if f.data_encoding == "ebcdic" else "hex"), f.length
    else:
        raise MacError(f"field {number} of spec {spec.name} is type {f.type} ({f.data_encoding}); a MAC field "
                       f"is b (bytes) or an/ans (hex characters)", hint="define it as {type: b, length: 8}")
    full = OUTPUT_LENGTH[algorithm]
    if not 4 <= length <= full:
        raise MacError(f"field {number} of spec {spec.name} holds a {length}-byte MAC; {algorithm} gives "
                       f"4 to {full} bytes", hint="ISO 8583 MAC fields hold 8 bytes: {type: b, length: 8}")
    return MacSlot(number, wire, length, form, spec.ebcdic_codepage)


def plan_mac(spec: IsoSpec, algorithm: str, number: int | None) -> dict[int, MacSlot]:
    """The MAC slots a format uses: ``{64: slot, 128: slot}`` by the convention (each that the spec
    can carry; at least one), or the one field named.  MacError when the options cannot work."""
    check_algorithm(algorithm)
    if number is not None:
        return {number: slot_for(spec, number, algorithm)}
    slots: dict[int, MacSlot] = {}
    errors: list[MacError] = []
    for n in MAC_FIELDS:
        if n == 128 and not spec.secondary_bitmap:
            continue
        try:
            slots[n] = slot_for(spec, n, algorithm)
        except MacError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return slots


@dataclass(frozen=True)
class MacPolicy:
    """MACs on: the algorithm, the key (never shown), the slots and the exempt MTIs."""
    algorithm: str
    key: bytes = field(repr=False)
    slots: dict[int, MacSlot]
    fixed: int | None            # the configured mac_field, or None (64/128 by the secondary bitmap)
    exempt: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        check_key(self.algorithm, self.key)

    def slot(self, secondary: bool) -> MacSlot:
        if self.fixed is not None:
            return self.slots[self.fixed]
        return self.slots[128 if secondary and 128 in self.slots else 64]

    def compute(self, data: bytes, length: int) -> bytes:
        return compute(self.algorithm, self.key, data, length)

    def verify(self, data: bytes, mac: bytes) -> bool:
        return verify(self.algorithm, self.key, data, mac)

    def describe(self) -> str:
        return f"{self.algorithm} MAC in field " + (str(self.fixed) if self.fixed else "64/128")


def check_exempt(values: Any) -> tuple[str, ...]:
    """``mac_exempt`` -> MTIs; MacError for anything but a list of 4-digit MTIs."""
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise MacError(f"mac_exempt: expected a list of MTIs such as [\"0800\", \"0810\"], got {values!r}")
    out = []
    for i, v in enumerate(values, 1):
        v = str(v)
        if not (len(v) == 4 and v.isascii() and v.isdigit()):
            raise MacError(f"mac_exempt: entry {i} ({v!r}) is not a 4-digit MTI",
                           hint='quote MTIs: ["0800", "0810"]')
        out.append(v)
    return tuple(out)


__all__ = ["ALGORITHMS", "MAC_FIELDS", "MacError", "MacPolicy", "MacSlot", "check_exempt", "plan_mac", "slot_for"]
