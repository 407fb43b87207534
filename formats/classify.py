"""Field classification (``pan``, ``secret``, ``personal``) and masking.

Where tags come from:
* ``fixed`` / ``csv``: the field declaration, ``account string(20) personal``
  (``FieldDecl.classification``); the path is the field name.
* ``json`` / ``xml`` / ``iso20022``: the format option ``classify``, a list of
  ``"path:tag"`` strings (or a mapping path -> tag), e.g.
  ``classify ["card.number:pan", "Dbtr.Nm:personal", "*.Pwd:secret"]``.

Paths are dotted keys; list items are crossed transparently (``Stmt.Ntry.Amt``
reaches the ``Amt`` of every entry of every statement), ``*`` matches any
one key, and a ``KEY=VALUE`` step picks only the list items whose ``KEY`` is
``VALUE`` (``block4.tag=25.value``: the value of SWIFT field 25 only).  A tag on a dict or list masks every scalar inside it
(unless a tag inside shows less, see below).

A value takes the tag that shows least of it (``SHOWS_LEAST``: secret, then personal, then pan) among
every tag that covers it: two rules on the field itself, and the tags of the groups holding it
(``card:personal`` with ``card.cvv:secret``: the CVV is secret, the rest of ``card`` personal).  Masking
here, encryption in engine/fieldcrypt.py and ``bsp check`` (W006) all take it so (``at_key``).

Masking rules (``mask_value``):
* ``pan``: first 6 and last 4 characters kept, the middle as ``*``
  (``4111111111111111`` -> ``411111******1111``); a value of 10 characters or
  fewer keeps only its last 4.
* ``secret``: always ``***`` (length not revealed).
* ``personal``: first character + ``***`` (``Jane Doe`` -> ``J***``).
* ``None`` and ``""`` stay as they are; other scalars are masked as text.

Values travel: an account classified in the request is copied into a call to a
counterpart whose format may not classify it.  ``classified_values`` collects
the classified text of one message, ``mask_known`` masks those values wherever
they appear in another (only values of ``MIN_KNOWN`` characters or more, so
that a code such as ``"00"`` is never taken for one).  ``mask_text`` masks them
in an error text; a shorter value (a CVV of 3 digits, a PIN) only where the text
quotes it (``'739' does not match ...``), as error texts quote the values they
refuse (``classified_values(..., min_len=1)``).
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from formats.errors import SpecError

TAGS = ("pan", "secret", "personal")


def mask_value(value: Any, tag: str, fakes: Mapping[str, str] | None = None) -> Any:
    """``fakes``: stand-ins of the same checkable shape for some values (``formats.pseudonym``): such a
    value is given its stand-in instead of a mask (never a secret: it gets ``***``)."""
    if value is None or value == "":
        return value
    if isinstance(value, Mapping):
        return {k: mask_value(v, tag, fakes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, tag, fakes) for v in value]
    text = value if isinstance(value, str) else str(value)
    if fakes and tag != "secret" and text in fakes:
        return int(fakes[text]) if type(value) is int else fakes[text]
    if tag == "secret":
        return "***"
    if tag == "personal":
        return text[0] + "***"
    if tag == "pan":
        if len(text) <= 10:
            return "*" * max(len(text) - 4, 0) + text[-4:]
        return text[:6] + "*" * (len(text) - 10) + text[-4:]
    raise ValueError(f"unknown classification {tag!r}; expected one of {', '.join(TAGS)}")


def parse_spec(spec: Any, *, where: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ``classify`` option (list of "path:tag" or mapping) -> {path: tag}.  Raises SpecError."""
    if spec is None:
        return {}
    where = dict(where or {})
    items: Iterable[tuple[Any, Any]]
    if isinstance(spec, Mapping):
        items = spec.items()
    elif isinstance(spec, (list, tuple)):
        pairs = []
        for entry in spec:
            if not isinstance(entry, str) or ":" not in entry:
                raise SpecError(f"classify entry {entry!r} is not \"path:tag\"", **where,
                                hint='e.g. classify ["card.number:pan", "name:personal"]')
            path, _, tag = entry.rpartition(":")
            pairs.append((path.strip(), tag.strip()))
        items = pairs
    else:
        raise SpecError(f"option classify must be a list of \"path:tag\", got {spec!r}", **where)
    out: dict[str, str] = {}
    for path, tag in items:
        if tag not in TAGS:
            raise SpecError(f"classify {path}: unknown tag {tag!r}; expected one of {', '.join(TAGS)}", **where)
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            raise SpecError(f"classify: bad path {path!r}", **where, hint="dotted keys, e.g. Dbtr.Nm")
        parts = path.split(".")
        if any("=" in p and (p.startswith("=") or p.endswith("=")) for p in parts) or "=" in parts[-1]:
            raise SpecError(f"classify: bad path {path!r}: a KEY=VALUE step picks the list items whose KEY is "
                            f"VALUE and must be followed by the field to classify", **where,
                            hint="e.g. block4.tag=25.value (the value of SWIFT field 25)")
        out[path] = tag
    return out


def tags_of(codec: Any) -> dict[str, str]:
    """Every classified path of a codec: declared fields plus its ``classify`` option."""
    tags: dict[str, str] = {}
    fields = getattr(codec, "fields", None)
    for fd in (fields if not callable(fields) else None) or ():
        tag = getattr(fd, "classification", None)
        if tag:
            tags[fd.name] = tag
    own = getattr(codec, "classification_tags", None)      # codecs whose spec classifies (ISO 8583)
    if callable(own):
        tags.update(own())
    tags.update(getattr(codec, "classify", None) or {})
    return tags


# A value covered by several tags (two rules on the field, ``*.number:personal`` and ``card.number:pan``,
# an ISO 8583 spec's field tagged twice, or a tag on a group holding it, ``card:personal`` over
# ``card.cvv:secret``) gets the tag whose stored form shows least of it: secret (``***``), then personal
# (``4***``, or only the ciphertext with a keyring), then pan (``411111******1111``, or the ciphertext
# and that mask).  The runtime (masking here, encryption in engine/fieldcrypt.py, both through
# ``at_key``) and ``bsp check`` (W006, dsl/classflow.py) all take it from here.
SHOWS_LEAST = ("secret", "personal", "pan")


def strictest(found: Any) -> str:
    """The strongest protection among a field's tags, the one showing least: secret > personal > pan."""
    for tag in SHOWS_LEAST:
        if tag in found:
            return tag
    raise ValueError(f"no known classification among {found!r}")


def shows_less(tag: str, than: str) -> bool:
    """``tag``'s stored form shows less of a value than ``than``'s (``secret`` shows less than ``personal``)."""
    return SHOWS_LEAST.index(tag) < SHOWS_LEAST.index(than)


Rules = list[tuple[tuple[str, ...], str]]


def at_key(key: Any, rules: Rules, inherited: str | None = None) -> tuple[str | None, Rules]:
    """The class of a mapping's value at ``key`` and the rules that look inside it.

    ``rules``: (remaining path, tag) pairs for the mapping; ``inherited``: the class of a group holding
    it (None: none).  The class is the one that shows least among ``inherited`` and the rules ending at
    ``key`` (None when neither).  The rules going deeper are kept only when they show less than that
    class (a stricter field inside a classified group); the others cannot change what is shown.  So:
    no rules back and a class -> protect the value whole with it; rules back -> walk inside, each
    value below taking the class (``inherited``) unless a rule there shows less."""
    name = str(key)
    here = [(r, t) for r, t in rules if r[0] == "*" or r[0] == name]
    if not here:
        return inherited, []
    found = [t for r, t in here if len(r) == 1]
    if inherited is not None:
        found.append(inherited)
    tag = (found[0] if len(found) == 1 else strictest(found)) if found else None
    deeper = [(r[1:], t) for r, t in here if len(r) > 1 and (tag is None or shows_less(t, tag))]
    return tag, deeper


def item_rules(item: Any, rules: list[tuple[tuple[str, ...], str]]) -> list[tuple[tuple[str, ...], str]]:
    """The rules for one item of a list: a rule whose next step is ``KEY=VALUE`` applies (without that
    step) to a mapping item whose ``KEY`` is ``VALUE`` and to no other item; the other rules to every item."""
    if not any("=" in r[0] for r, _ in rules):
        return rules
    out = []
    for r, t in rules:
        if "=" not in r[0]:
            out.append((r, t))
            continue
        key, _, want = r[0].partition("=")
        if isinstance(item, Mapping) and str(item.get(key)) == want:
            out.append((r[1:], t))
    return out


def mask(values: Any, tags: Mapping[str, str], fakes: Mapping[str, str] | None = None) -> Any:
    """A masked copy of ``values`` (the input is not changed); ``fakes``: see ``mask_value``."""
    if not tags:
        return values
    rules = [(tuple(p.split(".")), t) for p, t in tags.items()]
    return _walk(values, rules, None, fakes)


def _walk(value: Any, rules: Rules, inherited: str | None = None, fakes: Mapping[str, str] | None = None) -> Any:
    if isinstance(value, (list, tuple)):
        return [_walk(v, item_rules(v, rules), inherited, fakes) for v in value]
    if not isinstance(value, Mapping):
        return value if inherited is None else mask_value(value, inherited, fakes)
    out: dict[Any, Any] = {}
    for k, v in value.items():
        tag, deeper = at_key(k, rules, inherited)      # every tag covering it: SHOWS_LEAST
        if deeper:
            out[k] = _walk(v, deeper, tag, fakes)
        else:
            out[k] = v if tag is None else mask_value(v, tag, fakes)
    return out


MIN_KNOWN = 4


def classified_values(values: Any, tags: Mapping[str, str], min_len: int = MIN_KNOWN) -> dict[str, str]:
    """``{text: tag}`` of every non-empty scalar at a classified path of ``values`` (at least ``min_len``
    characters long: 1 for ``mask_text``, which masks a short one only where it is quoted); the strictest
    tag wins when a text is found under two."""
    found: dict[str, str] = {}

    def scalars(value: Any, tag: str) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                scalars(v, tag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                scalars(v, tag)
        elif value is not None and not isinstance(value, bool):
            text = value if isinstance(value, str) else str(value)
            if len(text) >= min_len:
                found[text] = strictest([found[text], tag]) if text in found else tag

    def walk(value: Any, rules: Rules, inherited: str | None) -> None:
        if isinstance(value, (list, tuple)):
            for v in value:
                walk(v, item_rules(v, rules), inherited)
            return
        if not isinstance(value, Mapping):
            if inherited is not None:
                scalars(value, inherited)
            return
        for k, v in value.items():
            tag, deeper = at_key(k, rules, inherited)
            if deeper:
                walk(v, deeper, tag)
            elif tag is not None:
                scalars(v, tag)

    if tags:
        walk(values, [(tuple(p.split(".")), t) for p, t in tags.items()], None)
    return found


_DIGIT_RUN = re.compile(r"\d{12,}")


def mask_digit_runs(text: str) -> str:
    """``text`` with every run of 12 or more digits masked like a PAN (first 6, last 4 kept).

    For messages that quote bytes of a request no codec could decode (a format error's text):
    its fields cannot be classified, and such a run may be a card number.
    """
    return _DIGIT_RUN.sub(lambda m: mask_value(m.group(), "pan"), text)


_CARD_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = (ord(ch) - 48) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mask_card_numbers(text: str) -> str:
    """``text`` with every 13-19 digit number that passes the Luhn check masked like a PAN (first 6, last 4
    kept), as the log's scrubber masks it (``engine.ops.logs``): for text bsp did not write and cannot
    classify, such as a plugin's exception, which it keeps in the ledger (a deal's reason, a dead letter)."""
    if not any(c.isdigit() for c in text):
        return text
    return _CARD_RUN.sub(lambda m: mask_value(m.group(), "pan") if _luhn_ok(m.group()) else m.group(), text)


def mask_known(values: Any, known: Mapping[str, str], fakes: Mapping[str, str] | None = None
               ) -> tuple[Any, bool]:
    """``values`` with every scalar equal to a known classified text masked with its tag, and every
    occurrence of one inside a longer text (``"paid for ACC123456"``) masked too; (copy, changed).
    ``fakes``: see ``mask_value``."""
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        tag = known.get(value if isinstance(value, str) else str(value))
        if tag is None:
            if isinstance(value, str):
                inside = mask_text(value, {k: t for k, t in known.items() if len(k) >= MIN_KNOWN}, fakes)
                if inside != value:
                    changed = True
                return inside
            return value
        changed = True
        return mask_value(value, tag, fakes)

    return (walk(values), changed) if known else (values, False)


def mask_text(text: str, known: Mapping[str, str], fakes: Mapping[str, str] | None = None) -> str:
    """``text`` with every occurrence of a known classified value masked with its tag.

    For error texts that quote a value (an expression's, an encoder's): ``known`` is
    ``classified_values`` of the message the value came from.  The value's repr and JSON escapes
    are masked too; the longest values first, so a value inside another is not half masked.
    """
    if not known or not text:
        return text
    for value in sorted(known, key=len, reverse=True):
        masked = str(mask_value(value, known[value], fakes))
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        if len(value) < MIN_KNOWN:          # "00" may be anything: only where the text quotes the value
            for form in forms:
                for q in ("'", '"'):
                    if form and q + form + q in text:
                        text = text.replace(q + form + q, q + masked + q)
            continue
        for form in forms:
            if form and form in text:
                text = text.replace(form, masked)
    return text


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_INDEX = re.compile(r"\[(\d+)\]")


def tag_of_field(field: str | None, tags: Mapping[str, str]) -> str | None:
    """The classification of a format error's ``field`` (``card.number``, ``$.card.number``,
    ``items[1].iban``, ``items.1.iban``) under ``tags``, or None: the strictest tag whose path is the
    field or one of its parents (a tag on a group covers everything inside), or whose ``KEY=VALUE``
    step picks the field by name (a SWIFT error's field ``59``: the rule ``block4.tag=59.value``)."""
    if not field or not tags:
        return None
    path = _INDEX.sub(r".\1", field)
    if path.startswith("$"):
        path = path[1:]
    parts = [p for p in path.split(".") if p and not p.isdigit()]
    found = []
    for rule, tag in tags.items():
        r = rule.split(".")
        if len(r) <= len(parts) and all(a == "*" or a == b for a, b in zip(r, parts)):
            found.append(tag)
        elif field in {s.partition("=")[2] for s in r if "=" in s}:
            found.append(tag)       # a SWIFT error names the tag ("59"), the rule block4.tag=59.value
    return strictest(found) if found else None


def safe_error_text(exc: Any, tags: Mapping[str, str], values: Any = None, raw: bytes | None = None) -> str:
    """``str(exc)`` of a codec's error, safe to log and store.

    ``values`` (what was being encoded): its values classified by ``tags`` are masked wherever the text
    quotes them.  ``raw`` (what was being decoded): when the error names a classified field, every quoted
    text of its message that is a piece of ``raw`` (read as Latin-1 or EBCDIC cp037, or its hex) is masked with
    that field's tag: a decoder quotes the bytes it choked on, which are the field's value.  Quoted texts
    that are not in the input (a pattern, a type name) and the field's own name stay, so the message
    still says what was expected.
    """
    text = str(exc)
    if not tags:
        return text
    if values is not None:
        text = mask_text(text, classified_values(values, tags, min_len=1))
    field = getattr(exc, "field", None)
    tag = tag_of_field(field, tags)
    message = getattr(exc, "message", None)
    if tag is None or raw is None or not isinstance(message, str) or message not in text:
        return text
    raw = bytes(raw)
    seen = (raw.decode("latin-1"), raw.decode("cp037"))
    name = _INDEX.sub("", str(field)).rsplit(".", 1)[-1]

    def quoted_input(body: str) -> bool:
        if any(body in s for s in seen):
            return True
        try:                                # the bytes in hex ('f4 f1 f1 ...', an EBCDIC number)
            return len(body) > 1 and bytes.fromhex(body) in raw
        except ValueError:
            return False

    def hide(m: re.Match[str]) -> str:
        q = m.group()
        body = q[1:-1]
        if not body or body == name or not quoted_input(body):
            return q
        return q[0] + str(mask_value(body, tag)) + q[0]

    return text.replace(message, _QUOTED.sub(hide, message), 1)
