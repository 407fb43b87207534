"""COBOL copybook records: parse a copybook, decode / encode its records.

    from formats.copybook import CopybookCodec, CopybookOptions
    codec = CopybookCodec.from_file("REQ.cpy", CopybookOptions(encoding="cp037"))
    values = codec.decode(record_bytes)
    for record_no, offset, values_or_error in codec.iter_records(open(path, "rb")): ...

The route component lives in ``formats.copybook.component`` (COMPONENT).
"""
from formats.copybook.codec import CopybookCodec
from formats.copybook.layout import parse_copybook
from formats.copybook.options import CopybookOptions

__all__ = ["CopybookCodec", "CopybookOptions", "parse_copybook"]
