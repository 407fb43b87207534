"""Per-message block 4 specs: which tags, which option letters, which are mandatory,
and for MT101 / MT103 / MT202 in which order and sequence.

Each entry is ``(tag, options, mandatory)``; ``options`` lists the letters allowed
after the tag number, "-" standing for "no letter" (``("59", "-AF", True)`` allows
59, 59A and 59F).

Messages with ``sequences`` are checked in order against the SWIFT field tables
(``ORDERS``): MT103 and MT202 are one sequence in table order; MT101 is sequence A
once, then sequence B (one per transaction, each starting with :21:) repeated.  A
field out of order, a sequence A field after sequence B began, or a sequence
occurrence without its mandatory fields is a ``FormatError`` naming tag, offset and
sequence.  Other messages (MT940/942/950, whose 61/86 pairs repeat) are checked per
message: allowed tags and options, and each mandatory tag at least once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from formats.errors import FormatError


@dataclass(frozen=True)
class MessageSpec:
    mt: str
    title: str
    tags: tuple[tuple[str, str, bool], ...]

    def allowed(self) -> dict[str, str]:
        return _allowed(self)

    def mandatory(self) -> list[tuple[str, str]]:
        return [(t, o) for t, o, m in self.tags if m]


@dataclass(frozen=True)
class Sequence:
    """One sequence of a message's field table, in order.  Entries are ``(tag, options,
    mandatory, repeatable)``; ``repeat``: the sequence occurs once per transaction, each
    occurrence starting with its first entry."""
    name: str
    entries: tuple[tuple[str, str, bool, bool], ...]
    repeat: bool = False


@lru_cache(maxsize=None)
def _allowed(spec: MessageSpec) -> dict[str, str]:
    return {t: o for t, o, _ in spec.tags}


# Field order per the SWIFT MT field tables (Standards MT, Category 1 and 2).
ORDERS: dict[str, tuple[Sequence, ...]] = {
    "101": (
        Sequence("A (general information)", (
            ("20", "-", True, False), ("21R", "-", False, False), ("28D", "-", True, False),
            ("50", "CL", False, False), ("50", "FGH", False, False), ("52", "AC", False, False),
            ("51A", "-", False, False), ("30", "-", True, False), ("25", "-", False, False))),
        Sequence("B (transaction details)", (
            ("21", "-", True, False), ("21F", "-", False, False), ("23E", "-", False, True),
            ("32B", "-", True, False), ("50", "CL", False, False), ("50", "FGH", False, False),
            ("52", "AC", False, False), ("56", "ACD", False, False), ("57", "ACD", False, False),
            ("59", "-AF", True, False), ("70", "-", False, False), ("77B", "-", False, False),
            ("33B", "-", False, False), ("71A", "-", True, False), ("25A", "-", False, False),
            ("36", "-", False, False)), repeat=True),
    ),
    "103": (Sequence("of MT103", (
        ("20", "-", True, False), ("13C", "-", False, True), ("23B", "-", True, False), ("23E", "-", False, True),
        ("26T", "-", False, False), ("32A", "-", True, False), ("33B", "-", False, False), ("36", "-", False, False),
        ("50", "AFK", True, False), ("51A", "-", False, False), ("52", "AD", False, False),
        ("53", "ABD", False, False), ("54", "ABD", False, False), ("55", "ABD", False, False),
        ("56", "ACD", False, False), ("57", "ABCD", False, False), ("59", "-AF", True, False),
        ("70", "-", False, False), ("71A", "-", True, False), ("71F", "-", False, True), ("71G", "-", False, False),
        ("72", "-", False, False), ("77B", "-", False, False), ("77T", "-", False, False))),),
    "202": (Sequence("of MT202", (
        ("20", "-", True, False), ("21", "-", True, False), ("13C", "-", False, True), ("32A", "-", True, False),
        ("52", "AD", False, False), ("53", "ABD", False, False), ("54", "ABD", False, False),
        ("56", "AD", False, False), ("57", "ABD", False, False), ("58", "AD", True, False),
        ("72", "-", False, False))),),
}


MESSAGES: dict[str, MessageSpec] = {s.mt: s for s in (
    MessageSpec("101", "Request for Transfer", (
        ("20", "-", True), ("21R", "-", False), ("28D", "-", True), ("50", "CFGHL", False), ("52", "AC", False),
        ("51A", "-", False), ("30", "-", True), ("25", "-", False),
        ("21", "-", True), ("21F", "-", False), ("23E", "-", False), ("32B", "-", True), ("56", "ACD", False),
        ("57", "ACD", False), ("59", "-AF", True), ("70", "-", False), ("77B", "-", False), ("33B", "-", False),
        ("71A", "-", True), ("25A", "-", False), ("36", "-", False))),
    MessageSpec("103", "Single Customer Credit Transfer", (
        ("20", "-", True), ("13C", "-", False), ("23B", "-", True), ("23E", "-", False), ("26T", "-", False),
        ("32A", "-", True), ("33B", "-", False), ("36", "-", False), ("50", "AFK", True), ("51A", "-", False),
        ("52", "AD", False), ("53", "ABD", False), ("54", "ABD", False), ("55", "ABD", False),
        ("56", "ACD", False), ("57", "ABCD", False), ("59", "-AF", True), ("70", "-", False),
        ("71A", "-", True), ("71F", "-", False), ("71G", "-", False), ("72", "-", False), ("77B", "-", False),
        ("77T", "-", False))),
    MessageSpec("202", "General Financial Institution Transfer", (
        ("20", "-", True), ("21", "-", True), ("13C", "-", False), ("32A", "-", True), ("52", "AD", False),
        ("53", "ABD", False), ("54", "ABD", False), ("56", "AD", False), ("57", "ABD", False),
        ("58", "AD", True), ("72", "-", False))),
    MessageSpec("940", "Customer Statement Message", (
        ("20", "-", True), ("21", "-", False), ("25", "-P", True), ("28C", "-", True), ("60", "FM", True),
        ("61", "-", False), ("86", "-", False), ("62", "FM", True), ("64", "-", False), ("65", "-", False))),
    MessageSpec("942", "Interim Transaction Report", (
        ("20", "-", True), ("21", "-", False), ("25", "-P", True), ("28C", "-", True), ("34F", "-", True),
        ("13D", "-", True), ("61", "-", False), ("86", "-", False), ("90D", "-", False), ("90C", "-", False))),
    MessageSpec("950", "Statement Message", (
        ("20", "-", True), ("25", "-", True), ("28C", "-", True), ("60", "FM", True), ("61", "-", False),
        ("62", "FM", True), ("64", "-", False))),
)}


def _split(tag: str, allowed: dict[str, str]) -> tuple[str, str]:
    """'32A' -> ('32', 'A') unless the full tag is listed as such (e.g. '21R', '28D')."""
    if tag in allowed:
        return tag, "-"
    if len(tag) == 3:
        return tag[:2], tag[2]
    return tag, "-"


def _names(base: str, opts: str) -> str:
    return " / ".join(base + ("" if o == "-" else o) for o in opts)


def _where(mt: str, seq: Sequence, single: bool) -> str:
    return f"MT{mt}" if single else f"sequence {seq.name} of MT{mt}"


def _check_mandatory(mt: str, seq: Sequence, single: bool, seen: set[int], at: int | None, count: int) -> None:
    for j, (base, opts, mandatory, _) in enumerate(seq.entries):
        if mandatory and j not in seen:
            which = f" (transaction {count})" if seq.repeat else ""
            raise FormatError(f"mandatory field {_names(base, opts)} is missing from {_where(mt, seq, single)}{which}",
                              offset=at, field=base,
                              hint=f"add :{base}{'' if opts[0] == '-' else opts[0]}: in its place in the field table")


@lru_cache(maxsize=None)
def _lookup(seq: Sequence) -> dict[str, tuple[int, ...]]:
    """tag as written ("59", "59A", "21R") -> the entries of ``seq`` it can fill, in table order."""
    out: dict[str, list[int]] = {}
    for j, (base, opts, _, _) in enumerate(seq.entries):
        for o in opts:
            out.setdefault(base if o == "-" else base + o, []).append(j)
    return {k: tuple(v) for k, v in out.items()}


def _find(seq: Sequence, tag: str, start: int) -> int | None:
    for j in _lookup(seq).get(tag, ()):
        if j >= start:
            return j
    return None


def validate_order(mt: str, fields: list[dict[str, Any]], offsets: list[int] | None = None) -> None:
    """Check block 4 against the ordered sequences of ``ORDERS[mt]`` (MT101, MT103, MT202)."""
    seqs = ORDERS[mt]
    single = len(seqs) == 1
    offs = offsets or []
    si = 0                    # current sequence
    pos = -1                  # index of the last matched entry in it
    seen: set[int] = set()
    count = 1
    prev_tag = ""
    for i, item in enumerate(fields):
        tag = item["tag"]
        off = offs[i + 1] if len(offs) > i + 1 else None
        seq = seqs[si]
        repeatable = pos >= 0 and seq.entries[pos][3]
        j = _find(seq, tag, pos if repeatable else pos + 1)
        if j is None and si + 1 < len(seqs) and _find(seqs[si + 1], tag, 0) == 0:
            _check_mandatory(mt, seq, single, seen, off, count)     # sequence A ends, the first B starts
            si, pos, seen, prev_tag = si + 1, 0, {0}, tag
            continue
        if j is None and seq.repeat and _find(seq, tag, 0) == 0:
            _check_mandatory(mt, seq, single, seen, off, count)     # the next occurrence of a repeating sequence
            pos, seen, count, prev_tag = 0, {0}, count + 1, tag
            continue
        if j is None:
            where = _where(mt, seq, single)
            earlier = _find(seq, tag, 0)
            if earlier is not None and earlier == pos:
                raise FormatError(f"field :{tag}: is repeated in {where}; it may occur once", offset=off, field=tag,
                                  hint=f"remove the second :{tag}:")
            if earlier is not None:
                raise FormatError(f"field :{tag}: is out of order in {where}: the field table puts it before "
                                  f":{prev_tag}:", offset=off, field=tag,
                                  hint="write block 4 fields in the order of the message's field table")
            for k in range(si):
                if _find(seqs[k], tag, 0) is not None:
                    raise FormatError(f"field :{tag}: belongs to {_where(mt, seqs[k], single)}, but sequence "
                                      f"{seq.name} has already begun", offset=off, field=tag,
                                      hint=f"move :{tag}: before the first :{seq.entries[0][0]}:")
            raise FormatError(f"field :{tag}: is not allowed in {where}", offset=off, field=tag)
        pos = j
        seen.add(j)
        prev_tag = tag
    _check_mandatory(mt, seqs[si], single, seen, offs[0] if offs else None, count)
    if si + 1 < len(seqs):
        nxt = seqs[si + 1]
        raise FormatError(f"MT{mt} has no sequence {nxt.name}: it needs at least one, starting with "
                          f":{nxt.entries[0][0]}:", offset=offs[0] if offs else None, field=nxt.entries[0][0])


def validate(mt: str, fields: list[dict[str, Any]], offsets: list[int] | None = None) -> None:
    spec = MESSAGES.get(mt)
    if spec is None:
        return
    allowed = spec.allowed()
    offs = offsets or []
    seen: set[str] = set()
    for i, item in enumerate(fields):
        tag = item["tag"]
        off = offs[i + 1] if len(offs) > i + 1 else None
        base, letter = _split(tag, allowed)
        if base not in allowed:
            raise FormatError(f"tag :{tag}: is not part of MT{mt} ({spec.title})", offset=off, field=tag,
                              hint=f"MT{mt} allows {', '.join(sorted(allowed))}")
        if letter not in allowed[base]:
            opts = ", ".join(base + ("" if o == "-" else o) for o in allowed[base])
            raise FormatError(f"option {tag} is not allowed in MT{mt}", offset=off, field=tag,
                              hint=f"use one of {opts}")
        seen.add(base)
    if mt in ORDERS:
        validate_order(mt, fields, offsets)
        return
    for base, _ in spec.mandatory():
        if base not in seen:
            opts = allowed[base]
            names = " / ".join(base + ("" if o == "-" else o) for o in opts)
            raise FormatError(f"mandatory field {names} is missing from MT{mt}", offset=offs[0] if offs else None,
                              field=base, hint=f"add :{base}{'' if opts[0] == '-' else opts[0]}: to block 4")
