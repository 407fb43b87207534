"""SWIFT FIN input built to cost the engine CPU: work must stay linear in the message's size."""
import time

import pytest

from formats.errors import FormatError
from formats.swift.codec import SwiftCodec

HEAD = "{1:F01BANKBEBBAXXX0000000000}{2:I999BANKDEFFXXXXN}{4:\r\n"


def test_a_block_4_of_many_short_fields_is_read_in_linear_time():
    # each field's offset counted the line breaks before it from the start of block 4 again: 100,000
    # fields of 7 bytes (a 700 KB frame, under tcp listen's 1 MiB max_frame) took about 20 s of CPU,
    # the whole engine stalled meanwhile; now well under a second
    n = 100_000
    text = HEAD + ":20:A\r\n" * n + "-}"
    t = time.perf_counter()
    values = SwiftCodec().decode(text.encode())
    assert time.perf_counter() - t < 4.0
    assert len(values["block4"]) == n


def test_field_offsets_after_many_crlf_lines_stay_exact():
    text = HEAD + ":20:A\r\n" * 3 + ":21:B\r\nmore\r\n" + ":72:bad\x01\r\n" + "-}"
    with pytest.raises(FormatError) as e:
        SwiftCodec().decode(text.encode())
    assert text[e.value.offset] == "\x01"
    # a typed message: an error names the field's own offset, counted over CRLF lines
    t2 = ("{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{4:\r\n:20:REF\r\n:23B:CRED\r\n"
          ":32A:200101EUR1,00\r\n:32A:200101EUR1,00\r\n-}")
    with pytest.raises(FormatError) as e2:
        SwiftCodec("103").decode(t2.encode())
    assert t2[e2.value.offset:].startswith(":32A:") and e2.value.offset == t2.rindex(":32A:")


MT103 = ("{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{4:\r\n:20:REF\r\n:23B:CRED\r\n:32A:200101EUR1,00\r\n"
         ":50K:/12345678\r\nJOHN DOE\r\n:59:/DE89370400440532013000\r\nJANE\r\n:70:PAY\r\n:71A:SHA\r\n-}")


@pytest.mark.parametrize("text, says", [
    ("INV 1\n:72:/ACC/INJECTED", "line 2 starts with ':'"),       # a field the partner added, in its place
    ("INV 1\r\n:71F:EUR999,00", "line 2 starts with ':'"),
    ("INV 1\n-", "line 2 starts with '-'"),
])
def test_a_field_line_that_would_start_another_field_is_never_written(text, says):
    # the remittance text of a partner's request, copied into :70:, was written as is: the receiver read a
    # line ":72:..." as a field of its own
    c = SwiftCodec("103")
    values = c.decode(MT103.encode())
    for f in values["block4"]:
        if f["tag"] == "70":
            f["value"] = text
    with pytest.raises(FormatError) as e:
        c.encode(values)
    assert e.value.field == "70" and says in str(e.value)
    for f in values["block4"]:
        if f["tag"] == "70":
            f["value"] = "INV 1\nSEE :72: BELOW - THANKS"       # ':' and '-' inside a line are text
    assert c.decode(c.encode(values))["block4"] == values["block4"]
