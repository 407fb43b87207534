"""The files a deployment file names, checked before a deploy (``bsp check platform.yaml``): each one
missing or unreadable is an error, each key or token file readable by group/others a warning, and each
``{env: NAME}`` whose variable is unset in this shell a warning (the deploy machine's may differ).

    for note in file_notes(dep):       # FileNote("error", "platform.yaml:7:10", "admin.token", ...)
        print(note)                    # platform.yaml:7:10: error: admin.token: /srv/bsp/admin.token: ...

``run_blockers(dep, ...)``: the same files (and unset variables) as ``bsp run`` would need them, each
an error line, so that ``bsp run`` names every one it cannot read at once.

Checked: ``admin.token``, ``admin.tokens[NAME]``, ``admin.tls`` cert / key / client_ca, ``admin.access``
(a file of rules), ``ledger.audit_key``, ``ledger.field_keys`` and ``secrets.NAME``.  A file is opened
to see that it can be, never read: no key or token is ever printed.  Channel overrides' files are
checked with the overrides (``engine/ops/overrides.py``).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine import filemodes

_RELATIVE = "or fix the path (relative to the deployment file)"


@dataclass(frozen=True)
class FileNote:
    level: str          # "error" | "warning"
    place: str          # file:line:col of the reference in the deployment file
    key: str            # its dotted key: admin.token, ledger.audit_key, ...
    text: str           # "FILE: what is wrong; how to fix" (or "$NAME: ...")

    def __str__(self) -> str:
        return f"{self.place}: {self.level}: {self.key}: {self.text}"


def _create_hint(key: str, path: Path) -> str:
    if key == "admin.token" or key.startswith("admin.tokens["):
        return f"create it with `bsp admin token {path}` (mode 0600), {_RELATIVE}"
    return f"put the file there, {_RELATIVE}"


def _references(dep: Any) -> Iterator[tuple[str, Any, str, bool]]:
    """(key, SecretRef or Path, place, holds a secret) for each file or variable ``dep`` names."""
    admin = dep.admin
    for key, ref in (("ledger.audit_key", dep.audit_key), ("ledger.field_keys", dep.field_keys),
                     ("admin.token", admin.token)):
        if ref is not None:
            yield key, ref, ref.origin, True
    for t in admin.tokens:
        yield f"admin.tokens[{t.name}]", t.ref, t.ref.origin, True
    if admin.tls_cert is not None:
        yield "admin.tls.cert", admin.tls_cert, admin.places.get("tls.cert", ""), False
    if admin.tls_key is not None:
        yield "admin.tls.key", admin.tls_key, admin.tls_key.origin, True
    if admin.client_ca is not None:
        yield "admin.tls.client_ca", admin.client_ca, admin.places.get("tls.client_ca", ""), False
    if isinstance(admin.access, Path):
        yield "admin.access", admin.access, admin.places.get("access", ""), False
    for name, ref in dep.secrets.items():
        yield f"secrets.{name}", ref, ref.origin, True


def _file_note(key: str, path: Path, place: str, secret: bool) -> FileNote | None:
    path = Path(os.path.normpath(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        return FileNote("error", place, key, f"{path}: no such file; {_create_hint(key, path)}")
    except OSError as exc:
        return FileNote("error", place, key, f"{path}: cannot be reached ({exc.strerror}); let the user that "
                                              f"runs bsp into its folders, {_RELATIVE}")
    if stat.S_ISDIR(st.st_mode):
        return FileNote("error", place, key, f"{path}: is a folder, not a file; name the file in it")
    try:
        os.close(os.open(path, os.O_RDONLY))          # opened, never read
    except OSError as exc:
        return FileNote("error", place, key, f"{path}: cannot be read ({exc.strerror}); give the user that runs "
                                              f"bsp read access (chown it to that user, mode 0600)")
    mode = stat.S_IMODE(st.st_mode)
    if secret and filemodes.exposed(mode):
        return FileNote("warning", place, key, f"{path}: readable by group/others (mode {mode:04o}): whoever "
                                                f"reads it has the secret; chmod 600 {path}")
    return None


def file_notes(dep: Any) -> list[FileNote]:
    """Every problem with the files and variables ``dep`` names, in the order of the deployment file."""
    notes: list[FileNote] = []
    for key, ref, place, secret in _references(dep):
        if isinstance(ref, Path):
            note = _file_note(key, ref, place, secret)
        elif ref.env is not None:
            note = None if ref.env in os.environ else FileNote(
                "warning", place, key, f"${ref.env}: not set in this shell; export {ref.env} before bsp run "
                                       f"(the deploy machine's environment may differ)")
        else:
            note = _file_note(key, ref.file, place, secret)
        if note is not None:
            notes.append(note)
    return notes


def _position(note: FileNote) -> tuple[int, int]:
    parts = note.place.rsplit(":", 2)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return 0, 0


def all_file_notes(deployments: list[Any]) -> list[FileNote]:
    """``file_notes`` of each (the base settings and each environment), each note once, by line."""
    seen = dict.fromkeys(n for dep in deployments for n in file_notes(dep))
    return sorted(seen, key=_position)


def run_blockers(dep: Any, *, listen: Any = None, token_file: Any = None, named: Any = None, cert: Any = None,
                 client_ca: Any = None, access_file: Any = None) -> list[str]:
    """Each file ``bsp run`` of ``dep`` would read and cannot, and each variable it would read that is
    unset, as ``place: key: what is wrong; how to fix`` -- those the command line does not replace
    (``--admin-token-file`` replaces admin.token...), the admin API's only when it is served.  So that
    an admin missing several fixes them in one go rather than one restart each."""
    skip: list[str] = ["secrets."]           # read by the components that use them, which say so
    if not (listen or dep.admin.listen):
        skip.append("admin.")
    for given, keys in ((token_file, ["admin.token"]), (named, ["admin.tokens["]),
                        (cert, ["admin.tls.cert", "admin.tls.key"]), (client_ca, ["admin.tls.client_ca"]),
                        (access_file, ["admin.access"])):
        skip += keys if given else []
    out: list[str] = []
    for key, ref, place, secret in _references(dep):
        if any(key.startswith(s) for s in skip):
            continue
        if not isinstance(ref, Path) and ref.env is not None:
            if ref.env not in os.environ:
                out.append(f"{place}: {key}: environment variable {ref.env} is not set; export {ref.env} "
                           f"before bsp run")
            continue
        note = _file_note(key, ref if isinstance(ref, Path) else ref.file, place, secret)
        if note is not None and note.level == "error":
            out.append(f"{place}: {key}: {note.text}")
    return out


__all__ = ["FileNote", "file_notes", "all_file_notes", "run_blockers"]
