"""Write a ``Report`` in one of the export formats; ``FORMATS`` lists them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from engine import filemodes
from engine.defaults import REPORT_FORMATS
from engine.reports.html import write_html
from engine.reports.model import Report, ReportError
from engine.reports.tabular import write_csv, write_parquet
from engine.reports.xlsx import write_xlsx

WRITERS: dict[str, Callable[[Report, Path], list[Path]]] = {
    "csv": write_csv, "parquet": write_parquet, "xlsx": write_xlsx, "html": write_html,
}
FORMATS = REPORT_FORMATS       # the order --help lists them in (engine/defaults.py)
if tuple(WRITERS) != FORMATS:
    raise ImportError(f"engine.defaults.REPORT_FORMATS {FORMATS} and the writers {tuple(WRITERS)} differ")


def write(report: Report, fmt: str, out: str | Path) -> list[Path]:
    """Write ``report`` as ``fmt`` to ``out`` (and side files for CSV/Parquet); return the paths written."""
    if fmt not in WRITERS:
        raise ReportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ReportError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another path")
    filemodes.tighten(out)                       # a report of that name already there: narrowed before
    with filemodes.private():                    # owner-only (0600) whatever the umask: deal figures
        paths = WRITERS[fmt](report, out)
    for path in paths:
        os.chmod(path, filemodes.FILE)           # also a file of that name that was there before
    return paths


__all__ = ["FORMATS", "WRITERS", "write"]
