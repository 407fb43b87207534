"""Per-message block 4 specs: which tags, which option letters, which are mandatory.

Each entry is ``(tag, options, mandatory)``; ``options`` lists the letters allowed
after the tag number, "-" standing for "no letter" (``("59", "-AF", True)`` allows
59, 59A and 59F).  The check is per message, not per sequence: repeating
sequences (MT101 B, MT940 61/86) are allowed to repeat, and a mandatory tag must
occur at least once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from formats.errors import FormatError


@dataclass(frozen=True)
class MessageSpec:
    mt: str
    title: str
    tags: tuple[tuple[str, str, bool], ...]

    def allowed(self) -> dict[str, str]:
        return {t: o for t, o, _ in self.tags}

    def mandatory(self) -> list[tuple[str, str]]:
        return [(t, o) for t, o, m in self.tags if m]


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
    for base, _ in spec.mandatory():
        if base not in seen:
            opts = allowed[base]
            names = " / ".join(base + ("" if o == "-" else o) for o in opts)
            raise FormatError(f"mandatory field {names} is missing from MT{mt}", offset=offs[0] if offs else None,
                              field=base, hint=f"add :{base}{'' if opts[0] == '-' else opts[0]}: to block 4")
