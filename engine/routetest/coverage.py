"""Route coverage: which steps and branches of the routes the tests reached.

Items, from the Program: every route, every step (``on error`` steps too, and
each channel's ``on error reply``), each validation rule's reject branch, a
call's two outcomes (answered and accepted / failed), each arm of every
``if ... then ... else`` in a route or a channel's error reply, and, where
several routes share a channel, each route's ``when`` true and false.

How they are counted, all from outside the runtime and only under ``bsp test``:
steps through a registry clone whose step kinds wrap the real step in a
counting proxy; ``if`` arms through ``dsl.compiler.probing`` (the closures are
compiled with a probe); ``when`` by wrapping each bound route's compiled
``when`` (``instrument``).  A plain ``bsp run`` compiles none of this.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

from dsl import ir
from dsl.fileend import reads_file_end
from engine.runtime.exchange import StepFailure


@dataclass
class Item:
    key: str
    where: str
    label: str
    hit: bool = False
    suite: str = ""


class Coverage:
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    def add_program(self, program: Any, suite: str = "") -> None:
        self._suite = suite
        # routes offered the same requests: a channel's, those taking its end-of-file message apart (dsl/fileend.py)
        groups = Counter((r.channel, reads_file_end(r.when)) for r in program.routes)
        for r in program.routes:
            self._item(f"route:{r.pos}", r.pos, f"route {r.name}")
            if r.when is not None and groups[(r.channel, reads_file_end(r.when))] > 1:
                self._item(f"when-true:{r.pos}", r.when.pos, f"route {r.name}: `when` is true (the route takes it)")
                self._item(f"when-false:{r.pos}", r.when.pos,
                           f"route {r.name}: `when` is false (a request of channel {r.channel} passes it by)")
            for s in r.steps:
                self._step_items(s, r.name)
            for s in r.on_error:        # "on error reply", not "reply": the route's own reply is a step too
                self._step_items(s, r.name, "on error ")
            for c in _conds(r):
                self._cond_items(c, f"route {r.name}")
        for name, decl in program.channels.items():
            if decl.error_reply is not None:
                self._item(f"step:{decl.error_reply.pos}", decl.error_reply.pos, f"channel {name}: on error reply")
                for c in _conds(decl.error_reply):
                    self._cond_items(c, f"channel {name}")

    def _cond_items(self, c: ir.Cond, owner: str) -> None:
        self._item(f"then:{c.pos}", c.then.pos or c.pos, f"{owner}: `if` at {_lc(c.pos)} takes its `then` branch")
        self._item(f"else:{c.pos}", c.otherwise.pos or c.pos,
                   f"{owner}: `if` at {_lc(c.pos)} takes its `else` branch")

    def _step_items(self, s: Any, route: str, within: str = "") -> None:
        label = f"{route}: {within}{s.kind}" + (f" {s.name}" if s.name else "")
        self._item(f"step:{s.pos}", s.pos, label)
        if s.kind == "validate":
            for rule in s.options.get("rules", ()):
                self._item(f"reject:{rule.pos}", rule.pos, f"{route}: rule rejects with \"{rule.code}\" ({rule.text})")
        elif s.kind == "call":
            self._item(f"ok:{s.pos}", s.pos, f"{label} succeeds")
            self._item(f"fail:{s.pos}", s.pos, f"{label} fails")

    def _item(self, key: str, pos: Any, label: str) -> None:
        if key not in self.items:
            self.items[key] = Item(key, str(pos) if pos is not None else "?", label,
                                   suite=getattr(self, "_suite", ""))

    def hit(self, key: str) -> None:
        it = self.items.get(key)
        if it is not None:
            it.hit = True

    @property
    def missed(self) -> list[Item]:
        return [i for i in self.items.values() if not i.hit]

    @property
    def reached(self) -> int:
        return sum(1 for i in self.items.values() if i.hit)

    def of_suite(self, suite: str) -> list[Item]:
        return [i for i in self.items.values() if i.suite == suite]

    def text(self) -> str:
        total = len(self.items)
        pct = 100.0 * self.reached / total if total else 100.0
        lines = [f"coverage: {self.reached}/{total} routes, steps and branches reached ({pct:.0f}%)"]
        if self.missed:
            lines.append("not reached by any test:")
            lines.extend(f"  {i.where}: {i.label}" for i in self.missed)
        return "\n".join(lines)

    # ------------------------------------------------------------ counting
    def probe(self, key: str) -> None:
        """The callback compiled into ``if`` arms (``dsl.compiler.probing``)."""
        it = self.items.get(key)
        if it is not None:
            it.hit = True

    def instrument(self, switchboard: Any) -> None:
        """Count each bound route's ``when`` outcomes (channels whose routes share it)."""
        for disp in switchboard.dispatchers.values():
            if len(disp.routes) < 2:
                continue
            for br in disp.routes:
                if br.when is not None and br.route.pos is not None and f"when-true:{br.route.pos}" in self.items:
                    br.when = self._when(br.when, f"when-true:{br.route.pos}", f"when-false:{br.route.pos}")

    def _when(self, real: Any, k_true: str, k_false: str) -> Any:
        items = self.items

        def when(scope: Any) -> Any:
            try:
                ok = real(scope)
            except Exception:          # the dispatcher reads a failing `when` as false
                items[k_false].hit = True
                raise
            items[k_true if ok else k_false].hit = True
            return ok
        return when

    def registry(self, registry: Any) -> Any:
        reg = registry.clone()
        for kind in registry.names("step"):
            spec = registry.get("step", kind)
            if spec is None or spec.build is None:
                continue

            def build(step: Any, ctx: Any, route: Any, _real: Any = spec.build) -> Any:
                return _Counted(_real(step, ctx, route), step, route, self)

            reg.register(dataclasses.replace(spec, build=build), replace=True)
        return reg


class _Counted:
    """A step that reports to the coverage what it did."""

    def __init__(self, real: Any, step: Any, route: Any, cov: Coverage) -> None:
        self._real = real
        self._cov = cov
        self._key = str(step.pos)
        self._route = f"route:{route.pos}" if route is not None else None
        self._rules = {str(r.pos) for r in step.options.get("rules", ())} if step.kind == "validate" else set()
        self._call = step.kind == "call"
        self._name = step.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _reached(self) -> None:
        self._cov.hit(f"step:{self._key}")
        if self._route is not None:
            self._cov.hit(self._route)

    def run(self, ex: Any) -> None:
        self._reached()
        try:
            self._real.run(ex)
        except StepFailure as f:
            if f.where in self._rules:
                self._cov.hit(f"reject:{f.where}")
            raise

    async def run_batch(self, exs: list[Any]) -> None:
        self._reached()
        before = [ex.failure for ex in exs]
        bound = [self._name in ex.scope for ex in exs] if self._call else []
        await self._real.run_batch(exs)
        if self._call:
            for ex, was, had in zip(exs, before, bound):
                if was is None:
                    self._cov.hit(("ok:" if ex.failure is None else "fail:") + self._key)
                elif not had:      # a call in `on error`: the exchange has failed already; success binds the answer
                    self._cov.hit(("ok:" if self._name in ex.scope else "fail:") + self._key)


def _lc(pos: Any) -> str:
    return f"{pos.line}:{pos.col}" if pos is not None else "?"


def _conds(node: Any) -> Iterator[ir.Cond]:
    """Every ``if`` expression in an IR subtree (routes, steps, rules, assigns), outermost first."""
    if isinstance(node, ir.Cond):
        yield node
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            if f.name != "pos":
                yield from _conds(getattr(node, f.name))
    elif isinstance(node, dict):
        for v in node.values():
            yield from _conds(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _conds(v)
