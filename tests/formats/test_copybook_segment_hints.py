"""A segment_map / segment_field naming no item: the hint gives the closest name and the choices
(cobrix test16: COMPANY / PERSON / PO-BOX chosen by SEGMENT-ID)."""
from __future__ import annotations

from pathlib import Path

import pytest

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import SpecError


def _build(corpus: Path, **opts) -> CopybookCodec:
    path = corpus / "copybook" / "cobrix_test16_fixed_len_segment_redefines" / "copybook.cob"
    return CopybookCodec.from_file(path, CopybookOptions(**opts))


def test_a_misspelt_segment_member_gets_the_redefines_members(corpus: Path) -> None:
    with pytest.raises(SpecError) as err:
        _build(corpus, segment_field="SEGMENT-ID", segment_map={"C": "COMPANY", "B": "POBOX"})
    assert err.value.hint == "did you mean PO-BOX? REDEFINES members: COMPANY, PERSON, PO-BOX"


def test_a_misspelt_segment_field_gets_the_closest_item(corpus: Path) -> None:
    with pytest.raises(SpecError) as err:
        _build(corpus, segment_field="SEGMENT_IDD", segment_map={"C": "COMPANY"})
    assert err.value.hint.startswith("did you mean SEGMENT-ID?")
    assert _build(corpus, segment_field="SEGMENT_ID", segment_map={"B": "PO_BOX"}).size > 0
