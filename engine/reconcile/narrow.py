"""Which deals received *outside* the reconciled days a statement can claim at all.

Such a deal is only a candidate for a late booking: the matcher (``match.reconcile``) pairs it with a
line by reference (passes 1 and 2: the line's reference equals the deal's) or by the text (pass 3: the
deal's reference, 4 characters or more, is a whole word of the line's text), never by amount and date,
and never reports it unclaimed.  So a deal the statement cannot claim this way changes no row of the
form and need not be read: ``claimable(lines)`` says which references to keep, and the ledger side
reads only those deals of the extra days, whatever the ledger holds around them.

The text test is a superset, never a miss: when ``ref`` occurs in ``text`` as a whole word (not
preceded nor followed by ``[0-9a-z]``), every maximal run of ``[0-9a-z]`` in ``ref`` is bounded on
both sides inside ``text`` too, i.e. it is one of ``text``'s words.  So a reference some of whose
words no line's text has cannot be found in any text; a reference without such a run is always kept.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

from engine.reconcile.lines import StatementLine, norm_ref, usable
from engine.reconcile.match import TEXT_REF_MIN, WORD_CHARS

_WORD = re.compile("[" + re.escape("".join(sorted(WORD_CHARS))) + "]+")


def words(text: str) -> list[str]:
    """The maximal runs of the matcher's word characters in ``text`` (already normalised)."""
    return _WORD.findall(text)


def claimable(lines: Iterable[StatementLine]) -> Callable[[str | None], bool]:
    """``claims(reference)``: could a line of ``lines`` pair with a deal of this reference (by the
    reference or by its text)?  ``False`` only when no pass of the matcher can pair them."""
    refs: set[str] = set()
    text_words: set[str] = set()
    for ln in lines:
        refs.update(norm_ref(r) for r in ln.refs if usable(r))
        if ln.text:
            text_words.update(words(norm_ref(ln.text)))

    def claims(reference: str | None) -> bool:
        if not usable(reference):
            return False
        key = norm_ref(reference)
        if key in refs:
            return True
        return len(key) >= TEXT_REF_MIN and all(w in text_words for w in words(key))

    return claims


__all__ = ["claimable", "words"]
