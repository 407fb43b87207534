"""``--log-file`` under logrotate: the file is opened again once it was moved away, owner-only."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from engine.ops.logs import setup_logging


def test_the_log_file_moved_away_by_a_rotation_is_made_again_owner_only(tmp_path: Path) -> None:
    # before: a FileHandler kept writing into the renamed file (bsp.log.1) for the life of the engine,
    # and the bsp.log logrotate expects was never made again
    log_file = tmp_path / "log" / "bsp.log"
    old_umask = os.umask(0o022)
    root = logging.getLogger()
    level = root.level
    try:
        setup_logging("info", "text", log_file)
        log = logging.getLogger("bsp.test.rotation")
        log.warning("before the rotation")
        log_file.rename(log_file.with_name("bsp.log.1"))          # logrotate's default: rename, no signal
        log.warning("after the rotation")
        log.warning("and on")
    finally:
        for h in list(root.handlers):
            if getattr(h, "_bsp", False):
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
        os.umask(old_umask)
    rotated = log_file.with_name("bsp.log.1").read_text()
    assert "before the rotation" in rotated and "after the rotation" not in rotated
    now = log_file.read_text()
    assert "after the rotation" in now and "and on" in now and "before the rotation" not in now
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
