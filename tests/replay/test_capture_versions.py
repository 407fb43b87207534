"""A capture of another format version is refused with its version and what to do, before its frames are
read: a newer bsp may lay them out otherwise (here: no ``seq`` column), and reading them first gave a
DuckDB binder error that called the file "not a bsp capture"."""
from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.replay.capture import Capture, CaptureError


def _capture(path, version):
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE capture_info (key TEXT, value TEXT)")
        if version is not None:
            con.execute("INSERT INTO capture_info VALUES ('format_version', ?)", [version])
        con.execute("CREATE TABLE frames (frame_no BIGINT, channel TEXT, payload BLOB)")
        con.execute("INSERT INTO frames VALUES (1, 'pos', 'x'::BLOB)")
    finally:
        con.close()
    return path


def test_a_capture_of_a_newer_bsp_names_its_version_and_what_to_do(tmp_path):
    cap = _capture(tmp_path / "new.duckdb", "2")
    with pytest.raises(CaptureError, match=r"capture format version '2', and this bsp reads version 1: it was "
                                           r"recorded by a newer bsp; replay it with that bsp or a newer one"):
        Capture(cap)
    res = CliRunner().invoke(app, ["replay", str(cap), "--config", str(tmp_path)])
    assert res.exit_code == 2 and "recorded by a newer bsp" in res.output, res.output


def test_a_table_set_without_a_format_version_is_not_a_capture(tmp_path):
    cap = _capture(tmp_path / "none.duckdb", None)
    with pytest.raises(CaptureError, match=r"capture_info has no format_version"):
        Capture(cap)
