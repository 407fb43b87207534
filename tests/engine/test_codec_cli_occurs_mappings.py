"""OCCURS DEPENDING ON a PIC X counter (cobrix test25) from the command line and a route file.

Until 2026-11-27 `occurs_mappings` was Python-only: the decode error's hint named an option that
neither `bsp decode` nor a route's `format` could take."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.commands.codec import register

REPO = Path(__file__).resolve().parents[2]
CASE = (REPO / ".." / "shared" / "corpus" / "copybook" / "cobrix_test25_occurs_mappings").resolve()
pytestmark = pytest.mark.skipif(not CASE.is_dir(), reason=f"corpus not found at {CASE}")
MAPS = ["DETAIL1:A=0", "DETAIL1:B=1", "DETAIL2:A=1", "DETAIL2:B=2"]


def bsp(*args, input: bytes | None = None):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def expected() -> list:
    return [json.loads(x, parse_float=Decimal) for x in (CASE / "expected" / "test25.txt").read_text().splitlines()
            if x.strip()]


@pytest.mark.parametrize("data,variable", [("data.dat", True), ("data2.dat", False)])
def test_occurs_mapping_options_read_test25_as_cobrix(data: str, variable: bool) -> None:
    flags = [f for m in MAPS for f in ("--occurs-mapping", m)] + (["--variable-occurs"] if variable else [])
    r = bsp("decode", "--copybook", CASE / "copybook.cob", "--encoding", "ascii", "--no-collapse-root", *flags,
            CASE / "input" / data)
    assert r.exit_code == 0, r.stderr
    got = [json.loads(x, parse_float=Decimal) for x in r.stdout.splitlines() if x.strip()]
    assert got == expected()
    back = bsp("encode", "--copybook", CASE / "copybook.cob", "--encoding", "ascii", "--no-collapse-root", *flags,
               input=r.stdout.encode())
    assert back.exit_code == 0, back.stderr
    assert back.stdout_bytes == (CASE / "input" / data).read_bytes()


def test_a_route_format_takes_occurs_mappings(tmp_path: Path) -> None:
    route = tmp_path / "t25.route"
    route.write_text(f'format T25 = copybook "{CASE / "copybook.cob"}" encoding ascii variable_occurs true\n'
                     f'    collapse_root false occurs_mappings {json.dumps(MAPS)}\n')
    r = bsp("decode", "--route", route, "--name", "T25", CASE / "input" / "data.dat")
    assert r.exit_code == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == expected()


def test_without_mappings_the_hint_names_the_options_that_exist() -> None:
    r = bsp("decode", "--copybook", CASE / "copybook.cob", "--encoding", "ascii", "--variable-occurs",
            CASE / "input" / "data.dat")
    assert r.exit_code == 1
    assert "record 1, byte 2, field DATA.DETAIL1[]: DEPENDING ON FIELD is 'A', not a whole number" in r.stderr
    assert "--occurs-mapping DETAIL1:TEXT=COUNT" in r.stderr and 'occurs_mappings ["DETAIL1:TEXT=COUNT"' in r.stderr
    bad = bsp("decode", "--copybook", CASE / "copybook.cob", "--occurs-mapping", "DETAIL1=A", CASE / "input" / "data.dat")
    assert bad.exit_code == 2 and "expected TABLE:TEXT=COUNT" in bad.stderr
