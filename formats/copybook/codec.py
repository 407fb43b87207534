"""``CopybookCodec``: one record <-> dict, and ``iter_records`` for whole files."""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Iterator

from formats import ebcdic
from formats.copybook.decoder import build_decoder
from formats.copybook.encoder import Encoder, KeyCheck
from formats.copybook.encoder_gen import build_encoder
from formats.copybook.keys import assign_keys
from formats.copybook.layout import Layout, parse_copybook
from formats.copybook.options import CopybookOptions
from formats.copybook import renames
from formats.copybook.records import RECORD_FORMATS, frame_rdw, split_fixed, split_rdw
from formats.copybook.shortrec import ShortRecords
from formats.errors import FormatError


class CopybookCodec:
    """Decode / encode records described by a COBOL copybook.

    ``decode(bytes) -> dict`` / ``encode(dict) -> bytes`` handle ONE record
    (no RDW); with ``record`` rdw / rdw_le the record may be shorter than the
    copybook, as in ``iter_records`` (``formats.copybook.shortrec``).  ``iter_records(data_or_stream)`` yields ``(record_no, offset,
    values_or_FormatError)`` for a file in the configured ``record`` format.
    """

    def __init__(self, layout: Layout, options: CopybookOptions | None = None, *, name: str = "copybook",
                 record: str = "fixed", max_record: int = 1 << 20, rdw_includes_header: bool = True) -> None:
        if record not in RECORD_FORMATS:
            raise ValueError(f"record format {record!r}: expected one of {', '.join(RECORD_FORMATS)}")
        self.name = name
        self.layout = layout
        self.options = opts = options or CopybookOptions()
        page = opts.encoding.strip().lower().replace("_", "-")
        if page not in ("utf-8", "utf8"):
            try:
                ebcdic.canonical(page)
            except ebcdic.UnknownCodePage:      # the copybook codec takes utf-8 too: say so
                raise ebcdic.UnknownCodePage(f"unknown code page {opts.encoding!r}; expected one of "
                                             f"{', '.join(ebcdic.PAGES + ('utf-8',))}") from None
        self.record = "rdw" if record == "variable" else record
        self.max_record = max_record
        self.rdw_includes_header = rdw_includes_header
        assign_keys(layout, opts)
        self._decode, self.source = build_decoder(layout, opts)
        self._decode_fields = self._decode          # without the RENAMES views
        self._short: ShortRecords | None = None
        self._seg_slot = getattr(self._decode, "segment_slot", None)
        self._plain = getattr(self._decode, "plain", None)
        self._add_renames = None
        members: dict[str, set[str]] = {}
        for value, member in opts.segment_map.items():
            members.setdefault(member.upper().replace("_", "-"), set()).add(value)
        self._encoder = Encoder(layout, opts, members)
        self.size = layout.size
        # the generated encoder covers fixed-size layouts; variable tables and segment maps use the reference one
        self._encode_fast, self.encode_source = (None, "") if opts.variable_occurs or opts.segment_map else \
            build_encoder(layout, opts, self._encoder, self.size)
        views = renames.build_views(layout, opts)
        self._check_keys = KeyCheck(layout, opts)     # after build_views: RENAMES keys are known keys
        self._merge_renames = renames.encoder(views, self._field_bytes) if views else None
        if views:
            add, inner = renames.decoder(views), self._decode
            self._add_renames = add

            def decode_with_renames(raw: bytes) -> tuple[dict, int, list]:
                values, end, cnt = inner(raw)
                add(values)
                return values, end, cnt
            self._decode = decode_with_renames

    def _field_bytes(self, node: Any, value: Any) -> bytes | None:
        """``value`` as ``node``'s bytes, or None when it cannot be encoded."""
        try:
            return self._encoder.enc[id(node)](value)
        except (ValueError, TypeError, FormatError):
            return None

    @classmethod
    def from_file(cls, path: str | Path, options: CopybookOptions | None = None, *,
                  source_format: str = "fixed", **kw: Any) -> "CopybookCodec":
        p = Path(path)
        layout = parse_copybook(p.read_text(encoding="utf-8", errors="replace"), str(p), source_format)
        return cls(layout, options, **kw)

    @classmethod
    def from_text(cls, text: str, options: CopybookOptions | None = None, *, path: str | None = None,
                  source_format: str = "fixed", **kw: Any) -> "CopybookCodec":
        return cls(parse_copybook(text, path, source_format), options, **kw)

    # ------------------------------------------------------------ one record
    def _run(self, data: bytes) -> tuple[dict, int, list]:
        n = len(data)
        if self.options.variable_occurs:
            raw = data + bytes(self.size - n) if n < self.size else data
            try:
                values, end, cnt = self._decode(raw)
            except FormatError as exc:
                if n < self.size and exc.offset is not None and exc.offset >= n:
                    # the padding failed to decode, not the data: the record is too short
                    where = f" {exc.field}" if exc.field else ""
                    raise FormatError(f"record is {n} bytes and ends before field{where} "
                                      f"(at byte {exc.offset})", offset=n, field=exc.field,
                                      hint="the record is cut short, or its RDW length is wrong") from None
                raise
            if end > n:
                raise FormatError(f"record is {n} bytes but its tables need {end}", offset=n,
                                  hint="an OCCURS DEPENDING ON count is larger than the data holds")
            return values, end, cnt
        if n != self.size:
            raise FormatError(f"record is {n} bytes; the copybook describes {self.size}",
                              offset=min(n, self.size),
                              hint="check the copybook version and how records are split: a channel's"
                                   " framing (the frame holds one record), a file's record fixed / rdw")
        return self._decode(data)

    def decode(self, data: bytes) -> dict:
        plain = self._plain
        if plain is not None and len(data) == self.size:
            values = plain(data if data.__class__ is bytes else bytes(data))
            if self._add_renames is not None:
                self._add_renames(values)
            return values
        data = bytes(data)
        if self.record != "fixed" and not self.options.variable_occurs:
            return self._run_lenient_length(data)[0]    # one RDW record: it may stop before the copybook's end
        values, end, _ = self._run(data)
        if self.options.variable_occurs and end != len(data):
            raise FormatError(f"{len(data) - end} bytes left after the record's last field", offset=end)
        return values

    def encode(self, values: Any) -> bytes:
        if self._merge_renames is not None:
            values = self._merge_renames(values)
        self._check_keys(values)
        if self._encode_fast is not None:
            if not isinstance(values, dict):
                raise FormatError(f"a copybook record is encoded from a dict, not {type(values).__name__}")
            return self._encode_fast(values)
        return self._encoder.encode(values, self.size)

    # ------------------------------------------------------------ files
    def iter_records(self, source: bytes | bytearray | BinaryIO, *, strict: bool = False
                     ) -> Iterator[tuple[int, int, dict | FormatError]]:
        """Yield ``(record_no, byte_offset, values | FormatError)``, record_no from 1.

        A bad record yields its FormatError (with ``record`` set) and reading
        goes on; ``strict=True`` raises it instead.  Records whose segment
        field is not in ``segment_filter`` are skipped (numbering counts them).
        Framing errors (a torn RDW, a short tail) end the iteration: raised
        when strict, else yielded last.
        """
        filt = set(self.options.segment_filter)
        if self.record == "fixed" and self.options.variable_occurs:
            records = self._split_variable(source)
        elif self.record == "fixed":
            records = split_fixed(source, self.size)
        else:
            records = split_rdw(source, little=self.record == "rdw_le",
                                includes_header=self.rdw_includes_header, max_record=self.max_record)
        no = 0
        try:
            for offset, rec in records:
                no += 1
                try:
                    if self.record == "fixed":
                        values, _end, cnt = self._run(rec)
                    else:
                        values, _end, cnt = self._run_lenient_length(rec)
                except FormatError as exc:
                    exc.record = no
                    if exc.offset is not None:
                        exc.offset += offset
                    if strict:
                        raise
                    yield no, offset, exc
                    continue
                if filt and (self._seg_slot is None or _seg_text(cnt[self._seg_slot]) not in filt):
                    continue
                yield no, offset, values
        except FormatError as exc:
            if exc.record is None and exc.offset is not None and strict:
                raise
            if strict:
                raise
            exc.record = exc.record or no + 1
            yield no + 1, exc.offset or 0, exc

    def _run_lenient_length(self, rec: bytes) -> tuple[dict, int, list]:
        """An RDW record may be shorter than the copybook: fields past its end are absent (None);
        a field it ends inside is an error (``formats.copybook.shortrec``)."""
        if self.options.variable_occurs:
            return self._run(rec)
        n = len(rec)
        if n > self.size:
            if n == self.size + 4 and not self.rdw_includes_header:
                hint = ("the RDW lengths seem to count their own 4 bytes too (IBM): set rdw_includes_header"
                        " true (bsp decode/encode --rdw-includes-header)")
            else:
                hint = ("check that the copybook describes this file (bsp copybook layout prints its length)"
                        " and the RDW framing (record rdw / rdw_le, rdw_includes_header)")
            raise FormatError(f"record is {n} bytes; the copybook describes at most {self.size}",
                              offset=self.size, hint=hint)
        if n == self.size:
            return self._run(rec)
        short = self._short
        if short is None:
            short = self._short = ShortRecords(self.layout, self.options, self._encoder.enc, self._encoder.space,
                                               self.size)
        try:
            values, end, cnt = self._decode_fields(short.pad(rec))
        except FormatError as exc:
            if exc.offset is not None and exc.offset >= n and exc.field:
                raise FormatError(f"record is {n} bytes and ends before field {exc.field} "
                                  f"(at byte {exc.offset} of the record)", offset=n, field=exc.field,
                                  hint="the record is cut short, or its RDW length is wrong") from None
            raise
        short.absent(values, n)
        if self._add_renames is not None:
            self._add_renames(values)
        return values, end, cnt

    def _split_variable(self, source) -> Iterator[tuple[int, bytes]]:
        data = b"".join(_chunk for _chunk in ([source] if isinstance(source, (bytes, bytearray))
                                               else iter(lambda: source.read(1 << 20), b"")))
        pos = 0
        n = len(data)
        while pos < n:
            window = data[pos:pos + self.size]
            try:
                _v, end, _c = self._run(window)
            except FormatError as exc:
                if exc.offset is not None:
                    exc.offset += pos
                raise
            if end <= 0:
                raise FormatError("record of zero bytes", offset=pos)
            yield pos, data[pos:pos + end]
            pos += end

    def frame(self, record: bytes) -> bytes:
        """Add the RDW for ``record`` when the record format is rdw / rdw_le."""
        if self.record == "fixed":
            return record
        return frame_rdw(record, little=self.record == "rdw_le", includes_header=self.rdw_includes_header)


def _seg_text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)
