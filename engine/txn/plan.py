"""What a bound route means for transactions: its participants, compensations, key and policy.

Built once per ``BoundRoute`` (cached on it as ``txn_plan``).  A route is
*transactional* (``full``) when it declares a deal ``key``, a ``compensate`` on a
call, an ``on restart`` policy or a ``limit`` step, or has an ISO 8583 call after its first call:
every step is a participant (``TxnManager.run_steps``).  So is a route with a plugin step that acts
outside bsp (``ComponentSpec.side_effects``, ``engine.txn.effects``): its deal is logged as begun
before the first such step or call, so that a crash while it runs leaves a deal to flag, never
nothing.  Any other route with a
call is *light*: one compact ``a`` record per exchange before its first call and
nothing per step (``TxnManager.run_light``); an ISO 8583 first call keeps its
values as sent in that record (DE 90 of a reversal).  Both go through
``engine.txn.manager`` (``active``); routes without a call do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from formats.classify import tags_of

POLICIES = ("complete", "compensate", "flag")

# ISO 8583 requests that are reversed when they time out, and their reversal MTI
REVERSIBLE = {"0100": "0400", "0200": "0420", "0101": "0400", "0201": "0420"}


@dataclass
class CallPlan:
    index: int                 # position in the route's steps
    name: str
    runner: Any                # engine.steps.call.CallStep
    compensation: Any = None   # a CallStep built from the ``compensate call`` clause
    iso: bool = False          # the request format is ISO 8583: timeouts are reversed
    # ISO 8583: the request values built (and logged) before the call leaves, by id(scope); the
    # call step takes them from here (``_sent_values``), so a reversal copies exactly what was sent
    sent: dict[int, Any] = field(default_factory=dict)
    build: Any = None          # the call's own field builder
    # `readonly` (an enquiry): it changes nothing at the counterpart: never a pivot, nothing to undo, and
    # in doubt it leaves nothing to flag or to keep a key for (an ISO 8583 one is not reversed)
    readonly: bool = False
    # `store and forward` (an ISO 8583 advice, 0420 ...): left in doubt it is handed to the engine's store and
    # forward, repeated (0421) until the host acknowledges it, not flagged (engine.txn.saf)
    forward: bool = False


@dataclass
class RoutePlan:
    route: Any
    policy: str
    key: Any = None                                    # compiled key expression or None
    # the deal's ``match`` (compiled, or None): what a repeat of the key must carry unchanged, kept as a digest
    match: Any = None
    # ``on doubt flag|compensate`` (default flag): a call that nothing can undo left in doubt keeps the calls
    # made before it and flags the deal (flag), or has them undone (compensate); engine.txn.pivot
    doubt: str = "flag"
    # ``on refusal keep|free`` (default keep): a keyed deal a counterpart refused keeps its key, or frees it
    # (engine.txn.keyhold) when nothing else of it stands, so that a repeat runs again
    refusal: str = "keep"
    calls: dict[int, CallPlan] = field(default_factory=dict)
    first_call: int | None = None
    # where the deal key is checked and the deal logged as accepted: before the first call; a keyed
    # route without a call, after its last step (its only effects are its ledger row and its reply,
    # both after the steps): a repeat is answered with the original reply and recorded as a duplicate
    # there too, and a request that a step rejects or fails never takes the key
    admit_at: int | None = None
    # the keyed deal step: the key is evaluated right after it runs, in the scope the deal saw (a
    # later `decode` rebinds msg, a later `let` is not bound yet before it)
    key_at: int | None = None
    # plugin steps that act outside bsp (``ComponentSpec.side_effects``): index -> runner
    effects: dict[int, Any] = field(default_factory=dict)
    request_tags: dict[str, str] = field(default_factory=dict)
    response_tags: dict[str, str] = field(default_factory=dict)
    active: bool = False                               # the txn manager runs it (full or light)
    counts: bool = False                               # it has a `limit` step (engine/totals.py)
    light: bool = False                                # only the ``a`` record before the first call

    def step_name(self, i: int, step: Any) -> str:
        c = self.calls.get(i)
        if c is not None:
            return c.name
        kind = getattr(getattr(step, "step", None), "kind", None) or type(step).__name__.removesuffix("Step").lower()
        return f"{i + 1}:{kind}"


def _is_iso(codec: Any) -> bool:
    codec = getattr(codec, "inner", codec)          # a MUX channel wraps the call's codec
    return type(codec).__module__.startswith("formats.iso8583")


def _sent_values(call: CallPlan) -> Any:
    """The call step's field builder for an ISO 8583 call: the values the manager built and logged
    before the call left (``TxnManager._calling``), else built now."""
    sent, build = call.sent, call.build

    def build_values(scope: Any) -> Any:
        values = sent.pop(id(scope), None)
        return values if values is not None else build(scope)

    return build_values


def plan_of(br: Any) -> RoutePlan:
    """The plan of a ``BoundRoute`` (built on first use, then cached on it)."""
    plan = getattr(br, "txn_plan", None)
    if plan is not None:
        return plan
    route = br.route
    plan = RoutePlan(route, getattr(route, "on_restart", None) or "flag",
                     doubt=getattr(route, "on_doubt", None) or "flag",
                     refusal=getattr(route, "on_refusal", None) or "keep")
    plan.request_tags = br.request_tags           # the bound route classifies its request once
    for i, (ir_step, runner) in enumerate(zip(route.steps, br.steps)):
        if ir_step.kind == "deal" and getattr(runner, "key", None) is not None:
            plan.key = runner.key
            plan.key_at = i
            plan.match = getattr(runner, "match", None)
        elif ir_step.kind == "call":
            comp = ir_step.options.get("compensate")
            comp_runner = None
            if comp is not None:
                ctx = getattr(br, "ctx", None)
                if ctx is None:
                    raise ValueError(f"{comp.pos}: compensate needs the route's binder (BoundRoute.ctx)")
                from engine.steps.call import CallStep
                comp_runner = CallStep(comp, ctx, route)
                comp_runner.name = f"{runner.name}.compensate"
                # its `expect` reads the call's name as its own answer (docs/transactions.md); the manager
                # binds the call's answer again once it ran (``TxnManager.compensate_step``)
                comp_runner.answer_as = runner.name
            readonly = bool(ir_step.options.get("readonly"))
            call = plan.calls[i] = CallPlan(i, runner.name, runner, comp_runner,
                                            _is_iso(runner.codec) and not readonly, readonly=readonly,
                                            forward=bool(ir_step.options.get("forward")))
            if call.iso:
                call.build = runner.build_values
                runner.build_values = _sent_values(call)
            if plan.first_call is None:
                plan.first_call = i
        elif ir_step.kind == "reply" and not plan.response_tags:
            codec = getattr(runner, "codec", None)
            plan.response_tags = tags_of(codec) if codec is not None else {}
    # a plugin step that sends or books something (ComponentSpec.side_effects) is a participant, admitted
    # before (its begin durable before it runs), as a call is
    plan.effects = {i: runner for i, runner in enumerate(br.steps) if getattr(runner, "side_effects", False)}
    # a `limit` step (engine/totals.py): its reservations ride in the deal's begin, so a crash keeps them
    counts = plan.counts = any(getattr(runner, "counts_total", False) for runner in br.steps)
    full = (plan.key is not None or getattr(route, "on_restart", None) is not None or bool(plan.effects) or counts
            or any(c.compensation is not None or c.forward or (c.iso and i != plan.first_call)
                   for i, c in plan.calls.items()))
    firsts = [i for i in (plan.first_call, min(plan.effects, default=None)) if i is not None]
    # a keyed route with neither a call nor such a step: after its last step
    plan.admit_at = min(firsts) if firsts else (len(route.steps) if plan.key is not None else None)
    plan.light = plan.first_call is not None and not full
    plan.active = full or plan.light
    br.txn_plan = plan
    return plan
