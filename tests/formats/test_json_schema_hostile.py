"""A JSON Schema's `pattern` and a message with many errors: what they may cost the engine.

A pattern with a repeat inside a repeat (`^([a-zA-Z0-9]+\\s?)*$`, common in published schemas) took 12 s of CPU
on a 29-character text, doubling with each character more: bsp check refuses such a pattern as it refuses one
in matches() (the same rules, dsl/regexsafe.py), and a text longer than 1,000 characters is not matched against
any pattern (a schema violation).  A body of 400,000 wrong items built 400,000 errors to report one (13 s,
1.4 GB): the first 100 are read."""
from __future__ import annotations

import json
import time

import pytest

from formats.errors import FormatError, SpecError
from formats.json_codec import JsonCodec


def schema(tmp_path, doc) -> str:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc))
    return str(p)


@pytest.mark.parametrize("where, doc", [
    ("$.properties.email.pattern", {"properties": {"email": {"type": "string", "pattern": "^([a-zA-Z0-9]+\\s?)*$"}}}),
    ("$.items.pattern", {"type": "array", "items": {"pattern": "(a|aa)+"}}),
    ("$.patternProperties", {"patternProperties": {"^(x+)+$": {"type": "string"}}}),
])
def test_a_pattern_that_can_take_exponential_time_is_refused_when_the_schema_loads(tmp_path, where, doc):
    with pytest.raises(SpecError) as e:
        JsonCodec(schema=schema(tmp_path, doc))
    said = str(e.value)
    assert where in said and ("repeat" in said or "alternatives" in said), said


def test_a_safe_pattern_still_matches_and_a_long_text_is_a_violation(tmp_path):
    c = JsonCodec(schema=schema(tmp_path, {"properties": {"iban": {"type": "string", "pattern": "^[A-Z]{2}\\d{2}[A-Z0-9]{11,30}$"},
                                                          "note": {"type": "string", "pattern": "[a-z]"}}}))
    assert c.decode(b'{"iban": "DE89370400440532013000", "note": "' + b"X" * 999 + b'a"}')["iban"]
    with pytest.raises(FormatError, match="does not match"):
        c.decode(b'{"iban": "de89"}')
    with pytest.raises(FormatError) as e:
        c.decode(b'{"note": "' + b"Q" * 5000 + b'a"}')
    assert "5,001 characters long, more than the 1,000 a pattern is matched against" in str(e.value)
    assert "QQQQ" not in str(e.value) and e.value.field == "$.note"


def test_a_message_with_many_violations_is_refused_without_building_them_all(tmp_path):
    c = JsonCodec(schema=schema(tmp_path, {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "string"}}}}))
    body = b'{"items": [' + b",".join([b"1"] * 400_000) + b"]}"
    t = time.perf_counter()
    with pytest.raises(FormatError) as e:
        c.decode(body)
    assert time.perf_counter() - t < 3.0
    assert e.value.field == "$.items[0]" and "(and at least 100 more)" in str(e.value)
    with pytest.raises(FormatError) as e:
        c.decode(b'{"items": [1, "a", 2]}')
    assert e.value.field == "$.items[0]" and "(and 1 more)" in str(e.value)
