"""Per-MTI message rules of an ISO 8583 spec: which fields a message type must,
may, must not carry.

In the YAML spec (see docs/formats-iso8583.md)::

    messages:
      "0400":
        name: Reversal request
        mandatory: [3, 4, 7, 11, 49, 90]
        conditional:
          - {field: 2, unless: [35, 45]}       # PAN, unless a track carries it
          - {field: 38, when: {39: "00"}}      # approval code on an approved reply
          - {field: 53, when: {52: present}}
        forbidden: [52]
        optional: [12, 13]                     # with closed: true, nothing else is allowed
        closed: false

``check_message(values, rules, spec)`` raises ``FormatError`` naming the MTI, the
field and the rule that failed.  MTIs without an entry are not checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from formats.errors import FormatError

RULE_KEYS = ("name", "doc", "mandatory", "optional", "conditional", "forbidden", "closed")
PRESENT = "present"


@dataclass(frozen=True)
class Condition:
    """``field`` is required when every ``when`` entry holds and no ``unless`` field is present."""
    field: str
    when: tuple[tuple[str, tuple[str, ...] | None], ...] = ()   # (field, allowed values) / None = present
    unless: tuple[str, ...] = ()

    def applies(self, values: Mapping[str, Any]) -> bool:
        for key, allowed in self.when:
            v = values.get(key)
            if v is None or (allowed is not None and v not in allowed):
                return False
        return not any(values.get(k) is not None for k in self.unless)

    def describe(self) -> str:
        parts = []
        for key, allowed in self.when:
            if allowed is None:
                parts.append(f"field {key} is present")
            elif len(allowed) == 1:
                parts.append(f"field {key} is {allowed[0]!r}")
            else:
                parts.append(f"field {key} is one of {', '.join(repr(a) for a in allowed)}")
        if self.unless:
            parts.append(f"none of field{'s' if len(self.unless) > 1 else ''} {', '.join(self.unless)} "
                         f"{'are' if len(self.unless) > 1 else 'is'} present")
        return " and ".join(parts) or "always"


@dataclass(frozen=True)
class MessageRule:
    mti: str
    name: str = ""
    mandatory: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    conditional: tuple[Condition, ...] = ()
    forbidden: tuple[str, ...] = ()
    closed: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.mandatory) | frozenset(self.optional) | {c.field for c in self.conditional}


def _label(rule: MessageRule) -> str:
    return f"MTI {rule.mti}" + (f" ({rule.name})" if rule.name else "")


def _field_name(spec: Any, key: str) -> str:
    f = spec.fields.get(int(key)) if spec is not None else None
    return f"field {key}" + (f" ({f.name})" if f is not None and f.name != f"field {key}" else "")


def check_message(values: Mapping[str, Any], rule: MessageRule, spec: Any = None,
                  offset: int | None = None) -> None:
    """Raise FormatError for the first broken rule (mandatory, conditional, forbidden, closed set)."""
    for key in rule.mandatory:
        if values.get(key) is None:
            raise FormatError(f"{_label(rule)}: mandatory {_field_name(spec, key)} is missing (rule: mandatory)",
                              offset=offset, field=key,
                              hint=f"a {rule.mti} must carry field {key}; the spec's messages.{rule.mti}.mandatory "
                                   "lists it")
    for cond in rule.conditional:
        if values.get(cond.field) is None and cond.applies(values):
            raise FormatError(f"{_label(rule)}: {_field_name(spec, cond.field)} is missing; it is required when "
                              f"{cond.describe()} (rule: conditional)", offset=offset, field=cond.field,
                              hint=f"add field {cond.field} or change the message so the condition no longer holds")
    for key in rule.forbidden:
        if values.get(key) is not None:
            raise FormatError(f"{_label(rule)}: {_field_name(spec, key)} must not be present (rule: forbidden)",
                              offset=offset, field=key, hint=f"remove field {key} from the {rule.mti} message")
    if rule.closed:
        allowed = rule.allowed
        extra = [k for k in values if k != "t" and k not in allowed and values[k] is not None]
        if extra:
            extra.sort(key=int)
            more = f" (also {', '.join(extra[1:])})" if len(extra) > 1 else ""
            raise FormatError(f"{_label(rule)}: unexpected {_field_name(spec, extra[0])}{more}; a {rule.mti} "
                              f"carries only fields {', '.join(sorted(allowed, key=int))} (rule: closed)",
                              offset=offset, field=extra[0],
                              hint=f"remove field {extra[0]} or list it under messages.{rule.mti}.optional")


class RuleBuilder:
    """Reads the ``messages`` section; reports problems through ``err(where, message, hint)``."""

    def __init__(self, err: Any, field_numbers: set[int]) -> None:
        self.err = err
        self.numbers = field_numbers

    def build(self, data: Any) -> dict[str, MessageRule]:
        rules: dict[str, MessageRule] = {}
        if data is None:
            return rules
        if not isinstance(data, dict):
            self.err(("messages",), "messages must map an MTI (\"0200\") to its rules",
                     'e.g. messages: {"0200": {mandatory: [3, 4, 11]}}')
            return rules
        for mti, body in data.items():
            where = ("messages", mti)
            key = mti
            if not isinstance(key, str) or len(key) != 4 or not key.isdigit():
                self.err(where + ("<key>",), f"message key {mti!r} is not a 4-digit MTI text",
                         'quote MTIs in YAML: "0200" (unquoted 0200 is read as a number)')
                continue
            if not isinstance(body, dict):
                self.err(where, f"messages.{key}: rules must be a mapping (mandatory, conditional, forbidden...)")
                continue
            for k in body:
                if k not in RULE_KEYS:
                    self.err(where + (k, "<key>"), f"messages.{key}: unknown key {k!r}",
                             f"known keys: {', '.join(RULE_KEYS)}")
            closed = body.get("closed", False)
            if not isinstance(closed, bool):
                self.err(where + ("closed",), f"messages.{key}: closed must be true or false")
            conds = []
            for i, c in enumerate(body.get("conditional") or []):
                cond = self.condition(where + ("conditional", i), key, c)
                if cond is not None:
                    conds.append(cond)
            rule = MessageRule(mti=key, name=str(body.get("name", "")),
                               mandatory=self.fields(where + ("mandatory",), key, body.get("mandatory")),
                               optional=self.fields(where + ("optional",), key, body.get("optional")),
                               conditional=tuple(conds),
                               forbidden=self.fields(where + ("forbidden",), key, body.get("forbidden")),
                               closed=bool(closed))
            both = set(rule.mandatory) & set(rule.forbidden)
            if both:
                self.err(where + ("forbidden",), f"messages.{key}: field {sorted(both, key=int)[0]} is both "
                         "mandatory and forbidden")
            rules[key] = rule
        return rules

    def field_key(self, where: tuple, mti: str, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            self.err(where, f"messages.{mti}: {value!r} is not a field number")
            return None
        if int(value) not in self.numbers:
            self.err(where, f"messages.{mti}: field {value} is not defined in the spec's fields",
                     "define the field under fields: or fix the number")
            return None
        return str(int(value))

    def fields(self, where: tuple, mti: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.err(where, f"messages.{mti}: {where[-1]} must be a list of field numbers, e.g. [3, 4, 11]")
            return ()
        out = [self.field_key(where + (i,), mti, v) for i, v in enumerate(value)]
        return tuple(k for k in out if k is not None)

    def condition(self, where: tuple, mti: str, c: Any) -> Condition | None:
        if not isinstance(c, dict) or "field" not in c or not set(c) <= {"field", "when", "unless", "doc"}:
            self.err(where, f"messages.{mti}: a conditional entry is {{field: N, when: {{M: value | present}}, "
                     "unless: [M, ...]}")
            return None
        key = self.field_key(where + ("field",), mti, c["field"])
        when_in = c.get("when") or {}
        when: list[tuple[str, tuple[str, ...] | None]] = []
        if not isinstance(when_in, dict):
            self.err(where + ("when",), f"messages.{mti}: when must map a field to a value, a list of values "
                     "or 'present'")
            when_in = {}
        for wk, wv in when_in.items():
            k = self.field_key(where + ("when", wk), mti, wk)
            if k is None:
                continue
            if wv == PRESENT:
                when.append((k, None))
            elif isinstance(wv, list) and all(isinstance(x, str) for x in wv):
                when.append((k, tuple(wv)))
            elif isinstance(wv, str):
                when.append((k, (wv,)))
            else:
                self.err(where + ("when", wk), f"messages.{mti}: condition on field {k} must be text "
                         "(quote it: \"00\"), a list of texts or 'present'")
        unless = self.fields(where + ("unless",), mti, c.get("unless"))
        if key is None:
            return None
        if not when and not unless:
            self.err(where, f"messages.{mti}: conditional field {key} needs 'when' or 'unless'",
                     "a field that is always required belongs in mandatory")
            return None
        return Condition(field=key, when=tuple(when), unless=unless)


# ------------------------------------------------------------------ compiled (bitmask) form

BITS = 192          # masks cover three bitmaps: field n is bit (BITS - n), as in the bitmaps read big-endian


def field_bit(key: str | int) -> int:
    return 1 << (BITS - int(key))


def compile_rule(rule: MessageRule) -> Callable[[int, Mapping[str, Any]], bool] | None:
    """A quick test of ``rule`` over the mask of present fields: True means ``check_message`` would
    pass; False means run ``check_message`` (it raises with the exact message).  None: the rule
    names a bitmap bit (1, 65) as a field, so only ``check_message`` can judge it."""
    names = set(rule.mandatory) | set(rule.optional) | set(rule.forbidden)
    for c in rule.conditional:
        names |= {c.field, *c.unless, *(k for k, _ in c.when)}
    if names & {"1", "65"}:
        return None
    mand = sum(field_bit(k) for k in set(rule.mandatory))
    forb = sum(field_bit(k) for k in set(rule.forbidden))
    allowed = sum(field_bit(k) for k in rule.allowed) if rule.closed else None
    conds = []
    for c in rule.conditional:
        when = sum(field_bit(k) for k in {k for k, _ in c.when})
        values = tuple((k, v) for k, v in c.when if v is not None)
        conds.append((field_bit(c.field), when, sum(field_bit(k) for k in set(c.unless)), values))

    def ok(present: int, values: Mapping[str, Any]) -> bool:
        if present & mand != mand or present & forb:
            return False
        if allowed is not None and present & ~allowed:
            return False
        for need, when, unless, whens in conds:
            if present & need or present & when != when or present & unless:
                continue
            if whens and not all(values.get(k) in allowed_values for k, allowed_values in whens):
                continue
            return False
        return True
    return ok
