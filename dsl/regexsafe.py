"""Regular expressions a route may use (``matches``): compiled by ``bsp check``, refused when slow.

Python's ``re`` backtracks and has no time limit, so a pattern that can try exponentially (or a high
power of the input's length) many ways stalls the engine on one hostile message.  A pattern is refused
when it has

* a backreference (``\\1``, ``(?P=name)``) or a conditional (``(?(1)a|b)``);
* a lookahead or lookbehind (``(?=``, ``(?!``, ``(?<=``, ``(?<!``);
* a repeat (``*``, ``+``, ``{n,m}``) of a part that itself repeats a varying number of times
  (``(a+)+``, ``(a*)*``, ``(\\d{1,3},?)+``) or holds alternatives (``(a|a)*``, ``(ab|a)+``); a fixed count
  inside is fine (``(\\d{3}-)*``), and so are alternatives of single characters, which Python reads as a
  class (``(a|b)*`` is ``[ab]*``);
* more than ``MAX_WAYS`` ways to try: each repeat of varying count is a choice among ``MAX_INPUT`` (``*``,
  ``+``, ``{n,}``), ``m - n + 1`` (``{n,m}``) or 2 (``?``) counts, each ``|`` among its alternatives, and the
  choices multiply (``\\d*\\d*x`` is 1,000 x 1,000): write the known length (``{1,35}``) for the others;
* more than ``MAX_STEPS`` steps in the worst case on a ``MAX_INPUT``-character text (``steps``): every way
  the repeats can go is tried against what follows them, so what follows costs once per way:
  ``\\d{0,99}\\d{0,99}\\d{0,99}\\d{700}x`` has 1,000,000 ways and tries the 700 digits after each (2 s
  measured, 700,000,000 steps), where ``\\d{0,99}\\d{0,99}\\d{0,99}x`` tries one ``x`` (2,000,000 steps).

A text longer than ``MAX_INPUT`` characters is not matched at all: ``f_matches`` fails on it (the sender's
error, naming the field, when the text is a field of the request), so that ``not matches(...)`` never lets
an over-long text through.  With these rules the worst pattern on the longest text takes a few tens of
milliseconds (tests/dsl/test_dsl_matches.py runs such ones).

Matching is ``fullmatch`` (the whole text, as if the pattern were ``^(?:...)$``) with ``re.ASCII``: ``\\d`` is
0-9, ``\\w`` is ``[A-Za-z0-9_]``, ``\\s`` ASCII white space.
"""
from __future__ import annotations

import re
from functools import lru_cache

try:                                   # Python 3.11+: the parser behind re.compile
    from re import _constants as C, _parser as P      # type: ignore[attr-defined]
except ImportError:                    # pragma: no cover  (3.10: the same modules under their old names)
    import sre_constants as C          # type: ignore[no-redef]
    import sre_parse as P              # type: ignore[no-redef]

MAX_INPUT = 1000
MAX_WAYS = 1_000_000
MAX_STEPS = 10_000_000            # about 30 ms of Python's re on the slowest pattern allowed (measured)
FLAGS = re.ASCII

_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT) + ((C.POSSESSIVE_REPEAT,) if hasattr(C, "POSSESSIVE_REPEAT") else ())


class PatternError(ValueError):
    """A pattern that does not compile or that is refused; ``offset``: where in the pattern, if known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def _children(av) -> list:
    """The sub-patterns of one node's argument."""
    if isinstance(av, P.SubPattern):
        return [av]
    if isinstance(av, (tuple, list)):
        return [x for a in av for x in _children(a)]
    return []


def _walk(sub, inside_repeat: bool, counts: list[int]) -> None:
    """Refuse what is not allowed; ``counts[0]`` multiplied by the ways each repeat and ``|`` can go."""
    for op, av in sub:
        if op in (C.GROUPREF, C.GROUPREF_EXISTS):
            raise PatternError("has a backreference or a conditional group (\\1, (?P=name), (?(1)...)), which is not "
                               "allowed: it can make matching take exponential time")
        if op in (C.ASSERT, C.ASSERT_NOT):
            raise PatternError("has a lookahead or lookbehind ((?=, (?!, (?<=, (?<!), which is not allowed: match the text "
                               "itself, or split the test into two matches(...) joined by `and`")
        if op in _REPEATS:
            low, high, body = av
            counts[0] *= MAX_INPUT if high == C.MAXREPEAT else high - low + 1
            if inside_repeat and low != high:
                raise PatternError("has a repeat inside a repeated part ((a+)+, (a*)*, (\\d{1,3},?)+), which is not allowed: "
                                   "it can make matching take exponential time; repeat a part of fixed length "
                                   "((\\d{3}-)*) or write the repeats one after the other")
            _walk(body, inside_repeat or high > 1, counts)
            continue
        if op is C.BRANCH:
            counts[0] *= len(av[1])
        if op is C.BRANCH and inside_repeat:
            raise PatternError("has alternatives (`|`) inside a repeated part ((a|ab)*), which are not allowed: they can make "
                               "matching take exponential time; for one of several characters write a class "
                               "([ab]*)")
        for child in _children(av):
            _walk(child, inside_repeat, counts)


@lru_cache(maxsize=256)
def compile_safe(pattern: str) -> re.Pattern:
    """The compiled pattern, or ``PatternError`` saying why it cannot be used."""
    try:
        compiled = re.compile(pattern, FLAGS)
        tree = P.parse(pattern, FLAGS)
    except re.error as e:
        raise PatternError(f"is not a valid regular expression: {e.msg} at position {e.pos} of the pattern",
                           e.pos) from None
    ways = [1]
    _walk(tree, False, ways)
    if ways[0] > MAX_WAYS:
        raise PatternError(f"has repeats that together can try {ways[0]:,} ways, more than the {MAX_WAYS:,} "
                           f"allowed (each *, + or {{n,}} counts {MAX_INPUT:,}, {{n,m}} m-n+1, ? 2, and they "
                           f"multiply), which can make matching slow: give repeats their known length, e.g. "
                           f"{{1,35}} for +")
    worst = steps(tree)
    if worst > MAX_STEPS:
        raise PatternError(f"can take {worst:,} steps on a {MAX_INPUT:,}-character text, more than the "
                           f"{MAX_STEPS:,} allowed: each way its repeats can go is tried against the rest of the "
                           f"pattern, so a long part after varying repeats is tried many times over; give the "
                           f"repeats their known length, fewer of them, or put the long fixed part first")
    return compiled


def _width(sub) -> tuple[int, int]:
    low, high = sub.getwidth()
    return min(low, MAX_INPUT), min(high, MAX_INPUT)


def _sequence(sub) -> tuple[int, int]:
    """(ways, steps) of a sequence of nodes entered once: ``steps`` the characters and choices the matcher
    may look at over every way, each node's cost counted once per way the nodes before it can go."""
    ways, cost = 1, 0
    for op, av in sub:
        if op in _REPEATS:
            low, high, body = av
            if high <= 1:                               # x? : x or nothing
                w, c = _sequence(body)
                cost += ways * (c + 1)
                ways *= w + (1 if low == 0 else 0)
                continue
            wmin, wmax = _width(body)
            top = min(high, MAX_INPUT // wmin if wmin else MAX_INPUT)
            counts = max(top - low + 1, 1)
            cost += ways * (top * max(wmax, 1) + counts)
            ways *= counts
        elif op is C.BRANCH:
            alts = [_sequence(a) for a in av[1]]
            cost += ways * sum(c for _, c in alts)
            ways *= sum(w for w, _ in alts)
        elif op is C.SUBPATTERN or op is getattr(C, "ATOMIC_GROUP", None):
            w, c = _sequence(av[-1] if op is C.SUBPATTERN else av)
            cost += ways * c
            ways *= w
        else:
            cost += ways
    return ways, cost


def steps(tree) -> int:
    """An upper bound of the steps a backtracking match of ``tree`` (parsed, refused of nested repeats and
    alternatives under a repeat) takes on a ``MAX_INPUT``-character text."""
    return _sequence(tree)[1]


def problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used by ``matches`` (None when it can)."""
    try:
        compile_safe(pattern)
    except PatternError as e:
        return str(e)
    return None
