"""The files a configuration is made of, beyond its route files: copybooks, specs, tables, certificates.

    files = referenced_files(program)          # {absolute path: sha256 hex} of every file an option names
    program = with_referenced_files(program)   # sources += those files; version covers them too

A copybook edited in place changes no route file, so ``Program.version``
(a hash of the route sources) would not change; the reload manager therefore
versions a generation over its route files *and* the files they reference,
and keeps all of them in the ledger (``ledger.record_config``).  Binary files
are kept as ``sha256:<hex>`` rather than their bytes.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from dsl.lower import program_version
from engine.registry import default_registry
from formats.versioned import folder_files       # a configuration folder (an XSD set): every file a format reads
from formats.versioned import kept_text     # a certificate file's text without its private key


def _paths_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if os.path.isabs(value):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _paths_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _paths_in(v)


@functools.lru_cache(maxsize=1)
def _secret_options() -> frozenset[tuple[str, str, str]]:
    """``(category, kind, option)`` of every option that names a secret (``OptionSpec.secret``)."""
    return frozenset((c.category, c.name, o.name) for c in default_registry().walk() for o in c.options if o.secret)


def _options(category: str, decl: Any) -> dict[str, Any]:
    """A declaration's options without the ones naming a secret (a MAC key file is neither read into
    the ledger's configuration versions nor fingerprinted)."""
    secret = _secret_options()
    return {k: v for k, v in decl.options.items() if (category, decl.kind, k) not in secret}


@functools.lru_cache(maxsize=1)
def _folder_patterns() -> dict[tuple[str, str], str | None]:
    """``(kind, option) -> glob`` of the format options whose folder holds only some files the format
    reads (``OptionSpec.folder_files``: ``xsd_dir`` reads ``*.xsd``)."""
    return {(c.name, o.name): o.folder_files for c in default_registry().walk()
            if c.category == "format" for o in c.options if o.folder_files}


def _candidates(program: Any) -> Iterator[tuple[str, str | None]]:
    """``(path, folder_files)`` for every path an option names; ``folder_files``: the glob of the files
    versioned when the path is a folder (``"*"``: all), None when a folder there is not configuration.  A
    folder a format names (an XSD set) is configuration; a folder a channel names (``file watch`` /
    ``file write`` ``dir``, ``done_dir``) is where it reads or writes data: its files are neither
    versioned nor watched.  Options naming a secret (``OptionSpec.secret``: key files) are left out."""
    patterns = _folder_patterns()
    for decl in program.formats.values():
        for option, value in _options("format", decl).items():
            pattern = patterns.get((decl.kind, option)) or "*"
            yield from ((p, pattern) for p in _paths_in(value))
    for decl in program.channels.values():
        yield from ((p, None) for p in _paths_in(_options("channel", decl)))
    for decl in program.tables.values():
        yield decl.path, "*"


def _referenced_paths(program: Any) -> Iterator[Path]:
    """Every existing file (or file a format reads in a named configuration folder: all of them, however
    many; ``bsp check`` refuses a folder of more than ``MAX_DIR_FILES``, E132) the program's options name."""
    for raw, pattern in _candidates(program):
        p = Path(raw)
        if p.is_file():
            yield p
        elif pattern is not None and p.is_dir():
            yield from folder_files(p, pattern)


def referenced_files(program: Any) -> dict[str, str]:
    """``{path: sha256}`` of every existing file (or file in a named configuration folder) the
    program's options name."""
    return {str(p): file_digest(p) for p in _referenced_paths(program)}


def file_digest(path: Path) -> str:
    """The sha256 of the file's bytes (hex), or ``unreadable: WHY``: what tells a changed file from the same one."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def _text_or_digest(path: str, digest: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return f"sha256:{digest}"
    kept = kept_text(data)                 # a private key: never kept, nor fingerprinted; only what surrounds it
    if kept is not None:
        return kept
    if len(data) <= 1_000_000:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return f"sha256:{digest}"


def with_referenced_files(program: Any, files: dict[str, str] | None = None) -> Any:
    """``program`` whose ``sources`` also hold the referenced files and whose ``version`` covers them.

    A program that references no file is returned unchanged, and so is one whose sources hold every
    file already (``bsp run`` versions the program before the engine starts: no second read).
    """
    if files is None and all(str(p) in program.sources for p in _referenced_paths(program)):
        return program
    files = referenced_files(program) if files is None else files
    if not files:
        return program
    sources = dict(program.sources)
    for path, digest in files.items():
        sources[path] = _text_or_digest(path, digest)
    return dataclasses.replace(program, sources=sources, version=program_version(sources))


def watched_paths(program: Any) -> set[Path]:
    """Every file a change of which should trigger a reload: route files, included files, referenced files."""
    # the deployment's overrides entry (engine/ops/effective.py) and the admin TLS record (engine/ops/admintls.py)
    # are not files
    return ({Path(p) for p in program.sources if not p.endswith(("#channels", "#admin-tls"))}
            | {Path(p) for p in referenced_files(program)})


# secret files are compared by a digest keyed with this process's own random key: what a reload compares is
# kept in memory only, and is no unkeyed hash of a secret that a guess could be tested against
_SECRET_DIGEST_KEY = os.urandom(32)


def _secret_digest(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return hashlib.blake2b(data, key=_SECRET_DIGEST_KEY, digest_size=16).hexdigest()


def secret_digests(program: Any, overrides: Any = None) -> dict[str, dict[str, dict[str, str]]]:
    """``{"channels" | "formats": {name: {option: digest}}}`` of every option naming a secret file (a key, a
    token or password file: ``OptionSpec.secret``), for a reload to tell a rewritten secret file from the
    same one (``engine.ops.plan``).  ``overrides``: the channel overrides, paths resolved, that the channels
    are bound with.  The digests are keyed and kept in memory only: neither logged, nor versioned, nor in
    the ledger."""
    out: dict[str, dict[str, dict[str, str]]] = {"channels": {}, "formats": {}}
    for kind, name, option, path in _secret_options_named(program, overrides):
        out[kind].setdefault(name, {})[option] = _secret_digest(path)
    return out


def _secret_options_named(program: Any, overrides: Any = None) -> Iterator[tuple[str, str, str, str]]:
    """``(kind, name, option, path)`` of every option naming a secret file, overrides applied."""
    secret = _secret_options()
    overrides = overrides or {}
    for kind, category, decls in (("channels", "channel", program.channels), ("formats", "format", program.formats)):
        for name, decl in decls.items():
            options = {**decl.options, **(overrides.get(name) or {})} if kind == "channels" else decl.options
            for k, v in options.items():
                if (category, decl.kind, k) in secret and isinstance(v, str) and v:
                    yield kind, name, k, v


def secret_files(program: Any, overrides: Any = None) -> set[Path]:
    """The secret files (a key, a token or password file: ``OptionSpec.secret``) the channels and formats
    read, the route files' and the deployment file's overrides (paths resolved) alike: what ``--watch``
    watches beside ``watched_paths`` so that a key or password rotated in place reloads as SIGHUP would."""
    return {Path(path) for _, _, _, path in _secret_options_named(program, overrides)}
