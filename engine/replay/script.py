"""Answers for calls the recording lacks (``bsp replay --answers FILE``).

A replay answers the candidate's calls from the recording; a call the recording never had (a counterpart
the change under test adds: a sanctions screening, a fee service) has no recorded answer.  The answers
file scripts them, in the route-test language's own words (``given CHANNEL answers ...``)::

    # answers.yaml
    answers:
      - channel: sanctions                      # the call's channel
        when: {country: IR}                     # optional: fields of the call's request, equal to (as shown)
        answer: 'ScreenRsp { status = "HIT" }'  # what follows `given sanctions answers` in a route test
      - channel: sanctions
        answer: '{ status = "CLEAR" }'          # no format: the call's reply format
      - channel: fees
        answer: timeout                         # or unreachable, error (the connection breaks)

A rule answers every call it matches (it is not used up); the first rule that matches a call answers it.
Its ``answer`` is compiled with the candidate configuration as a route test's ``given`` is (format, fields,
``delay 2s``, an http call's ``200 ... headers { ... }``), and its values may read ``msg`` (the recorded
request of the exchange).  A call is answered from the recording when the recorded exchange made it
(by correlation key: the call of the same identity, engine/replay/pairing.py, or at the same position),
else by the first rule that matches it, else by order (an answer recorded outside any exchange), else it
fails as unreachable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import trio
import yaml

from engine.channels.base import ConnectionLost, Unreachable
from engine.replay.diff import flatten
from engine.replay.profile import as_text, yaml_root

RULE_KEYS = ("channel", "when", "answer")
_FIRST = 3              # the synthetic test's first answer line (see _source)


class AnswersError(ValueError):
    """A bad answers file; the message names file, line and rule."""


@dataclass
class ScriptRule:
    label: str                      # answers[0]
    where: str                      # answers.yaml:4
    channel: str
    answer: str                     # as written: what follows ``given CHANNEL answers``
    when: dict[str, str] = field(default_factory=dict)
    given: Any = None               # dsl.ir.GivenAnswer, compiled with the candidate
    used: int = 0

    def matches(self, channel: str, values: dict[str, Any] | None) -> bool:
        if channel != self.channel:
            return False
        if not self.when:
            return True
        flat = flatten(values) if isinstance(values, dict) else {}
        return all(k in flat and as_text(flat[k]) == v for k, v in self.when.items())

    def describe(self) -> str:
        cond = "".join(f" when {k} = {v}" for k, v in self.when.items())
        return f"{self.label} channel {self.channel}{cond}: {self.answer} [{self.where}]"


@dataclass
class AnswerScript:
    path: str
    rules: list[ScriptRule]
    program: Any = None
    binder: Any = None              # the candidate engine's (set once it runs)
    guide: Any = None

    @property
    def unused(self) -> list[ScriptRule]:
        return [r for r in self.rules if not r.used]

    def find(self, channel: str, request: bytes) -> ScriptRule | None:
        rules = [r for r in self.rules if r.channel == channel]
        if not rules:
            return None
        values = None
        if any(r.when for r in rules) and self.guide is not None:
            _fmt, values = self.guide.decode(channel, "outbound", "out", request)
        return next((r for r in rules if r.matches(channel, values)), None)

    async def give(self, rule: ScriptRule, channel: str, ctx: Any) -> Any:
        """The scripted answer's bytes (encoded by the candidate's codec), or the channel error it scripts."""
        a = rule.given
        rule.used += 1
        if a.delay:
            await trio.sleep(float(a.delay))
        if a.mode == "timeout":
            await trio.sleep_forever()      # the channel's timeout ends it, as on a real connection
        if a.mode == "error":
            return ConnectionLost(f"channel {channel}: connection broken (scripted: {rule.label} of "
                                  f"{self.path})", channel=channel)
        if a.mode == "unreachable":
            return Unreachable(f"channel {channel}: not reachable (scripted: {rule.label} of {self.path})",
                               channel=channel)
        scope = dict(self.binder.base_scope())
        if ctx is not None and self.guide is not None:
            _fmt, msg = self.guide.decode(ctx.channel, "inbound", "in", ctx.request)
            scope["msg"] = msg
        try:
            values = self.binder.assigns(a.fields)(scope)
            body = self.binder.codec(a.format).encode(values)
            from engine.routetest import http
            if http.is_kind(self.program, channel, "http.call"):
                headers = self.binder.assigns(a.headers)(scope) if a.headers else None
                return http.answer(self.program.channels[channel], a.status, headers, body)
        except Exception as exc:  # noqa: BLE001 - a bad scripted answer fails the call, with the place
            return Unreachable(f"channel {channel}: the scripted answer {rule.label} ({rule.where}) could not be "
                               f"encoded: {exc}", channel=channel)
        return body


def load_answers(path: str | Path, route_files: Iterable[Path], registry: Any, sender: str,
                 sender_format: str | None = None) -> AnswerScript:
    """Read ``path`` and compile its answers with the candidate's route files (``sender``: a channel the
    capture recorded requests on, whose request ``msg`` is, in ``sender_format``: its route's receive format,
    or any declared format for a route that receives raw bytes)."""
    p = Path(path)
    rules = _read(p)
    script = AnswerScript(str(p), rules)
    if not rules:
        return script
    from dsl.load import compile_paths

    synthetic = p.with_name(p.name + ".route").resolve()
    files = [Path(f).resolve() for f in route_files]
    res = compile_paths([*files, synthetic], registry, sources={synthetic: _source(sender, sender_format, rules)})
    errors = [d for d in res.diagnostics if d.is_error]
    if errors or res.program is None:
        raise AnswersError("\n".join(_place(p, synthetic, rules, d) for d in errors)
                           or f"{p}: the answers do not compile with the candidate configuration")
    test = next(t for t in res.program.tests if t.pos is not None and Path(t.pos.file).resolve() == synthetic)
    for rule, given in zip(rules, test.answers):
        rule.given = given
    return script


def _source(sender: str, fmt: str | None, rules: list[ScriptRule]) -> str:
    lines = ['test "bsp replay --answers" {', f"    given {sender} sends {fmt or ''} {{ }}"]
    lines += [f"    given {r.channel} answers {r.answer}" for r in rules]
    return "\n".join(lines + ["}"]) + "\n"


def _place(p: Path, synthetic: Path, rules: list[ScriptRule], d: Any) -> str:
    pos = d.pos
    help_ = f"; {d.help}" if getattr(d, "help", None) else ""
    if pos is not None and Path(pos.file).resolve() == synthetic and _FIRST <= pos.line < _FIRST + len(rules):
        r = rules[pos.line - _FIRST]
        return f"{r.where}: {r.label}: answer {r.answer!r}: {d.message}{help_}"
    if pos is not None and Path(pos.file).resolve() == synthetic:
        return f"{p}: the answers do not compile with the candidate configuration: {d.message}{help_}"
    return f"{pos}: {d.message}{help_}" if pos is not None else f"{d.message}{help_}"


def _read(p: Path) -> list[ScriptRule]:
    root = yaml_root(p, "the answers file", AnswersError)
    if root is None:
        return []
    at = f"{p}:{root.start_mark.line + 1}"
    if not isinstance(root, yaml.MappingNode) or [k.value for k, _ in root.value] != ["answers"]:
        raise AnswersError(f"{at}: an answers file is a mapping with one key, `answers:`, a list of rules such as "
                           f"`- {{channel: sanctions, answer: 'ScreenRsp {{ status = \"CLEAR\" }}'}}`")
    seq = root.value[0][1]
    if not isinstance(seq, yaml.SequenceNode):
        raise AnswersError(f"{p}:{seq.start_mark.line + 1}: `answers` must be a list of rules")
    return [_rule(p, i, n) for i, n in enumerate(seq.value)]


def _rule(p: Path, i: int, node: Any) -> ScriptRule:
    label = f"answers[{i}]"
    at = f"{p}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {label}"
    if not isinstance(node, yaml.MappingNode):
        raise AnswersError(f"{at}: a rule is a mapping such as `{{channel: sanctions, answer: timeout}}`")
    vals: dict[str, Any] = {}
    for k, v in node.value:
        kat = f"{p}:{k.start_mark.line + 1}:{k.start_mark.column + 1}: {label}"
        if k.value not in RULE_KEYS:
            raise AnswersError(f"{kat}: unknown key `{k.value}`; a rule has {', '.join(RULE_KEYS)}")
        if k.value == "when":
            if not isinstance(v, yaml.MappingNode) or not all(isinstance(x, yaml.ScalarNode) for _, x in v.value):
                raise AnswersError(f"{kat}.when: a mapping of the call's request fields to values, e.g. "
                                   f"`when: {{country: IR}}`")
            vals["when"] = {str(a.value): str(b.value) for a, b in v.value}
        elif not isinstance(v, yaml.ScalarNode) or not str(v.value).strip():
            raise AnswersError(f"{kat}.{k.value}: expected text")
        else:
            vals[k.value] = str(v.value).strip()
    for need, eg in (("channel", "channel: sanctions"), ("answer", "answer: 'ScreenRsp { status = \"CLEAR\" }'")):
        if need not in vals:
            raise AnswersError(f"{at}: a rule needs `{need}` (`{eg}`)")
    if "\n" in vals["answer"]:
        vals["answer"] = " ".join(vals["answer"].split())       # one line in the synthetic test
    return ScriptRule(label, f"{p.name}:{node.start_mark.line + 1}", vals["channel"], vals["answer"],
                      vals.get("when", {}))
