"""A configuration version's sources in the ledger, content-addressed (ledger schema 11).

A version row (``config_versions``, chained) holds its *manifest*: ``{path: sha256 hex of the text}`` in the
order of ``Program.sources``; each distinct text is stored once in ``config_files`` (``sha256``, ``text``),
not chained but checked by its hash (``bsp audit verify``: ``engine.audit._check_config_files``).  A reload
that changes one route file of a 2000-XSD catalogue adds one text, not the catalogue again.

    manifest, texts = split(sources)        # None when sources are not {str: str} (kept whole, as before)
    sources_of(con, version)                # the version's sources as recorded: a dict, or None
    paths_of(con, version)                  # their paths, sorted (texts not read)
    all_sources(con)                        # {version: sources} of every version

Rows written before schema 11 (and the rows a migration could not split byte for byte) keep their whole
``sources`` JSON; the readers here give the same dict for either form.  A file opened read-only of an
older schema (an archive) has no ``manifest`` column: only ``sources`` is read.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["texts_of", "split", "sources_of", "paths_of", "all_sources", "has_manifest", "rebuild_json", "MANIFEST_HASHES"]

# every hash the manifests of the config_versions rows selected by ``{where}`` name
MANIFEST_HASHES = ("SELECT DISTINCT unnest(json_extract_string(manifest, '$.*')) AS sha256 FROM {table} "
                   "WHERE manifest IS NOT NULL{where}")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def split(sources: Any) -> tuple[str, dict[str, str]] | None:
    """``(manifest JSON, {sha256: text})`` of ``sources`` ``{path: text}``; None for anything else."""
    if not isinstance(sources, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in sources.items()):
        return None
    texts: dict[str, str] = {}
    manifest: dict[str, str] = {}
    for path, text in sources.items():
        h = digest(text)
        manifest[path] = h
        texts.setdefault(h, text)
    return orjson.dumps(manifest).decode(), texts


def rebuild_json(manifest: dict[str, str], texts: dict[str, str]) -> str:
    """The ``sources`` JSON text a pre-11 row held for ``manifest`` (``engine.deal.to_json`` of the dict)."""
    return orjson.dumps({p: texts[h] for p, h in manifest.items()}).decode()


def has_manifest(con: Any) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'config_versions' "
                            "AND column_name = 'manifest' AND table_catalog = current_database()").fetchall()[0][0])


def texts_of(con: Any, hashes: list[str], column: str = "text") -> dict[str, str]:
    """``{sha256: text}`` of the ``hashes`` config_files holds (a join: ``list_contains`` with a list parameter
    costs seconds per call on a few hundred rows)."""
    if not hashes:
        return {}
    return dict(con.execute(f"SELECT f.sha256, f.{column} FROM config_files f SEMI JOIN (SELECT unnest(?::VARCHAR[]) "
                            f"AS h) x ON f.sha256 = x.h", [list(hashes)]).fetchall())


def _sources(con: Any, sources: str | None, manifest: str | None, where: str) -> Any:
    if manifest is None:
        return orjson.loads(sources) if sources else None
    m = orjson.loads(manifest)
    texts = texts_of(con, sorted(set(m.values())))
    missing = [p for p, h in m.items() if h not in texts]
    if missing:
        from engine.ledger_store import LedgerError

        raise LedgerError(f"{where}: the text of {missing[0]} (sha256 {m[missing[0]]}) is missing from config_files"
                          f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: the table was changed "
                          f"outside bsp; bsp audit verify names every missing file; restore the ledger from a backup")
    return {p: texts[h] for p, h in m.items()}


def sources_of(con: Any, version: str) -> Any:
    """The sources recorded for ``version`` (``{path: text}``), None when it has none or is not recorded."""
    cols = "sources, manifest" if has_manifest(con) else "sources, NULL"
    rows = con.execute(f"SELECT {cols} FROM config_versions WHERE version = ?", [version]).fetchall()
    return _sources(con, *rows[0], f"configuration version {version}") if rows else None


def paths_of(con: Any, version: str) -> list[str] | None:
    """The sorted paths of ``version``'s sources (without reading their texts); None when not recorded."""
    cols = "sources, manifest" if has_manifest(con) else "sources, NULL"
    rows = con.execute(f"SELECT {cols} FROM config_versions WHERE version = ?", [version]).fetchall()
    if not rows:
        return None
    sources, manifest = rows[0]
    whole = orjson.loads(manifest if manifest is not None else sources) if (manifest or sources) else {}
    return sorted(whole) if isinstance(whole, dict) else []


def all_sources(con: Any) -> dict[str, Any]:
    """``{version: sources}`` of every recorded version (oldest first)."""
    cols = "version, sources, manifest" if has_manifest(con) else "version, sources, NULL"
    rows = con.execute(f"SELECT {cols} FROM config_versions ORDER BY loaded_at, version").fetchall()
    return {v: _sources(con, s, m, f"configuration version {v}") for v, s, m in rows}
