"""``bsp decode`` / ``bsp encode``: convert records between their bytes and JSON lines.

Exit codes: 0 every record converted, 1 a record was bad (each reported on
stderr with its record number, byte offset and field), 2 usage error.
The logic lives in ``engine.codec_cli``; this module is the typer surface.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, List, Optional

import typer
from typing_extensions import Annotated

from engine.commands.stdout import stdout_gone
from engine.defaults import CODEC_KINDS as KINDS

if TYPE_CHECKING:       # the codecs (and the route language's IR) load when a command runs, not for --help
    from engine.codec_cli import CodecArgs, Setup, UsageError
    from formats.errors import FormatError

PROGRESS_MIN_BYTES = 1 << 20     # files smaller than this decode without a progress display

_C = "Copybook options"
_I = "ISO 8583 / SWIFT / ISO 20022 options"
_O = "JSON / XML / CSV options"

# ---- options shared by both commands (Annotated aliases keep the two signatures short)
Format = Annotated[Optional[str], typer.Option("--format", "-f", metavar="KIND",
                                               help=f"Format kind: {', '.join(KINDS)}.")]
Copybook = Annotated[Optional[Path], typer.Option("--copybook", metavar="FILE.cpy",
                                                  help="COBOL copybook (implies --format copybook).")]
Route = Annotated[Optional[Path], typer.Option("--route", metavar="FILE.route",
                                               help="Take the format from this route file (with --name).")]
Name = Annotated[Optional[str], typer.Option("--name", metavar="FORMAT", help="Format declared in --route.")]
Encoding = Annotated[Optional[str], typer.Option("--encoding", help="Code page: cp037 (default), cp500, cp1047, "
                                                 "cp273, cp1140-cp1149, ascii, utf-8, common.",
                                                 rich_help_panel=_C)]
Record = Annotated[Optional[str], typer.Option("--record", help="File layout: fixed (default), rdw (big-endian "
                                               "RDW), rdw_le.", rich_help_panel=_C)]
RdwHeader = Annotated[Optional[bool], typer.Option("--rdw-includes-header/--rdw-excludes-header",
                                                   help="The RDW length counts its own 4 bytes (IBM, default).",
                                                   rich_help_panel=_C, show_default=False)]
MaxRecord = Annotated[Optional[int], typer.Option("--max-record", help="Largest RDW record, bytes.",
                                                  rich_help_panel=_C)]
SegField = Annotated[Optional[str], typer.Option("--segment-field", metavar="FIELD",
                                                 help="Field holding the segment id.", rich_help_panel=_C)]
Segment = Annotated[Optional[List[str]], typer.Option("--segment", metavar="VALUE=GROUP",
                                                      help="Decode only GROUP (a REDEFINES member) when the segment "
                                                           "field is VALUE; repeat.", rich_help_panel=_C)]
SegFilter = Annotated[Optional[List[str]], typer.Option("--segment-filter", metavar="VALUE",
                                                        help="Keep only records of this segment; repeat.",
                                                        rich_help_panel=_C)]
Trim = Annotated[Optional[str], typer.Option("--trim", help="Spaces stripped from text: none, left, right "
                                             "(default), both.", rich_help_panel=_C)]
Controls = Annotated[Optional[str], typer.Option("--controls", help="Control characters in text: keep, space.",
                                                 rich_help_panel=_C)]
FloatFmt = Annotated[Optional[str], typer.Option("--float-format", help="COMP-1/COMP-2: ibm (default), ieee.",
                                                 rich_help_panel=_C)]
Invalid = Annotated[Optional[str], typer.Option("--invalid", help="A malformed number: error (default) or null.",
                                                rich_help_panel=_C)]
LowValues = Annotated[Optional[bool], typer.Option("--low-values-null/--no-low-values-null",
                                                   help="All-X'00' fields decode to null (default on).",
                                                   rich_help_panel=_C, show_default=False)]
VarOccurs = Annotated[bool, typer.Option("--variable-occurs", help="OCCURS DEPENDING ON tables take only "
                                         "their actual size.", rich_help_panel=_C)]
OccursMapping = Annotated[Optional[List[str]], typer.Option("--occurs-mapping", metavar="TABLE:TEXT=COUNT",
                                                            help="OCCURS DEPENDING ON a non-numeric field: TABLE "
                                                                 "has COUNT elements when the field holds TEXT; "
                                                                 "repeat.", rich_help_panel=_C)]
KeepValueFillers = Annotated[bool, typer.Option("--keep-value-fillers", help="Output elementary FILLERs.",
                                                rich_help_panel=_C)]
KeepGroupFillers = Annotated[bool, typer.Option("--keep-group-fillers", help="Output FILLER groups.",
                                                rich_help_panel=_C)]
FillerNaming = Annotated[Optional[str], typer.Option("--filler-naming", help="Kept FILLER names: sequence, "
                                                     "previous.", rich_help_panel=_C)]
CollapseRoot = Annotated[Optional[bool], typer.Option("--collapse-root/--no-collapse-root",
                                                      help="A single 01's fields are top-level (default on).",
                                                      rich_help_panel=_C, show_default=False)]
Conditions = Annotated[Optional[bool], typer.Option("--conditions/--no-conditions",
                                                    help="A boolean per level-88 name (default on).",
                                                    rich_help_panel=_C, show_default=False)]
Names = Annotated[Optional[str], typer.Option("--names", help="Output names: keep (ACCOUNT_NO) or lower.",
                                              rich_help_panel=_C)]
SourceFmt = Annotated[Optional[str], typer.Option("--source-format", help="Copybook source: fixed (cols 8-72) "
                                                  "or free.", rich_help_panel=_C)]
Spec = Annotated[Optional[str], typer.Option("--spec", metavar="FILE|NAME",
                                             help="ISO 8583 network spec: .yaml, moov-io .json, or a built-in "
                                                  "name (iso8583_1987_ascii).", rich_help_panel=_I)]
Message = Annotated[Optional[str], typer.Option("--message", help="SWIFT: accept only this type (mt103). "
                                                "ISO 20022: pacs.008[.001.08].", rich_help_panel=_I)]
Statements = Annotated[bool, typer.Option("--statements", help="SWIFT: read MT940/MT942/MT950 statements (bank "
                                          ".sta exports or FIN messages; any other message is a bad record "
                                          "saying what it is), one statement per line (decode only); ISO 20022: one record per "
                                          "statement of a camt.053 (Stmt; camt.052 Rpt, camt.054 Ntfctn), each "
                                          "with the group header.", rich_help_panel=_I)]
CheckBalances = Annotated[bool, typer.Option("--check-balances", help="--statements (SWIFT, ISO 20022): each "
                                             "statement's opening balance plus its entries must equal the "
                                             "closing balance, and its opening balance the closing balance of "
                                             "the statement before it of the same account in the file.",
                                             rich_help_panel=_I)]
Xsd = Annotated[Optional[Path], typer.Option("--xsd", help="ISO 20022: the message's XSD.", rich_help_panel=_I)]
XsdDir = Annotated[Optional[Path], typer.Option("--xsd-dir", help="ISO 20022: folder searched for XSDs.",
                                                rich_help_panel=_I)]
Validate = Annotated[Optional[bool], typer.Option("--validate/--no-validate", help="ISO 8583: check contents and "
                                                  "message rules; ISO 20022: validate against the XSD "
                                                  "(default on).", rich_help_panel=_I,
                                                  show_default=False)]
Schema = Annotated[Optional[Path], typer.Option("--schema", help="JSON Schema validated on each message.",
                                                rich_help_panel=_O)]
Lists = Annotated[Optional[List[str]], typer.Option("--lists", metavar="ELEMENT",
                                                    help="XML element always read as a list; repeat.",
                                                    rich_help_panel=_O)]
Delimiter = Annotated[Optional[str], typer.Option("--delimiter", help="CSV column separator.", rich_help_panel=_O)]
Header = Annotated[Optional[bool], typer.Option("--header/--no-header", help="CSV: first row names the columns "
                                                "(default on).", rich_help_panel=_O, show_default=False)]
Framing = Annotated[Optional[str], typer.Option("--framing", help="Messages in the file (iso8583, json, xml, "
                                                "fixed): none (the file is one message), lines, length2, length4.")]
Classify = Annotated[Optional[List[str]], typer.Option("--classify", metavar="PATH:TAG",
                                                       help="Tag a field pan, secret or personal (for --mask); "
                                                            "repeat.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first bad record.")]
EncodeStrict = Annotated[bool, typer.Option("--strict", help="Stop at the first bad line and write nothing: -o FILE is written to a temporary file renamed into place only when every line encoded.")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")]


def _args(**kw: Any) -> CodecArgs:
    from engine.codec_cli import CodecArgs

    return CodecArgs(**{k: v for k, v in kw.items() if v is not None})


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _usage(exc: UsageError, command: str) -> "typer.Exit":
    _err(f"bsp {command}: error: {exc.message}")
    if exc.hint:
        _err(f"  hint: {exc.hint}")
    return typer.Exit(2)


def describe(exc: FormatError, what: str = "record") -> str:
    """``record 3, byte 128, field AMOUNT: message`` (+ hint on the next line)."""
    where = []
    if exc.record is not None:
        where.append(f"{what} {exc.record}")
    if exc.offset is not None:
        where.append(f"byte {exc.offset}")
    if exc.field:
        where.append(f"field {exc.field}")
    text = (", ".join(where) + ": " if where else "") + exc.message
    if exc.hint:
        text += f"\n  hint: {exc.hint}"
    return text


def describe_encode(exc: FormatError, written: int | None, header: int | None, line: bytes | None = None) -> str:
    """``line 2, column 31 (input byte 78), field NOTE, record byte 14 (output byte 62): message``: the
    JSON line, the column of the field's key in it (``line``: the line's bytes; an unknown key too, which
    has no place in the record) and the input byte there (else where the line starts), the field, and
    where the field goes in the record and in the output (``written`` bytes so far, ``header`` bytes of
    framing before each record), when known."""
    from engine.json_where import where as key_at

    off = getattr(exc, "input_offset", None)
    if off is None:                              # a line that is no JSON: where it is in the input
        return describe(exc, "line")
    at = key_at(line, exc.field) if line is not None else None
    where = [f"line {exc.record} (input byte {off})" if at is None
             else f"line {exc.record}, column {at[0]} (input byte {off + at[1]})"]
    if exc.field:
        where.append(f"field {exc.field}")
    if exc.offset is not None:
        out = (f" (output byte {written + header + exc.offset})"
               if written is not None and header is not None else "")
        where.append(f"record byte {exc.offset}{out}")
    text = ", ".join(where) + ": " + exc.message
    if exc.hint:
        text += f"\n  hint: {exc.hint}"
    return text


def _open_input(data: Optional[str], command: str) -> tuple[BinaryIO, str, int | None]:
    from engine.codec_cli import UsageError

    if data in (None, "-"):
        return typer.get_binary_stream("stdin"), "<stdin>", None
    p = Path(data)
    if not (p.is_file() or p.is_fifo()):      # a pipe too: bsp encode <(producer)
        raise UsageError(f"{data}: no such file" if not p.exists() else f"{data}: not a file",
                         f"give a data file, or '-' to read standard input (bsp {command} --help)")
    return open(p, "rb"), data, (p.stat().st_size if p.is_file() else None)


class _Counting:
    """Wraps a binary stream, counting bytes read (for progress)."""

    def __init__(self, raw: BinaryIO, progress: "Progress") -> None:
        self.raw = raw
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        b = self.raw.read(n)
        self.progress.advance(len(b))
        return b


class Progress:
    """Progress on stderr: a rich bar on a terminal; with --progress elsewhere, a line per 10%."""

    def __init__(self, total: int | None, mode: Optional[bool], label: str) -> None:
        tty = sys.stderr.isatty()
        on = mode if mode is not None else (tty and total is not None and total >= PROGRESS_MIN_BYTES)
        self.total = total
        self.done = 0
        self.label = label
        self.bar = None
        self.next_tenth = 1
        self.plain = bool(on) and not tty and total
        if on and tty and total:
            from rich.progress import BarColumn, DownloadColumn, Progress as Bar, TimeRemainingColumn
            from rich.console import Console
            self.bar = Bar("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                           TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif self.plain:
            while self.next_tenth <= 10 and self.done * 10 >= self.total * self.next_tenth:  # type: ignore[operator]
                _err(f"{self.label}: {self.next_tenth * 10}% ({self.done} of {self.total} bytes)")
                self.next_tenth += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _sink(output: Optional[Path]) -> BinaryIO:
    from engine.codec_cli import UsageError

    if output is None:
        return typer.get_binary_stream("stdout")
    try:
        return open(output, "wb")
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror}") from None


def run_decode(data: Optional[str], args: CodecArgs, *, strict: bool, do_mask: bool, output: Optional[Path],
               progress: Optional[bool], quiet: bool) -> int:
    from engine.codec_cli import UsageError, decode_records, make_setup, to_json_line
    from formats.classify import mask
    from formats.errors import FormatError

    try:
        setup = make_setup(args)
        stream, shown, size = _open_input(data, "decode")
        out = _sink(output)
    except UsageError as exc:
        raise _usage(exc, "decode")
    tags = setup.tags if do_mask else {}
    if do_mask and not tags:
        _err("bsp decode: warning: --mask given but no field of this format is classified "
             "(add --classify PATH:TAG)")
    bar = Progress(size, progress, f"decode {shown}")
    source: Any = _Counting(stream, bar) if setup.kind == "copybook" else stream
    good = bad = 0
    try:
        if setup.kind != "copybook":
            source = stream.read()
            bar.advance(len(source))
        for _no, _off, value in decode_records(setup, source):
            if isinstance(value, FormatError):
                bad += 1
                _err(f"{shown}: {describe(value)}")
                if strict or getattr(value, "fatal", False):
                    if strict:
                        _err("bsp decode: stopped at the first bad record (--strict)")
                    break
                continue
            good += 1
            out.write(to_json_line(mask(value, tags) if tags else value) + b"\n")
    except FormatError as exc:     # a codec that could not even start reading the file
        bad += 1
        _err(f"{shown}: {describe(exc)}")
    except BrokenPipeError:        # `bsp decode ... | head`: the reader has all it wants
        bar.close()
        stdout_gone()
        return 1 if bad else 0     # the records read so far: a bad one is still reported by the exit code
    finally:
        bar.close()
        try:
            out.flush()
        except BrokenPipeError:
            pass
        if output is not None:
            out.close()
        if stream is not typer.get_binary_stream("stdin"):
            stream.close()
    if not quiet:
        _err(f"bsp decode: {good} record{'s' if good != 1 else ''} decoded, {bad} bad")
    return 1 if bad else 0


def _json_lines(stream: BinaryIO, keep: dict[int, bytes] | None = None) -> Iterator[tuple[int, int, Any]]:
    """(line_no, byte offset, values | FormatError) per non-blank line; ``keep``: each line's bytes by its
    number (the caller drops those it no longer needs), for an error to name a field's column."""
    from formats import json_codec
    from formats.errors import FormatError

    offset = 0
    for no, line in enumerate(stream, 1):
        body = line.strip()
        if body:
            if keep is not None:
                keep[no] = line.rstrip(b"\r\n")
            try:
                yield no, offset, json_codec.loads(body)
            except FormatError as exc:
                exc.record = no
                exc.offset = offset + (exc.offset or 0)
                exc.hint = exc.hint or "bsp encode reads one JSON document per line (what bsp decode writes)"
                yield no, offset, exc
        offset += len(line)


class _EncodeSink:
    """Where ``bsp encode`` writes, record by record.

    Without --strict: straight to ``-o FILE`` (or stdout).  With --strict nothing partial may be
    left: ``-o FILE`` is written as a hidden temporary file beside it and renamed into place only
    when every line encoded (removed otherwise); stdout is spooled to a temporary file (on disk past
    8 MiB) and copied out only on success."""

    def __init__(self, output: Optional[Path], strict: bool) -> None:
        from engine.codec_cli import UsageError

        self.output = output
        self.strict = strict
        self.tmp: Optional[Path] = None
        if output is None:
            self.out: BinaryIO = (tempfile.SpooledTemporaryFile(max_size=8 << 20) if strict  # type: ignore[assignment]
                                  else typer.get_binary_stream("stdout"))
            return
        target = Path(output)
        if strict:
            self.tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            self.out = open(self.tmp or target, "wb")
        except OSError as exc:
            raise UsageError(f"--output {output}: {exc.strerror}") from None

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def commit(self) -> None:
        if self.output is None:
            if self.strict:                       # the spool, copied to stdout now that all went well
                stdout = typer.get_binary_stream("stdout")
                self.out.seek(0)
                shutil.copyfileobj(self.out, stdout, 1 << 20)
                self.out.close()
                stdout.flush()
            else:
                self.out.flush()
            return
        self.out.flush()
        if self.tmp is not None:
            os.fsync(self.out.fileno())
        self.out.close()
        if self.tmp is not None:
            os.replace(self.tmp, self.output)

    def discard(self) -> None:
        if self.output is None and not self.strict:
            self.out.flush()                      # stdout: what was written stays written
        else:
            self.out.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def run_encode(data: Optional[str], args: CodecArgs, *, strict: bool, output: Optional[Path], quiet: bool) -> int:
    """Streams: one JSON line is read, encoded and written before the next is read (csv and swift
    batches, whose file wraps all records, are the exceptions: they gather their rows first)."""
    from engine.codec_cli import UsageError, check_encodable, encode_records, frame_header, make_setup
    from formats.errors import FormatError

    try:
        setup: Setup = make_setup(args)
        check_encodable(setup)
        stream, shown, _size = _open_input(data, "encode")
        sink = _EncodeSink(output, strict)
    except UsageError as exc:
        raise _usage(exc, "encode")
    counts = {"lines": 0, "bad": 0}
    # the JSON lines an error may still be reported on (the column of its field): the line being encoded,
    # or every line of a csv / swift batch, whose rows are gathered before they are encoded anyway
    lines: dict[int, bytes] = {}
    batch = setup.kind in ("csv", "swift")

    def readable() -> Iterator[tuple[int, int, Any]]:
        for no, off, v in _json_lines(stream, lines):
            if not batch:
                for old in [k for k in lines if k != no]:
                    del lines[old]
            if isinstance(v, FormatError):
                counts["bad"] += 1
                _err(f"{shown}: {describe(v, 'line')}")
                if strict:
                    return
                continue
            counts["lines"] += 1
            yield no, off, v

    refused = 0
    ok = False
    header = frame_header(setup)
    written = 0
    try:
        for no, _off, res in encode_records(setup, readable()):
            if isinstance(res, FormatError):
                refused += 1
                _err(f"{shown}: {describe_encode(res, written, header, lines.get(no))}")
                if strict:
                    break
                continue
            sink.write(res)
            written += len(res)
            if strict and counts["bad"]:
                break
        ok = not (strict and (refused or counts["bad"]))
    finally:
        if stream is not typer.get_binary_stream("stdin"):
            stream.close()
        if ok:
            sink.commit()
        else:
            sink.discard()
    bad = counts["bad"] + refused
    if strict and bad:
        _err("bsp encode: stopped at the first bad line (--strict); nothing written")
        return 1
    good = counts["lines"] - refused
    if not quiet:
        _err(f"bsp encode: {good} record{'s' if good != 1 else ''} encoded, {bad} bad")
    return 1 if bad else 0


def register(app: typer.Typer) -> None:
    @app.command("decode")
    def decode(
        data: Annotated[Optional[str], typer.Argument(metavar="[DATA|-]", help="Data file; '-' or nothing "
                                                      "reads standard input.")] = None,
        format: Format = None, copybook: Copybook = None, route: Route = None, name: Name = None,
        encoding: Encoding = None, record: Record = None, rdw_includes_header: RdwHeader = None,
        max_record: MaxRecord = None, segment_field: SegField = None, segment: Segment = None,
        segment_filter: SegFilter = None, trim: Trim = None, controls: Controls = None,
        float_format: FloatFmt = None, invalid: Invalid = None, low_values_null: LowValues = None,
        variable_occurs: VarOccurs = False, occurs_mapping: OccursMapping = None,
        keep_value_fillers: KeepValueFillers = False,
        keep_group_fillers: KeepGroupFillers = False, filler_naming: FillerNaming = None,
        collapse_root: CollapseRoot = None, conditions: Conditions = None, names: Names = None,
        source_format: SourceFmt = None, spec: Spec = None, message: Message = None,
        statements: Statements = False, check_balances: CheckBalances = False, xsd: Xsd = None,
        xsd_dir: XsdDir = None, validate: Validate = None, schema: Schema = None, lists: Lists = None, delimiter: Delimiter = None, header: Header = None,
        framing: Framing = None, classify: Classify = None, strict: Strict = False,
        mask_: Annotated[bool, typer.Option("--mask", help="Show classified fields masked (PAN 6+4, secret `***`, "
                                            "personal `J***`).")] = False,
        output: Output = None,
        progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress on stderr "
                                                         "(default: a bar on a terminal for files over 1 MiB).",
                                                         show_default=False)] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line on stderr.")] = False,
    ) -> None:
        """Decode records (a file or stdin) to JSON lines, one per record or message.

        Exit 0 all records decoded; 1 some record was bad (each reported on stderr with record number, byte
        offset and field; decoding goes on unless --strict); 2 usage error.
        """
        kw = dict(locals())
        from engine.codec_cli import CodecArgs

        opts = {k: kw[k] for k in CodecArgs.__dataclass_fields__ if k in kw}
        raise typer.Exit(run_decode(data, _args(**opts), strict=strict, do_mask=mask_, output=output,
                                    progress=progress, quiet=quiet))

    @app.command("encode")
    def encode(
        data: Annotated[Optional[str], typer.Argument(metavar="[JSONL|-]", help="JSON lines file; '-' or "
                                                      "nothing reads standard input.")] = None,
        format: Format = None, copybook: Copybook = None, route: Route = None, name: Name = None,
        encoding: Encoding = None, record: Record = None, rdw_includes_header: RdwHeader = None,
        max_record: MaxRecord = None, segment_field: SegField = None, segment: Segment = None,
        trim: Trim = None, controls: Controls = None, float_format: FloatFmt = None, invalid: Invalid = None,
        low_values_null: LowValues = None, variable_occurs: VarOccurs = False,
        occurs_mapping: OccursMapping = None,
        keep_value_fillers: KeepValueFillers = False, keep_group_fillers: KeepGroupFillers = False,
        filler_naming: FillerNaming = None, collapse_root: CollapseRoot = None, conditions: Conditions = None,
        names: Names = None, source_format: SourceFmt = None, spec: Spec = None, message: Message = None,
        statements: Statements = False, xsd: Xsd = None, xsd_dir: XsdDir = None, validate: Validate = None, schema: Schema = None,
        lists: Lists = None, delimiter: Delimiter = None, header: Header = None, framing: Framing = None,
        strict: EncodeStrict = False, output: Output = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line on stderr.")] = False,
    ) -> None:
        """Encode JSON lines (what bsp decode writes) back to records; writes the bytes to stdout or -o.

        Records are concatenated, with RDW (--record rdw|rdw_le) or length prefixes (--framing) added.
        Streams: each line is encoded and written before the next is read (CSV and SWIFT batches gather theirs).
        Exit 0 all lines encoded; 1 some line was bad (reported with its line number and field); 2 usage error.
        """
        kw = dict(locals())
        from engine.codec_cli import CodecArgs

        opts = {k: kw[k] for k in CodecArgs.__dataclass_fields__ if k in kw}
        raise typer.Exit(run_encode(data, _args(**opts), strict=strict, output=output, quiet=quiet))
