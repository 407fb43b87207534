"""``bsp copybook layout``: a copybook's record layout (offsets, lengths, PIC, USAGE, OCCURS, REDEFINES).

The layout printed is the one ``bsp decode --copybook`` decodes with: the codec is built by the same
``engine.codec_cli.make_setup`` from the same options, and ``formats.copybook.describe`` only reads
its ``Layout``.  Exit codes: 0 printed, 2 usage error (no such file, a copybook that does not parse).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from engine.commands.codec import (CollapseRoot, FillerNaming, KeepGroupFillers, KeepValueFillers, Name, Names,
                                   Route, SourceFmt, VarOccurs, _usage)

copybook_app = typer.Typer(help="COBOL copybooks: see a record's layout.", no_args_is_help=True,
                           rich_markup_mode="markdown")


def run_layout(file: Optional[Path], route: Optional[Path], name: Optional[str], *, as_json: bool,
               source_format: Optional[str], variable_occurs: bool, names: Optional[str],
               filler_naming: Optional[str], keep_value_fillers: bool, keep_group_fillers: bool,
               collapse_root: Optional[bool]) -> int:
    from engine.codec_cli import CodecArgs, UsageError, make_setup
    from formats.copybook import describe

    args = CodecArgs(copybook=file, route=route, name=name, source_format=source_format,
                     variable_occurs=variable_occurs or None, names=names, filler_naming=filler_naming,
                     keep_value_fillers=keep_value_fillers or None, keep_group_fillers=keep_group_fillers or None,
                     collapse_root=collapse_root)
    try:
        if file is None and route is None:
            raise UsageError("give the copybook: FILE.cpy, or --route FILE --name FORMAT",
                             "e.g. bsp copybook layout BILLPAY-REQ.cpy")
        if file is not None and route is not None:
            raise UsageError("FILE.cpy and --route contradict: the route file's format names its own copybook")
        if file is not None and not file.is_file():
            raise UsageError(f"{file}: no such file" if not file.exists() else f"{file}: not a file",
                             "give the copybook's path (a .cpy / .cob text file)")
        setup = make_setup(args)
        if setup.kind != "copybook":
            raise UsageError(f"format {name} in {route} is {setup.kind}, not copybook",
                             "bsp copybook layout shows copybook formats")
    except UsageError as exc:
        if exc.message.startswith("format copybook: "):      # the parse error already names file:line:col
            exc.message = exc.message[len("format copybook: "):]
        raise _usage(exc, "copybook layout")
    codec = setup.codec
    opts = codec.options
    if as_json:
        for row in describe.rows(codec.layout, opts.collapse_root, opts.variable_occurs):
            typer.echo(json.dumps(row))
        return 0
    shown = str(file) if file is not None else f"{route} format {name}"
    typer.echo(describe.table(codec.layout, shown, variable_occurs=opts.variable_occurs,
                              collapse_root=opts.collapse_root), nl=False)
    return 0


@copybook_app.command("layout")
def layout(
    file: Annotated[Optional[Path], typer.Argument(metavar="FILE.cpy", help="The copybook (or give --route and "
                                                   "--name).", show_default=False)] = None,
    route: Route = None, name: Name = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item (JSON lines), with its key in "
                                          "decoded values.")] = False,
    source_format: SourceFmt = None, variable_occurs: VarOccurs = False, names: Names = None,
    filler_naming: FillerNaming = None, keep_value_fillers: KeepValueFillers = False,
    keep_group_fillers: KeepGroupFillers = False, collapse_root: CollapseRoot = None,
) -> None:
    """Print a copybook's record layout: each item's level, name, PIC, USAGE, offset, position, length, OCCURS.

    Offsets are 0-based, POS and END 1-based (as mainframe listings count); an item inside an OCCURS
    table is placed in its first element; REDEFINES and OCCURS DEPENDING ON are noted, and a record
    whose tables vary says its smallest and largest length.  The layout is the one `bsp decode
    --copybook` uses with the same options.  Exit 0 printed; 2 usage error (no such file, or a copybook
    that does not parse: file:line:col and what was expected).
    """
    raise typer.Exit(run_layout(file, route, name, as_json=as_json, source_format=source_format,
                                variable_occurs=variable_occurs, names=names, filler_naming=filler_naming,
                                keep_value_fillers=keep_value_fillers, keep_group_fillers=keep_group_fillers,
                                collapse_root=collapse_root))


def register(app: typer.Typer) -> None:
    app.add_typer(copybook_app, name="copybook")
