"""Write a ``Report`` in one of the export formats; ``FORMATS`` lists them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from engine import filemodes
from engine.defaults import REPORT_FORMATS
from engine.reports.html import write_html
from engine.reports.jsondoc import write_json
from engine.reports.model import Report, ReportError
from engine.reports.tabular import side_paths, write_csv, write_parquet
from engine.reports.xlsx import write_xlsx

WRITERS: dict[str, Callable[[Report, Path], list[Path]]] = {
    "csv": write_csv, "parquet": write_parquet, "xlsx": write_xlsx, "html": write_html, "json": write_json,
}
FORMATS = REPORT_FORMATS       # the order --help lists them in (engine/defaults.py)
if tuple(WRITERS) != FORMATS:
    raise ImportError(f"engine.defaults.REPORT_FORMATS {FORMATS} and the writers {tuple(WRITERS)} differ")


def planned(report: Report, fmt: str, out: Path) -> list[Path]:
    """The files ``write`` would write: ``out``, and for CSV / Parquet the other tables beside it."""
    return [p for _, p in side_paths(out, report)] if fmt in ("csv", "parquet") else [out]


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(paths: Iterable[Path], inputs: Iterable[str | Path]) -> None:
    """A ``ReportError`` when an output path is one of the ``inputs`` (the ledger with its ``.wal``, the
    statement): writing the report there would destroy what it was made from."""
    for given in inputs:
        src = Path(given)
        for kept, what in ((src, "the file the report was made from"),
                           (src.with_name(src.name + ".wal"), "the ledger's write-ahead log")):
            for path in paths:
                if _same(path, kept) or path.resolve() == kept.resolve():
                    raise ReportError(f"--out {path}: that is {kept}, {what}; writing there would replace it. "
                                      f"Choose another file name")


def write(report: Report, fmt: str, out: str | Path, *, inputs: Iterable[str | Path] = ()) -> list[Path]:
    """Write ``report`` as ``fmt`` to ``out`` (and side files for CSV/Parquet); return the paths written.
    An existing file of that name is replaced, but never one of ``inputs`` (the ledger, the statement)."""
    if fmt not in WRITERS:
        raise ReportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ReportError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another path")
    try:
        for path in planned(report, fmt, out):
            if path.is_dir() and path == out:
                raise ReportError(f"--out {out}: that is a folder; give a file name in it, e.g. "
                                  f"{out / (report.name + '.' + fmt)}")
            if path.is_dir():
                raise ReportError(f"--out {out}: the file beside it for another table, {path}, is a folder; "
                                  f"choose another name")
        refuse_inputs(planned(report, fmt, out), inputs)
        filemodes.tighten(out)                       # a report of that name already there: narrowed before
        with filemodes.private():                    # owner-only (0600) whatever the umask: deal figures
            paths = WRITERS[fmt](report, out)
    except OSError as exc:                       # no permission, disk full ...: a usage error, not a crash
        where = exc.filename or out
        raise ReportError(f"--out {out}: cannot write {where}: {exc.strerror or exc}; choose another path "
                          f"(a folder you can write to, a shorter name)") from None
    for path in paths:
        os.chmod(path, filemodes.FILE)           # also a file of that name that was there before
    return paths


__all__ = ["FORMATS", "WRITERS", "planned", "refuse_inputs", "write"]
