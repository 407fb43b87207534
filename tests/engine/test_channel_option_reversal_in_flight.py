"""``reversal_in_flight`` of a tcp connect channel: a positive whole count; anything else is refused at
start with the channel, the option, what it expects and the value given."""
from __future__ import annotations

import pytest

from engine.channels.options import REVERSAL_IN_FLIGHT, ChannelConfigError, reversal_in_flight


def test_default_and_a_count() -> None:
    assert reversal_in_flight("host", {}) == REVERSAL_IN_FLIGHT
    assert reversal_in_flight("host", {"reversal_in_flight": 4}) == 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, "16", True, None])
def test_a_bad_value_names_channel_option_and_value(bad) -> None:
    with pytest.raises(ChannelConfigError) as err:
        reversal_in_flight("host", {"reversal_in_flight": bad})
    assert str(err.value) == (f"channel host: option reversal_in_flight: expected a positive count (reversal "
                              f"attempts in flight at the host at a time, default {REVERSAL_IN_FLIGHT}), "
                              f"got {bad!r}")
