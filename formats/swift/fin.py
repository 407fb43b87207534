"""FIN message blocks: {1:}{2:}{3:}{4:...-}{5:} text <-> values, and RJE batches.

Values of one message::

    {"block1": {"app": "F", "service": "01", "lt": "TESTAR00AXXX", "session": "7607", "sequence": "663781"},
     "block2": {"io": "I", "type": "103", "receiver": "BANKDEFFXXXX", "priority": "N", "rest": ""}
            or {"io": "O", "type": "103", "input_time": "1610", "mir": "<28 chars>", "output_date": "191014",
                "output_time": "2210", "priority": "N"},
     "block3": {"108": "...", "121": "..."},           # optional
     "block4": [{"tag": "20", "value": "..."}, ...],   # in order; values per formats.swift.fields
     "block5": {"CHK": "..."},                          # optional
     "eol": "\r\n"}                                    # line break used in block 4 (FIN uses CRLF)

Block 4 fields are typed (formats.swift.fields) for the message types with a spec
(formats.swift.messages: 101, 103, 202, 940, 942, 950); other types keep text.
Service messages (e.g. an F21 ACK) carry block 4 as sub-blocks: a dict like block 3.
Offsets in errors are character offsets into the message text.
"""
from __future__ import annotations

import re
from typing import Any

from formats.errors import FormatError
from formats.swift.charset import check_x
from formats.swift.details86 import add_details
from formats.swift.fields import parse_field, w_61, write_field
from formats.swift.messages import MESSAGES

# the fields whose currency a statement's :61: entries are in (MT940 60a, MT942 34F): rule C03 for them too
_STATEMENT_CCY = frozenset({"60F", "60M", "34F"})

_TAG_LINE = re.compile(r"^:(\d{2}[A-Z]?):", re.M)
_BLOCK_START = re.compile(r"\{([1-5]):")


def _parse_subblocks(text: str, base: int, block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    for m in re.finditer(r"\{([A-Za-z0-9]{1,4}):([^{}]*)\}", text):
        if m.start() != pos:
            raise FormatError(f"block {block}: expected {{tag:value}} sub-blocks", offset=base + pos,
                              field=f"block{block}")
        if m[1] in out:
            raise FormatError(f"block {block}: tag {m[1]} repeated", offset=base + m.start(), field=f"block{block}")
        out[m[1]] = m[2]
        pos = m.end()
    if pos != len(text):
        raise FormatError(f"block {block}: expected {{tag:value}} sub-blocks", offset=base + pos,
                          field=f"block{block}")
    return out


def _block1(text: str, base: int) -> dict[str, str]:
    m = re.fullmatch(r"([FAL])(\d{2})([A-Z0-9]{12})(\d{4})(\d{6})", text)
    if not m:
        raise FormatError(f"basic header {text!r} is not app id, service id, 12-character logical terminal, "
                          "4-digit session, 6-digit sequence (e.g. F01BANKBEBBAXXX0000000000)", offset=base,
                          field="block1")
    return {"app": m[1], "service": m[2], "lt": m[3], "session": m[4], "sequence": m[5]}


def _block2(text: str, base: int) -> dict[str, str]:
    m = re.fullmatch(r"I(\d{3})([A-Z0-9]{12})([SNU]?)(.*)", text)
    if m:
        return {"io": "I", "type": m[1], "receiver": m[2], "priority": m[3], "rest": m[4]}
    m = re.fullmatch(r"O(\d{3})(\d{4})(\d{6}[A-Z0-9]{12}\d{10})(\d{6})(\d{4})([SNU]?)", text)
    if m:
        return {"io": "O", "type": m[1], "input_time": m[2], "mir": m[3], "output_date": m[4],
                "output_time": m[5], "priority": m[6]}
    raise FormatError(f"application header {text!r} is neither input (I103BANKDEFFXXXXN) nor output "
                      "(O103 + time + MIR + date + time + priority)", offset=base, field="block2")


def _w_block2(b: dict[str, str]) -> str:
    if b.get("io") == "I":
        return f"I{b['type']}{b['receiver']}{b.get('priority', '')}{b.get('rest', '')}"
    return f"O{b['type']}{b['input_time']}{b['mir']}{b['output_date']}{b['output_time']}{b.get('priority', '')}"


def split_tags(text: str, base: int = 0) -> list[tuple[str, str, int]]:
    """Block 4 body (between the first line break and the closing '-') -> [(tag, text, offset)]."""
    matches = list(_TAG_LINE.finditer(text))
    if not matches or matches[0].start() != 0:
        first = text.split("\n", 1)[0]
        raise FormatError(f"block 4 must start with a field tag like :20:, found {first[:20]!r}", offset=base,
                          field="block4")
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end():end]
        if value.endswith("\n"):
            value = value[:-1]
        out.append((m[1], value, base + m.start()))
    return out


def parse_fin(text: str, *, strict: bool = True, offsets: list[int] | None = None) -> tuple[dict[str, Any], int]:
    """Parse one message at the start of ``text``; returns (values, end offset).

    ``offsets``, when given, receives the offset of {4: followed by each block 4 field's offset.
    """
    values: dict[str, Any] = {}
    pos = 0
    n = len(text)
    last = 0
    while pos < n and text.startswith("{", pos):
        m = _BLOCK_START.match(text, pos)
        if not m:
            if not strict:
                break                      # lenient: stray text after the last block is ignored
            raise FormatError("expected a block such as {1: after the last block", offset=pos, field="blocks",
                              hint="remove the stray text")
        num = int(m[1])
        if num <= last:
            if num == 1:
                break                      # the next message starts here
            raise FormatError(f"block {num} after block {last}: blocks must come in order 1-5", offset=pos,
                              field=f"block{num}")
        last = num
        body_start = m.end()
        if num == 4 and not text.startswith("{", body_start):
            close = text.find("\n-}", body_start)
            if close < 0:
                raise FormatError("block 4 has no end: expected a line '-}'", offset=pos, field="block4")
            body = text[body_start:close + 1]
            eol = "\r\n" if body.startswith("\r\n") else "\n"
            if not body.startswith(eol):
                raise FormatError("block 4 text must start on a new line after {4:", offset=body_start,
                                  field="block4")
            inner = body[len(eol):]
            offset0 = body_start + len(eol)
            flat = inner.replace("\r\n", "\n") if eol == "\r\n" else inner
            if strict:
                check_x(inner, offset=offset0, field="block4")
            fields = []
            b2 = values.get("block2")
            typed = isinstance(b2, dict) and b2.get("type") in MESSAGES
            if offsets is not None:
                offsets.append(pos)
            seen, lines = 0, 0              # line breaks before ``seen``: counted once (quadratic per field)
            for tag, value, off in split_tags(flat, 0):
                if eol != "\n":
                    lines += flat.count("\n", seen, off)
                    seen = off
                real_off = offset0 + off + (lines if eol != "\n" else 0)
                value_off = real_off + len(tag) + 2          # after ":tag:"
                fields.append(add_details({"tag": tag, "value": parse_field(tag, value, value_off, eol_len=len(eol))
                                           if typed else value}))
                if offsets is not None:
                    offsets.append(real_off)
            values["block4"] = fields
            values["eol"] = eol
            pos = close + 3
            continue
        depth = 0
        i = body_start
        while i < n:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        if i >= n:
            raise FormatError(f"block {num} is not closed with '}}'", offset=pos, field=f"block{num}")
        body = text[body_start:i]
        if num == 1:
            values["block1"] = _block1(body, body_start)
        elif num == 2:
            values["block2"] = _block2(body, body_start)
        else:
            values[f"block{num}"] = _parse_subblocks(body, body_start, str(num))
        pos = i + 1
    if "block1" not in values:
        raise FormatError("a FIN message starts with a basic header block {1:...}", offset=0, field="block1")
    return values, pos


def write_fin(values: dict[str, Any]) -> str:
    if not isinstance(values, dict) or "block1" not in values:
        raise FormatError("expected a mapping with block1 (and block2, block4 ...)", field="block1")
    b1 = values["block1"]
    b2 = values.get("block2")
    if not isinstance(b1, dict) or (b2 is not None and not isinstance(b2, dict)):
        raise FormatError("block1 and block2 must be mappings", field="block1")
    try:
        out = [f"{{1:{b1['app']}{b1['service']}{b1['lt']}{b1['session']}{b1['sequence']}}}"]
    except KeyError as exc:
        raise FormatError(f"block 1 needs {exc.args[0]!r}", field="block1") from None
    _block1(out[0][3:-1], 0)
    if b2 is not None:
        try:
            out.append(f"{{2:{_w_block2(b2)}}}")
        except KeyError as exc:
            raise FormatError(f"block 2 needs {exc.args[0]!r}", field="block2") from None
        _block2(out[-1][3:-1], 0)
    if values.get("block3") is not None:
        out.append("{3:" + "".join(f"{{{k}:{v}}}" for k, v in values["block3"].items()) + "}")
    b4 = values.get("block4")
    if isinstance(b4, dict):
        out.append("{4:" + "".join(f"{{{k}:{v}}}" for k, v in b4.items()) + "}")
    elif b4 is not None:
        eol = values.get("eol", "\r\n")
        typed = isinstance(b2, dict) and b2.get("type") in MESSAGES
        lines = []
        ccy: str | None = None       # a statement's currency (60a, 34F), that of its :61: entries (rule C03)
        entries = 0
        for item in b4:
            tag = item.get("tag") if isinstance(item, dict) else None
            if not isinstance(tag, str) or not re.fullmatch(r"\d{2}[A-Z]?", tag):
                raise FormatError(f"block 4 entries need a tag like '20' or '32A', got {tag!r}", field="block4")
            value = item.get("value")
            if isinstance(value, str):
                text = value
                if typed:
                    parse_field(tag, value, 0)       # a typed field given as text must still be valid
            elif tag == "61" and isinstance(value, dict) and isinstance(ccy, str):
                entries += 1
                try:                 # in the statement's currency: its decimals (C03), its trailing zeros dropped
                    text = w_61(value, tag, ccy)
                except FormatError as exc:
                    tail = ", the statement's currency" if "decimals than" in exc.message else ""
                    exc.message = f"statement entry {entries}: {exc.message}{tail}"
                    exc.args = (exc.message,)
                    raise
            else:
                text = write_field(tag, value)
                if tag in _STATEMENT_CCY and isinstance(value, dict) and ccy is None:
                    ccy = value.get("currency") if isinstance(value.get("currency"), str) else None
            check_x(text, field=tag)
            _no_field_start(text, tag)
            lines.append(f":{tag}:{text}")
        body = eol.join(line.replace("\n", eol) for line in lines)
        out.append(f"{{4:{eol}{body}{eol}-}}")
    if values.get("block5") is not None:
        out.append("{5:" + "".join(f"{{{k}:{v}}}" for k, v in values["block5"].items()) + "}")
    return "".join(out)


_FIELD_START = re.compile(r"[\r\n]+([:-])")


def _no_field_start(text: str, tag: str) -> None:
    """FormatError when a line of a field's text after its first starts with ':' or '-': the receiver reads
    ``:NNa:`` there as a field of its own (a partner's "INV 1" + line break + ":71A:OUR" in :70: added a field),
    and a line "-}" as the end of the text block; FIN forbids both."""
    m = _FIELD_START.search(text)
    if m is not None:
        line = text.count("\n", 0, m.start(1)) + 1
        raise FormatError(f"field :{tag}: line {line} starts with {m[1]!r}: the receiver would read it as "
                          f"{'the start of another field' if m[1] == ':' else 'the end of block 4'} (a line of a "
                          f"field never starts with ':' or '-')", field=tag,
                          hint="refuse such a request first, or take the line break out (replace)")


def parse_many(text: str, *, strict: bool = True) -> list[dict[str, Any]]:
    """Every message in ``text`` (e.g. an ACK followed by the message it acknowledges)."""
    out = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \r\n":
            pos += 1
        if pos >= len(text) or not text.startswith("{1:", pos):
            break
        values, end = parse_fin(text[pos:], strict=strict)
        out.append(values)
        pos += end
    return out


def split_rje(text: str) -> list[str]:
    """An RJE batch file: messages separated by '$' (on a line of its own or right after '-}').

    '$' is outside the FIN character set, so it cannot occur inside a message."""
    parts = [p.strip("\r\n") for p in re.split(r"\r?\n?\$\r?\n?", text)]
    return [p for p in parts if p.strip()]
