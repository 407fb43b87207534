"""The replay profile: which differences do not count.

    # replay.yaml
    ignore:                       # volatile fields, never compared
      - field: "*.timestamp"
      - channel: biller
        what: call
        field: request_id
    expect:                       # known differences: reported, but the replay still passes
      - channel: mainframe
        what: reply
        field: message
        reason: wording changed in release 12

A rule matches a difference when every key it gives matches: ``channel`` and
``field`` are globs (``*`` any text), ``field`` is the dotted path of the
decoded field (``a.b[0].c``); ``what`` is ``reply``, ``call``, ``deal`` or ``dead letter``;
``recorded`` and ``produced`` are globs over the two values as the report shows
them (classified values masked, ``<none>`` for a missing field), so a rule
accepts the change it was written for and not any other change of that field:

    expect:
      - {channel: mainframe, what: reply, field: message, recorded: "paid *", produced: "paid *"}
      - {what: deal, field: status, recorded: committed, produced: rejected}
A rule that matches no difference of a replay is listed by the report (a
misspelt field would otherwise be silently useless).
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

WHATS = ("reply", "call", "deal", "dead letter")
RULE_KEYS = ("channel", "what", "field", "recorded", "produced", "reason")
_ANY = object()         # a value the caller does not know (route tests from a capture have no produced one)


def as_text(value: Any) -> str:
    """A compared value as a ``recorded`` / ``produced`` glob sees it: text as is, numbers as written
    (``120.50``), ``null``, ``true`` / ``false``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class ProfileError(ValueError):
    """A bad replay profile; the message names file, line and key."""


@dataclass(frozen=True)
class Rule:
    field: str
    channel: str = "*"
    what: str | None = None
    reason: str | None = None
    where: str = ""
    label: str = ""             # expect[0], ignore[2]: the rule's place in its list
    recorded: str | None = None     # glob over the recorded value (as shown)
    produced: str | None = None     # glob over the candidate's value (as shown)

    def matches(self, channel: str, what: str, field: str, recorded: Any = _ANY, produced: Any = _ANY) -> bool:
        if self.what is not None and self.what != what:
            return False
        if not (fnmatchcase(channel, self.channel) and fnmatchcase(field, self.field)):
            return False
        for glob, value in ((self.recorded, recorded), (self.produced, produced)):
            if glob is not None and value is not _ANY and not fnmatchcase(as_text(value), glob):
                return False
        return True

    def describe(self) -> str:
        parts = [f"field {self.field}"]
        if self.recorded is not None:
            parts.append(f"recorded {self.recorded!r}")
        if self.produced is not None:
            parts.append(f"produced {self.produced!r}")
        if self.channel != "*":
            parts.insert(0, f"channel {self.channel}")
        if self.what:
            parts.insert(0, self.what)
        return " ".join(parts) + (f" ({self.reason})" if self.reason else "") + (f" [{self.where}]" if self.where else "")


@dataclass(frozen=True)
class Profile:
    ignore: tuple[Rule, ...] = ()
    expect: tuple[Rule, ...] = ()
    path: str | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.ignore + self.expect

    def ignored(self, channel: str, what: str, field: str, recorded: Any = _ANY, produced: Any = _ANY) -> Rule | None:
        return next((r for r in self.ignore if r.matches(channel, what, field, recorded, produced)), None)

    def expected(self, channel: str, what: str, field: str, recorded: Any = _ANY,
                 produced: Any = _ANY) -> Rule | None:
        return next((r for r in self.expect if r.matches(channel, what, field, recorded, produced)), None)


def yaml_root(p: Path, what: str, error: type[Exception]) -> Any:
    """The YAML node tree of a tester's file (a replay profile, an answers file), or None when it is empty;
    ``error`` naming the file when it cannot be read or is not YAML."""
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return yaml.compose(text)
    except yaml.YAMLError as exc:
        raise error(f"{p}: not valid YAML: {exc}") from None


def load_profile(path: str | Path | None) -> Profile:
    if path is None:
        return Profile()
    p = Path(path)
    root = yaml_root(p, "the replay profile", ProfileError)
    if root is None:
        return Profile(path=str(p))
    if not isinstance(root, yaml.MappingNode):
        raise ProfileError(f"{p}:{root.start_mark.line + 1}: a replay profile is a mapping with `ignore:` "
                           f"and/or `expect:` lists")
    lists: dict[str, tuple[Rule, ...]] = {"ignore": (), "expect": ()}
    for knode, vnode in root.value:
        key = knode.value
        at = f"{p}:{knode.start_mark.line + 1}:{knode.start_mark.column + 1}"
        if key not in lists:
            raise ProfileError(f"{at}: unknown key `{key}`; a replay profile has `ignore` and `expect`")
        if not isinstance(vnode, yaml.SequenceNode):
            raise ProfileError(f"{at}: `{key}` must be a list of rules, e.g. `- field: \"*.timestamp\"`")
        lists[key] = tuple(_rule(p, key, i, item) for i, item in enumerate(vnode.value))
    return Profile(lists["ignore"], lists["expect"], str(p))


def _rule(p: Path, key: str, i: int, node: Any) -> Rule:
    at = f"{p}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {key}[{i}]"
    if not isinstance(node, yaml.MappingNode):
        raise ProfileError(f"{at}: a rule is a mapping such as `{{channel: biller, field: due}}`")
    vals: dict[str, str] = {}
    for k, v in node.value:
        if k.value not in RULE_KEYS:
            raise ProfileError(f"{p}:{k.start_mark.line + 1}:{k.start_mark.column + 1}: {key}[{i}]: unknown key "
                               f"`{k.value}`; a rule has {', '.join(RULE_KEYS)}")
        if not isinstance(v, yaml.ScalarNode):
            raise ProfileError(f"{p}:{v.start_mark.line + 1}:{v.start_mark.column + 1}: {key}[{i}].{k.value}: "
                               f"expected text")
        vals[k.value] = str(v.value)
    if "field" not in vals:
        raise ProfileError(f"{at}: a rule needs `field` (a dotted path, globs allowed: \"*.timestamp\")")
    what = vals.get("what")
    if what is not None and what not in WHATS:
        raise ProfileError(f"{at}: what: {what!r} is not one of {', '.join(WHATS)}")
    return Rule(vals["field"], vals.get("channel", "*"), what, vals.get("reason"),
                where=f"{p.name}:{node.start_mark.line + 1}", label=f"{key}[{i}]",
                recorded=vals.get("recorded"), produced=vals.get("produced"))
