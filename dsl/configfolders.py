"""``bsp check`` of a configuration folder a format names (an ``xsd_dir``): E132 when it holds more files
the format reads than a configuration version may hold (``formats.versioned.MAX_DIR_FILES``).

A configuration version covers every file the format reads from the folder (engine/ops/files.py): none is
left out, so none can change under a running version unseen; each version the ledger records keeps their
text, and the bind reads them all.  A folder beyond the limit is refused here, so ``bsp run`` and a reload
refuse it too (they compile first), naming the folder and the count.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from formats.versioned import MAX_DIR_FILES, folder_files, too_many_files


def check_config_folders(chk: Any, spec: Any, decl: Any, where: dict | None, fallback: Any) -> None:
    """E132 for each ``path`` option of the format ``decl`` naming a folder of more than ``MAX_DIR_FILES``
    files the format reads (``OptionSpec.folder_files``)."""
    for option in spec.options:
        value = decl.options.get(option.name)
        if option.type != "path" or option.secret or not isinstance(value, str) or not os.path.isabs(value):
            continue
        if not Path(value).is_dir():
            continue
        count = len(folder_files(value, option.folder_files))
        if count > MAX_DIR_FILES:
            chk.error("E132", f"format `{decl.name}`: option {option.name}: "
                              f"{too_many_files(value, count, option.folder_files)}",
                      (where or {}).get(option.name) or fallback,
                      f"point {option.name} at a folder holding only the files the routes use (a folder per "
                      f"message family), or split the format in several, each with its own folder")
