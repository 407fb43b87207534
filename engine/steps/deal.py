"""``deal TYPE { ref = .. amount = .. currency = .. party = .. }``: name the deal the ledger records."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from dsl.inbound import got, path_of
from engine.ledger_store import AMOUNT_MAX_INT_DIGITS, AMOUNT_SCALE, amount_problem
from engine.runtime.exchange import StepFailure
from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec
from formats.currencies import listed_places, too_fine

# key: engine/txn (idempotency); match: what a repeat of the key must carry unchanged, compared by its digest
# and never stored (engine/txn/fingerprint.py)
DEAL_FIELDS = ("ref", "amount", "currency", "party", "key", "match")
_CURRENCY = re.compile(r"[A-Za-z]{3}|[0-9]{3}")      # ISO 4217: alphabetic (EUR) or numeric (978)
_CODES: set[str] = set()                             # currency codes seen matching it


class DealStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.type = step.options["type"]
        self.fields = {a.path: ctx.expr(a.value) for a in step.options.get("fields", ())}
        # the request field each column reads (`ref = msg.claim_id`: "claim_id"), named in a refusal's text
        self.sent = {a.path: path_of(a.value) for a in step.options.get("fields", ())}
        unknown = set(self.fields) - set(DEAL_FIELDS)
        if unknown:
            raise ValueError(f"{self.where}: deal {self.type}: unknown field(s) {', '.join(sorted(unknown))}; "
                             f"a deal has {', '.join(DEAL_FIELDS)}")
        f = self.fields
        self.ref, self.amount = f.get("ref"), f.get("amount")
        self.currency, self.party = f.get("currency"), f.get("party")
        self.key = f.get("key")     # evaluated by engine/txn before the first call, not stored here
        self.match = f.get("match")  # evaluated by engine/txn when the key is looked up; only its digest is kept
        # an amount finer than its currency is refused by the validate steps right after this one, when there
        # are: their own rule (a route's "more decimals than the currency has") answers first
        self.deferred = settling_step(route, step) is not None

    def run(self, ex: Any) -> None:
        scope = ex.scope
        ex.deal_type = self.type
        if self.ref is not None:
            v = self.ref(scope)
            ex.reference = v if v is None or type(v) is str else self._text("ref", v)
        text = None         # the amount's text, when it is plain digits that fit the column (``_fits`` reads it)
        if self.amount is not None:
            v = self.amount(scope)
            if v is not None and not isinstance(v, Decimal):
                if isinstance(v, int) and not isinstance(v, bool):
                    v = Decimal(v)
                else:
                    # the request's own value (a JSON "12.50" or "abc", a form's text, an object): the
                    # sender's to fix, refused as any unusable amount is, not an engine failure (500, 96)
                    fix = ("; for a sender that sends it as text: write `amount = number(...)` in the deal "
                           "(number(\"12.50\") is 12.50)") if isinstance(v, str) else ""
                    raise StepFailure("rejected", f"deal {self.type}: amount must be a number, got {got(v)}{fix}",
                                      code="13", text="invalid amount", where=self.where)
            if v is not None:
                # refused here, before any call, not when the ledger cannot store it (1E+999999999, 21
                # digits, NaN): the counterpart would have been called for a deal then neither recorded
                # nor answered
                text = str(v)
                problem = None if _plain_fit(text) else (
                    f"{v} is not a finite number" if not v.is_finite() else amount_problem(v))
                if problem:
                    shown = str(v)
                    if len(shown) > 40:          # a hostile 4000-digit amount is not quoted whole
                        problem = problem.replace(shown, f"{shown[:12]}... ({len(shown)} characters)")
                    raise StepFailure("rejected", f"deal {self.type}: amount {problem}", code="13",
                                      text="invalid amount", where=self.where)
            ex.amount = v
            ex.unfit_amount = None
        if self.currency is not None:
            v = self.currency(scope)
            if v is not None and type(v) is not str:
                v = self._text("currency", v)
            if v is not None and v not in _CODES:      # a code seen well formed before is not checked again
                if not v.strip():
                    v = None                # blank (a PIC X(3) of spaces, ""): no currency, as null
                elif not _CURRENCY.fullmatch(v):
                    raise StepFailure("rejected", f"deal {self.type}: currency must be an ISO 4217 code, 3 "
                                      f"letters (EUR) or 3 digits (978), got {got(v)}", code="30",
                                      text="invalid currency", where=self.where)
                elif len(_CODES) < 4096:    # codes a sender makes up do not grow it without end
                    _CODES.add(v)
            ex.currency = v
            if v is not None and ex.amount is not None and (text is None or _maybe_finer(text, v)):
                self._fits(ex, ex.amount, v, text)
        if self.party is not None:
            ex.party = self._text("party", self.party(scope))

    def _fits(self, ex: Any, amount: Decimal, currency: str, text: str | None = None) -> None:
        """A recorded amount is an accounting fact: one finer than its currency (100.5 JPY, 12.345 EUR) is
        refused, never rounded (docs/money.md).  A currency the ISO 4217 table does not list is not checked.
        ``text``: ``str(amount)`` when the caller has it."""
        fine = too_fine(amount, currency, text)
        if fine is None:
            return
        alpha, places, have = fine
        sent = self.sent.get("amount")
        named = f" ({sent})" if sent else ""
        shown = str(amount) if len(str(amount)) <= 40 else f"{str(amount)[:12]}..."
        unit = "no decimals" if places == 0 else f"{places} decimal{'s' if places > 1 else ''}"
        failure = StepFailure(
            "rejected",
            f"deal {self.type}: amount{named} {shown} has {have} decimal{'s' if have > 1 else ''}, but {alpha} "
            f"has {unit} (ISO 4217 minor units); a recorded amount is never rounded: round it in the route "
            f"where the business rule says so, round(x, minor_units(ccy)), or refuse it: "
            f"fits_currency(x, ccy) else reject \"13\" \"too many decimals for the currency\"",
            code="13", text=f"invalid amount (more decimals than {alpha} has)", where=self.where)
        failure.field = sent
        if self.deferred:
            ex.unfit_amount = failure
            return
        raise failure

    def _text(self, name: str, v: Any) -> str | None:
        """A text column's value: text as it is, a number as its digits; anything else (an object, a list, a
        boolean: the request's own value) is refused, not stored as Python's rendering of it."""
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
            return str(v)
        sent = self.sent.get(name)
        told = f" ({sent}: expected text or a number, got {got(v)})" if sent else ""
        raise StepFailure("rejected", f"deal {self.type}: {name} must be text or a number, got {got(v)}",
                          code="30", text=f"invalid {name}{told}", where=self.where)


# the steps that may stand between a deal step and the validate step that settles its amount's currency check
_BETWEEN = frozenset({"validate", "let"})


def settling_step(route: Any, step: Any) -> Any:
    """The validate step that refuses a deal step's amount finer than its currency (the last of the validate and
    let steps right after the deal step, if one is a validate), or None: the deal step refuses it itself."""
    steps = getattr(route, "steps", None) or ()
    at = next((i for i, s in enumerate(steps) if s is step), None)
    if at is None:
        return None
    found = None
    for later in steps[at + 1:]:
        if later.kind not in _BETWEEN:
            break
        if later.kind == "validate":
            found = later
    return found


def settles(route: Any, step: Any) -> bool:
    """Whether the validate step ``step`` is the one that refuses the amount of the deal step before it."""
    steps = getattr(route, "steps", None) or ()
    return any(s.kind == "deal" and settling_step(route, s) is step for s in steps)


def _plain_fit(t: str) -> bool:
    """A Decimal's text ``t`` is plain digits that fit the amount column (the common case, read on its text:
    ~0.2 us against ~0.4 for ``amount_problem``); False sends it to the full check."""
    dot = t.find(".")
    whole = (len(t) if dot < 0 else dot) - (t[0] == "-")
    return (whole <= AMOUNT_MAX_INT_DIGITS and (dot < 0 or len(t) - dot - 1 <= AMOUNT_SCALE)
            and t[-1].isdigit() and "E" not in t)


def _maybe_finer(text: str, code: str) -> bool:
    """Whether the plain amount text ``text`` (``_plain_fit``) may have more decimals than the currency ``code``
    has: False when it surely has not (no decimals once trailing zeros go, as many as the currency's minor
    units or fewer, or a currency the table does not list), read on its text (~0.15 us); True sends it to
    ``too_fine``, which settles it and words the refusal."""
    dot = text.find(".")
    if dot < 0:
        return False
    have = len(text.rstrip("0")) - dot - 1
    if have <= 0:
        return False
    places = listed_places(code)
    return places is not None and have > places


COMPONENT = ComponentSpec(
    category="step",
    name="deal",
    doc=(
        "Name the deal this exchange is: its type and the reference, amount (Decimal), "
        "currency and party columns of its ledger row. Every exchange is recorded, with or "
        "without a deal step (without one, the deal type is the route's name). An amount with "
        "more decimals than its currency's ISO 4217 minor units (100.5 JPY, 12.345 EUR) is "
        "refused (13), never rounded: by the validate steps right after the deal step once "
        "their own rules pass, else by the deal step itself."
    ),
    options=(
        OptionSpec("type", "ident", "The deal type, e.g. BILL_PAYMENT.", required=True),
        OptionSpec("fields", "list", "ref, amount, currency, party, key, match = expressions."),
    ),
    build=DealStep,
    examples=('deal BILL_PAYMENT {\n    ref = msg.trace_no\n    amount = msg.amount\n    currency = msg.currency\n}',),
)
