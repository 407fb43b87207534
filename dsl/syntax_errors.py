"""Parse errors -> friendly diagnostics.

Like lark's own ``GRAMMAR_ERRORS``: a table of labelled bad snippets.  When a
parse fails, ``UnexpectedInput.match_examples`` finds the snippet that fails
in the same parser state on the same token, and its label picks the message.
The error catalogue (``dsl.errors_catalogue``) tests every label.
"""
from __future__ import annotations

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl.diagnostics import ERROR, Diagnostic
from dsl.ir import Pos
from dsl.syntax_hints import brace_scan

# label -> (message, help, [bad snippets that fail the same way]); a label is a
# code, or a code and a word when one code is worded for several places
SYNTAX_ERRORS: dict[str, tuple[str, str | None, list[str]]] = {
    "E003": ("a validation rule needs `else reject \"CODE\" \"TEXT\"`",
             "write each rule as `CONDITION else reject \"CODE\" \"TEXT\"`",
             ['route r { validate { msg.a > 0 } }',
              'route r { validate { msg.a > 0 reject "1" "x" } }',
              'route r { validate { msg.a > 0 else "1" "x" } }']),
    "E004": ("`reject` needs a code and a text, both quoted",
             'e.g. `else reject "13" "invalid amount"`',
             ['route r { validate { msg.a > 0 else reject 13 "x" } }',
              'route r { validate { msg.a > 0 else reject "13" } }',
              'route r { validate { msg.a > 0 else reject "13" x } }']),
    "E005": ("expected `name = value` in a message body",
             "each line of a `{ ... }` message body is `field = expression`",
             ['route r { reply X { a } }',
              'route r { reply X { a b } }',
              'route r { reply X { a: 1 } }',
              'route r { deal D { ref msg.a } }']),
    "E005 channel": ("expected `name = value` in a channel's options",
                     "each line of a channel's `{ ... }` block is `option = value` "
                     "(or `on error reply FORMAT { ... }`)",
                     ['channel c = tcp listen { address "x" }',
                      'channel c = tcp listen { address = "x" b }']),
    "E006": ("a field declaration is `name type` on its own line",
             'e.g. `amount decimal(12, 2)`; put each field on a line of its own',
             ['format F = fixed {\n a string(1) b string(2)\n}',
              'format F = fixed {\n a\n}',
              'format F = fixed {\n a string(1) personal x\n}']),
    "E007": ("unexpected end of file: a `}` is missing",      # worded by syntax_hints.unclosed_at_end
             "every `{` needs a matching `}`",
             ['route r {', 'route r { reply X {', 'format F = fixed {\n a string(1)\n',
              'channel c = tcp listen {', 'route r { validate {']),
    "E008": ("`receive` needs `from CHANNEL`",
             "e.g. `receive from mainframe as BillPayReq`",
             ['route r { receive mainframe }', 'route r { receive }']),
    "E009": ("`call` is `call NAME = CHANNEL as FORMAT [reply FORMAT] { ... }`",
             "name the result, the channel and the request format: `call post = biller as BillerPost { ... }`",
             ['route r { call biller as X { } }', 'route r { call p = biller { } }',
              'route r { call p = biller as X }', 'route r { call p biller as X { } }']),
    "E013": ("expected a declaration: `use`, `format`, `channel`, `table` or `route`",
             "statements such as `receive` or `reply` go inside `route NAME { ... }`",
             ['receive from x', 'reply X { }', 'formt X = json', 'x = 1']),
    "E014": ("an expression is incomplete or malformed",
             "check for a missing operand, a stray operator or an unclosed `(` / `[`",
             ['route r { let x = }', 'route r { let x = 1 + }', 'route r { let x = (1 }',
              'route r { let x = f(1, ) }', 'route r { let x = a == == b }', 'route r { let x = [1, }']),
    "E015": ("`if` needs `then` and `else`",
             "write `if CONDITION then A else B`",
             ['route r { let x = if a b else c }', 'route r { let x = if a then b }']),
}

GENERIC_TOKEN = "E002"
GENERIC_CHAR = "E001"


def _describe(tok) -> str:
    if tok.type == "$END":
        return "the end of the file"
    return f"`{tok.value}`"


_KINDS = {"NAME": "a name", "STRING": "a quoted string", "INT": "a number", "DECIMAL": "a decimal number",
          "DURATION": "a duration", "TIMESTAMP": "a timestamp", "BAD_TIMESTAMP": "a timestamp", "DATE": "a date", "DOTTED": "a dotted word", "COMP_OP": "a comparison",
          "ADD_OP": "+ or -", "MUL_OP": "*, / or %", "$END": "the end of the file"}


def _expected(e: UnexpectedToken) -> str:
    from dsl.parser import get_parser, keywords
    parser = get_parser()
    shown: list[str] = []
    words = keywords()
    for n in sorted(getattr(e, "accepts", None) or e.expected or ()):
        if n in words:                      # `from`; `name` is the terminal __ANON_0
            shown.append(f"`{words[n]}`")
            continue
        if n.startswith("_"):
            continue
        if n in _KINDS:
            shown.append(_KINDS[n])
            continue
        try:
            pat = parser.get_terminal(n).pattern
        except KeyError:
            shown.append(n.lower())
            continue
        shown.append(f"`{pat.value}`" if pat.type == "str" else n.lower())
    return ", ".join(sorted(set(shown)))


_examples_cache: dict | None = None


def _examples() -> dict[str, list[str]]:
    global _examples_cache
    if _examples_cache is None:
        _examples_cache = {code: v[2] for code, v in SYNTAX_ERRORS.items()}
    return _examples_cache


def _state_id(e: UnexpectedInput):
    st = getattr(e, "state", None)
    return getattr(st, "position", st)


def match_example(e: UnexpectedInput, parse_fn) -> str | None:
    """The label of the snippet that fails in the same parser state (lark's
    ``match_examples`` idea; done here because errors raised through
    ``on_error`` carry a ParserState object that lark's version cannot compare)."""
    want = _state_id(e)
    if want is None:
        return None
    tok = getattr(e, "token", None)
    accepts = getattr(e, "accepts", None)
    candidate = None
    for label, snippets in _examples().items():
        for snippet in snippets:
            try:
                parse_fn(snippet)
            except UnexpectedInput as ut:
                if _state_id(ut) != want:
                    continue
                if accepts is not None and getattr(ut, "accepts", None) != accepts:
                    continue
                ut_tok = getattr(ut, "token", None)
                if tok is not None and ut_tok is not None and ut_tok.type == tok.type:
                    return label
                if candidate is None:
                    candidate = label
            except Exception:   # noqa: BLE001 - a broken snippet must not hide the user's error
                continue
    return candidate


def _safe(hint, *args):
    """A hint that breaks must not hide the user's error: the generic wording stands."""
    try:
        return hint(*args)
    except Exception:   # noqa: BLE001
        return None


def _reject_line(text: str, path: str, tok, line: int, pos: Pos, found: str) -> tuple[Pos, str]:
    """A ``reject`` whose line ends before its code and text (``else reject "30"``): the place is that
    ``reject``, not the next line's first token (the next rule, the ``}`` closing ``validate``)."""
    start = text.rfind("reject", 0, getattr(tok, "start_pos", None) or 0)
    if start < 0:
        return pos, found
    rline = text.count("\n", 0, start) + 1
    if rline >= line:
        return pos, found
    rcol = start - (text.rfind("\n", 0, start) + 1) + 1
    written = text[start:text.find("\n", start) if "\n" in text[start:] else len(text)].split("#")[0].rstrip()
    return Pos(path, rline, rcol, rline, rcol + len(written)), f"nothing after `{written}`"


def diagnostic_for(e: UnexpectedInput, text: str, path: str, step_kinds=None) -> Diagnostic:
    """``step_kinds``: the registered plugin step kinds, when known (a statement
    starting with another word is then reported as unknown at that word)."""
    from dsl import syntax_hints as hints
    from dsl.parser import keywords, raw_parse
    line = getattr(e, "line", None) or 1
    col = getattr(e, "column", None) or 1
    if isinstance(e, UnexpectedCharacters):
        known = _safe(hints.char_hint, e, text, path)
        if known is not None:
            return known
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}"
        return Diagnostic(GENERIC_CHAR, ERROR, f"unexpected character {shown}", Pos(path, line, col, line, col + 1))
    tok = getattr(e, "token", None)
    if tok is not None and tok.type == "BAD_NUMBER":     # e.g. `timeout 3sec` after a call
        return hints.bad_number(str(tok.value), Pos(path, line, col, line, col + len(str(tok.value))))
    if tok is not None and tok.type == "BAD_TIMESTAMP":  # a malformed timestamp where no operand fits
        return hints.bad_timestamp(str(tok.value), Pos(path, line, col, line, col + len(str(tok.value))))
    at_eof = isinstance(e, UnexpectedEOF) or (tok is not None and tok.type == "$END")
    if not at_eof:
        known = (_safe(hints.spaced_duration, e, text, path)
                 or _safe(hints.unclosed_before, e, text, path)
                 or _safe(hints.misspelt_statement, e, path, step_kinds)
                 or _safe(hints.misspelt_declaration, e, text, path)
                 or (_safe(lambda: hints.keyword_word(e, path, keywords(), _expected(e)))
                     if isinstance(e, UnexpectedToken) else None))
        if known is not None:
            return known
    label = None
    if at_eof:
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        if brace_scan(text)[1] > 0:
            known = _safe(hints.unclosed_at_end, e, text, path)
            if known is not None:
                return known
            label = "E007"
    end_col = col + max(1, len(str(tok.value))) if tok is not None and tok.type != "$END" else col + 1
    pos = Pos(path, line, col, line, end_col)
    known_tok = None if at_eof else _safe(hints.token_hint, e, text)
    if known_tok is not None:
        return Diagnostic(GENERIC_TOKEN, ERROR, known_tok[0], pos, known_tok[1])
    accepts = set(getattr(e, "accepts", None) or ())
    if label is None and {"ROUTE", "FORMAT", "CHANNEL", "TABLE", "USE"} <= accepts:
        label = "E013"      # between declarations
    if label is None and "IF" in accepts and "NAME" in accepts:
        label = "E014"      # an expression (operand) was expected
    if label is None:
        label = match_example(e, raw_parse)
    found = _describe(tok) if tok is not None else "the end of the file"
    if label == "E013":
        known_tok = _safe(hints.declaration_hint, e)
        if known_tok is not None:
            return Diagnostic(label, ERROR, known_tok[0], pos, known_tok[1])
    if label == "E004" and tok is not None:
        pos, found = _reject_line(text, path, tok, line, pos, found)
    if label:
        msg, help_, _ = SYNTAX_ERRORS[label]
        return Diagnostic(label.split()[0], ERROR, f"{msg} (found {found})", pos, help_)
    expected = _expected(e) if isinstance(e, UnexpectedToken) else ""
    return Diagnostic(GENERIC_TOKEN, ERROR, "unexpected end of file" if at_eof else f"unexpected {found}",
                      pos, f"expected one of: {expected}" if expected else None)
