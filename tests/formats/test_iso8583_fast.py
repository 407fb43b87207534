"""The ISO 8583 fast paths give the results of the general code: per-field memos, decode and encode
plans, message rules as bitmask tests, the compiled date checks."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.errors import FormatError
from formats.iso8583 import Iso8583Codec, codec_for, load_spec
from formats.iso8583.content import date_check
from formats.iso8583.fastfield import MEMO_MAX, fast_date_ok
from formats.iso8583.mux import iso_key, mux_key
from formats.iso8583.rules import BITS, check_message, compile_rule

REQ = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": "1125120000",
       "11": "000001", "41": "TERM0001", "49": "978"}


def fresh(spec: str = "iso8583_1987_ascii", validate: bool = True) -> Iso8583Codec:
    """A codec with empty memos and plans (codec_for shares one per spec)."""
    return Iso8583Codec(load_spec(spec), validate=validate)


@pytest.mark.parametrize("fmt", ["MMDDhhmmss", "MMDD", "YYMM", "YYMMDD", "hhmmss", "CCYYMMDD"])
def test_fast_date_check_accepts_only_what_the_general_check_accepts(fmt):
    slow = date_check(fmt)
    ok = fast_date_ok(fmt)
    width = len(fmt)
    samples = {"0229", "0230", "1231", "0000", "1301", "0131", "0431", "2400", "2359", "9999"}
    for a, b in itertools.product(samples, repeat=2):
        for text in ((a + b + "000000")[:width], (b + a + "123456")[:width], ("2" + a + b + "00")[:width]):
            if ok(text):
                assert slow(text) is None, text
    assert not ok("１１２５１２００００"[:width])          # full-width digits are not digits here
    assert not ok("")


def test_29_february_goes_to_the_general_check():
    c = fresh()
    assert c.decode(c.encode(dict(REQ, **{"7": "0229120000"})))["7"] == "0229120000"   # no year: allowed
    with pytest.raises(FormatError, match="has no day 30") as err:
        c.decode(c.encode(dict(REQ, **{"7": "0229120000"})).replace(b"0229120000", b"0230120000"))
    assert err.value.field == "7" and err.value.offset is not None


def test_a_bad_value_after_good_ones_still_fails_with_its_offset():
    c = fresh()
    good = c.encode(REQ)
    for _ in range(3):
        assert c.decode(good) == REQ                                     # memoized now
    bad = good.replace(b"1125120000", b"1125126000")                    # minute 60
    with pytest.raises(FormatError, match="minute 60") as err:
        c.decode(bad)
    assert err.value.field == "7" and err.value.offset == good.index(b"1125120000") + 6
    with pytest.raises(FormatError) as err2:
        c.encode(dict(REQ, **{"7": "1125126000"}))
    assert err2.value.field == "7"
    with pytest.raises(FormatError, match="not a digit"):
        c.decode(good.replace(b"000001", b"00000x"))


def test_decoded_values_encode_to_the_bytes_they_came_from_in_every_spec():
    for spec in ("iso8583_1987_ascii", "iso8583_1987_bcd"):
        c = fresh(spec)
        raw = c.encode(REQ)
        msg = c.decode(raw)
        copied = {k: msg[k] for k in REQ}                                 # a route copying fields verbatim
        assert c.encode(copied) == raw == fresh(spec).encode(REQ)


def test_memos_stay_bounded_and_keep_answering():
    c = fresh()
    for i in range(3 * MEMO_MAX):
        v = dict(REQ, **{"11": f"{i:06d}", "4": f"{i:012d}"})
        assert c.decode(c.encode(v)) == v
    field = c._enc["11"][1]
    cells = {name: cell.cell_contents for name, cell in zip(field.__code__.co_freevars, field.__closure__)}
    assert len(cells["ememo"]) <= MEMO_MAX and len(cells["eold"]) <= MEMO_MAX


def test_encode_plans_equal_the_general_encoder():
    c, ref = fresh(), fresh()
    c.encode(REQ)                                                        # learns the key set
    assert c.encode(REQ) == ref._encode_general(REQ, "0200")
    with_none = dict(REQ, **{"41": None})                                # None: the field is absent
    assert c.encode(with_none) == ref.encode({k: v for k, v in REQ.items() if k != "41"})
    other_mti = dict(REQ, t="0100")
    assert c.encode(other_mti)[:4] == b"0100" and c.encode(other_mti) == ref.encode(other_mti)
    msg = c.decode(c.encode(REQ))
    msg.secondary_bitmap = True                                         # keeps an (empty) secondary bitmap
    assert c.encode(msg) == ref.encode(msg) and len(c.encode(msg)) == len(c.encode(REQ)) + 16
    with pytest.raises(FormatError, match="mandatory field 11"):
        c.encode({k: v for k, v in REQ.items() if k != "11"})


FIELD_KEYS = ["2", "3", "4", "7", "11", "35", "38", "39", "41", "45", "49", "52", "90"]


@settings(max_examples=300, deadline=None)
@given(mti=st.sampled_from(sorted(codec_for("iso8583_1987_ascii").spec.messages)),
       present=st.sets(st.sampled_from(FIELD_KEYS)), approved=st.booleans())
def test_bitmask_rules_agree_with_check_message(mti, present, approved):
    spec = codec_for("iso8583_1987_ascii").spec
    rule = spec.messages[mti]
    values = {k: "x" for k in present}
    if "39" in values:
        values["39"] = "00" if approved else "05"
    fast = compile_rule(rule)
    assert fast is not None
    mask = sum(1 << (BITS - int(k)) for k in present)
    try:
        check_message(values, rule, spec)
        passed = True
    except FormatError:
        passed = False
    assert fast(mask, values) == passed


def test_iso_key_equals_mux_key_and_names_what_is_missing():
    for v in (REQ, dict(REQ, t="0210"), {"t": "0800", "11": "000001"}, dict(REQ, t="0430")):
        want = mux_key(v, ("11",)) if v["t"].startswith("08") else mux_key(v)
        assert iso_key(v) == want
    with pytest.raises(FormatError, match="DE 41"):
        iso_key({"t": "0200", "11": "000001"})
    with pytest.raises(FormatError, match="MTI"):
        iso_key({"t": 200, "11": "000001", "41": "T"})


def test_decoded_messages_copy_and_pickle_with_their_classification():
    import copy
    import pickle
    c = fresh()
    msg = c.decode(c.encode(REQ))
    for other in (copy.deepcopy(msg), copy.copy(msg), pickle.loads(pickle.dumps(msg))):
        assert type(other) is type(msg) and other == msg
        assert other.classification == {"2": ("pan",)} and other.secondary_bitmap is False
    with pytest.raises(TypeError):
        msg.classification["41"] = ("secret",)        # shared by the messages of one bitmap: read-only
