"""The German structured ``:86:`` ("Mehrzweckfeld", DFÜ-Abkommen / DK format of MT940 and MT942).

``166?00GUTSCHRIFT?100399?20EREF+X?21SVWZ+Y?30DRESDEFF508?31DE14...?32KARL?33KAUFMANN``: a 3-digit
business transaction code (GVC), then sub-fields ``?NN``.  The field's 65-column lines are joined
without a separator first (a sub-field, even its ``?NN`` marker, may run over a line break).

``parse_86(text)`` -> the breakdown (all of ``KEYS``, ``None`` where absent), or ``None`` when the
text is not structured (does not start with 3 digits and ``?NN``; Dutch and Polish banks' free
texts).  Key names are WoLpH/mt940's (as the statement view's other names), so that the
conformance corpus compares key by key:

* ``transaction_code`` the GVC; ``?00`` ``posting_text``; ``?10`` ``prima_nota``;
  ``?20``-``?29`` ``purpose`` (joined); ``?30`` ``applicant_bin`` (the counterparty's BIC or bank
  code); ``?31`` ``applicant_iban`` (its IBAN or account number); ``?32`` + ``?33``
  ``applicant_name``; ``?34`` ``return_debit_notes`` (text key addition, e.g. a return reason);
  ``?35`` ``recipient_name``; ``?60``-``?65`` ``additional_purpose``; any other sub-field (``?38``,
  a bank's ``?70``) in ``other`` by its number.  A sub-field given twice is joined.
* SEPA keywords in the purpose lines (``EREF+``, ``KREF+``, ``MREF+``, ``CRED+``, ``SVWZ+``,
  ``ABWA+`` ... ``KEYWORDS``): each keyword's value runs to the next keyword, spaces kept;
  ``purpose`` is then the ``SVWZ+`` text (``None`` without one) and the text before the first
  keyword, if any, is ``leading_text``.  A keyword given twice keeps its first value.

Derived data: the raw text stays the field's value and is what the writer writes.
"""
from __future__ import annotations

import re
from typing import Any

# ?NN sub-field -> key (?20-?29 go to purpose, ?33 to the name, ?61-?65 to additional_purpose)
SUBFIELDS = {"00": "posting_text", "10": "prima_nota", "30": "applicant_bin", "31": "applicant_iban",
             "32": "applicant_name", "33": "applicant_name", "34": "return_debit_notes", "35": "recipient_name",
             **{f"2{i}": "purpose" for i in range(10)}, **{f"6{i}": "additional_purpose" for i in range(6)}}

# SEPA keyword in the purpose lines -> key
KEYWORDS = {"EREF": "end_to_end_reference", "KREF": "customer_reference", "MREF": "additional_position_reference",
            "CRED": "applicant_creditor_id", "DEBT": "debitor_identifier", "SVWZ": "purpose",
            "ABWA": "deviate_applicant", "ABWE": "deviate_recipient", "IBAN": "gvc_applicant_iban",
            "BIC": "gvc_applicant_bin", "PURP": "purpose_code", "MDAT": "additional_position_date",
            "SQTP": "FRST_ONE_OFF_RECC", "ORCR": "old_SEPA_CI", "ORMR": "old_SEPA_additional_position_reference",
            "DDAT": "settlement_tag", "COAM": "compensation_amount", "OAMT": "original_amount"}

KEYS = ("transaction_code", "posting_text", "prima_nota", "purpose", "applicant_bin", "applicant_iban",
        "applicant_name", "return_debit_notes", "recipient_name", "additional_purpose",
        *(k for k in KEYWORDS.values() if k != "purpose"), "leading_text", "other")

# the keys that carry names, accounts, party identifiers or free text: personal (formats.swift.classes)
PERSONAL = ("purpose", "applicant_iban", "applicant_name", "recipient_name", "additional_purpose",
            "applicant_creditor_id", "debitor_identifier", "deviate_applicant", "deviate_recipient",
            "gvc_applicant_iban", "old_SEPA_CI", "leading_text", "other")

_START = re.compile(r"(\d{3})\?\d{2}")
_MARK = re.compile(r"\?(\d{2})")
_KEYWORD = re.compile("(" + "|".join(KEYWORDS) + r")\+")


def parse_86(text: str) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    flat = "".join(line.rstrip("\r") for line in text.split("\n"))
    start = _START.match(flat)
    if not start:
        return None
    out: dict[str, Any] = dict.fromkeys(KEYS)
    out["transaction_code"] = start[1]
    other: dict[str, str] = {}
    marks = list(_MARK.finditer(flat, 3))
    for m, nxt in zip(marks, marks[1:] + [None]):
        value = flat[m.end(): nxt.start() if nxt else len(flat)]
        key = SUBFIELDS.get(m[1])
        if key is None:
            other[m[1]] = other.get(m[1], "") + value
        elif value:
            out[key] = (out[key] or "") + value
    out["other"] = other or None
    if out["purpose"]:
        _keywords(out["purpose"], out)
    return out


def _keywords(purpose: str, out: dict[str, Any]) -> None:
    found = list(_KEYWORD.finditer(purpose))
    if not found:
        return
    out["purpose"] = None
    out["leading_text"] = purpose[:found[0].start()] or None
    for m, nxt in zip(found, found[1:] + [None]):
        key = KEYWORDS[m[1]]
        if out[key] is None:
            out[key] = purpose[m.end(): nxt.start() if nxt else len(purpose)]


def add_details(item: dict[str, Any]) -> dict[str, Any]:
    """A block 4 field ``{"tag": "86", "value": text}``: adds ``"details"`` when the text is structured."""
    if item.get("tag") == "86":
        details = parse_86(item.get("value"))
        if details is not None:
            item["details"] = details
    return item
