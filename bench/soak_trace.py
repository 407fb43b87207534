"""Memory probes inside the engine ``bench/soak.py`` starts (a ``sitecustomize``, not the engine's code).

``bench/soak.py`` copies this file as ``sitecustomize.py`` into ``<work>/trace/`` and puts that folder on the engine's ``PYTHONPATH`` with ``BSP_SOAK_TRACE=<work>/trace`` and ``BSP_SOAK_LEDGER=<ledger>``.
Python imports it at start-up, before ``bsp run``; it starts a daemon thread that waits for request files the
soak writes into the folder and answers each with a file beside it (nothing in the engine changes):

- ``start.req`` (``--tracemalloc`` only): ``tracemalloc.start(NFRAMES)`` (late: the start-up is not traced);
- ``<label>.req``: ``<label>.snap`` (``tracemalloc.Snapshot.dump``, when tracing) and ``<label>.json``: the traced
  Python heap (current, peak), ``sys.getallocatedblocks()``, gc's object count by type (the top 40), and the
  ledger's DuckDB instance as it tells it (``duckdb_memory()`` by tag, ``PRAGMA database_size``,
  ``memory_limit``), read on a connection joining the writer's instance as the admin API's reads do;
- in every answer, gc's objects by type before and after a ``gc.collect()`` (cyclic garbage awaiting a
  collection is not a leak), and the route programs alive (``dsl.ir.Program``, ``dsl.ast.Module``) with
  what holds them (two levels of referrers): one a running generation, the others are kept by something;
- ``holders.req`` (tracing): for each ``file:line`` of ``holders.spec``, what holds the live objects allocated
  there (two levels of ``gc.get_referrers``, by type), in ``holders.json``: who keeps what grew;
- each answer is finished by ``<label>.done``.
"""
from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

NFRAMES = 12


def _duckdb(ledger: str) -> dict:
    out: dict = {}
    try:
        import duckdb
        con = duckdb.connect(ledger)
        try:
            out["memory"] = {tag: [int(mem), int(tmp)] for tag, mem, tmp in con.execute(
                "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()").fetchall()}
            cols = [d[0] for d in con.execute("PRAGMA database_size").description]
            out["database_size"] = [dict(zip(cols, map(str, row))) for row in con.fetchall()]
            out["memory_limit"] = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        finally:
            con.close()
    except Exception as exc:            # noqa: BLE001 - a probe: say what failed, never stop the engine
        out["error"] = repr(exc)
    return out


def _answer(folder: Path, label: str, ledger: str) -> None:
    doc: dict = {"label": label, "time": time.time(), "blocks": sys.getallocatedblocks()}
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(folder / f"{label}.snap"))
        doc["traced"] = list(tracemalloc.get_traced_memory())
    doc["types_before_gc"] = collections.Counter(type(o).__qualname__ for o in gc.get_objects()).most_common(40)
    doc["gc_collected"] = gc.collect()      # cyclic garbage not collected yet is not a leak: count what is left
    objs = gc.get_objects()
    doc["types"] = collections.Counter(type(o).__qualname__ for o in objs).most_common(40)
    # route programs alive (dsl.ir.Program, dsl.ast.Module): one a running generation; what holds the others
    doc["programs"] = {}
    for name, mod in (("Program", "dsl.ir"), ("Module", "dsl.ast")):
        alive = [o for o in objs if type(o).__name__ == name and type(o).__module__ == mod]
        doc["programs"][name] = {"alive": len(alive), "holders": collections.Counter(
            f"{_name(h2)} <- {_name(h)}" for o in alive for h in gc.get_referrers(o) if h is not objs
            and h is not alive for h2 in ([x for x in gc.get_referrers(h) if x is not objs and x is not alive][:4]
                                          or [None])).most_common(20)}
        if name == "Program":
            binders = [r for o in alive for r in gc.get_referrers(o) if type(r).__name__ == "Binder"]
            doc["programs"]["chains"] = [_chain(o, {id(objs), id(alive), id(binders)}) for o in binders[:8]]
            del binders
        del alive
    del objs
    doc["duckdb"] = _duckdb(ledger)
    (folder / f"{label}.json").write_text(json.dumps(doc, indent=1))


def _name(o: object) -> str:
    if isinstance(o, dict):
        return "dict"
    if type(o).__name__ == "frame":
        return f"frame {o.f_code.co_filename.rsplit('/', 2)[-2:]}:{o.f_code.co_name}"      # type: ignore[attr-defined]
    return type(o).__qualname__


def _chain(o: object, skip: set[int], depth: int = 9) -> list[list[str]]:
    """The referrers of ``o``, level by level (by type; a dict's first keys), following the first one that is
    not a frame, an iterator or a list of the probe's own: who keeps ``o`` alive."""
    out: list[list[str]] = []
    seen = set(skip)
    here = o
    for _ in range(depth):
        seen.add(id(here))
        refs = [r for r in gc.get_referrers(here) if id(r) not in seen and type(r).__name__ not in
                ("frame", "list_iterator", "dict_itemiterator", "dict_valueiterator")]
        if not refs:
            break
        seen.add(id(refs))
        refs.sort(key=lambda r: isinstance(r, (list, tuple)))     # an object's holder first, a container after
        out.append([_name(r) + (":" + ",".join(map(str, list(r)[:5])) if isinstance(r, dict) else "")
                    for r in refs[:6]])
        here = refs[0]
    return out


def _holders(folder: Path, specs: list[str], limit: int = 300) -> None:
    """For each ``file:line``: what holds (its direct referrers, and theirs, by type) up to ``limit`` of the live
    objects whose allocation's most recent frame is there (needs tracemalloc).  Walks every container gc
    tracks and their referents (a dict of atoms is not tracked itself, its holder is)."""
    want = {(f, int(line)) for f, _, line in (s.rpartition(":") for s in specs) if line.isdigit()}
    found: dict = {w: {} for w in want}                 # -> {id(obj): [holders]}
    site: dict[int, tuple | None] = {}
    objs = gc.get_objects()
    for o in objs:
        for r in gc.get_referents(o):
            key = id(r)
            if key not in site:
                tb = tracemalloc.get_object_traceback(r)
                fr = tb[-1] if tb is not None else None      # the most recent frame (sorted oldest first)
                site[key] = None
                if fr is not None:
                    for f, line in want:
                        if fr.lineno == line and fr.filename.endswith(f):
                            site[key] = (f, line)
            w = site[key]
            if w is not None and (key in found[w] or len(found[w]) < limit):
                found[w].setdefault(key, []).append(o)
    del site
    out: dict = {}
    mine = {id(hs) for held in found.values() for hs in held.values()} | {id(objs), id(found)}
    for (f, line), held in found.items():
        c1: collections.Counter = collections.Counter()
        c2: collections.Counter = collections.Counter()
        for hs in held.values():
            for h in hs:
                c1[_name(h)] += 1
                for h2 in [x for x in gc.get_referrers(h) if id(x) not in mine][:8]:
                    c2[f"{_name(h2)} <- {_name(h)}"] += 1
        out[f"{f}:{line}"] = {"objects": len(held), "holders": c1.most_common(12), "holders2": c2.most_common(16)}
    del objs
    (folder / "holders.json").write_text(json.dumps(out, indent=1))


def _watch(folder: Path, ledger: str) -> None:
    while True:
        for req in sorted(folder.glob("*.req")):
            label = req.stem
            req.unlink()
            try:
                if label == "start":
                    tracemalloc.start(NFRAMES)
                elif label == "holders":
                    _holders(folder, (folder / "holders.spec").read_text().split())
                else:
                    _answer(folder, label, ledger)
            except Exception as exc:    # noqa: BLE001
                (folder / f"{label}.error").write_text(repr(exc))
            (folder / f"{label}.done").write_text("")
        time.sleep(0.2)


_folder = os.environ.get("BSP_SOAK_TRACE")
if _folder and os.path.basename(sys.argv[0] if sys.argv else "") == "bsp":
    threading.Thread(target=_watch, args=(Path(_folder), os.environ.get("BSP_SOAK_LEDGER", "")),
                     name="soak-trace", daemon=True).start()
