"""An RDW file read with the wrong rdw_includes_header: the error says which setting fixes it.

cobrix test5's files hold RDWs that count only the data (the record is 64 bytes, the RDW says 64);
IBM's count their own 4 bytes too (68)."""
from __future__ import annotations

from pathlib import Path

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.copybook.records import frame_rdw, split_rdw
from formats.errors import FormatError

CASE = "cobrix_test5_multisegment_rdw_ebcdic"
BE = "rdw_big_endian/COMP.DETAILS.FEB02.DATA.RDW.BE.dat"
LE = "rdw_little_endian/COMP.DETAILS.SEP30.DATA.dat"


def _codec(corpus: Path, record: str, includes_header: bool) -> CopybookCodec:
    return CopybookCodec.from_file(corpus / "copybook" / CASE / "copybook.cob", CopybookOptions(),
                                   record=record, rdw_includes_header=includes_header)


def _first_error(codec: CopybookCodec, data: bytes) -> FormatError:
    return next(v for _no, _off, v in codec.iter_records(data) if isinstance(v, FormatError))


def test_data_length_rdws_read_as_ibm_say_rdw_includes_header_false(corpus: Path) -> None:
    for record, name in (("rdw", BE), ("rdw_le", LE)):
        data = (corpus / "copybook" / CASE / "input" / name).read_bytes()
        err = _first_error(_codec(corpus, record, True), data)
        assert (err.record, err.offset) == (2, 64)
        assert "rdw_includes_header false" in err.hint and "--rdw-excludes-header" in err.hint, err.hint
        # read as the file is written, every record frames
        assert not [v for *_x, v in _codec(corpus, record, False).iter_records(data) if isinstance(v, FormatError)]


def test_ibm_rdws_read_as_data_length_say_rdw_includes_header_true(corpus: Path) -> None:
    data = (corpus / "copybook" / CASE / "input" / BE).read_bytes()
    ibm = b"".join(frame_rdw(rec) for _off, rec in split_rdw(data, includes_header=False))
    err = _first_error(_codec(corpus, "rdw", False), ibm)
    assert err.record == 1 and "rdw_includes_header true" in err.hint, err.hint
    assert not [v for *_x, v in _codec(corpus, "rdw", True).iter_records(ibm) if isinstance(v, FormatError)]


def test_a_message_of_the_wrong_size_points_at_the_framing_too(corpus: Path) -> None:
    """A request on a tcp channel is one frame, not a file: the hint names the channel's framing."""
    d = corpus / "copybook" / "cobrix_test7_fillers"
    codec = CopybookCodec.from_file(d / "copybook.cob", CopybookOptions())
    rec = (d / "input" / "TEST.FILLERS.DEC07.DATA.dat").read_bytes()[:codec.size]
    for data in (rec + b"\x40" * 5, rec[:10]):
        try:
            codec.decode(data)
        except FormatError as exc:
            assert exc.offset == min(len(data), codec.size) and "framing" in exc.hint, exc.hint
        else:
            raise AssertionError("decoded a record of the wrong size")


def test_a_fixed_file_read_as_rdw_says_record_fixed(corpus: Path) -> None:
    d = corpus / "copybook" / "cobrix_test7_fillers"
    data = (d / "input" / "TEST.FILLERS.DEC07.DATA.dat").read_bytes()
    for record in ("rdw", "rdw_le"):
        codec = CopybookCodec.from_file(d / "copybook.cob", CopybookOptions(), record=record)
        err = _first_error(codec, data)
        assert (err.record, err.offset) == (1, 0)
        assert "read with record fixed" in err.hint, err.hint
