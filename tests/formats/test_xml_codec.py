"""generic xml codec: conventions, namespaces, safety, round trips."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from dsl.ir import FormatDecl
from formats import xml_codec
from formats.errors import FormatError, SpecError

DOC = b"""<?xml version="1.0"?>
<o:Order xmlns:o="urn:o" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="x" id="7">
  <o:Id>1</o:Id><o:Item>a</o:Item><o:Item q="2">b</o:Item><o:Empty/>
  <Plain>z</Plain><o:Amt Ccy="EUR">1.50</o:Amt><x:Ext xmlns:x="urn:x"><x:V>9</x:V></x:Ext>
</o:Order>"""
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def codec(**opts):
    return xml_codec.build(FormatDecl("X", "xml", opts))


def test_convention():
    v = codec(lists=["Id"]).decode(DOC)
    assert v == {"Order": {
        "@xmlns": "urn:o", f"@{XSI}type": "x", "@id": "7",
        "Id": ["1"], "Item": ["a", {"@q": "2", "#text": "b"}], "Empty": None,
        "Plain": {"@xmlns": "", "#text": None} | {"#text": "z"},
        "Amt": {"@Ccy": "EUR", "#text": "1.50"},
        "Ext": {"@xmlns": "urn:x", "V": "9"},
    }}


def test_roundtrip_and_encoding_of_values():
    c = codec()
    v = c.decode(DOC)
    assert c.decode(c.encode(v)) == v
    out = c.encode({"R": {"@xmlns": "urn:r", "Amt": {"@Ccy": "EUR", "#text": Decimal("1E+2")}, "Ok": True}})
    assert b'<R xmlns="urn:r"><Amt Ccy="EUR">100</Amt><Ok>true</Ok></R>' in out
    with pytest.raises(FormatError) as e:
        c.encode({"R": {"A": [1, 2.5]}})
    assert e.value.field == "R.A[1]" and "float" in str(e.value)
    with pytest.raises(FormatError) as e:
        c.encode({"R": {"bad name": "1"}})
    assert e.value.field == "R.bad name"
    with pytest.raises(FormatError, match="exactly one key"):
        c.encode({"A": 1, "B": 2})


@pytest.mark.parametrize("data, offset, words", [
    (b"<a>", 3, "not well-formed"),
    (b"\n\n  <a></b>", 11, "mismatch"),
    (b"", 0, "empty"),
    (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', 0, "DOCTYPE is not allowed"),
    (b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><a/>', 21, "DOCTYPE"),
])
def test_bad_and_unsafe_documents(data, offset, words):
    with pytest.raises(FormatError) as e:
        codec().decode(data)
    assert e.value.offset == offset and words in str(e.value)


def test_billion_laughs_refused_without_expansion():
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((98 + i,) + (97 + i,) * 10) for i in range(8)
    ) + b"]><l>&i;</l>"
    with pytest.raises(FormatError):
        codec().decode(bomb)


def test_a_prolog_of_many_processing_instructions_or_comments_is_read_in_linear_time():
    # the DOCTYPE check was a backtracking regular expression: 30 `<?a?>` took minutes (a stall of
    # the whole engine from a 150-byte message); now 20,000 of them take milliseconds
    import time
    for prolog in (b"<?a?>" * 20000, b"<!--a-->" * 20000, b"<?a?><!--b-->\n" * 10000):
        t = time.perf_counter()
        assert codec().decode(prolog + b"<x>1</x>") == {"x": "1"}
        with pytest.raises(FormatError, match="DOCTYPE is not allowed") as e:
            codec().decode(prolog + b'<!DOCTYPE x [<!ENTITY e "v">]><x>&e;</x>')
        assert e.value.offset == len(prolog)
        assert time.perf_counter() - t < 1.0
    with pytest.raises(FormatError, match="DOCTYPE is not allowed") as e:
        codec().decode(b"\xef\xbb\xbf \n<!-- c --><!DOCTYPE x><x/>")
    assert e.value.offset == 15


def test_an_element_with_more_attributes_than_the_bound_is_refused_quickly():
    # lxml reads attribute values in quadratic time: 90,000 attributes (979 KB) took 10 s of CPU
    import time
    ok = b"<D><a " + b" ".join(b'a%d="1"' % i for i in range(xml_codec.MAX_ATTRIBUTES)) + b"/></D>"
    assert len(codec().decode(ok)["D"]["a"]) == xml_codec.MAX_ATTRIBUTES
    bad = b"<D>\n<a " + b" ".join(b'a%d="1"' % i for i in range(90000)) + b"/></D>"
    t = time.perf_counter()
    with pytest.raises(FormatError) as e:
        codec().decode(bad)
    assert time.perf_counter() - t < 1.0
    assert (e.value.field, e.value.offset) == ("a", 4)
    assert "element <a> has 90000 attributes, more than the 256 allowed" in str(e.value)


def test_check_option():
    assert xml_codec.check(FormatDecl("X", "xml", {"lists": "Item"}))
    with pytest.raises(SpecError):
        codec(lists=[1])


names = st.text(alphabet="abcXYZ", min_size=1, max_size=3)
leaf = st.none() | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=5)
content = st.recursive(
    leaf,
    lambda ch: st.dictionaries(names, ch | st.lists(ch, min_size=2, max_size=3), min_size=1, max_size=3)
    | st.builds(lambda a, b: {"@" + a: b}, names, st.text(alphabet="xyz ", max_size=3)),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(content)
def test_roundtrip_values(value):
    c = codec()
    doc = {"Root": value}
    back = c.decode(c.encode(doc))
    assert back == doc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_only_format_error(data):
    try:
        codec().decode(data)
    except FormatError as e:
        assert e.offset is not None


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DOC) - 1), st.integers(0, 255))
def test_mutated_only_format_error(pos, byte):
    data = bytearray(DOC)
    data[pos] = byte
    try:
        codec().decode(bytes(data))
    except FormatError:
        pass
