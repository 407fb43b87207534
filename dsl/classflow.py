"""Classified values copied where they lose their protection (``bsp check`` W006).

A format classifies fields ``pan`` / ``secret`` / ``personal`` (formats/classify.py): the ledger,
captures and error texts mask or encrypt them.  A value copied into a field its format does not
classify (``reply Rsp { n = msg.card.number }``), or into a deal field (``ref``, ``party``, ``key``
... are stored as they are), is kept in clear.  The checker warns when it is certain:

* the source is a read of a classified field (``msg.card.number``, ``msg["2"]``, ``auth.acct``: a
  format of the request or of a call's answer whose classification is known), or a ``let`` holding
  one, possibly through functions and operators that keep the value or a piece of it: ``trim``,
  ``upper``, ``lower``, ``pad_left``, ``pad_right``, ``coalesce``, ``substr``, ``+`` on strings and
  both branches of ``if ... then ... else``.  ``substr(x, 0, N)`` that keeps no more than the mask
  shows (a PAN's first 6, the BIN; a personal value's first character) does not count, nor does
  ``mask_pan(x)`` for a PAN.  Anything else (``len``, ``lookup``, comparisons, arithmetic) does
  not carry the value;
* the target format's classification is known (a field block, a ``classify`` option, a spec file
  the format kind reads it from); a format kind that cannot say stays quiet.

A target protects a source when its stored form shows no more of the value: ``secret`` (``***``)
protects everything, ``personal`` (``J***``) protects ``personal`` and ``pan``, ``pan``
(``411111******1111``) protects only ``pan``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dsl import ir
from dsl.types import show
from formats.classify import SHOWS_LEAST, shows_less

# the classes whose stored form shows no more than the source's: source -> acceptable targets
PROTECTS = {"pan": ("pan", "personal", "secret"), "personal": ("personal", "secret"), "secret": ("secret",)}
# how many leading characters the mask of a class shows (substr(x, 0, N) within them is safe)
MASK_SHOWS = {"pan": 6, "personal": 1, "secret": 0}
KEEPS_FIRST = ("trim", "upper", "lower", "pad_left", "pad_right", "substr", "mask_pan")
KEEPS_ALL = ("coalesce",)
# deal field -> where the ledger keeps it
DEAL_COLUMNS = {"ref": "deals.reference", "party": "deals.party", "currency": "deals.currency",
                "amount": "deals.amount", "key": "deal_keys.key and the deal's events"}
# the field of a file write call's answer that holds the name written (engine/channels/file_write.py)
NAME_FIELD = "file"
# a value two rules classify differently: the stored form that shows least first, as the runtime does
_ORDER = SHOWS_LEAST


@dataclass(frozen=True)
class Source:
    """A classified value an expression carries."""
    tag: str
    what: str                    # "msg.card.number", or "`card` (from msg.card.number)" through a let
    fmt: str                     # the format that classifies it
    rest: tuple[str, ...] = ()   # a group copied whole: the classified field's path inside it
    pos: Any = None
    origin: str = ""             # the classified field read, as written (through lets too)
    named: bool = False          # carried into a file's name (a call's ``name { ... }``, read as ``w.file``)


def format_tags(spec: Any, decl: Any, base_dir: Any, call_hook: Callable[..., Any]) -> dict[str, str] | None:
    """``{path: tag}`` of a format as ``bsp check`` can tell, or None when its kind cannot say."""
    from formats.classify import parse_spec
    from formats.errors import SpecError
    known, tags = False, {}
    if spec.accepts_fields:
        known = True
        tags.update({f.name: f.classification for f in decl.fields or () if f.classification})
    if spec.option("classify") is not None:
        known = True
        try:
            tags.update(parse_spec((decl.options or {}).get("classify")))
        except SpecError:
            return None
    hook = getattr(spec, "classification", None)
    if hook is not None:
        try:
            got = call_hook(hook, decl, base_dir)
        except Exception:   # noqa: BLE001 - a hook that cannot tell: unknown
            return None
        if got is None:
            return None
        known = True
        tags.update(got)
    return tags if known else None


def _match(rule: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return len(rule) <= len(parts) and all(r == "*" or r == p for r, p in zip(rule, parts))


def tag_at(parts: tuple[str, ...], tags: dict[str, str]) -> str | None:
    """The class of the value at ``parts``: among the tags on it and on the groups holding it, the one
    showing least (``card:personal`` and ``card.cvv:secret``: ``card.cvv`` is secret), as the runtime
    masks it (formats.classify.at_key)."""
    found = {t for r, t in tags.items() if _match(tuple(r.split(".")), parts)}
    return next((t for t in _ORDER if t in found), None)


def tag_at_item(parts: tuple[Any, ...], tags: dict[str, str], literal: Callable[[tuple[Any, ...]], Any]) -> str | None:
    """The class of a message body's field at ``parts`` (names and list indexes, ``block4[3].value``)
    under the rules with a ``KEY=VALUE`` step (``block4.tag=50K.value``), the others left to ``tag_at``:
    such a step matches list item ``i`` when the same body sets that item's ``KEY`` to the literal
    ``VALUE`` (``block4[3].tag = "50K"``); ``literal(path)``: the literal set at ``path``, or None."""
    found = set()
    for r, t in tags.items():
        rule = r.split(".")
        if not any("=" in step for step in rule):
            continue
        i = j = 0
        while i < len(rule) and j < len(parts):
            step, part = rule[i], parts[j]
            if isinstance(part, int):
                if "=" in step:
                    key, _, want = step.partition("=")
                    if literal(parts[:j + 1] + (key,)) != want:
                        break
                    i += 1
                j += 1
                continue
            if step != "*" and step != part:
                break
            i += 1
            j += 1
        else:
            if i == len(rule):          # at the classified field or inside it
                found.add(t)
    return next((t for t in _ORDER if t in found), None)


def _inside(parts: tuple[str, ...], tags: dict[str, str]) -> list[tuple[tuple[str, ...], str]]:
    """Classified fields inside the group at ``parts``: (path below it, tag); wildcards below are skipped."""
    out = []
    for r, t in tags.items():
        rule = tuple(r.split("."))
        if len(rule) > len(parts) and _match(rule[:len(parts)], parts) and "*" not in rule[len(parts):]:
            out.append((rule[len(parts):], t))
    return out


def read_path(e: ir.Expr) -> tuple[str, tuple[str, ...]] | None:
    """``msg.card.number`` -> ("msg", ("card", "number")); ``msg["2"]`` -> ("msg", ("2",)); list indexes
    are crossed; None when a key is not a literal."""
    parts: list[str] = []
    while True:
        if isinstance(e, ir.Attr):
            parts.append(e.name)
            e = e.base
        elif isinstance(e, ir.Index):
            if isinstance(e.index, ir.Lit) and e.index.type == "string":
                parts.append(e.index.value)
            elif not (isinstance(e.index, ir.Lit) and e.index.type == "int"):
                return None
            e = e.base
        elif isinstance(e, ir.Name):
            return e.name, tuple(reversed(parts))
        else:
            return None


class Flow:
    """The classified values an expression carries.

    ``root(name)``: for a message root (msg, a call's answer) ``(format, tags)`` (tags None: unknown);
    for a ``let``, the list of its ``Source``s; else None.  ``numeric(e)``: the expression is a number
    (``+`` adds, it does not join text)."""

    def __init__(self, root: Callable[[str], Any], numeric: Callable[[ir.Expr], bool],
                 named: Callable[[str], Any] | None = None) -> None:
        self.root = root
        self.numeric = numeric
        self.named = named or (lambda name: ())

    def sources(self, e: ir.Expr) -> list[Source]:
        if isinstance(e, (ir.Name, ir.Attr, ir.Index)):
            return self._read(e)
        if isinstance(e, ir.Cond):
            return self.sources(e.then) + self.sources(e.otherwise)
        if isinstance(e, ir.Binary) and e.op == "+":
            if self.numeric(e):
                return []
            return self.sources(e.left) + self.sources(e.right)
        if isinstance(e, ir.Call) and e.args:
            if e.func in KEEPS_ALL:
                return [s for a in e.args for s in self.sources(a)]
            if e.func == "replace":                 # the text, and what is put in: replace(iban, " ", "")
                return [s for a in (e.args[0], *e.args[2:3]) for s in self.sources(a)]
            if e.func not in KEEPS_FIRST:
                return []
            found = self.sources(e.args[0])
            if e.func == "mask_pan":
                return [s for s in found if s.tag != "pan"]
            if e.func == "substr" and len(e.args) == 3 and all(
                    isinstance(a, ir.Lit) and a.type == "int" for a in e.args[1:]) and e.args[1].value == 0:
                return [s for s in found if e.args[2].value > MASK_SHOWS[s.tag]]
            return found
        return []

    def _read(self, e: ir.Expr) -> list[Source]:
        path = read_path(e)
        if path is None:
            return []
        name, parts = path
        got = self.root(name)
        if isinstance(got, list):                   # a let: the classified values it holds, then a part of it
            out = []
            for s in got:
                n = min(len(parts), len(s.rest))
                if _match(s.rest[:n], parts[:n]):    # inside the classified field, or a group holding it
                    origin = s.origin + "".join(f".{p}" if p.isidentifier() else f'["{p}"]' for p in parts)
                    out.append(Source(s.tag, f"`{show(e)}` (from {origin})", s.fmt, s.rest[n:], e.pos, origin,
                                      s.named))
            return _least(out)
        named = self._file_name(e, name, parts)
        if got is None or got[1] is None:
            return named
        fmt, tags = got
        what = show(e)
        tag = tag_at(parts, tags)
        inside = [Source(t, what, fmt, rest, e.pos, what) for rest, t in _inside(parts, tags)
                  if tag is None or shows_less(t, tag)]      # a field inside that shows less than the group
        return ([Source(tag, what, fmt, (), e.pos, what)] if tag is not None else []) + inside + named

    def _file_name(self, e: ir.Expr, name: str, parts: tuple[str, ...]) -> list[Source]:
        """A call's answer field ``file`` (``w.file``), the name a ``file write`` channel wrote: built
        from the call's ``name { word = ... }``, it carries the classified values those hold, whatever
        the answer's format says of it (the whole answer ``w``: its field ``file``)."""
        if parts not in ((), (NAME_FIELD,)):
            return []
        out = []
        for word, s in self.named(name):
            what = f"`{show(e)}` (the file name, from {{{word}}} = {s.origin})"
            out.append(Source(s.tag, what, s.fmt, () if parts else (NAME_FIELD,), e.pos, s.origin, True))
        return out


def _least(found: list[Source]) -> list[Source]:
    """One source per value read: a let holding a group (``card:personal``) and a stricter field in it
    (``card.cvv:secret``) gives both for ``k.cvv``; the value is the one that shows least."""
    best: dict[tuple, Source] = {}
    for s in found:
        k = (s.origin, s.fmt, s.rest)
        if k not in best or shows_less(s.tag, best[k].tag):
            best[k] = s
    return list(best.values())


def protects(target: str | None, source: str) -> bool:
    return target in PROTECTS[source]
