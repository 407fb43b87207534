"""A text function whose result would be huge (replace with a long `new` for each of many occurrences, a
pad to a width a message gives) fails the deal with a named error instead of taking the engine's memory:
`replace(msg.text, "x", msg.other)` over two 100 kB fields would be a 10 GB string."""
from __future__ import annotations

import pytest

from dsl.functions import MAX_TEXT, FunctionError, f_pad_left, f_pad_right, f_replace


def test_replace_refuses_a_result_past_the_limit_without_building_it() -> None:
    with pytest.raises(FunctionError) as err:
        f_replace("x" * 20_000, "x", "y" * 100_000)          # 2,000,000,000 characters
    text = str(err.value)
    assert text.startswith("replace: ") and str(MAX_TEXT) in text and "yyyy" not in text


def test_replace_up_to_the_limit_still_works() -> None:
    assert f_replace("ab" * 10, "b", "cd") == "acd" * 10
    assert len(f_replace("x" * 1000, "x", "y" * (MAX_TEXT // 1000))) == MAX_TEXT


@pytest.mark.parametrize("fn", [f_pad_left, f_pad_right])
def test_pad_refuses_a_width_past_the_limit(fn) -> None:
    with pytest.raises(FunctionError) as err:
        fn("7", 10 ** 12, "0")
    assert str(MAX_TEXT) in str(err.value)
    assert fn("7", 3, "0") in ("007", "700")
