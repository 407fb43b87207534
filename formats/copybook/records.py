"""Splitting a file into records: fixed length, RDW (big / little endian).

RDW: each record is preceded by a 4-byte Record Descriptor Word.  Big-endian
(the mainframe): bytes 0-1 hold the length, bytes 2-3 are zero.  In a spanned
file (RECFM=VBS) byte 2 is the segment control code (1 first, 2 last, 3 middle
segment of a record): such files are refused, not read as separate records,
and so is any other non-zero value in the two reserved bytes.  Little-endian
(``rdw_le``, the word written byte-reversed): bytes 0-1 are zero, bytes 2-3
hold the length low byte first.  ``rdw_includes_header`` says whether the
length counts the 4 RDW bytes (IBM: yes); ``max_record`` bounds memory.
"""
from __future__ import annotations

from typing import BinaryIO, Iterator

from formats.errors import FormatError

RECORD_FORMATS = ("fixed", "rdw", "rdw_le", "variable")


def _chunks(source: bytes | bytearray | memoryview | BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    while True:
        b = source.read(size)
        if not b:
            return
        yield b


def split_fixed(source, length: int) -> Iterator[tuple[int, bytes]]:
    """(offset, record) for every ``length``-byte record; a short tail is an error."""
    if length <= 0:
        raise ValueError("record length must be positive")
    buf = b""
    base = 0
    for chunk in _chunks(source):
        buf += chunk
        n = len(buf) // length * length
        for i in range(0, n, length):
            yield base + i, buf[i:i + length]
        base += n
        buf = buf[n:]
    if buf:
        raise FormatError(f"file ends with {len(buf)} bytes, less than one {length}-byte record", offset=base,
                          hint="check the copybook matches the file (record length) or use record rdw")


def split_rdw(source, little: bool = False, includes_header: bool = True,
              max_record: int = 1 << 20, setting: str = "cli") -> Iterator[tuple[int, bytes]]:
    """(offset of the record data, record) per RDW-framed record.  ``setting`` words the hints for
    where the reader is set: ``cli`` (``bsp decode`` options and the copybook format's options) or
    ``channel`` (a ``file watch`` channel's options)."""
    buf = b""
    base = 0
    order = "little" if little else "big"
    adj = 4 if includes_header else 0
    for chunk in _chunks(source):
        buf += chunk
        i = 0
        while len(buf) - i >= 4:
            hdr = buf[i:i + 4]
            length = int.from_bytes(hdr[2:4] if little else hdr[:2], order) - adj
            if length < 0 or length > max_record:
                raise FormatError(f"RDW at byte {base + i} gives record length {length + adj}"
                                  f" (allowed {adj}..{max_record + adj})", offset=base + i,
                                  hint=_header_hint(buf, i, little, includes_header, max_record, base, setting) or
                                  "wrong RDW endianness? try record rdw_le / rdw, or raise max_record")
            reserved = hdr[:2] if little else hdr[2:4]
            if reserved != b"\0\0":
                raise FormatError(_reserved_message(reserved, little), offset=base + i,
                                  hint=_header_hint(buf, i, little, includes_header, max_record, base, setting) or
                                  "a spanned file must be reassembled first (e.g. copied to RECFM=VB on "
                                  "the mainframe); or the RDW byte order is wrong (record rdw / rdw_le)")
            if len(buf) - i - 4 < length:
                break
            yield base + i + 4, buf[i + 4:i + 4 + length]
            i += 4 + length
        base += i
        buf = buf[i:]
    if buf:
        raise FormatError(f"file ends inside a record: {len(buf)} bytes after the last complete record",
                          offset=base)


def _header_hint(buf: bytes, i: int, little: bool, includes_header: bool, max_record: int,
                 base: int = 0, setting: str = "cli") -> str | None:
    """The RDW the previous record's length pointed to is bad, but a good one sits 4 bytes after it
    (the RDW counts only the data) or 4 bytes before it (it counts its own 4 bytes too)."""
    if i == 0:
        if base == 0 and buf[:4].strip(b"\x00") and not (buf[:2] == b"\0\0" or buf[2:4] == b"\0\0"):
            return ("the file's first 4 bytes are no RDW (neither half is zero): a file without RDWs is"
                    + (" read with record = \"fixed\" and record_size on the channel" if setting == "channel"
                       else " read with record fixed (bsp decode without --record)"))
        return None
    j = i + 4 if includes_header else i - 4
    hdr = buf[j:j + 4]
    if j < 0 or len(hdr) < 4 or (hdr[:2] if little else hdr[2:4]) != b"\0\0":
        return None
    n = int.from_bytes(hdr[2:4] if little else hdr[:2], "little" if little else "big")
    if not (4 if includes_header else 0) < n <= max_record + 4:
        return None
    if setting == "channel":
        fix = (f" set rdw_includes_header = {'false' if includes_header else 'true'} on the file watch channel")
    else:
        fix = (f" set rdw_includes_header {'false' if includes_header else 'true'} (bsp decode/encode "
               f"--rdw-{'excludes' if includes_header else 'includes'}-header)")
    if includes_header:
        return "the RDW lengths seem to count only the data, not the RDW's own 4 bytes:" + fix
    return "the RDW lengths seem to count their own 4 bytes too (IBM):" + fix


def _reserved_message(reserved: bytes, little: bool) -> str:
    where = "bytes 0-1" if little else "bytes 2-3"
    code = reserved[1] if little else reserved[0]    # the segment control code, as the word is written
    shown = f"X'{reserved.hex().upper()}'"
    if code in (1, 2, 3) and (reserved[0] if little else reserved[1]) == 0:
        return f"RDW {where} are {shown}: spanned record segments (RECFM=VBS) are not supported"
    return f"RDW {where} are {shown}, expected X'0000' (reserved)"


def frame_rdw(record: bytes, little: bool = False, includes_header: bool = True) -> bytes:
    n = len(record) + (4 if includes_header else 0)
    if n > 0xFFFF:
        raise FormatError(f"record of {len(record)} bytes is too long for an RDW")
    if little:
        return b"\0\0" + n.to_bytes(2, "little") + record
    return n.to_bytes(2, "big") + b"\0\0" + record
