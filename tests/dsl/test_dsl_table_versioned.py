"""A table as the configuration's version holds it (dsl.tables.load_versioned): the text read when the version
was computed, not the file read again; a file kept only as its digest (over 1 MB) is read and checked."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dsl import ir
from dsl.tables import TableError, load_versioned

HEAD = "entry_id,source,name,aliases,ids\nSYN-1,UN,Viktor Kurganov,,\n"


def _decl(path: Path) -> ir.TableDecl:
    return ir.TableDecl("sanctions", "csv", str(path), "entry_id")


def test_the_text_the_version_holds_is_used_not_the_file_read_again(tmp_path: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text(HEAD + "SYN-2,OFAC SDN,Dragan Miloradovic,,\n")
    table = load_versioned(_decl(f), {str(f): HEAD})
    assert list(table) == ["SYN-1"]
    assert list(load_versioned(_decl(f), {})) == ["SYN-1", "SYN-2"]       # not versioned: the file


def test_a_large_file_kept_as_its_digest_is_read_and_must_still_match_it(tmp_path: Path) -> None:
    f = tmp_path / "list.csv"
    f.write_text(HEAD)
    kept = {str(f): "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()}
    assert list(load_versioned(_decl(f), kept)) == ["SYN-1"]
    f.write_text(HEAD + "SYN-2,OFAC SDN,Dragan Miloradovic,,\n")
    with pytest.raises(TableError) as info:
        load_versioned(_decl(f), kept)
    assert "changed after the configuration was read" in str(info.value) and "reload again" in str(info.value)
    assert str(f) in str(info.value)
