"""`file watch` with record = rdw / rdw_le reads RDW files whose lengths count only the data
(`rdw_includes_header = false`, as the copybook format's option of that name): the corpus test5 files,
through a real channel in tmp_path.  Read with the wrong setting, the reason names the option and the
value to try."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio

from formats.batchfile import split_records
from kit import compile_text, running

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "copybook"
CASE = CORPUS / "cobrix_test5_multisegment_rdw_ebcdic"
FILES = {"rdw": "rdw_big_endian/COMP.DETAILS.FEB02.DATA.RDW.BE.dat",
         "rdw_le": "rdw_little_endian/COMP.DETAILS.SEP30.DATA.dat"}

pytestmark = pytest.mark.skipif(not CASE.exists(), reason=f"conformance corpus not found at {CORPUS}")

ROUTE = '''
format Company = copybook "company.cob" encoding cp037 record %s
format Out = csv header false {
    record  integer
    offset  integer
    segment string
    id      string
}
format Written = json

channel inbox = file watch {
    dir     = "in"
    pattern = "*.dat"
    record  = "%s"
    %s
}
channel outbox = file write {
    dir  = "out"
    name = "R-{date}.csv"
    mode = "append"
}
route r {
    receive from inbox as Company
    call w = outbox as Out reply Written {
        record  = file.record
        offset  = file.offset
        segment = msg.SEGMENT_ID
        id      = msg.COMPANY_ID
    }
}
'''


async def run_file(tmp_path: Path, kind: str, option: str) -> Path:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    shutil.copy(CASE / "copybook.cob", tmp_path / "company.cob")
    prog = compile_text(tmp_path, ROUTE % (kind, kind, option))
    shutil.copy(CASE / "input" / FILES[kind], inbox / "T5.dat")
    async with running(prog, tmp_path / "l.duckdb"):
        with trio.fail_after(60):
            while not ((inbox / "done" / "T5.dat").exists() or (inbox / "error" / "T5.dat").exists()):
                await trio.sleep(0.05)
    return inbox


@pytest.mark.parametrize("kind", ["rdw", "rdw_le"])
async def test_data_length_rdws_are_read_with_rdw_includes_header_false(tmp_path: Path, kind: str) -> None:
    data = (CASE / "input" / FILES[kind]).read_bytes()
    want = split_records(data, kind, rdw_includes_header=False)
    inbox = await run_file(tmp_path, kind, "rdw_includes_header = false")
    assert (inbox / "done" / "T5.dat").exists(), (inbox / "error" / "T5.dat.reason.txt").read_text()
    lines = [ln.split(",") for p in (tmp_path / "out").iterdir() for ln in p.read_text().splitlines()]
    assert len(lines) == len(want) == 1000
    first = lines[0] if lines[0][0] == "1" else min(lines, key=lambda r: int(r[0]))
    assert first[:2] == ["1", "0"] and first[2].startswith("C") and first[3] == "9377942526"   # as upstream reads it
    assert sorted(int(r[1]) for r in lines) == [off for off, _rec in want]   # each record at its RDW's offset


@pytest.mark.parametrize("kind", ["rdw", "rdw_le"])
async def test_the_wrong_setting_names_the_option_and_value_to_try(tmp_path: Path, kind: str) -> None:
    inbox = await run_file(tmp_path, kind, "")
    text = (inbox / "error" / "T5.dat.reason.txt").read_text()
    assert f"record 2, byte offset 64: cannot split the file into {kind} records" in text, text
    assert "set rdw_includes_header = false on the file watch channel" in text, text
