"""Which SWIFT MT block 4 fields are personal data: one table for every message type.

A tag means the same in every message that carries it, so the table is by tag, not by message:

* **personal** — the customer's side of a payment or statement: accounts, names, addresses, party
  identifiers and the free texts that carry them.
  - whole value: 25 (account identification; MT101: the authorisation), 25A (charges account),
    50F / 50H / 50K (ordering customer), 50L (instructing party's identifier), 59 / 59F (beneficiary
    customer), 70 (remittance information), 77B (regulatory reporting: residence and address),
    77T (envelope contents), 86 (information to the account owner), NS (a bank's non-SWIFT lines);
  - the account only, the BIC beside it stays readable: 50A, 50G (ordering customer), 59A
    (beneficiary customer), 25P (account and its BIC);
  - of the structured breakdown of 86 (``details``, formats.swift.details86): the names, accounts,
    party identifiers and texts (``details86.PERSONAL``: purpose, applicant_name, applicant_iban,
    creditor and debtor identifiers, deviating payer and payee, other sub-fields ...); its codes,
    references, dates, amounts and the counterparty's BIC or bank code stay readable.
* **not classified** — institution identifiers (BICs: 50C, 51A, 52A-58A, 82A, 87A and the headers'
  logical terminals; the institution options 52C/D-58D and 53B-57B, which name and locate banks and
  their accounts with each other), references (20, 21, 21R, 21F), codes (23B, 23E, 26T, 71A), amounts,
  currencies, rates and dates (30, 32A, 32B, 33B, 36, 71F, 71G, 13C, 13D), statement data
  (28C, 28D, 60a-65, 61, 34F, 90C/D) and bank-to-bank information (72).

ISO 8583's shipped specs draw the same line (PAN, tracks, PIN, expiry date classified; institution
codes, amounts, dates not); so do the ISO 20022 routes (names, accounts; not agents' BICs, amounts).
A format's ``classify`` option adds to this table (``block4.tag=72.value:personal``); it cannot take
from it.
"""
from __future__ import annotations

from formats.swift.details86 import PERSONAL as PERSONAL_86

PERSONAL = "personal"

WHOLE = ("25", "25A", "50F", "50H", "50K", "50L", "59", "59F", "70", "77B", "77T", "86", "NS")
ACCOUNT_ONLY = ("25P", "50A", "50G", "59A")

TAGS: dict[str, str] = {
    **{f"block4.tag={t}.value": PERSONAL for t in WHOLE},
    **{f"block4.tag={t}.value.account": PERSONAL for t in ACCOUNT_ONLY},
    **{f"block4.tag=86.details.{k}": PERSONAL for k in PERSONAL_86},
}


# the same line drawn on ``statement_view``'s flat statement and transactions (``bsp decode --statements``)
_NS = ("non_swift", "non_swift_text", *(f"non_swift_{i:02}" for i in range(100)))
STATEMENT_VIEW: dict[str, str] = {
    **{f"statement.{k}": PERSONAL for k in ("account_identification", "information", *_NS)},
    **{f"transactions.{k}": PERSONAL for k in ("transaction_details", *_NS)},
    **{f"transactions.details.{k}": PERSONAL for k in PERSONAL_86},
}


def statement_view_tags() -> dict[str, str]:
    """``{path: tag}`` of ``statement_view``'s values: the account (25, 25P), the :86: texts and the
    personal keys of their breakdown, the :NS: lines."""
    return dict(STATEMENT_VIEW)


def classification_tags() -> dict[str, str]:
    """``{path: tag}`` of every SWIFT format (formats.classify paths of the decoded values)."""
    return dict(TAGS)
