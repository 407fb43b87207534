"""Specific wording for common slips, next to the example table of ``dsl.syntax_errors``.

Each function looks at one kind of mistake and returns a ``Diagnostic`` when
it recognises it, else None: a number run into letters (``3sec``, ``1e5``),
characters from other languages (``&&``, ``:``, ``!``), an unterminated string.
"""
from __future__ import annotations

import re
from decimal import Decimal

from dsl.diagnostics import ERROR, Diagnostic, closest, did_you_mean
from dsl.ir import Pos

_EXPONENT = re.compile(r"[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+")
_UNITS = (("ms", "ms"), ("milli", "ms"), ("s", "s"), ("min", "m"), ("m", "m"), ("h", "h"), ("d", "d"))


def bad_number(text: str, pos: Pos) -> Diagnostic:
    """E016 for a BAD_NUMBER token: digits run into letters that make no duration."""
    if _EXPONENT.fullmatch(text):
        plain = format(Decimal(text), "f")      # the pattern admits only valid numbers
        return Diagnostic("E016", ERROR, f"exponent notation is not supported: write {plain}", pos,
                          "numbers are exact decimals, written in full (`100000`, `0.0015`)")
    digits = re.match(r"[0-9]+(\.[0-9]+)?", text).group(0)
    letters = text[len(digits):].lower()
    unit = next((u for prefix, u in _UNITS if letters.startswith(prefix)), None)
    if unit is not None:
        return Diagnostic("E016", ERROR, f"`{text}` is not a duration", pos,
                          f"write a number and a unit: ms, s, m, h or d (e.g. {digits}{unit})")
    return Diagnostic("E016", ERROR, f"`{text}` is not a number", pos,
                      "a number is digits (`42`, `120.50`); a duration is a number and a unit: "
                      "ms, s, m, h or d (e.g. 3s); put a space between a number and a word")


def bad_timestamp(text: str, pos: Pos) -> Diagnostic:
    """E133 for a BAD_TIMESTAMP token: a date run into a `T` that is no timestamp literal."""
    from dsl import timestamps
    try:
        timestamps.parse(text)
    except timestamps.LiteralError as exc:
        return Diagnostic(exc.code, ERROR, exc.message, pos, exc.help)
    return Diagnostic("E133", ERROR, f"`{text}` is not a timestamp", pos, f"write it ISO 8601: {timestamps.EXAMPLES}")


_SPACED = re.compile(r"([0-9]+(\.[0-9]+)?)[ \t]+$")
_DURATION_UNITS = ("ms", "s", "m", "h", "d", "sec", "secs", "min", "mins")


def spaced_duration(e, text: str, path: str) -> Diagnostic | None:
    """E016 for a duration written with a space (``timeout = 3 s``): the unit is read as the next option's
    (or field's) name, and the parse fails a token later (at the ``}``), far from the slip."""
    ps = _parser_state(e)
    if ps is None or not ps.value_stack:
        return None
    unit = ps.value_stack[-1]
    if getattr(unit, "type", None) != "NAME" or str(unit.value).lower() not in _DURATION_UNITS:
        return None
    lines = text.splitlines()
    if not 0 < unit.line <= len(lines):
        return None
    before = lines[unit.line - 1][:unit.column - 1]
    m = _SPACED.search(before)
    if m is None:
        return None
    digits, word = m.group(1), str(unit.value)
    fix = next((u for prefix, u in _UNITS if word.lower().startswith(prefix)), "s")
    return Diagnostic("E016", ERROR, f"`{digits} {word}` is not a duration: write it without the space, "
                      f"`{digits}{fix}`", Pos(path, unit.line, m.start(1) + 1, unit.line, unit.column + len(word)),
                      "a duration is a number and its unit together: ms, s, m, h or d (e.g. 3s, 500ms)")


# ------------------------------------------------------------------ misspelt keywords

STATEMENTS = ("receive", "decode", "let", "validate", "deal", "call", "reply", "on")
CLAUSES = ("from", "as", "when", "else", "reject", "expect", "timeout", "compensate")
DECLARATIONS = ("use", "format", "channel", "table", "route", "test")
_INFIX_WORDS = {"IN": "in", "AND": "and", "OR": "or", "NOT": "not"}


def _parser_state(e):
    ip = getattr(e, "interactive_parser", None)
    st = ip.parser_state if ip is not None else getattr(e, "state", None)
    return st if hasattr(st, "state_stack") else None


def _shifts(ps, state, terminal: str) -> bool:
    """Does ``state`` shift ``terminal``: a statement starts there (LET) or a declaration (ROUTE)?"""
    action = ps.parse_conf.parse_table.states[state].get(terminal)
    return action is not None and action[0].name == "Shift"


def _tokens(values) -> list:
    out = []
    for v in values:
        if hasattr(v, "type"):
            out.append(v)
        elif hasattr(v, "scan_values"):
            out.extend(v.scan_values(lambda x: hasattr(x, "type")))
    return out


def _at(tok, path: str) -> Pos:
    return Pos(path, tok.line, tok.column, tok.line, tok.column + len(str(tok.value)))


def misspelt_statement(e, path: str, step_kinds) -> Diagnostic | None:
    """``recieve from x ...`` reads as the plugin step ``recieve`` until it breaks:
    E042 at the first word of the statement, not where the grammar gave up.
    ``step_kinds``: the registered step kinds (None: unknown, then only a word
    close to a keyword is reported)."""
    ps = _parser_state(e)
    if ps is None:
        return None
    kind = None
    for i in range(len(ps.value_stack) - 1, -1, -1):
        v = ps.value_stack[i]
        if getattr(v, "type", None) == "NAME" and _shifts(ps, ps.state_stack[i], "LET"):
            kind = v
            break
    if kind is None:
        return None
    word = str(kind.value)
    if word == "readonly":              # `call ... { body } readonly`: the keyword of a call, out of place
        return Diagnostic("E042", ERROR, "`readonly` is not a statement: it marks a call", _at(kind, path),
                          "`readonly` goes before the call's body: "
                          "`call NAME = CHANNEL as FORMAT reply FORMAT readonly { ... }`")
    steps = [s for s in (step_kinds or ()) if s not in STATEMENTS]
    if word in steps:
        return None                     # a real plugin step: the usual message fits
    close = closest(word, STATEMENTS + CLAUSES + tuple(steps))
    if not close and step_kinds is None:
        return None
    if close and close[0] in STATEMENTS:
        return Diagnostic("E042", ERROR, f"unknown statement `{word}`", _at(kind, path),
                          did_you_mean(word, close))
    tok = getattr(e, "token", None)
    if close and close[0] in CLAUSES:
        help_ = (f"did you mean `{close[0]}`? it continues the statement before it, "
                 "e.g. `receive from CHANNEL as FORMAT when CONDITION`")
    elif close:
        help_ = did_you_mean(word, close)
    elif tok is not None and tok.type == "EQUAL" and ps.value_stack[-1] is kind:
        help_ = f"to name a value, write `let {word} = ...`"
    else:
        help_ = "statements: " + ", ".join(STATEMENTS) + ("; registered steps: " + ", ".join(steps)
                                                           if steps else "")
    return Diagnostic("E042", ERROR, f"unknown statement or step kind `{word}`", _at(kind, path), help_)


def misspelt_declaration(e, text: str, path: str) -> Diagnostic | None:
    """``formt X = json`` between declarations, or on the line after a
    ``format``/``channel`` whose words it then reads as its own: E013 at the word."""
    ps = _parser_state(e)
    tok = getattr(e, "token", None)
    if ps is None or tok is None or tok.type == "$END":
        return None
    accepts = getattr(e, "accepts", None) or getattr(e, "expected", None) or ()
    starts = [i for i, v in enumerate(ps.value_stack)
              if hasattr(v, "type") and _shifts(ps, ps.state_stack[i], "ROUTE")]
    leaves: list = []
    if starts and ps.value_stack[starts[-1]].type in ("FORMAT", "CHANNEL"):
        leaves = _tokens(ps.value_stack[starts[-1] + 1:])
    elif "ROUTE" not in accepts:
        return None
    leaves.append(tok)
    on_line = [t for t in leaves if t.line == tok.line]
    word = on_line[0]
    lines = text.splitlines()
    if word.type != "NAME" or not 0 < word.line <= len(lines):
        return None
    line = lines[word.line - 1]
    if word.column != len(line) - len(line.lstrip()) + 1:
        return None                     # not the first word of its line
    close = closest(str(word.value), DECLARATIONS)
    shaped = word is tok or (tok.type == "EQUAL" and [t.type for t in on_line] == ["NAME", "NAME", "EQUAL"])
    glued = _glued(str(word.value), DECLARATIONS)       # `routebill_payment`, `formatX`: a space is missing
    if not close and not shaped and not glued:
        return None
    if glued:
        help_ = glued
    elif close:
        help_ = did_you_mean(str(word.value), close)
    else:
        help_ = ("a declaration starts with " + ", ".join(f"`{d}`" for d in DECLARATIONS[:-1])
                 + f" or `{DECLARATIONS[-1]}`"
                 + "; statements such as `receive` or `reply` go inside `route NAME { ... }`")
    return Diagnostic("E013", ERROR, f"unknown declaration `{word.value}`", _at(word, path), help_)


def _glued(word: str, keywords) -> str | None:
    """Help for a word that starts with one of ``keywords``: a missing space (``frominb``, ``asJ``,
    ``timeout3s``: more than one letter follows, or a capital or a digit) or a slip of the keyword
    (``fromx``, ``names``)."""
    kws = [k for k in keywords if word.startswith(k) and len(word) > len(k)]
    if not kws:
        return None
    kw = max(kws, key=len)
    rest = word[len(kw):]
    if len(rest) > 1 or not rest[0].islower():
        return f"put a space after `{kw}`: `{kw} {rest}`"
    return f"did you mean `{kw}`?"


def keyword_word(e, path: str, keywords: dict[str, str], expected: str) -> Diagnostic | None:
    """A word where only keywords (and no name) fit, that is or starts like one of them: ``fromx``
    or ``frominb`` after ``receive``, ``names`` after ``expect call E { ... }``.  Keywords end at a
    word boundary (``dsl.parser._WholeWords``), so the parser saw the whole word: E002 naming it, what
    fits there, and the keyword meant.  ``keywords``: terminal -> word; ``expected``: what fits, worded."""
    tok = getattr(e, "token", None)
    accepts = set(getattr(e, "accepts", None) or getattr(e, "expected", None) or ())
    if tok is None or tok.type != "NAME" or "NAME" in accepts:
        return None
    word = str(tok.value)
    fits = sorted(keywords[n] for n in accepts if n in keywords)
    glued = _glued(word, fits)
    close = closest(word, fits)
    if glued:
        help_ = glued
    elif close:
        help_ = did_you_mean(word, fits)
    else:
        other = [k for k in closest(word, keywords.values()) if word.startswith(k)]
        if not other:
            return None                 # no keyword in sight: the usual wording
        help_ = f"did you mean `{other[0]}`? it does not fit here"
    ps = _parser_state(e)
    prev = _tokens(ps.value_stack[-1:])[-1:] if ps is not None and ps.value_stack else []
    after = f" after `{prev[0].value}`" if prev and prev[0].type in keywords else ""
    many = "," in expected or " or " in expected
    return Diagnostic("E002", ERROR, f"`{word}`: expected {'one of: ' if many else ''}{expected}{after}",
                      _at(tok, path), help_)


# ------------------------------------------------------------------ tokens and characters

def token_hint(e, text: str = "") -> tuple[str, str] | None:
    """(message, help) for an unexpected ``=`` that means ``==`` or follows a keyword used as a field name,
    a comma between the lines of a ``{ ... }`` block, ``decimal(12.2)`` for ``decimal(12, 2)``, or
    ``on error reply {`` without its format."""
    tok = getattr(e, "token", None)
    ps = _parser_state(e)
    if tok is not None and tok.type == "COMMA":
        return _comma_hint(e, ps)
    if tok is not None and tok.type in ("DOT", "INT"):
        return _field_args_hint(tok, ps, text)
    if tok is not None and tok.type == "LBRACE" and ps is not None:
        last = [str(t.value) for t in _tokens(ps.value_stack[-3:])][-3:]
        if last == ["on", "error", "reply"]:
            return ("`on error reply` needs the reply's format: `on error reply FORMAT { ... }`",
                    "name the format the error reply is written in, e.g. `on error reply Rsp { code = error.code }`; "
                    "only a route's own `reply` may leave it out (it then uses the receive format)")
    if tok is None or tok.type != "EQUAL":
        return None
    prev = ps.value_stack[-1] if ps is not None and ps.value_stack else None
    word = _INFIX_WORDS.get(getattr(prev, "type", None))
    if word is not None:
        return (f"unexpected `=` after `{word}`",
                f"`{word}` is a keyword, read here as part of the expression before it; "
                f'to use it as a field name, quote it: `"{word}" = ...`')
    accepts = getattr(e, "accepts", None) or getattr(e, "expected", None) or ()
    if "COMP_OP" in accepts:
        return ("unexpected `=`: did you mean `==`?",
                "`==` compares two values; a single `=` gives a field or a name its value")
    return None


_CLOSERS = {"RBRACE": "LBRACE", "RPAR": "LPAR", "RSQB": "LSQB"}


def _still_open(vs) -> list[int]:
    """Indexes in the parser's value stack of the ``{`` ``(`` ``[`` not closed yet (outermost first)."""
    opened: list[int] = []
    for i, v in enumerate(vs):
        kind = getattr(v, "type", None)
        if kind in ("LBRACE", "LPAR", "LSQB"):
            opened.append(i)
        elif kind in _CLOSERS and opened and vs[opened[-1]].type == _CLOSERS[kind]:
            opened.pop()
    return opened


def _comma_hint(e, ps) -> tuple[str, str] | None:
    """``{ a = 1, b = 2 }``: the lines of a body, a channel's options, a format's fields and a
    ``validate`` block's rules are separated by spaces or line breaks, not commas."""
    if ps is None:
        return None
    vs = ps.value_stack
    opened = _still_open(vs)
    if not opened or vs[opened[-1]].type != "LBRACE":
        return None                     # inside ( ) or [ ]: not a block's separator
    i = opened[-1]
    accepts = set(getattr(e, "accepts", None) or getattr(e, "expected", None) or ())
    before = getattr(vs[i - 1], "type", None) if i > 0 else None
    starts = [v for j, v in enumerate(vs) if hasattr(v, "type") and _shifts(ps, ps.state_stack[j], "ROUTE")]
    if starts and starts[-1].type == "FORMAT":
        return ("unexpected `,` between the fields of a format",
                "declare each field on a line of its own, without commas: `code string(4)` then, "
                "on the next line, `amount decimal(12, 2)`")
    if _in_channel_options(ps):
        return ("unexpected `,` between a channel's options",
                "options are separated by spaces or line breaks, not commas: "
                '`{ address = "127.0.0.1:7001"  framing = length2 }`')
    if before == "VALIDATE":
        return ("unexpected `,` between validation rules",
                "put each rule on a line of its own, without commas: "
                '`CONDITION else reject "CODE" "TEXT"`')
    if {"NAME", "STRING", "RBRACE"} <= accepts:
        return ("unexpected `,` between the fields of a `{ ... }` body",
                "fields are separated by spaces or line breaks, not commas: `{ a = 1  b = 2 }`")
    return None


def _field_args_hint(tok, ps, text: str) -> tuple[str, str] | None:
    """``decimal(12.2)`` / ``decimal(12 2)`` in a format's field block: the numbers in a field type's
    parentheses are whole numbers separated by a comma."""
    if ps is None:
        return None
    vs = ps.value_stack
    kinds = [getattr(v, "type", None) for v in vs[-4:]]
    if kinds != ["NAME", "NAME", "LPAR", "INT"]:
        return None
    starts = [v for j, v in enumerate(vs) if hasattr(v, "type") and _shifts(ps, ps.state_stack[j], "ROUTE")]
    if not starts or starts[-1].type != "FORMAT":
        return None
    ftype, first = str(vs[-3].value), str(vs[-1].value)
    second = "2"
    if tok.type == "INT":
        second = str(tok.value)
    elif text and tok.end_pos is not None:
        m = re.match(r"[0-9]+", text[tok.end_pos:])
        if m:
            second = m.group(0)
    shown = "`.`" if tok.type == "DOT" else f"`{tok.value}`"
    msg = f"unexpected {shown} in the arguments of field type `{ftype}`"
    if ftype == "decimal":
        return msg, f"write the width and scale with a comma: decimal({first}, {second})"
    return msg, (f"the numbers in `{ftype}( )` are whole numbers separated by a comma, e.g. {ftype}({first}); "
                 "a decimal field takes a width and a scale: decimal(12, 2)")


def _in_channel_options(ps) -> bool:
    """Is the innermost open ``{`` a channel's option block (not its ``on error reply`` body)?"""
    if ps is None:
        return False
    vs = ps.value_stack
    braces = [i for i, v in enumerate(vs) if getattr(v, "type", None) == "LBRACE"]
    for v in reversed(vs[:braces[-1]] if braces else ()):
        kind = getattr(v, "type", None)
        if kind == "CHANNEL":
            return True
        if kind not in ("NAME", "EQUAL"):
            return False
    return False


def declaration_hint(e) -> tuple[str, str] | None:
    """(message, help) where a declaration was expected: a stray ``}``, or
    ``name = value`` after a format (its options take no ``=``)."""
    tok = getattr(e, "token", None)
    ps = _parser_state(e)
    if tok is None or ps is None:
        return None
    if tok.type == "RBRACE":
        return ("unexpected `}`: it closes no `{`",
                "remove it, or look above for a `{` that is missing")
    starts = [v for i, v in enumerate(ps.value_stack)
              if hasattr(v, "type") and _shifts(ps, ps.state_stack[i], "ROUTE")]
    if tok.type == "EQUAL" and starts and starts[-1].type == "FORMAT":
        return ("unexpected `=` in a format declaration",
                "a format's options follow its kind without `=`: "
                "`format NAME = copybook \"FILE.cpy\" encoding cp037`")
    return None


def char_hint(e, text: str, path: str) -> Diagnostic | None:
    """E001 worded for the character: an unterminated string, ``:``, ``&&``, ``||``, ``!``, a BOM."""
    i = e.pos_in_stream
    if not 0 <= i < len(text):
        return None
    ch = text[i]
    line, col = e.line, e.column
    rest = text[i:].split("\n", 1)[0].rstrip("\r")
    if ch == '"':
        return Diagnostic("E001", ERROR, "unterminated string: the closing `\"` is missing",
                          Pos(path, line, col, line, col + len(rest)),
                          'a string ends on the line where it starts: add the closing `"`')
    pos = Pos(path, line, col, line, col + 1)
    allowed = getattr(e, "allowed", None) or ()
    if ch == ":" and "EQUAL" in allowed:
        what = "an option" if _in_channel_options(_parser_state(e)) else "a field"
        help_ = f"use `=` to give {what} its value: `name = value`"
    elif ch in "&|":
        op, word = ("&&", "and") if ch == "&" else ("||", "or")
        return Diagnostic("E001", ERROR, f"unexpected `{rest[:2] if rest[:2] == op else ch}`",
                          Pos(path, line, col, line, col + (2 if rest[:2] == op else 1)),
                          f"write `{word}`: `a > 0 {word} b > 0`")
    elif ch == "!":
        help_ = "write `not`: `not (a == b)`; `!=` is written without a space"
    elif ch == "\ufeff":
        return Diagnostic("E001", ERROR, "unexpected byte-order mark (U+FEFF)", pos,
                          "an invisible BOM is in the text here: delete it")
    elif ch == "'":
        help_ = 'strings are written in double quotes: "text"'
    elif ch == ";":
        help_ = "no `;` is needed: put each item on its own line"
    else:
        return None
    return Diagnostic("E001", ERROR, f"unexpected character `{ch}`", pos, help_)


# ------------------------------------------------------------------ a missing `}`

_DECL_WORDS = {"use", "format", "channel", "table", "route", "test"}


def _owner(ps, i: int) -> str:
    """What the ``{`` at value-stack index ``i`` opens: ``route `r``` or ```reply Req` in route `r```."""
    vs = ps.value_stack
    starts = [j for j in range(i) if hasattr(vs[j], "type") and _shifts(ps, ps.state_stack[j], "ROUTE")]
    decl = ""
    if starts:
        s = starts[-1]
        name = vs[s + 1] if s + 1 < len(vs) and hasattr(vs[s + 1], "type") else None
        if name is not None and name.type == "STRING":
            decl = f"{vs[s].value} {name.value}"
        elif name is not None:
            decl = f"{vs[s].value} `{name.value}`"
    words: list[str] = []
    j = i - 1
    while j >= 0 and hasattr(vs[j], "type") and vs[j].type not in ("LBRACE", "RBRACE") \
            and not (starts and j <= starts[-1] + 1):
        words.append(str(vs[j].value))
        j -= 1
    if starts and j <= starts[-1] + 1:
        words = []                      # the declaration's own `{` (`format F = fixed {`)
    what = " ".join(reversed(words))
    if what and decl:
        return f"`{what}` in {decl}"
    return what and f"`{what}`" or decl


def _brace_diagnostic(ps, opened: list[int], path: str, before=None, text: str = "") -> Diagnostic:
    vs = ps.value_stack
    braces = [i for i in opened if vs[i].type == "LBRACE"]
    i = braces[-1]
    tok = vs[i]
    owner = _owner(ps, i)
    at = f"{tok.line}:{tok.column}"
    shown = f"the `{{` opened at {at}" + (f" ({owner})" if owner else "")
    if before is None:
        msg = f"unexpected end of file: {shown} is never closed"
        help_ = "add its `}`: every `{` needs a matching `}`"
    else:
        msg = f"a `}}` is missing: {shown} is not closed before `{before.value}` at {before.line}:{before.column}"
        help_ = f"add its `}}` before line {before.line}: every `{{` needs a matching `}}`"
    outer = [vs[j] for j in braces[:-1]]
    if outer:
        help_ += "; also still open: " + ", ".join(f"`{{` at {t.line}:{t.column}" for t in outer)
    inner = [vs[j] for j in opened if j > i]
    if inner and before is None:
        help_ += "; inside it " + ", ".join(f"`{t.value}` at {t.line}:{t.column}" for t in inner) + " is not closed either"
    hint = misplaced_close(text[:before.start_pos] if before is not None else text, tok.line, tok.column)
    if hint:
        help_ += "; " + hint
    return Diagnostic("E007", ERROR, msg, Pos(path, tok.line, tok.column, tok.line, tok.column + 1), help_)


def unclosed_at_end(e, text: str, path: str) -> Diagnostic | None:
    """E007 at the end of the file, at the innermost ``{`` still open (strings and comments hold none:
    the parser's own tokens are read)."""
    ps = _parser_state(e)
    if ps is None:
        return None
    opened = _still_open(ps.value_stack)
    if not any(ps.value_stack[i].type == "LBRACE" for i in opened):
        return None
    return _brace_diagnostic(ps, opened, path, text=text)


_STATEMENT_WORDS = set(STATEMENTS) | {"given", "expect"}


def _first_on_line(tok, text: str) -> bool:
    lines = text.splitlines()
    if not 0 < tok.line <= len(lines):
        return False
    return tok.column == _indent(lines[tok.line - 1]) + 1


def unclosed_before(e, text: str, path: str) -> Diagnostic | None:
    """A ``{`` left open, seen where the parser gives up on the next line: ``route b {`` (or ``format``,
    ``test`` ...) at the start of a line, or a statement (``call``, ``reply``, ``expect`` ...) starting
    the line right where it failed inside a message body or a ``validate`` block.  The parser read the
    word as a field or step name; E007 goes to the innermost ``{`` opened before that word."""
    ps = _parser_state(e)
    tok = getattr(e, "token", None)
    if ps is None or tok is None:
        return None
    vs = ps.value_stack
    cands = [(k, v) for k, v in enumerate(vs) if hasattr(v, "type")] + [(len(vs), tok)]
    for k, v in cands:
        word = str(v.value)
        if word in _DECL_WORDS and v.column == 1 and v.type in ("NAME", word.upper()):
            opened = [i for i in _still_open(vs[:k]) if vs[i].line < v.line]
            if any(vs[i].type == "LBRACE" for i in opened):
                return _brace_diagnostic(ps, opened, path, before=v, text=text)
    # a statement word that starts its line, where the parser stopped (it, or the token after it)
    last = [(k, v) for k, v in cands if k >= len(vs) - 1]
    if len(vs) >= 1 and not hasattr(vs[-1], "type"):       # the word may be reduced already (`call` -> name)
        inner = _tokens([vs[-1]])
        if len(inner) == 1:
            last.insert(0, (len(vs) - 1, inner[0]))
    for k, v in last:
        word = str(v.value)
        if word not in _STATEMENT_WORDS or v.type not in ("NAME", word.upper()) or not _first_on_line(v, text):
            continue
        opened = [i for i in _still_open(vs[:k]) if vs[i].line < v.line]
        braces = [i for i in opened if vs[i].type == "LBRACE"]
        if not braces or opened[-1] != braces[-1]:
            continue                    # inside ( ) or [ ]: another mistake
        owner = _owner(ps, braces[-1])
        if not owner.startswith("`") or owner.startswith("`on error`"):
            continue                    # a route's, test's or `on error { }` body: statements belong there
        return _brace_diagnostic(ps, opened, path, before=v, text=text)
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def brace_scan(text: str) -> tuple[list[tuple[int, int, int, int]], int]:
    """The ``{`` ``}`` outside strings and comments: each matched pair as (open line, open col, close line,
    close col), and how many more ``{`` than ``}`` there are (above 0: a ``{`` is left open)."""
    pairs: list[tuple[int, int, int, int]] = []
    stack: list[tuple[int, int]] = []
    stray = 0
    line, col, i, n = 1, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            i, col = i + 1, col + 1
            while i < n and text[i] not in '"\n':
                step = 2 if text[i] == "\\" and i + 1 < n and text[i + 1] != "\n" else 1
                i, col = i + step, col + step
        elif ch == "{":
            stack.append((line, col))
        elif ch == "}":
            if stack:
                ol, oc = stack.pop()
                pairs.append((ol, oc, line, col))
            else:
                stray += 1
        if i < n and text[i] == "\n":
            line, col = line + 1, 0
        i, col = i + 1, col + 1
    return pairs, len(stack) - stray


def misplaced_close(text: str, line: int, col: int) -> str | None:
    """A hint for the ``{`` at line:col left open: a ``}`` inside it, on a line of its own, that lines up
    with that ``{``'s line but closes a ``{`` opened further in (its own ``}`` is likely the one missing)."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    want = _indent(lines[line - 1])
    for ol, oc, cl, cc in brace_scan(text)[0]:
        if (ol, oc) <= (line, col) or not 0 < cl <= len(lines):
            continue
        close_line = lines[cl - 1]
        if close_line.strip() == "}" and _indent(close_line) == want and _indent(lines[ol - 1]) != want:
            return (f"the `}}` at {cl}:{cc} lines up with line {line} but closes the `{{` opened at {ol}:{oc}: "
                    f"is the `}}` of {ol}:{oc} the one missing?")
    return None
