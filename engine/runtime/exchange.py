"""One request's way through the engine, and the failures a step can raise.

Error kinds (``error.kind`` in a route, with the code ``error.code`` takes
when the route gives none):

    malformed    a frame or body that could not be decoded       rejected  "30"
    unrouted     no route of the channel took the request        rejected  "12"
                 (an ISO 8583 reversal: "25", flagged: engine/runtime/unrouted_reversal.py)
    unauthenticated  its MAC or signature is missing or wrong    rejected  "63"
                 (on a call's answer: failed, and the call is in doubt: compensated / reversed)
    rejected     a validate rule failed (the rule's own code)    rejected  rule
                 (or a value of the request had the wrong shape: "30", dsl/inbound.py)
    key_conflict a deal key repeated for another deal (another   rejected  "12"
                 amount, currency or party: engine/txn/fingerprint.py); not run, not answered as a duplicate
    held         a `screen` step (on_hit = "hold") held it for   rejected  step's
                 a compliance officer: nothing sent; released (run again) or rejected by an operator
                 (engine/deal_hold.py)
    refused      a call's ``expect`` was false                   failed    "05"
    unreachable  a call's counterpart could not be reached       failed    "91"
    timeout      no reply from the counterpart in time           failed    "68"
    lost         the connection broke before the reply           failed    "91"
    internal     a step failed (bad value, encode error, ...)    failed    "96"
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from formats.classify import classified_values, mask_text

DEFAULT_CODES = {
    "malformed": "30",
    "unrouted": "12",
    "unauthenticated": "63",
    "rejected": "05",
    "refused": "05",
    "unreachable": "91",
    "timeout": "68",
    "lost": "91",
    "failed": "96",
    "internal": "96",
    "in_doubt": "96",
    "recovered": "96",
    "duplicate": "94",
    # not 94 (duplicate transmission): a sender may read 94 as "already done", and this request was not
    "key_conflict": "12",
    "held": "62",
    # a record of a file refused whole (all_or_nothing), not run: its own code when it failed the checks
    "refused_whole": "30",
}
REJECTED_KINDS = frozenset({"malformed", "unrouted", "unauthenticated", "rejected", "key_conflict", "held",
                            "refused_whole"})


# ``error.text`` when the failure gives none: short, to fit a reply field.
SHORT_TEXTS = {
    "malformed": "malformed request",
    "unrouted": "no route for this request",
    "unauthenticated": "security violation",
    "refused": "refused by counterpart",
    "unreachable": "counterpart unreachable",
    "timeout": "no reply from counterpart",
    "lost": "counterpart connection lost",
    "failed": "processing failed",
    "internal": "internal error",
    "in_doubt": "outcome unknown",                # may have been done: flagged for an operator
    "recovered": "undone after a restart",
    "key_conflict": "deal key already used for another deal",   # the manager's text names the fields too
    "held": "held for compliance review",         # the screen step's default text (its reason names the hit)
    "refused_whole": "file refused whole",        # all_or_nothing: its reason says why and how this record fared
}
# ``rejected`` (a validate rule's own text) and ``duplicate`` ("repeats deal ID (key ...)": which deal the
# request repeats, for the sender) keep their whole text as ``error.text``


class StepFailure(Exception):
    """A step decided the exchange cannot go on.

    ``text`` is what a route sees as ``error.text`` (short: it goes into reply
    fields); ``detail`` is the full explanation kept in the deal's reason;
    ``where`` names the route file place.
    """

    # the request itself is not of the shape the route reads (a JSON list or text where it reads an
    # object's fields: dsl/inbound.py): malformed, answered as a body that cannot be decoded, by the
    # channel's error reply, not the route's `on error` (which would read the same fields)
    not_object = False
    # a step's own exception (a bug) made it, not a refusal: logged as an internal error is, once per kind
    # (engine/runtime/internal_log.py); set for a step with side effects, whose deal fails in doubt
    raised = False
    # the request field the failure is about ("beneficiary.name", "http.query.since"), when the failure knows
    # it (a value of the wrong shape or left out: dsl/inbound.py; a format error naming its field); an HTTP
    # client reads it as the problem's `field` (engine/channels/http_listen.py)
    field: str | None = None
    # a record of a file refused whole (kind ``refused_whole``) that no route reads: the kind it had on its own
    # ("malformed", "unrouted"), which names its deal's route as then ("(malformed)"): engine/channels/file_precheck.py
    record_kind: str | None = None

    def __init__(self, kind: str, detail: str, *, code: str | None = None, where: str | None = None,
                 text: str | None = None, in_doubt: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        # the counterpart may have done it (an answer that cannot be trusted): the deal failed, and its
        # call is compensated / reversed as after a timeout
        self.in_doubt = in_doubt
        self.code = code if code is not None else DEFAULT_CODES.get(kind, "96")
        self.detail = detail
        self.text = text if text is not None else SHORT_TEXTS.get(kind, detail)
        self.where = where

    @property
    def status(self) -> str:
        return "rejected" if self.kind in REJECTED_KINDS and not self.in_doubt else "failed"

    def as_scope(self) -> dict[str, Any]:
        """What ``error`` is in a route: ``error.kind``, ``error.code``, ``error.text``, ...  ``undone`` and
        ``flagged`` (and ``not_undone``) say what became of the calls the deal made: as here (nothing was made) until the
        transaction manager tells them, after its compensations and before ``on error`` (``engine.txn.outcome``)."""
        return {"kind": self.kind, "code": self.code, "text": self.text, "detail": self.detail, "where": self.where,
                "undone": True, "flagged": False, "forwarded": False, "not_undone": []}

    def mask(self, known: dict[str, str]) -> None:
        """Mask the classified values ``known`` (``formats.classify.classified_values``) wherever the
        detail or the text quotes them (an expression's or an encoder's error quotes its value)."""
        self.detail = mask_text(self.detail, known)
        self.text = mask_text(self.text, known)
        self.args = (self.detail,)

    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" + (f" (at {self.where})" if self.where else "")


class Exchange:
    """A request and everything the route made of it; becomes one DealRecord."""

    __slots__ = (
        "channel", "conn", "raw", "received_at", "scope", "route", "msg",
        "deal_type", "reference", "amount", "currency", "party",
        "failure", "reply", "reply_values", "index", "raw_msg", "reply_json", "header", "error_route",
        "request_tags", "request_codec", "unrecorded", "repeats", "holds", "links", "notes", "unfit_amount",
    )

    def __init__(self, channel: str, conn: Any, raw: bytes, received_at: datetime, index: int) -> None:
        self.channel = channel
        self.conn = conn
        self.raw = raw
        self.received_at = received_at
        self.index = index
        self.scope: dict[str, Any] = {}
        self.route: Any = None
        self.msg: Any = None
        self.deal_type: str | None = None
        self.reference: str | None = None
        self.amount: Any = None
        self.currency: str | None = None
        self.party: str | None = None
        self.failure: StepFailure | None = None
        self.reply: bytes | None = None
        self.reply_values: Any = None
        self.raw_msg: Any = None                  # the request as decoded from ``raw`` by the route
        self.reply_json: str | None = None        # ``reply`` as text when its format is plain JSON
        self.header: dict[str, str] | None = None  # the frame's framing header (TPDU), as routes see it
        # the route whose ``on error`` answers an exchange that failed before it could enter one (a request
        # whose MAC does not verify: that route's format read it, its ``when`` took it unverified)
        self.error_route: Any = None
        # the classification of ``msg`` when no route took it (an unrouted request, decoded by a format)
        self.request_tags: dict[str, str] | None = None
        self.request_codec: Any = None            # and the codec that decoded it (its dead letter: engine/sad.py)
        # its deal could not be written to the ledger (a full disk): nothing may tell the sender it was done
        self.unrecorded = False
        # a repeat answered with its original's reply: how the original ended (status, kind, code), so that a
        # channel whose answer says more than its bytes (an HTTP status) says it again (engine.txn.manager)
        self.repeats: tuple[str, str | None, str | None] | None = None
        # what its `limit` steps reserved (engine/totals.py: Holds), settled when its deal is recorded
        self.holds: Any = None
        self.links: Any = None       # `continuity` steps' statement links (engine/statement_chains.py)
        # events a step gives its deal, ``(to_state, detail)``: recorded with the deal's row, before its own
        # (a `screen` step's ``screening hit``: engine/steps/screen.py); never a classified value in clear
        self.notes: list[tuple[str, Any]] | None = None
        # the deal step found its amount finer than its currency; the validate steps right after it reject it
        # (with the route's own text when one of their rules does) before anything else runs (engine/steps/deal.py)
        self.unfit_amount: StepFailure | None = None

    def fail(self, failure: StepFailure) -> None:
        if self.failure is None:
            known = self.classified()
            if known:
                failure.mask(known)
            self.failure = failure
            self.scope["error"] = failure.as_scope()

    def classified(self) -> dict[str, str]:
        """``{text: tag}`` of the classified values this exchange holds: the request's fields classified
        by the route's format, and those of each call's reply classified by its reply format (what a
        failure's text may quote and must not show)."""
        br = self.route if self.route is not None else self.error_route
        known: dict[str, str] = {}
        for key, tags in getattr(br, "classified_scopes", ()):
            value = (self.msg if self.msg is not None else self.scope.get("msg")) if key is None \
                else self.scope.get(key)
            if value is not None:
                known.update(classified_values(value, tags, min_len=1))
        return known

    @property
    def code(self) -> str | None:
        """The code its deal records (``response_code``): its failure's, else the one its reply carried (its
        route's response-code field: ``BoundRoute.code_of``), else None."""
        f = self.failure
        if f is not None:
            return f.code
        br = self.route
        return br.code_of(self.reply_values) if br is not None else None

    @property
    def status(self) -> str:
        return "committed" if self.failure is None else self.failure.status


def preset_deal_id(ex: Any) -> str | None:
    """The id the caller chose for this exchange's deal (``conn.extra["deal_id"]``: ``bsp dead retry``, whose claim
    of the letter names it beforehand, engine/deadletter.py), for the one exchange of its connection; else None."""
    extra = ex.conn.extra if ex.conn is not None else None
    if not extra or ex.index != 0:
        return None
    return extra.get("deal_id")
