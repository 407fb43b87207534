"""``screen NAME { name = ..  list = TABLE  threshold = 0.90  ids = ..  code = ".."  text = ".." }``.

Sanctions screening of one party's name (and identifiers) against a list kept as a CSV table
(``table sanctions = csv "sanctions.csv" key entry_id``: columns ``entry_id``, ``source``, ``name``,
``aliases`` and optionally ``ids``; aliases and ids ``;``-separated).  The list is read with the
configuration, so it is versioned and reloaded as any table is (``bsp reload`` after the file changed).

Matching: each name is normalised (case, accents and diacritics, punctuation, honorifics, word order),
then scored token by token with Jaro-Winkler (each token of the shorter name paired with its best token
of the other, one to one, lightly penalised for tokens left over), or as the joined tokens (``Abu Bakr``
and ``Abubakr``).  An identifier (passport, national id, BIC) that equals one of the entry's ``ids``
after normalisation is a hit of score 1.  A score at or above ``threshold`` rejects the deal with
``code`` / ``text`` (nothing has been sent: screen before the first call) and gives it the event
``screening hit`` naming the step, the list, the entry's id and the score, never the screened name.
Otherwise NAME is bound to ``{hit: false, score, entry}`` (the best score and its entry, for a route that
wants to note near misses).  Pure Python; candidates come from an index of the list's tokens by the
sound of their first letter, their length and their letters (only the tokens sharing enough letters to
reach TOKEN_FLOOR are scored), and results are cached per name (docs/screening.md#cost).

An effective-dated list (``table sanctions = csv "sanctions.csv" key entry_id effective from listed_from``: an
entry added, renamed or given aliases from a date) is screened as it is in force on the deal's day (``today()``
by the engine's clock): each entry by its row in force that day, an entry whose first row applies later not at
all; never by each entry's newest row.  The index is built per set of rows in force (``Table.since``): the
bind builds today's, a day that brings another set builds its own once (docs/screening.md#dated-lists), in a
worker thread before the first batch of that day runs the step (``before_batch``): the loop goes on meanwhile, and
the deals of that day wait for it.
"""
from __future__ import annotations

import csv
import hashlib
import threading
import unicodedata
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

from dsl.eval_error import InputError
from engine.runtime.exchange import StepFailure
from engine.runtime.stepfail import input_failure
from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec
from formats.errors import SpecError

DEFAULT_THRESHOLD = Decimal("0.90")
DEFAULT_CODE = "62"
DEFAULT_TEXT = "held for compliance review"
EVENT = "screening hit"
HELD = "held"                     # the event of a deal held for a compliance officer (engine/deal_hold.py)
RELEASED_HIT = "screening released"   # a hit the officer released, passed on the released deal's run
ON_HIT = ("refuse", "hold")
DEFAULT_ON_HIT = "refuse"
RELEASE_KEY = "screen_release"    # conn.extra of a released deal's run: {"deal": ID, "hits": [[step, entry]]}
COLUMNS = ("entry_id", "source", "name", "aliases")      # ``ids`` is optional
LITERALS = ("threshold", "code", "text", "on_hit")
TOKEN_FLOOR = 0.84        # a token pair below this adds nothing to a candidate
CACHE = 4096              # names remembered per list (a customer remits again and again)

# words that say nothing of who a person is
HONORIFICS = frozenset("""
mr mrs ms miss mx dr prof professor sir dame lord lady madam mme mlle m herr frau sr sra srta don dona
sheikh shaikh sheik cheikh haji hajji hadji al-haj alhaj mullah maulana imam sayyid sayed syed rev reverend
gen general col colonel maj major capt captain lt mister messrs jr sr ii iii esq
""".split())
# words of a company's form, not its name (Kestrel Arms Trading Ltd / Acme Trading Ltd share only these)
FORMS = frozenset("""
ltd limited llc inc incorporated co company corp corporation gmbh plc sa ag bv nv srl spa oy ab as kg llp lp
jsc pjsc ojsc ooo zao fze fzco trading holding holdings group international intl the of and et
""".split())
# particles of a name written in several ways: an article dropped or not (al-Zafrani, Zafrani, van der Berg),
# a kunya's first word joined to the next or not (Abu Bakr, Abubakr)
ARTICLES = frozenset("al el ad ar as at az ud ul de da di du dos das van von der den del della la le".split())
JOINED = frozenset("abu abou umm ibn bin bint".split())
_SPECIAL = str.maketrans({"ß": "ss", "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l",
                          "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h"})
_APOSTROPHES = "'’`´ʼ"


def normalise(text: str) -> list[str]:
    """The tokens of a name: lower case, without accents, punctuation or honorifics (``Dr. José O'Brien-Núñez``
    -> ``[jose, obrien, nunez]``)."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    out = []
    for ch in text:
        if unicodedata.combining(ch) or ch in _APOSTROPHES:
            continue
        out.append(ch.lower() if ch.isalnum() else " ")
    tokens = "".join(out).split()
    kept = [t for t in tokens if t not in HONORIFICS and t not in FORMS]
    return kept or [t for t in tokens if t not in HONORIFICS] or tokens


def variant(tokens: list[str]) -> list[str]:
    """The tokens with the articles dropped and a kunya joined (``abu bakr al zafrani`` -> ``abubakr zafrani``)."""
    out: list[str] = []
    carry = ""
    for t in tokens:
        if t in ARTICLES:
            continue
        if t in JOINED:
            carry += t
            continue
        out.append(carry + t)
        carry = ""
    if carry:
        out.append(carry)
    return out or tokens


def normalise_id(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text).upper() if ch.isalnum())


def jaro_winkler(a: str, b: str) -> float:
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    window = max(la, lb) // 2 - 1
    if window < 0:
        window = 0
    used = [False] * lb
    ma = []
    for i, ch in enumerate(a):
        lo = i - window if i > window else 0
        hi = i + window + 1 if i + window + 1 < lb else lb
        for j in range(lo, hi):
            if not used[j] and b[j] == ch:
                used[j] = True
                ma.append(ch)
                break
    m = len(ma)
    if not m:
        return 0.0
    mb = [b[j] for j in range(lb) if used[j]]
    half = sum(1 for x, y in zip(ma, mb) if x != y) / 2
    jaro = (m / la + m / lb + (m - half) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4]):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


_SOUND = {**dict.fromkeys("aeiouy", "a"), **dict.fromkeys("ckq", "k"), **dict.fromkeys("sz", "s"),
          **dict.fromkeys("vw", "v"), "j": "g", "g": "g", "f": "f", "p": "f"}


def _keys(token: str) -> set[tuple[str, int, str]]:
    """Where a token is filed: the class of its first sound (vowels together: Usama / Osama; c k q; s z; v w;
    j g; f p(h)), its length, and its second or third letter (a typo in either still meets)."""
    if token[:2] in ("kh", "gh", "dh", "th", "ph") and len(token) > 2:
        token = ("f" if token[0] == "p" else token[0]) + token[2:]
    first = _SOUND.get(token[0], token[0])
    return {(first, len(token), token[i]) for i in (1, 2) if i < len(token)} or {(first, len(token), "")}


def _occurrences(token: str) -> list[int]:
    """A token's letters with their repeats, as bit numbers: ``c + 64 * k`` for the k-th letter of class c
    (``ord & 63``) in the token.  The bits two tokens share count at least the letters they have in common,
    repeats included (letters of one class count together: never fewer), so that at most that many letters can
    match."""
    out = []
    seen: dict[int, int] = {}
    for ch in token:
        c = ord(ch) & 63
        k = seen.get(c, 0)
        seen[c] = k + 1
        out.append(c + 64 * k)
    return out


def _mask(bits: list[int]) -> int:
    mask = 0
    for b in bits:
        mask |= 1 << b
    return mask


_NEED: dict[tuple[int, int], tuple[int, ...]] = {}


def _need(n: int, size: int) -> tuple[int, ...]:
    """The fewest letters tokens of lengths ``n`` and ``size`` must share to score TOKEN_FLOOR, for each common
    prefix 0..4: with m matches and no transposition Jaro is (m/n + m/size + 1) / 3, an upper bound, and
    Jaro-Winkler that plus 0.1 * prefix of the rest.  Kept 1e-9 under the floor (no rounding of the two
    expressions can prune a token jaro_winkler scores at the floor)."""
    got = _NEED.get((n, size))
    if got is None:
        out = []
        for p in range(5):
            m = 1
            while m <= min(n, size):
                j = (m / n + m / size + 1) / 3
                if j + p * 0.1 * (1 - j) >= TOKEN_FLOOR - 1e-9:
                    break
                m += 1
            out.append(m)
        got = _NEED[(n, size)] = tuple(out)
    return got


def _pair_score(q: list[str], e: list[str], scores: dict[str, float]) -> float:
    """Tokens paired one to one, best first; the mean over the shorter name, times coverage ** 0.25.  A pair
    not in ``scores`` scored below TOKEN_FLOOR and counts 0."""
    pairs = sorted(((scores.get((a, b), 0.0), i, j) for i, a in enumerate(q) for j, b in enumerate(e)),
                   reverse=True)
    short = min(len(q), len(e))
    ti: set[int] = set()
    tj: set[int] = set()
    total = 0.0
    for s, i, j in pairs:
        if i in ti or j in tj:
            continue
        ti.add(i)
        tj.add(j)
        total += s
        if len(ti) == short:
            break
    return total / short * (short / max(len(q), len(e))) ** 0.25


class Entry:
    __slots__ = ("entry_id", "source", "names", "line")

    def __init__(self, entry_id: str, source: str, names: list[list[str]], line: int) -> None:
        self.entry_id = entry_id
        self.source = source
        self.names = names          # the name's tokens first, then each alias's
        self.line = line


class Hit:
    __slots__ = ("entry", "score", "on")

    def __init__(self, entry: Entry | None, score: float, on: str) -> None:
        self.entry, self.score, self.on = entry, score, on


class ScreenIndex:
    """A list ready to screen against: its entries, an index of their tokens, and a cache of results."""

    def __init__(self, entries: Iterable[Entry], ids: dict[str, Entry] | None = None) -> None:
        self.entries = list(entries)
        self.ids = ids or {}
        self.by_token: dict[str, list[tuple[Entry, int]]] = {}     # token -> (entry, which name) holding it
        self.buckets: dict[tuple[str, int, str], list[tuple[str, int]]] = {}    # _keys -> (token, its bits' mask)
        bits_of: dict[str, list[int]] = {}
        for entry in self.entries:
            for k, toks in enumerate(entry.names):
                for t in set(toks):
                    post = self.by_token.setdefault(t, [])
                    if not post:
                        bits_of[t] = bits = _occurrences(t)
                        mask = _mask(bits)
                        for key in _keys(t):
                            self.buckets.setdefault(key, []).append((t, mask))
                    post.append((entry, k))
        # per bucket, each letter bit -> the set of the bucket's tokens holding it (bit i: the bucket's i-th token),
        # so that the tokens sharing enough letters with a name's token are counted with a few operations on
        # these sets rather than one by one (``near``)
        self.holding: dict[tuple[str, int, str], dict[int, int]] = {}
        for key, bucket in self.buckets.items():
            at: dict[int, int] = {}
            for i, (t, _) in enumerate(bucket):
                one = 1 << i
                for b in bits_of[t]:
                    at[b] = at.get(b, 0) | one
            self.holding[key] = at
        self._cache: OrderedDict[str, Hit] = OrderedDict()
        self._near: dict[str, list[tuple[str, float]]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def near(self, token: str) -> list[tuple[str, float]]:
        """The list's tokens within Jaro-Winkler TOKEN_FLOOR of ``token`` (same first sound, lengths within 0.7 of each
        other, a second or third letter alike), remembered.  Only the tokens sharing enough letters to reach the
        floor are scored (``_need``): the same tokens, with the same scores, as scoring every one of those buckets
        (tests/engine/test_screen_prune.py)."""
        got = self._near.get(token)
        if got is not None:
            return got
        got = []
        seen: set[str] = set()
        n = len(token)
        bits = _occurrences(token)
        mask = _mask(bits)
        head = token[:4]
        for first, _, other in _keys(token):
            for size in range(max(1, (n * 7 + 9) // 10), n * 10 // 7 + 1):     # lengths within 0.7 of each other
                key = (first, size, other)
                bucket = self.buckets.get(key)
                if not bucket:
                    continue
                need = _need(n, size)
                least = need[4]
                # the bucket's tokens sharing at least ``least`` of the token's letter bits (repeats included): at
                # most as many letters can match, and fewer cannot reach the floor even with the longest common
                # prefix.  ``atleast[j]``: the tokens holding j of the bits counted so far.
                holding = self.holding[key]
                atleast = [(1 << len(bucket)) - 1] + [0] * least
                for done, b in enumerate(bits):
                    has = holding.get(b)
                    if has:
                        for j in range(min(done + 1, least), 0, -1):
                            atleast[j] |= atleast[j - 1] & has
                left = atleast[least]
                while left:
                    low = left & -left
                    left ^= low
                    t, tm = bucket[low.bit_length() - 1]
                    if t in seen:
                        continue
                    seen.add(t)
                    p = 0
                    for x, y in zip(head, t):
                        if x != y:
                            break
                        p += 1
                    if (mask & tm).bit_count() < need[p]:      # too few for this pair's own prefix
                        continue
                    s = 1.0 if t == token else jaro_winkler(token, t)
                    if s >= TOKEN_FLOOR:
                        got.append((t, s))
        if len(self._near) >= CACHE * 4:
            self._near.clear()
        self._near[token] = got
        return got

    def screen(self, name: str) -> Hit:
        tokens = normalise(name)
        if not tokens:
            return Hit(None, 0.0, "name")
        key = " ".join(tokens)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        hit = self._screen(tokens)
        # written otherwise in the list: articles dropped, a kunya joined (Abu Bakr al-Zafrani: Abubakr Zafrani),
        # or the whole name as one word (Jean Pierre: Jeanpierre)
        for other in (variant(tokens), ["".join(tokens)]):
            if hit.score >= 1.0 or other == tokens or (len(other) == 1 and other[0] not in self.by_token):
                continue
            got = self._screen(other)
            if got.score > hit.score:
                hit = got
        self._cache[key] = hit
        if len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        return hit

    def _screen(self, tokens: list[str]) -> Hit:
        scores: dict[tuple[str, str], float] = {}
        # per candidate name: the best score of each query token in it (an upper bound of its pair score)
        bound: dict[tuple[int, int], dict[str, float]] = {}
        names: dict[tuple[int, int], tuple[Entry, int]] = {}
        for q in set(tokens):
            for t, s in self.near(q):
                scores[(q, t)] = s
                for entry, k in self.by_token[t]:
                    key = (id(entry), k)
                    got = bound.get(key)
                    if got is None:
                        got = bound[key] = {}
                        names[key] = (entry, k)
                    if got.get(q, 0.0) < s:
                        got[q] = s
        ranked = []
        for key, got in bound.items():
            entry, k = names[key]
            e = entry.names[k]
            short = min(len(tokens), len(e))
            top = sorted(got.values(), reverse=True)[:short]
            ranked.append((-(sum(top) / short * (short / max(len(tokens), len(e))) ** 0.25), entry.line, k, key))
        # best bound first; among equal ones the list's order (its line, then the name before its aliases), so
        # that of two entries scoring the same the one reported is the same in every process and after a reload
        ranked.sort(key=lambda r: r[:3])
        best = Hit(None, 0.0, "name")
        for neg, _, _, key in ranked:       # exact scores, best bound first, until no bound can beat the best
            upper = -neg
            if upper <= best.score:
                break
            entry, k = names[key]
            s = _pair_score(tokens, entry.names[k], scores)
            if s > best.score:
                best = Hit(entry, s, "name" if k == 0 else "alias")
        return best

    def screen_ids(self, ids: Iterable[str]) -> Hit | None:
        for raw in ids:
            entry = self.ids.get(normalise_id(raw))
            if entry is not None:
                return Hit(entry, 1.0, "id")
        return None


# -- the list file -----------------------------------------------------------------------------------

def read_list(path: str) -> tuple[ScreenIndex, list[SpecError]]:
    """The index of a list file, and what is wrong in it (each at its file:line:col)."""
    problems: list[SpecError] = []
    entries: list[Entry] = []
    ids: dict[str, Entry] = {}
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        return ScreenIndex(()), [SpecError(f"cannot read the list file: {exc.strerror}", path=path, line=1, col=1,
                                           hint="the table's file: a CSV with entry_id, source, name, aliases "
                                                "(and ids) columns (docs/screening.md)")]
    with fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        problems.append(SpecError(f"the list file has no column {', '.join(missing)} (header: {', '.join(header)})",
                                  path=path, line=1, col=1,
                                  hint="first line: entry_id,source,name,aliases,ids (docs/screening.md)"))
        return ScreenIndex(()), problems
    col = {c: header.index(c) for c in header}
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row) or len(row) != len(header):
            continue                # blank, or told by the table itself
        cell = dict(zip(header, row))
        if _add(cell, n, entries, ids) is None:
            problems.append(SpecError(f"entry {cell['entry_id']!r} has no name to screen against",
                                      path=path, line=n, col=_col(row, col["name"]),
                                      hint="give the entry's primary name; aliases go in the aliases column"))
    return ScreenIndex(entries, ids), problems


def _add(cell: dict[str, str], line: int, entries: list[Entry], ids: dict[str, Entry]) -> Entry | None:
    """The entry of one row of the list (None: its name is blank once normalised)."""
    first = normalise(cell.get("name") or "")
    if not first:
        return None
    names = [first] + [t for t in (normalise(a) for a in (cell.get("aliases") or "").split(";")) if t]
    names += [["".join(t)] for t in names if len(t) > 1]     # Abu Bakr written as one word: Abubakr
    names += [v for v in (variant(t) for t in names) if v not in names]     # articles dropped, kunya joined
    entry = Entry((cell.get("entry_id") or "").strip(), (cell.get("source") or "").strip(), names, line)
    entries.append(entry)
    for raw in (cell.get("ids") or "").split(";"):
        if normalise_id(raw):
            ids.setdefault(normalise_id(raw), entry)
    return entry


def _col(row: list[str], i: int) -> int:
    """The column of cell ``i`` (1-based characters, as written when no cell is quoted)."""
    return sum(len(c) + 1 for c in row[:i]) + 1


_BUILT: "OrderedDict[bytes, ScreenIndex]" = OrderedDict()   # the lists' contents -> their index (a few kept)
_BUILT_KEEP = 4
_BUILT_LOCK = threading.Lock()      # a reload builds indexes in a worker thread (engine/steps/screen_prepare.py)


def index_of_table(table: Any, day: Any = None) -> ScreenIndex:
    """The index of a table the configuration loaded (``dsl.tables.Table``): its rows as read then, so that
    the list in force is the one the configuration's version covers.  A row without a name is refused (as
    ``bsp check`` refuses it): an entry that cannot match is a hole in the screening, not a detail.

    Building the index of a large list takes seconds (2.0-2.7 s for 20,000 entries): a reload builds it in a
    worker thread before it binds (engine/steps/screen_prepare.py), and the bind finds it here; a list whose
    rows have not changed since an index was built (most reloads change a route, not the list) gets that index
    again, found by a digest of its rows (~1 us a row).  An effective-dated table: its rows in force on ``day``
    (the engine's today when not given)."""
    rows = _rows(table, day)
    digest = _digest(table, rows)
    with _BUILT_LOCK:
        built = _BUILT.get(digest)
        if built is not None:
            _BUILT.move_to_end(digest)
            return built
    built = _index_of_rows(table, rows)
    with _BUILT_LOCK:
        _BUILT[digest] = built
        while len(_BUILT) > _BUILT_KEEP:
            _BUILT.popitem(last=False)
    return built


def _rows(table: Any, day: Any = None) -> list[dict[str, str]]:
    """The rows to screen against: an effective-dated table's in force on ``day`` (default: today by the
    engine's clock), each entry by that row; any other table's rows."""
    if getattr(table, "effective", None) is None:
        return list(table.rows.values())
    if day is None:
        from dsl.functions import f_today
        day = f_today()
    return list(table.rows_on(day).values())


def _digest(table: Any, rows: list[dict[str, str]]) -> bytes:
    return hashlib.blake2b(repr((tuple(table.columns), tuple(rows))).encode(), digest_size=16).digest()


def index_built(table: Any, day: Any = None) -> bool:
    """Whether the index of the table's rows (in force on ``day``) is built already (a reload then builds
    nothing on the loop)."""
    digest = _digest(table, _rows(table, day))
    with _BUILT_LOCK:
        return digest in _BUILT


def _index_of_rows(table: Any, rows: list[dict[str, str]]) -> ScreenIndex:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{table.path}: the list has no column {', '.join(missing)}; see docs/screening.md")
    entries: list[Entry] = []
    ids: dict[str, Entry] = {}
    for n, cell in enumerate(rows, start=2):
        if _add(cell, n, entries, ids) is None:
            raise ValueError(f"{table.path}: entry {cell.get('entry_id')!r} has no name to screen against")
    return ScreenIndex(entries, ids)


# -- the step ----------------------------------------------------------------------------------------

def _literal(step: Any, name: str) -> Any:
    for a in step.options.get("fields", ()):
        if a.path == name:
            return getattr(a.value, "value", None)
    return None


_UNSET = object()


class ScreenStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.name = step.name
        self.label = step.name or "screen"
        exprs = {a.path: a.value for a in step.options.get("fields", ())}
        listed = getattr(exprs.get("list"), "name", None)
        tables = getattr(ctx, "tables", {}) or {}
        if listed not in tables:
            raise ValueError(f"{self.where}: screen {self.label}: `list` must name a table (got {listed!r})")
        self.source = Path(str(tables[listed].path)).name
        self.table = tables[listed]
        # an effective-dated list: the index of the rows in force, per date from which they hold (Table.since)
        self.dated = getattr(self.table, "effective", None) is not None
        self.since: Any = _UNSET
        self._building: Any = None      # a trio.Lock: one build of a new day's index at a time (before_batch)
        self.index = self._index_on(None)
        self.threshold = float(Decimal(str(_literal(step, "threshold") or DEFAULT_THRESHOLD)))
        self.code = str(_literal(step, "code") or DEFAULT_CODE)
        self.text = str(_literal(step, "text") or DEFAULT_TEXT)
        self.on_hit = str(_literal(step, "on_hit") or DEFAULT_ON_HIT)
        if self.on_hit not in ON_HIT:
            raise ValueError(f"{self.where}: screen {self.label}: on_hit = {self.on_hit!r}: expected \"refuse\" "
                             f"or \"hold\" (E123)")
        self.name_of = ctx.expr(exprs["name"])
        self.ids_of = ctx.expr(exprs["ids"]) if "ids" in exprs else None

    def _index_on(self, day: Any) -> ScreenIndex:
        """The index of the list as in force on ``day`` (None: today by the engine's clock); built again only
        when the day brings another set of rows (an entry listed or changed from a date between)."""
        if not self.dated:
            return index_of_table(self.table)
        if day is None:
            from dsl.functions import f_today
            day = f_today()
        since = self.table.since(day)
        if since != self.since:
            self.index = index_of_table(self.table, day)
            self.since = since
        return self.index

    async def before_batch(self) -> None:
        """Before a batch runs this step (``Dispatcher.handle``): when today (by the engine's clock) brings another
        set of rows of a dated list, its index is built in a worker thread (seconds for a large list), not on the
        loop; the batches arriving meanwhile wait here for it, and none is screened against the day before's list
        or a part of the new one (``run`` finds it built).  Nothing to do for an undated list, or the same day."""
        if not self.dated:
            return
        from dsl.functions import f_today
        day = f_today()
        since = self.table.since(day)
        if since == self.since:
            return
        import trio
        if self._building is None:
            self._building = trio.Lock()
        async with self._building:
            if self.table.since(day) == self.since:
                return                  # built by the batch this one waited for
            try:
                index = await trio.to_thread.run_sync(index_of_table, self.table, day)
            except Exception:       # noqa: BLE001 - a row without a name: ``run`` builds it again and fails the
                return              # deals naming the list, as it always did
            if self.table.since(day) != self.since:     # (a batch straddling midnight may have built it in run)
                self.index, self.since = index, since

    def run(self, ex: Any) -> None:
        scope = ex.scope
        index = self._index_on(None) if self.dated else self.index
        try:
            name = self.name_of(scope)
            ids = self.ids_of(scope) if self.ids_of is not None else None
        except InputError as exc:
            raise input_failure(exc, self.where) from exc
        hit = None
        if ids:
            hit = index.screen_ids([ids] if isinstance(ids, str) else [str(i) for i in ids if i])
        if hit is None:
            hit = index.screen(name if isinstance(name, str) else "" if name is None else str(name))
        score = Decimal(f"{hit.score:.3f}")
        entry = hit.entry
        if entry is not None and hit.score >= self.threshold:
            detail = {"step": self.label, "list": entry.source or self.source, "entry": entry.entry_id,
                      "on": hit.on, "score": str(score), "threshold": f"{self.threshold:.2f}"}
            notes = ex.notes if ex.notes is not None else []
            ex.notes = notes
            said = (f"screen {self.label}: {hit.on} matches list {detail['list']} entry {entry.entry_id} (score "
                    f"{score}, threshold {detail['threshold']}); the name is not shown: see the entry in "
                    f"{self.source}")
            if self.on_hit == "hold":
                released = released_by(ex)
                if released is not None and [self.label, entry.entry_id] in released["hits"]:
                    # the compliance officer released this hit of the held deal this run continues: it passes
                    notes.append((RELEASED_HIT, {**detail, "held_deal": released["deal"]}))
                    if self.name:
                        scope[self.name] = {"hit": True, "score": score, "entry": entry.entry_id, "released": True}
                    return
                notes.append((EVENT, {**detail, "action": "hold"}))
                notes.append((HELD, detail))
                raise StepFailure("held", f"{said}; held for a compliance officer: `bsp deals --held` lists it, "
                                  f"`bsp deals resolve ID --outcome release|reject` decides it",
                                  code=self.code, text=self.text, where=self.where)
            notes.append((EVENT, detail))
            raise StepFailure("rejected", said, code=self.code, text=self.text, where=self.where)
        if self.name:
            scope[self.name] = {"hit": False, "score": score,
                                "entry": entry.entry_id if entry is not None else None}


def released_by(ex: Any) -> dict[str, Any] | None:
    """What the operator released, when this exchange is the run of a released held deal (``RELEASE_KEY`` of
    its connection's extra, put there by ``engine.deal_hold``): ``{"deal": ID, "hits": [[step, entry], ...]}``."""
    extra = ex.conn.extra if ex.conn is not None else None
    got = extra.get(RELEASE_KEY) if extra else None
    return got if isinstance(got, dict) and ex.index == 0 else None


# -- bsp check ---------------------------------------------------------------------------------------

def check(step: Any, base_dir: Any = None) -> list[SpecError]:
    """``bsp check``: ``list`` names a table whose file is a list, ``threshold`` in 0..1, literals."""
    out: list[SpecError] = []
    for opt in LITERALS:
        if opt in step.exprs and step.options.get(opt) is None:
            out.append(_at(step, opt, f"`{opt}` must be a literal: it is fixed when the configuration loads",
                           'threshold = 0.90; code = "62"; text = "held for compliance review"'))
    raw = step.options.get("threshold")
    if raw is not None:
        try:
            t = Decimal(str(raw))
        except InvalidOperation:
            t = None
        if isinstance(raw, bool) or t is None or not (0 <= t <= 1):
            out.append(_at(step, "threshold", f"threshold = {raw}: a score between 0 and 1 is expected",
                           "0.90 catches reordered words, accents and a typo or two; 1 only exact names "
                           "(docs/screening.md#tuning-the-threshold)"))
    hit = step.options.get("on_hit")
    if hit is not None and hit not in ON_HIT:
        err = _at(step, "on_hit", f"on_hit = {hit!r}: expected \"refuse\" (the deal is refused) or \"hold\" (held "
                  f"for a compliance officer, who releases or rejects it)", 'on_hit = "hold" (docs/screening.md#holding-a-hit)')
        err.code = "E123"
        out.append(err)
    for opt in ("code", "text"):
        v = step.options.get(opt)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            out.append(_at(step, opt, f"{opt} = {v!r}: a quoted text is expected", 'code = "62"'))
    listed = step.names.get("list")
    if "list" in step.exprs and listed is None:
        out.append(_at(step, "list", "`list` must name a table: `list = sanctions` with `table sanctions = csv "
                       "\"sanctions.csv\" key entry_id`", "docs/screening.md#the-list-file"))
    elif listed is not None and listed in step.tables:
        path = step.tables[listed]
        if not Path(path).is_file():
            out.append(_at(step, "list", f"list = {listed}: the table's file {path} does not exist",
                           "docs/screening.md#the-list-file"))
        else:
            out.extend(read_list(path)[1])
    elif listed is not None:
        out.append(_at(step, "list", f"list = {listed}: no table of that name",
                       f"declare it: table {listed} = csv \"{listed}.csv\" key entry_id"))
    return out


def _at(step: Any, opt: str, message: str, hint: str) -> SpecError:
    pos = step.pos.get(opt)
    return SpecError(message, path=getattr(pos, "file", None), line=getattr(pos, "line", None),
                     col=getattr(pos, "col", None), hint=hint)


COMPONENT = ComponentSpec(
    category="step",
    name="screen",
    doc=(
        "Sanctions screening: score `name` (and `ids`) against a list kept as a table (entry_id, source, name, "
        "aliases, ids). Names are compared without case, accents, punctuation, honorifics or word order, token by "
        "token (Jaro-Winkler); an identifier equal to one of an entry's ids scores 1. A score at or above "
        "`threshold` rejects the deal with `code` / `text` and gives it the event `screening hit` (step, list, "
        "entry id, score; never the name); otherwise NAME is bound to {hit, score, entry}. Before the first call."
    ),
    options=(
        OptionSpec("name", "expr", "The name to screen: trim(msg.debtor_name).", required=True),
        OptionSpec("list", "expr", "The list: the name of a table (`table sanctions = csv \"sanctions.csv\" "
                   "key entry_id`), read with the configuration.", required=True),
        OptionSpec("threshold", "expr", "The score (0..1, a literal) from which a name is a hit; default 0.90."),
        OptionSpec("ids", "expr", "An identifier (or a list of them: passport, national id, BIC) matched "
                   "exactly against the entries' ids."),
        OptionSpec("code", "expr", "The response code of a deal the screening refuses (a literal; default "
                   "\"62\")."),
        OptionSpec("text", "expr", "Its text (a literal; default \"held for compliance review\")."),
        OptionSpec("on_hit", "expr", "What a hit does (a literal): \"refuse\" (the default: the deal is rejected "
                   "with `code`) or \"hold\" (the deal is held for a compliance officer, answered with `code`: "
                   "event `held`; `bsp deals --held`, `bsp deals resolve ID --outcome release|reject`)."),
    ),
    build=ScreenStep,
    check=check,
    examples=('screen beneficiary {\n    name      = trim(msg.creditor_name)\n    list      = sanctions\n'
              '    threshold = 0.90\n    code      = "62"\n    text      = "held for compliance review"\n}',),
)
