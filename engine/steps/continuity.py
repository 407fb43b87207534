"""``continuity NAME { key = ..  statement = .. }``: is this statement the next of its account's chain?

At intake, before the statement is posted: the statement (an MT940's ``msg.block4``, a camt.053 ``Stmt``, or a
camt.053 / camt.052 message of one statement; a camt.052 intraday report, as an MT942, is no link)
is checked against the last statement of its account committed through chain NAME, and the statements of
the account still running (engine/statement_chains.py): it must open with the closing balance before it,
be numbered one more (or 1 in a new year), complete the pages, add up (engine/reconcile/continuity.py).
The deal is never refused for it: a statement that does not follow on is posted as any other, and its deal
carries an event ``statement break`` naming the account (the key), the statement before it (number,
reference, closing balance) and this one, counted in ``bsp status`` and the metrics.  NAME is bound to
``{status, ok, note, previous}`` so that a route that wants to refuse a break can
(``validate { stmts.ok else reject "30" stmts.note }``).  The chain moves on when the deal commits.
"""
from __future__ import annotations

from typing import Any, Mapping

from dsl.eval_error import InputError
from dsl.inbound import got
from engine.reconcile.continuity import Head, head_camt052, head_camt053, head_mt940
from engine.runtime.exchange import StepFailure
from engine.runtime.stepfail import input_failure
from engine.statement_chains import Chains
from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec
from formats.swift.statement_kind import swift_statement

OPTIONS = ("key", "statement")


def head(s: Any, place: str) -> Head | None:
    """The Head of a decoded statement: an MT940's, MT950's or MT942's block 4 (a list of fields) or message, or a
    camt.053 ``Stmt``; or a
    camt.053 / camt.052 document of one statement (``msg``): a camt.052 intraday report (``Rpt``) is, as an
    MT942, no link of the chain (a ``Rpt`` alone cannot be told from a ``Stmt``: give the document)."""
    swift = swift_statement(s)          # ValueError: a SWIFT message that is no statement (an MT103)
    if swift is not None:               # an MT940, MT950 or MT942 (its msg or block 4)
        return head_mt940(swift[1], place=place, account="")
    if isinstance(s, Mapping):
        for group, part, make in (("BkToCstmrAcctRpt", "Rpt", head_camt052), ("BkToCstmrStmt", "Stmt", head_camt053)):
            g = s.get(group)
            if isinstance(g, Mapping):
                parts = g.get(part)
                parts = parts if isinstance(parts, list) else [parts] if isinstance(parts, Mapping) else []
                return make(parts[0], place=place, account="") if len(parts) == 1 else None
        if "Bal" in s or "Ntry" in s or "Acct" in s:
            return head_camt053(s, place=place, account="")
    return None


class ContinuityStep(SyncStep):
    batch = True
    again_on_recovery = True     # a deal recovery runs on after a crash is judged again (engine/txn/recovery.py)

    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        if not step.name:
            raise ValueError(f"{self.where}: continuity needs a name: the chain its accounts' statements follow")
        self.chain = step.name
        exprs = {a.path: a.value for a in step.options.get("fields", ())}
        for need in OPTIONS:
            if need not in exprs:
                raise ValueError(f"{self.where}: continuity {self.chain}: needs `{need} = ...`")
        self.key = ctx.expr(exprs["key"])
        self.statement = ctx.expr(exprs["statement"])
        chains = getattr(ctx, "chains", None)
        self.chains: Chains = chains if chains is not None else Chains()

    async def run_batch(self, exs: list[Any]) -> None:
        """The batch's statements judged together (one account's in order), in one synchronous step."""
        items: list[tuple[str, Head]] = []
        whose: list[Any] = []
        for ex in exs:
            try:
                got_ = self._item(ex)
            except StepFailure as f:
                ex.fail(f)
                continue
            if got_ is None:
                ex.scope[self.chain] = None
                continue
            items.append(got_)
            whose.append(ex)
        if not items:
            return
        for ex, link in zip(whose, self.chains.judge(self.chain, items)):
            ex.links = [*(getattr(ex, "links", None) or ()), link]
            f = link.finding
            p = link.previous
            ex.scope[self.chain] = {"status": f.status, "ok": not link.broken, "note": f.note,
                                    "previous": None if p is None else p.statement()}

    def _item(self, ex: Any) -> tuple[str, Head] | None:
        held = ex.holds
        if held is not None and held.repeat:
            return None         # a repeat of a key already answered (a duplicate at its admission): no link
        scope = ex.scope
        try:
            key = self.key(scope)
            s = self.statement(scope)
        except InputError as exc:
            raise input_failure(exc, self.where) from exc
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key.strip():
            raise StepFailure("rejected", f"continuity {self.chain}: the key must be text or a number, not "
                              f"blank, got {got(key)}", code="30",
                              text=f"invalid request (no account for {self.chain})", where=self.where)
        try:
            h = head(s, f"{ex.channel} message")
        except ValueError as exc:       # an MT103 where a statement belongs: the sender's, not the route's
            raise StepFailure("rejected", f"continuity {self.chain}: {exc}", code="30",
                              text="invalid request (not a bank statement)", where=self.where) from None
        if h is None:
            raise StepFailure("internal", f"continuity {self.chain}: `statement` must be an MT940's, MT950's or "
                              f"MT942's msg.block4 (or msg), a camt.053 Stmt, or a camt.053 / camt.052 message "
                              f"(msg) of one statement or "
                              f"report, got {got(s)}", where=self.where)
        known = ex.classified()
        if known and any(v == key or (len(v) >= 4 and v in key) or (len(key) >= 4 and key in v) for v in known):
            key = self.chains.keys(self.chain, key)     # a classified account: a keyed digest, never in clear
        return key, h


COMPONENT = ComponentSpec(
    category="step",
    name="continuity",
    doc=(
        "Statement continuity at intake: the statement must follow on from the last one of its account "
        "committed through chain NAME (opening = previous closing, number one more, pages complete, adds up). "
        "A statement that does not is still posted (nothing is refused) and its deal carries an event "
        "`statement break` naming the account, the previous statement and its closing, and this one; counted in "
        "bsp status. NAME is bound to {status, ok, note, previous}. The chain moves on when the deal commits; "
        "rebuilt from the ledger on start. After the `deal` step, before the first call."
    ),
    options=(
        OptionSpec("key", "expr", "The account the chain is kept per: its member number (a classified "
                   "account is kept as a keyed digest).", required=True),
        OptionSpec("statement", "expr", "The statement: an MT940's or MT950's msg.block4 (or msg), a camt.053 "
                   "Stmt, or the message (msg) of a camt.053 or a camt.052 of one statement or report; a camt.052 "
                   "intraday report, as an MT942, is checked against its TxsSummry and is no link of the chain. "
                   "Another SWIFT message (an MT103) is rejected 30 saying what it is.",
                   required=True),
    ),
    build=ContinuityStep,
    examples=('continuity statements {\n    key       = accounts[account].member\n'
              '    statement = msg.block4\n}',),
)
