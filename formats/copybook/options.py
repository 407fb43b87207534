"""Reader options for copybook records (one frozen object per codec)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

TRIM = ("none", "left", "right", "both")
FILLER_NAMING = ("sequence", "previous")
INVALID = ("error", "null")
FLOATS = ("ibm", "ieee")
NAMES = ("keep", "lower")
BINARY_ORDERS = ("big", "little", "native_little")
MISSING_NUMBERS = ("zero", "error")


@dataclass(frozen=True)
class CopybookOptions:
    """How records are read and written.

    encoding        code page (formats.ebcdic.PAGES, or utf-8); default cp037
    controls        keep | space: C0/C1 control characters in text fields
    trim            none | left | right | both: spaces stripped from PIC X values
    drop_value_fillers / drop_group_fillers: leave FILLER items out of values
    filler_naming   sequence (FILLER_P1 / FILLER_1) | previous (FILLER_AFTER_<name>)
    collapse_root   a single 01 record's fields are the top-level keys
    float_format    ibm | ieee for COMP-1 / COMP-2
    invalid         error | null: a malformed number outside REDEFINES raises
                    FormatError, or becomes None
    low_values_null a field of all X'00' (LOW-VALUES) decodes to None
    variable_occurs OCCURS DEPENDING ON tables take only count * size bytes
    occurs_mappings {table name: {counter text: count}} for non-numeric counters
    segment_field   name of the field that tells the record's segment
    segment_map     {segment value: REDEFINES member name}: only that member decodes
    segment_filter  values of segment_field to keep in iter_records (others skipped)
    conditions      add a boolean per level-88 condition name next to its field
    names           keep | lower: output keys ('-' always becomes '_')
    binary_order    big | little | native_little: byte order of binary items.
                    big: every COMP/BINARY/COMP-4/COMP-5 is big-endian (mainframe);
                    little: all little-endian; native_little: COMP-5/COMP-X (and
                    POINTER/INDEX) little-endian, COMP/BINARY/COMP-4 big-endian
                    (Micro Focus and GnuCOBOL defaults on x86)
    missing_numbers zero | error: encoding a record whose dict leaves out a COMP-3 /
                    COMP / COMP-1/2 field (not a FILLER, counter or REDEFINES member)
                    writes zero (reply bodies that omit the amount rely on it) or
                    is a FormatError (``bsp encode`` uses error)
    """

    encoding: str = "cp037"
    controls: str = "keep"
    trim: str = "right"
    drop_value_fillers: bool = True
    drop_group_fillers: bool = True
    filler_naming: str = "sequence"
    collapse_root: bool = True
    float_format: str = "ibm"
    invalid: str = "error"
    low_values_null: bool = True
    variable_occurs: bool = False
    occurs_mappings: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    segment_field: str | None = None
    segment_map: Mapping[str, str] = field(default_factory=dict)
    segment_filter: tuple[str, ...] = ()
    conditions: bool = True
    names: str = "keep"
    binary_order: str = "big"
    missing_numbers: str = "zero"

    def __post_init__(self) -> None:
        for name, allowed in (("trim", TRIM), ("filler_naming", FILLER_NAMING), ("invalid", INVALID),
                              ("float_format", FLOATS), ("names", NAMES), ("controls", ("keep", "space")),
                              ("binary_order", BINARY_ORDERS), ("missing_numbers", MISSING_NUMBERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"option {name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")

    def little_endian(self, native: bool) -> bool:
        """Is a binary item (``native``: COMP-5 / COMP-X / POINTER / INDEX) little-endian?"""
        return self.binary_order == "little" or (self.binary_order == "native_little" and native)

    @classmethod
    def from_mapping(cls, opts: Mapping[str, Any]) -> "CopybookOptions":
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in opts.items() if k in known and v is not None}
        if isinstance(kw.get("segment_filter"), (str, bytes)):
            kw["segment_filter"] = (kw["segment_filter"],)
        elif "segment_filter" in kw:
            kw["segment_filter"] = tuple(kw["segment_filter"])
        return cls(**kw)
