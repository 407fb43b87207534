"""W006: a classified value copied into a field (or a deal field) that does not protect it as well."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsl.functions import f_mask_pan
from dsl.load import compile_paths
from engine.registry import default_registry

HEAD = '''channel mf = memory
channel back = tcp connect { address = "127.0.0.1:1" }
format Req = json classify ["card.number:pan", "card.cvv:secret", "holder:personal", "acct:personal"]
format Plain = json
format Masked = json classify ["n:pan", "name:personal", "c.number:pan", "c.cvv:secret"]
format Fix = fixed {
    n string(19)
    name string(20) pan
}
format Iso = iso8583 iso8583_1987_ascii
'''


@pytest.fixture(scope="module")
def shipped():
    return default_registry()


def _check(tmp_path: Path, registry, body: str, head: str = HEAD):
    src = tmp_path / "main.route"
    src.write_text(head + "route r {\n    receive from mf as Req\n" + body + "}\n")
    result = compile_paths([src], registry)
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors, [str(d.message) for d in errors]
    return [d for d in result.diagnostics if d.code == "W006"]


def _warned(tmp_path, registry, body, head=HEAD) -> list[str]:
    return [d.message for d in _check(tmp_path, registry, body, head)]


@pytest.mark.parametrize("value", [
    "msg.card.number", "trim(msg.card.number)", "upper(msg.card.number)", "pad_left(msg.card.number, 19, \"0\")",
    "coalesce(msg.x, msg.card.number)", "\"PAN \" + msg.card.number", "substr(msg.card.number, 6)",
    "if msg.x == \"1\" then msg.card.number else \"\"",
    "replace(msg.card.number, \" \", \"\")", "replace(msg.x, \"-\", msg.card.number)",
])
def test_a_pan_copied_into_an_unclassified_reply_field_warns(tmp_path, shipped, value):
    body = f"    reply Plain {{ n = {value} }}\n"
    got = _check(tmp_path, shipped, body)
    assert len(got) == 1, body
    d = got[0]
    assert d.severity == "warning"
    assert d.message.startswith("msg.card.number, classified pan in format `Req`, is copied into field `n` of "
                                "format `Plain`, which does not classify it: the ledger stores the reply "
                                "(deals.response) with the value in clear")
    # the caret is on the classified read, the help shows the target format's syntax
    line = body.splitlines()[0]
    assert (d.pos.line, d.pos.col) == (13, line.index("msg.card.number") + 1)
    assert 'classify ["n:pan"]' in d.help and "mask_pan(...)" in d.help


@pytest.mark.parametrize("value", [
    "mask_pan(msg.card.number)", "substr(msg.card.number, 0, 6)", "len(msg.card.number)",
    "msg.card.number == \"4111\"", "msg.x", "lookup_free",
])
def test_values_that_do_not_carry_the_pan_do_not_warn(tmp_path, shipped, value):
    body = ("    let lookup_free = \"x\"\n" if value == "lookup_free" else "") + f"    reply Plain {{ n = {value} }}\n"
    assert _warned(tmp_path, shipped, body) == []


def test_a_target_that_protects_as_well_does_not_warn(tmp_path, shipped):
    body = ("    call c = back as Masked {\n"
            "        n    = msg.card.number\n"        # pan -> pan
            "        name = msg.holder\n"             # personal -> personal
            "        c    = msg.card\n"               # a group copied whole: number pan, cvv secret
            "    }\n"
            "    reply Masked { name = msg.card.number }\n")   # pan -> personal: its mask shows less
    assert _warned(tmp_path, shipped, body) == []


def test_weaker_protection_warns_and_says_what_it_shows(tmp_path, shipped):
    got = _warned(tmp_path, shipped, "    reply Masked { n = msg.holder  name = msg.card.cvv }\n")
    assert got == [
        "msg.holder, classified personal in format `Req`, is copied into field `n` of format `Masked`, which "
        "classifies it only pan: the ledger stores the reply (deals.response) with the value masked as pan, "
        "which shows more of it than personal",
        "msg.card.cvv, classified secret in format `Req`, is copied into field `name` of format `Masked`, which "
        "classifies it only personal: the ledger stores the reply (deals.response) with the value masked as "
        "personal, which shows more of it than secret"]


def test_a_group_copied_into_an_unclassified_field_names_the_classified_field_inside(tmp_path, shipped):
    got = _warned(tmp_path, shipped, "    reply Plain { card = msg.card }\n")
    assert sorted(got) == [
        "msg.card (its field `cvv`), classified secret in format `Req`, is copied into field `card.cvv` of format "
        "`Plain`, which does not classify it: the ledger stores the reply (deals.response) with the value in clear",
        "msg.card (its field `number`), classified pan in format `Req`, is copied into field `card.number` of "
        "format `Plain`, which does not classify it: the ledger stores the reply (deals.response) with the value "
        "in clear"]


def test_through_lets_calls_and_compensations(tmp_path, shipped):
    body = ("    let card = msg.card\n"
            "    let num  = trim(card.number)\n"
            "    call c = back as Plain { n = num } \n        compensate call back as Plain { n = \"R\" + num }\n"
            "    reply Fix { n = num }\n")
    got = _check(tmp_path, shipped, body)
    assert [d.pos.line for d in got] == [15, 16, 17]
    assert got[0].message.startswith("`num` (from msg.card.number), classified pan in format `Req`, is copied "
                                     "into field `n` of format `Plain`, which does not classify it: what bsp "
                                     "keeps of the call's frames (captures, replay differences) is masked by "
                                     "the call's format")
    assert got[2].help == ("classify the field in format `Fix`: `n string(19) pan`; "
                           "or copy only its mask: mask_pan(...)")


def test_deal_fields_are_stored_in_clear(tmp_path, shipped):
    body = ("    deal D {\n"
            "        ref    = msg.x\n"
            "        amount = 1\n"
            "        party  = msg.holder\n"
            "        key    = msg.x + \"/\" + msg.card.number\n"
            "    }\n"
            "    reply Plain { n = \"00\" }\n")
    got = _warned(tmp_path, shipped, body)
    assert got == [
        "msg.holder, classified personal in format `Req`, is copied into the deal's `party`, which the ledger "
        "stores as it is (deals.party): the value is kept in clear",
        "msg.card.number, classified pan in format `Req`, is copied into the deal's `key`, which the ledger "
        "stores as it is (deal_keys.key and the deal's events): the value is kept in clear"]
    # the card's BIN is what the mask shows anyway
    assert _warned(tmp_path, shipped, body.replace("msg.holder", "substr(msg.card.number, 0, 6)")
                   .replace('msg.x + "/" + msg.card.number', "msg.x")) == []


def test_a_deal_match_is_kept_only_as_a_digest_so_a_classified_value_there_does_not_warn(tmp_path, shipped):
    """``match`` (docs/transactions.md#a-repeat-that-is-another-deal-key_conflict) is never stored in clear:
    the beneficiary's account of a claims payout goes there, not into ``party``."""
    body = ("    deal D {\n"
            "        ref    = msg.x\n"
            "        amount = 1\n"
            "        key    = msg.x\n"
            "        match  = replace(upper(trim(msg.acct)), \" \", \"\")\n"
            "    }\n"
            "    reply Plain { n = \"00\" }\n")
    assert _warned(tmp_path, shipped, body) == []
    assert len(_warned(tmp_path, shipped, body.replace("match  =", "party  ="))) == 1


def test_iso8583_fields_classified_in_the_network_spec(tmp_path, shipped):
    head = HEAD.replace("receive from mf as Req", "")
    src_route = ("route r {\n    receive from mf as Iso\n"
                 '    call a = back as Iso { t = "0200"  "2" = msg["2"]  "35" = msg["35"] }\n'
                 '    reply Plain { pan = msg["2"]  bin = substr(msg["2"], 0, 6) }\n}\n')
    src = tmp_path / "main.route"
    src.write_text(head + src_route)
    result = compile_paths([src], shipped)
    got = [d.message for d in result.diagnostics if d.code == "W006"]
    assert got == ['msg["2"], classified pan in format `Iso`, is copied into field `pan` of format `Plain`, which '
                   "does not classify it: the ledger stores the reply (deals.response) with the value in clear"]


def test_formats_whose_classification_is_unknown_stay_quiet(tmp_path):
    """A format kind with no field block, no classify option and no classification hook: what it
    classifies cannot be known."""
    from engine.channels import memory
    from engine.registry import Registry
    from formats import fixed
    from formats.component import ComponentSpec
    registry = Registry()
    registry.register(memory.COMPONENT)
    registry.register(fixed.COMPONENT)
    registry.register(ComponentSpec("format", "opaque", "a plugin format that says nothing of its fields"))
    head = ('channel mf = memory\nformat Card = fixed {\n    pan string(16) pan\n}\nformat Out = opaque\n')
    src = tmp_path / "main.route"
    src.write_text(head + "route r {\n    receive from mf as Card\n    reply Out { n = msg.pan }\n}\n")
    result = compile_paths([src], registry)
    assert not [d for d in result.diagnostics if d.is_error]
    assert [d for d in result.diagnostics if d.code == "W006"] == []


def test_shipped_routes_copy_no_classified_value_into_the_clear():
    repo = Path(__file__).resolve().parents[2]
    result = compile_paths(sorted((repo / "routes").rglob("*.route")), default_registry())
    assert [f"{d.pos}: {d.message}" for d in result.diagnostics if d.code == "W006"] == []


def test_mask_pan_masks_like_the_ledger():
    assert f_mask_pan("4111111111111111") == "411111******1111"
    assert f_mask_pan("12345678") == "****5678"
    assert f_mask_pan(None) is None and f_mask_pan("") == ""


@pytest.mark.parametrize("classify", ['"*.number:personal", "card.number:pan"', '"card.number:pan", "*.number:personal"'])
def test_a_field_tagged_pan_and_personal_is_taken_as_personal(tmp_path, shipped, classify):
    # the same rule as the runtime's (formats.classify.SHOWS_LEAST; tests/engine/test_fieldcrypt.py): the tag
    # that shows least, personal, whatever the order; a pan field does not protect it, a personal one does
    head = HEAD.replace('format Req = json classify ["card.number:pan", "card.cvv:secret", "holder:personal", '
                        '"acct:personal"]', f"format Req = json classify [{classify}]")
    assert head != HEAD
    got = _warned(tmp_path, shipped, "    reply Masked { n = msg.card.number  name = msg.card.number }\n", head)
    assert len(got) == 1 and got[0].startswith("msg.card.number, classified personal in format `Req`, is copied "
                                               "into field `n` of format `Masked`, which classifies it only pan")


NESTED_HEAD = HEAD.replace('format Req = json classify ["card.number:pan", "card.cvv:secret", "holder:personal", '
                           '"acct:personal"]', 'format Req = json classify ["card:personal", "card.cvv:secret"]') + \
    'format Grp = json classify ["c:personal"]\nformat GrpCvv = json classify ["c:personal", "c.cvv:secret"]\n'


def test_a_secret_inside_a_personal_group_is_followed_when_the_group_is_copied(tmp_path, shipped):
    # the runtime masks msg.card.cvv as secret (the tag that shows least among card's and its own);
    # a target that classifies only the group personal would show the CVV's first character
    assert NESTED_HEAD != HEAD + 'format Grp = json classify ["c:personal"]\n'
    got = _warned(tmp_path, shipped, "    reply Grp { c = msg.card }\n", NESTED_HEAD)
    assert got == ["msg.card (its field `cvv`), classified secret in format `Req`, is copied into field `c.cvv` of "
                   "format `Grp`, which classifies it only personal: the ledger stores the reply (deals.response) "
                   "with the value masked as personal, which shows more of it than secret"]
    # the same rule on the target: protected; and through a let
    assert _warned(tmp_path, shipped, "    reply GrpCvv { c = msg.card }\n", NESTED_HEAD) == []
    got = _warned(tmp_path, shipped, "    let k = msg.card\n    reply Grp { c = k  n = k.cvv }\n", NESTED_HEAD)
    assert len(got) == 2 and "`k.cvv` (from msg.card.cvv), classified secret" in got[1], got
    # the CVV read on its own is secret too
    got = _warned(tmp_path, shipped, "    reply Grp { c = msg.card.cvv }\n", NESTED_HEAD)
    assert got[0].startswith("msg.card.cvv, classified secret in format `Req`, is copied into field `c` of format "
                             "`Grp`, which classifies it only personal")


NAMED_HEAD = HEAD + '''channel out = file write {
    dir  = "out"
    name = "pay-{ref}-{who}.xml"
}
format Ack = json classify ["file:personal"]
'''


def test_a_file_name_built_from_a_classified_value_carries_it_to_the_answers_file(tmp_path, shipped):
    """`w.file` is the name written: built from `{who} = upper(msg.holder)` (personal), it is the holder's
    name in clear wherever the route copies it, whatever the answer's format says of `file`."""
    (tmp_path / "out").mkdir()
    body = ('    call w = out as Req reply Plain { a = 1 } name { ref = msg.x  who = upper(msg.holder) }\n'
            '    let f = w.file\n'
            '    deal PAY { ref = msg.x  amount = 1  party = f }\n'
            '    reply Plain { n = w.file  all = w  len = len(w.file)  masked = substr(w.file, 0, 1) }\n'
            '    on error reply Ack { file = w.file }\n')
    got = [(d.pos.line, d.message, d.help) for d in _check(tmp_path, shipped, body, NAMED_HEAD)]
    assert [(line, m.split(" is copied into ")[1].split(",")[0]) for line, m, _ in got] == [
        (20, "the deal's `party`"), (21, "field `n` of format `Plain`"), (21, "field `all.file` of format `Plain`")], got
    line, message, help_ = got[1]
    assert message.startswith("`w.file` (the file name, from {who} = msg.holder), classified personal in "
                              "format `Req`, is copied into field `n` of format `Plain`, which does not classify "
                              "it: the ledger stores the reply (deals.response) with the value in clear"), message
    assert help_.endswith("; or name the file from values that are not classified (the file on disk has the "
                          "name in clear)"), help_
    assert got[0][1].startswith("`f` (from msg.holder), classified personal in format `Req`, is copied into the "
                                "deal's `party`"), got[0][1]
    assert "(its field `file`)" in got[2][1], got[2][1]


def test_a_file_name_from_values_that_are_not_classified_carries_nothing(tmp_path, shipped):
    (tmp_path / "out").mkdir()
    body = ('    call w = out as Req reply Plain { a = 1 } name { ref = msg.x  who = substr(msg.holder, 0, 1) }\n'
            '    reply Plain { n = w.file }\n')
    assert _warned(tmp_path, shipped, body, NAMED_HEAD) == []
