"""The `screen` step's pruning (engine/steps/screen.py ``ScreenIndex.near``) leaves out only tokens that cannot
score TOKEN_FLOOR: over random lists and names (typos of listed words, near the floor, and new words) the index
gives the same neighbours, the same scores and the same best entry as scoring every token of the index's
buckets with Jaro-Winkler."""
from __future__ import annotations

import random

from engine.steps.screen import TOKEN_FLOOR, Entry, ScreenIndex, _add, _keys, jaro_winkler

SYL = [c + v + k for c in "bcdfghjklmnprstvwzq" for v in "aeiouy" for k in ("", "", "n", "r", "l", "s", "h")]


class Exhaustive(ScreenIndex):
    """The reference: every token of the buckets the token's keys name, lengths within 0.7, scored."""

    def near(self, token: str) -> list[tuple[str, float]]:
        got, seen, n = [], set(), len(token)
        for first, _, other in _keys(token):
            for size in range(max(1, (n * 7 + 9) // 10), n * 10 // 7 + 1):
                for t, _ in self.buckets.get((first, size, other), ()):
                    if t not in seen:
                        seen.add(t)
                        s = jaro_winkler(token, t)
                        if s >= TOKEN_FLOOR:
                            got.append((t, s))
        return got


def typo(rng: random.Random, w: str) -> str:
    i = rng.randrange(len(w))
    how = rng.randrange(5)
    if how == 0:
        return w[:i] + rng.choice("aeiouksnrl") + w[i + 1:]           # a letter changed
    if how == 1 and i + 1 < len(w):
        return w[:i] + w[i + 1] + w[i] + w[i + 2:]                     # two swapped
    if how == 2 and len(w) > 3:
        return w[:i] + w[i + 1:]                                       # one dropped
    if how == 3:
        return w[:i] + w[i] + w[i:]                                    # one doubled
    return w + rng.choice("aeiouns")                                   # one added at the end


def build(rng: random.Random, entries: int) -> tuple[list[Entry], list[str]]:
    word = lambda: "".join(rng.choice(SYL) for _ in range(rng.randint(1, 4)))     # noqa: E731
    out: list[Entry] = []
    words: list[str] = []
    for i in range(entries):
        names = [" ".join(word() for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        words += " ".join(names).split()
        _add({"entry_id": f"E{i}", "source": "T", "name": names[0], "aliases": ";".join(names[1:])}, i + 2, out, {})
    return out, words


def test_pruning_keeps_every_token_and_name_the_exhaustive_scoring_finds() -> None:
    compared = near_floor = 0
    for seed in range(6):
        rng = random.Random(seed)
        entries, words = build(rng, rng.choice((50, 200, 600)))
        fast, slow = ScreenIndex(entries), Exhaustive(entries)
        tokens = {typo(rng, typo(rng, w)) if rng.random() < 0.4 else typo(rng, w) for w in rng.choices(words, k=300)}
        tokens |= {"".join(rng.choice(SYL) for _ in range(rng.randint(1, 5))) for _ in range(200)}
        tokens |= set(rng.choices(words, k=50))
        for t in sorted(tokens):
            want = sorted(slow.near(t))
            assert sorted(fast.near(t)) == want, t
            compared += len(want)
            near_floor += sum(1 for _, s in want if s < TOKEN_FLOOR + 0.03)
        pool = sorted(tokens) + words
        for _ in range(300):
            name = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 4)))
            a, b = fast.screen(name), slow.screen(name)
            assert (a.score, a.on, a.entry and a.entry.entry_id) == (b.score, b.on, b.entry and b.entry.entry_id), name
    assert compared > 1500 and near_floor > 100          # the cases did reach the floor, not only exact words


def test_of_two_entries_scoring_the_same_the_earlier_line_is_reported_whatever_the_objects(tmp_path) -> None:
    """A tie used to be broken by the entries' memory addresses (``id()``): which entry a hit named could
    differ between processes and after a reload.  Now the list's order decides."""
    from engine.steps.screen import read_list

    rows = ["entry_id,source,name,aliases", "FIRST,UN,Ivan Petrovich Sidorov,", "SECOND,OFAC,Ivan Petrovich Sidorov,"]
    path = tmp_path / "list.csv"
    path.write_text("\n".join(rows) + "\n")
    for _ in range(5):
        index, problems = read_list(str(path))
        assert problems == []
        hit = index.screen("Ivan Petrovitch Sidorov")      # a near hit: both entries score the same
        assert hit.entry is not None and hit.entry.entry_id == "FIRST", (hit.entry.entry_id, hit.score)


def test_a_reload_that_leaves_the_list_as_it_was_keeps_its_index_and_a_changed_list_gets_a_new_one() -> None:
    """Building a large list's index takes seconds on the engine's loop: a reload whose list rows did not
    change reuses the index built for them; one row changed is a new index that screens the new row."""
    from dsl.tables import Table
    from engine.steps.screen import index_of_table

    rows = {"A1": {"entry_id": "A1", "source": "UN", "name": "Ivan Petrovich Sidorov", "aliases": ""}}
    first = index_of_table(Table("sanctions", "entry_id", rows, path="a.csv"))
    again = index_of_table(Table("sanctions", "entry_id", {k: dict(v) for k, v in rows.items()}, path="a.csv"))
    assert again is first
    changed = dict(rows, B2={"entry_id": "B2", "source": "OFAC", "name": "Maria Gonzalez Ortiz", "aliases": ""})
    other = index_of_table(Table("sanctions", "entry_id", changed, path="a.csv"))
    assert other is not first
    assert other.screen("Maria Gonzalez Ortiz").entry.entry_id == "B2"
    assert first.screen("Maria Gonzalez Ortiz").entry is None
