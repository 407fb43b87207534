"""The bytes of a file a format names (a copybook, an ISO 8583 spec, a JSON Schema, an XSD) as the
configuration's version holds them, not the file read again.

    with versioned(program.sources):           # the engine's binder, around a format's build
        data = read_bytes(path)                # the text kept when the version was computed

A configuration version is a hash of the route files and of the files they name, whose text the ledger
keeps (``config_versions``); the engine binds a configuration some time after its version was computed
(a reload compiles, plans, then binds).  A copybook replaced meanwhile must not be the one the engine
decodes with while the deals name a version whose sources hold another: a format reads its files through
``read_bytes``, which, in a ``versioned`` block, gives the text the version holds.  A file kept only as its
digest (over 1 MB, or not UTF-8 text) is read and must still have that digest, else ``FileChanged`` (the
bind is refused: reload again).  A file the version does not hold (a built-in spec; outside a ``versioned``
block: ``bsp check``, ``bsp codec``) is read from disk.  Pure: no engine import.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Mapping

from formats.errors import SpecError

MAX_DIR_FILES = 500      # a configuration folder (an XSD set) is versioned file by file, up to this many

_SOURCES: ContextVar[Mapping[str, str] | None] = ContextVar("bsp_versioned_sources", default=None)
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_KEY_LEFT_OUT = "(a private key: not kept)"      # engine/ops/files.py PRIVATE_KEY_LEFT_OUT


class FileChanged(SpecError):
    """A file the configuration's version holds as its digest changed before the format read it."""


@contextmanager
def versioned(sources: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, ``read_bytes`` gives the files as ``sources`` (a program's) hold them."""
    token = _SOURCES.set(sources)
    try:
        yield
    finally:
        _SOURCES.reset(token)


CHANGED = ("the file changed after the configuration was read (while it was being loaded); nothing of it is "
           "used: reload again")


def held(path: str | Path) -> str | None:
    """The text the version in force (a ``versioned`` block) holds of ``path``: its text, ``sha256:HEX``,
    or None when there is no block or the version does not hold the file."""
    sources = _SOURCES.get()
    if sources is None:
        return None
    return sources.get(str(Path(path)))


def held_under(folder: str | Path) -> int:
    """How many files under ``folder`` the version in force holds (0 without a ``versioned`` block)."""
    sources = _SOURCES.get()
    if not sources:
        return 0
    prefix = str(Path(folder)) + "/"
    return sum(1 for k in sources if k.startswith(prefix))


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes as the version in force holds them (see the module); OSError as reading would."""
    text = held(path)
    if text is None or _KEY_LEFT_OUT in text:
        return Path(path).read_bytes()
    digest = _DIGEST.fullmatch(text)
    if digest is None:
        return text.encode("utf-8")          # kept as the strict UTF-8 decoding of the bytes hashed
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest.group(1):
        raise FileChanged(CHANGED, path=str(path))
    return data


def check_unchanged(path: str | Path) -> None:
    """``FileChanged`` when the version in force holds ``path`` and the file now differs from it: for a
    file a library reads itself (an XSD's ``xs:include``), checked after it was read."""
    text = held(path)
    if text is None or _KEY_LEFT_OUT in text:
        return
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise FileChanged(CHANGED, path=str(path)) from None
    digest = _DIGEST.fullmatch(text)
    same = (hashlib.sha256(data).hexdigest() == digest.group(1)) if digest else data == text.encode("utf-8")
    if not same:
        raise FileChanged(CHANGED, path=str(path))
