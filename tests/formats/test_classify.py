"""classification: tags from formats, masking rules, no mutation."""
from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from dsl.ir import FieldDecl as F, FormatDecl
from formats import classify, csv_codec, fixed, json_codec
from formats.classify import mask, mask_value, parse_spec, tags_of
from formats.errors import SpecError


@pytest.mark.parametrize("value, tag, masked", [
    ("4111111111111111", "pan", "411111******1111"),
    ("5500000000000004123", "pan", "550000*********4123"),
    (4111111111111111, "pan", "411111******1111"),
    ("12345678", "pan", "****5678"),
    ("hunter2", "secret", "***"),
    ("Jane Doe", "personal", "J***"),
    ("", "personal", ""),
    (None, "secret", None),
    (Decimal("120.50"), "personal", "1***"),
    ({"Nm": "Jane", "Adr": ["Street 1", "Town"]}, "personal", {"Nm": "J***", "Adr": ["S***", "T***"]}),
])
def test_mask_value_rules(value, tag, masked):
    assert mask_value(value, tag) == masked


def test_tags_from_fixed_and_csv_declarations():
    decl = FormatDecl("R", "fixed", {}, (F("pan", "string", 19, classification="pan"), F("pin", "string", 4, classification="secret"),
                                         F("name", "string", 10, classification="personal"), F("amt", "decimal", 8, 2)))
    c = fixed.build(decl)
    assert tags_of(c) == {"pan": "pan", "pin": "secret", "name": "personal"}
    v = c.decode(b"4111111111111111   1234Jane Doe  00012050")
    before = copy.deepcopy(v)
    assert mask(v, tags_of(c)) == {"pan": "411111******1111", "pin": "***", "name": "J***", "amt": Decimal("120.50")}
    assert v == before  # a copy, not in place
    cc = csv_codec.build(FormatDecl("C", "csv", {}, (F("iban", "string", classification="personal"),)))
    assert tags_of(cc) == {"iban": "personal"}


def test_classify_option_paths_lists_and_wildcards():
    c = json_codec.build(FormatDecl("J", "json", {"classify": ["card.number:pan", "parties.*.name:personal", "auth.*:secret"]}))
    assert tags_of(c) == {"card.number": "pan", "parties.*.name": "personal", "auth.*": "secret"}
    v = c.decode(b'{"card": {"number": "4111111111111111", "exp": "2612"}, '
                 b'"parties": [{"debtor": {"name": "Jane"}}, {"creditor": {"name": "Acme", "id": 7}}], '
                 b'"auth": {"pin": "1234", "otp": "999"}, "amount": 1.00}')
    assert mask(v, tags_of(c)) == {
        "card": {"number": "411111******1111", "exp": "2612"},
        "parties": [{"debtor": {"name": "J***"}}, {"creditor": {"name": "A***", "id": 7}}],
        "auth": {"pin": "***", "otp": "***"}, "amount": Decimal("1.00"),
    }


def test_iso20022_and_xml_accept_classify():
    from formats import xml_codec
    from formats.iso20022 import COMPONENT as ISO

    x = xml_codec.build(FormatDecl("X", "xml", {"classify": {"Order.Card": "pan"}}))
    assert mask(x.decode(b"<Order><Card>4111111111111111</Card></Order>"), tags_of(x)) == \
        {"Order": {"Card": "411111******1111"}}
    assert ISO.option("classify") is not None


def test_bad_specs():
    with pytest.raises(SpecError, match="unknown tag 'secretive'"):
        parse_spec(["a:secretive"])
    with pytest.raises(SpecError, match="is not \"path:tag\""):
        parse_spec(["nocolon"])
    with pytest.raises(SpecError, match="bad path"):
        parse_spec({"a..b": "pan"})
    errors = json_codec.check(FormatDecl("J", "json", {"classify": ["x:nope"]}))
    assert errors and "unknown tag" in str(errors[0])
    with pytest.raises(ValueError):
        mask_value("x", "nope")
    assert classify.TAGS == ("pan", "secret", "personal")


@given(st.text(min_size=11, max_size=30))
def test_pan_mask_never_shows_the_middle(text):
    m = mask_value(text, "pan")
    assert len(m) == len(text) and m[:6] == text[:6] and m[-4:] == text[-4:] and set(m[6:-4]) <= {"*"}


def test_iso8583_spec_classification_reaches_tags_of() -> None:
    from formats.iso8583 import codec_for
    tags = tags_of(codec_for("iso8583_1987_ascii"))
    assert tags["2"] == "pan"
    assert tags["35"] == "secret"        # track 2 is tagged pan and secret: the strictest wins
    assert tags["52"] == "secret"


def test_classified_values_are_masked_wherever_they_travel():
    from formats.classify import classified_values, mask_known
    request = {"account": "ACC000000000001", "payer": {"name": "Jane Doe"}, "card": "4111111111111111",
               "pin": "1234", "code": "00", "short": "AB"}
    known = classified_values(request, {"account": "personal", "payer.name": "personal", "card": "pan",
                                        "pin": "secret", "short": "personal"})
    assert known == {"ACC000000000001": "personal", "Jane Doe": "personal", "4111111111111111": "pan",
                     "1234": "secret"}                  # "AB": too short to be told from a code
    call = {"acct": "ACC000000000001", "items": [{"pan": "4111111111111111"}], "code": "00", "n": 1234,
            "flag": True}
    masked, changed = mask_known(call, known)
    assert changed and masked == {"acct": "A***", "items": [{"pan": "411111******1111"}], "code": "00",
                                  "n": "***", "flag": True}
    assert call["acct"] == "ACC000000000001"            # the input is not changed
    assert mask_known({"code": "00"}, known) == ({"code": "00"}, False)


def test_a_key_value_step_classifies_only_the_list_items_it_picks() -> None:
    # SWIFT block 4 is a list of {tag, value}: block4.tag=25.value is field 25's value, no other field's
    from engine.fieldcrypt import protect
    from formats.classify import classified_values, mask, parse_spec

    tags = parse_spec(["block4.tag=25.value:personal"])
    values = {"block4": [{"tag": "20", "value": "STMT0001"}, {"tag": "25", "value": "NL26VAYB8060476890"},
                         {"tag": "62F", "value": {"mark": "C", "amount": "10.00"}}]}
    masked = {"block4": [{"tag": "20", "value": "STMT0001"}, {"tag": "25", "value": "N***"},
                         {"tag": "62F", "value": {"mark": "C", "amount": "10.00"}}]}
    assert mask(values, tags) == masked
    assert protect(values, tags, None, context="d", root="request") == masked
    assert classified_values(values, tags) == {"NL26VAYB8060476890": "personal"}
    for bad in ("block4.tag=25:personal", "block4.=25.value:personal", "block4.tag=.value:personal"):
        with pytest.raises(SpecError, match="KEY=VALUE step"):
            parse_spec([bad])


NESTED = {"card": {"number": "Jane Card 0001", "cvv": "7391", "extra": [{"pin": "4455"}, {"pin": "6677"}]},
          "holder": "Zed Quux"}


@pytest.mark.parametrize("tags", [
    {"card": "personal", "card.cvv": "secret", "card.extra.pin": "secret"},
    {"card.extra.pin": "secret", "card.cvv": "secret", "card": "personal"},       # order does not matter
    {"card": "personal", "*.cvv": "secret", "card.*.pin": "secret"},               # wildcards below the group
])
def test_a_stricter_tag_inside_a_classified_group_wins(tags) -> None:
    # card: personal covers every value inside; card.cvv: secret covers the CVV too; the CVV takes the
    # one that shows least (secret), as bsp check reads it (dsl.classflow.tag_at)
    from formats.classify import classified_values, tag_of_field
    assert mask(NESTED, tags) == {"card": {"number": "J***", "cvv": "***", "extra": [{"pin": "***"}, {"pin": "***"}]},
                                  "holder": "Zed Quux"}
    assert classified_values(NESTED, tags) == {"Jane Card 0001": "personal", "7391": "secret", "4455": "secret",
                                               "6677": "secret"}
    assert tag_of_field("card.cvv", tags) == "secret" and tag_of_field("card.number", tags) == "personal"


def test_a_weaker_tag_inside_a_classified_group_does_not_show_more() -> None:
    from formats.classify import classified_values
    tags = {"card": "secret", "card.number": "pan"}
    assert mask(NESTED, tags)["card"] == {"number": "***", "cvv": "***", "extra": [{"pin": "***"}, {"pin": "***"}]}
    assert set(classified_values(NESTED, tags).values()) == {"secret"}


def test_runtime_and_checker_give_every_value_the_same_class() -> None:
    # one rule on every side: the class the mask shows is the class bsp check (W006) reads at that path
    from dsl.classflow import tag_at
    cases = [{"card": "personal", "card.cvv": "secret"}, {"card": "pan", "card.number": "personal"},
             {"card": "secret", "card.number": "pan"}, {"*": "pan", "card.extra.pin": "secret"},
             {"card.extra": "personal", "card.extra.pin": "pan", "holder": "pan"}]
    leaves = {("card", "number"): "Jane Card 0001", ("card", "cvv"): "7391", ("card", "extra", "pin"): "4455",
              ("holder",): "Zed Quux"}
    for tags in cases:
        masked = mask(NESTED, tags)
        for path, value in leaves.items():
            got: object = masked
            for p in path:
                got = got[0] if isinstance(got, list) else got
                got = got[p]
            want = tag_at(path, tags)
            assert got == (value if want is None else mask_value(value, want)), (tags, path)


def test_a_short_classified_value_is_masked_only_where_a_text_quotes_it():
    from formats.classify import classified_values, mask_text
    known = classified_values({"cvv": "739", "code": "00", "pan": "4111111111111111"},
                              {"cvv": "secret", "code": "personal", "pan": "pan"}, min_len=1)
    assert set(known) == {"739", "00", "4111111111111111"}
    text = "parse_date: '739' does not match; line 739 of 00-list; code \"00\"; card 4111111111111111"
    assert mask_text(text, known) == ("parse_date: '***' does not match; line 739 of 00-list; code \"0***\"; "
                                      "card 411111******1111")
    assert set(classified_values({"cvv": "739"}, {"cvv": "secret"})) == set()     # mask_known's default: 4+
