"""copybook and swift formats take `classify` like json / xml / iso20022: the tags reach the codec, a bad tag
is a check error naming it."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from formats.classify import tags_of
from formats.copybook import component as copybook
from formats.swift import component as swift

CPY = """       01  REQ.
           05  ACCT-NO   PIC X(12).
           05  AMOUNT    PIC S9(7)V99 COMP-3.
"""


def _decl(name, options):
    return SimpleNamespace(name=name, options=options, pos=None, fields=None)


def test_copybook_classify(tmp_path: Path) -> None:
    cpy = tmp_path / "REQ.cpy"
    cpy.write_text(CPY)
    codec = copybook.build(_decl("Req", {"path": str(cpy), "names": "lower", "classify": ("acct_no:personal",)}))
    assert tags_of(codec) == {"acct_no": "personal"}
    (err,) = copybook.check(_decl("Req", {"path": str(cpy), "classify": ("acct_no:private",)}))
    assert "unknown tag 'private'" in str(err)


def test_swift_classify() -> None:
    codec = swift.build(_decl("Pay", {"message": "mt103", "classify": ("block4.tag=72.value:personal",)}))
    table = tags_of(swift.build(_decl("Pay", {"message": "mt103"})))          # the built-in table
    assert "block4.tag=59.value" in table and "block4.tag=72.value" not in table
    assert tags_of(codec) == {**table, "block4.tag=72.value": "personal"}     # classify adds to it
    (err,) = swift.check(_decl("Pay", {"message": "mt103", "classify": ("block4.59:card",)}))
    assert "unknown tag 'card'" in str(err)
