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
bind is refused: reload again).  A certificate file that also holds its private key is kept without the
key (``without_private_keys``): it is read, and must still be what the version holds once the key is left
out, else ``FileChanged``.  A file the version does not hold (a built-in spec; a key file, a secret; outside
a ``versioned`` block: ``bsp check``, ``bsp codec``) is read from disk.  Pure: no engine import.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Mapping

from formats.errors import SpecError

# a configuration folder (an XSD set) is versioned file by file, every file the format reads of it; one of
# more files than this is refused (bsp check E132, a reload, bsp run): each configuration version the ledger
# records keeps the text of all of them (an ISO 20022 catalogue's XSDs: ~0.1 MB each, ~110 MB per version
# at this limit), and the bind reads them all (measured in docs/operations.md, "Configuration folders")
MAX_DIR_FILES = 2000

_SOURCES: ContextVar[Mapping[str, str] | None] = ContextVar("bsp_versioned_sources", default=None)
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
PRIVATE_KEY_LEFT_OUT = "(a private key: not kept)\n"
_KEY_LEFT_OUT = PRIVATE_KEY_LEFT_OUT.rstrip("\n")
_PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END \1-----\n?", re.S)


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


def in_force() -> Mapping[str, str] | None:
    """The sources of the ``versioned`` block in force (None outside one): what a format that reads a file
    later (an XSD catalog's schema, when a message first needs it) enters ``versioned`` with again."""
    return _SOURCES.get()


def held(path: str | Path) -> str | None:
    """The text the version in force (a ``versioned`` block) holds of ``path``: its text, ``sha256:HEX``,
    or None when there is no block or the version does not hold the file."""
    sources = _SOURCES.get()
    if sources is None:
        return None
    return sources.get(str(Path(path)))


def folder_files(folder: str | Path, pattern: str | None = None) -> list[Path]:
    """The files of a configuration folder a format reads (``pattern``: ``OptionSpec.folder_files``, a
    glob searched recursively; None: every file), sorted: what is versioned of it, all of them."""
    return sorted(q for q in Path(folder).rglob(pattern or "*") if q.is_file())


def too_many_files(folder: str | Path, count: int, pattern: str | None = None) -> str:
    """What a configuration folder of more than ``MAX_DIR_FILES`` files is refused with."""
    what = f"files ({pattern})" if pattern and pattern != "*" else "files"
    return (f"folder {str(folder)!r} holds {count} {what} the format reads; a configuration folder is versioned "
            f"file by file (each configuration version keeps their text in the ledger) and may hold at most "
            f"{MAX_DIR_FILES}")


def without_private_keys(text: str) -> str:
    """``text`` whose PEM private key blocks (a certificate file that also holds its key, which OpenSSL
    reads when no ``key`` option is given) are replaced by a line saying so; a key block cut short
    takes the rest of the text with it."""
    text = _PRIVATE_KEY_BLOCK.sub(PRIVATE_KEY_LEFT_OUT, text)
    start = text.find("-----BEGIN ")
    while start != -1:
        line_end = text.find("-----", start + 11)
        if line_end != -1 and "PRIVATE KEY" in text[start:line_end]:
            return text[:start] + PRIVATE_KEY_LEFT_OUT
        start = text.find("-----BEGIN ", start + 11)
    return text


def kept_text(data: bytes) -> str | None:
    """What a version keeps of a file holding a private key (its text, the key left out), None for
    a file without one."""
    if b"PRIVATE KEY" not in data:
        return None
    try:
        return without_private_keys(data.decode("utf-8"))
    except UnicodeDecodeError:
        return PRIVATE_KEY_LEFT_OUT


def _same(data: bytes, text: str) -> bool:
    """Whether ``data`` (a file's bytes now) is what the version holds as ``text``."""
    if _KEY_LEFT_OUT in text:
        return kept_text(data) == text
    digest = _DIGEST.fullmatch(text)
    return (hashlib.sha256(data).hexdigest() == digest.group(1)) if digest else data == text.encode("utf-8")


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes as the version in force holds them (see the module); OSError as reading would."""
    text = held(path)
    if text is None:
        return Path(path).read_bytes()
    if _KEY_LEFT_OUT not in text and _DIGEST.fullmatch(text) is None:
        return text.encode("utf-8")          # kept as the strict UTF-8 decoding of the bytes hashed
    data = Path(path).read_bytes()           # kept as its digest, or without its private key: read, checked
    if not _same(data, text):
        raise FileChanged(CHANGED, path=str(path))
    return data
