"""The tables that list functions by name (dsl.types, dsl.classflow, dsl.inbound) name every function of the
library that they must, and only functions that exist: a new function cannot be left out of its result type."""
from __future__ import annotations

from dsl import classflow, inbound
from dsl.functions import FUNCTIONS, SIGNATURES
from dsl.types import BOOL, RESULTS, STRING


def test_every_function_has_a_result_type():
    assert set(RESULTS) == set(SIGNATURES) == set(FUNCTIONS)


def test_the_tables_name_only_functions_of_the_library():
    for table in (classflow.KEEPS_FIRST, classflow.KEEPS_ALL, inbound.READERS, inbound._TEXT_RESULTS):
        assert set(table) <= set(SIGNATURES), set(table) - set(SIGNATURES)


def test_a_function_that_keeps_text_gives_text_and_a_test_keeps_nothing():
    """KEEPS_* (W006: the result carries the argument's text) and _TEXT_RESULTS (the route's own text) list
    text results; a bool result (iban_valid, matches, is_date ...) carries no value of its argument."""
    for name in (*classflow.KEEPS_FIRST, *inbound._TEXT_RESULTS):
        assert RESULTS[name] == STRING, name
    tests = {n for n, t in RESULTS.items() if t == BOOL}
    assert {"matches", "is_date", "iban_valid", "is_digits"} <= tests
    assert not tests & (set(classflow.KEEPS_FIRST) | set(classflow.KEEPS_ALL) | inbound._TEXT_RESULTS
                        | inbound.READERS)
