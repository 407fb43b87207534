"""The names the hand-written docs take from a registry of the code are the code's: metric families and their
labels (engine/metrics.py, engine/ops/gauges.py), admin API endpoints and their query parameters
(engine/admin/endpoints.py), diagnostic codes (dsl/errors_catalogue.py), the capture file's columns
(engine/replay/capture.py).  Each check walks both ways where the doc claims to be the whole list."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl.errors_catalogue import by_code
from engine.admin.endpoints import ENDPOINTS
from engine.ops.gauges import EngineMetrics
from engine.replay.capture import COLUMNS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
GENERATED = {"components.md", "cli.md", "benchmarks.md"}
PAGES = [REPO / "README.md"] + [p for p in sorted(DOCS.rglob("*.md")) if p.name not in GENERATED]


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under the first heading that contains ``heading`` (or, given with its #s, is that heading),
    down to the next heading of its level or above."""
    pattern = (r"^(#+) " + re.escape(heading.lstrip("#").strip()) + r"\s*\n" if heading.startswith("#")
               else r"^(#+) [^\n]*" + re.escape(heading) + r"[^\n]*\n")
    m = re.search(pattern, text, re.M)
    assert m, f"no heading with {heading!r}"
    level = len(m.group(1))
    end = re.search(r"^#{1,%d} " % level, text[m.end():], re.M)
    return text[m.end():m.end() + end.start()] if end else text[m.end():]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in ``text``, cells stripped (header and rule rows left out)."""
    rows, prev = [], ""
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| :]+\|$", line) and not prev.startswith("|"):
            prev = line            # a table's header row
            continue
        if line.startswith("|") and not re.match(r"^\|[-| :]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        prev = line
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- metrics ---------------------------------------------------------------------------------------------

def families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{name without bsp_: (type, label names)}`` of every family an engine serves on /metrics."""
    m = EngineMetrics()
    out = {}
    for collector, names in m.registry._collector_to_names.items():
        fam = next(iter(collector.describe()))
        out[fam.name.removeprefix("bsp_")] = (fam.type, tuple(getattr(collector, "_labelnames", ())))
    return out


def family_of(name: str, known: dict[str, tuple[str, tuple[str, ...]]]) -> str | None:
    """The family a documented series name belongs to (``route_outcomes_total`` -> ``route_outcomes``), or
    None when it names none."""
    name = name.removeprefix("bsp_")
    for suffix, types in (("_total", ("counter",)), ("_bucket", ("histogram",)), ("_sum", ("histogram",)),
                          ("_count", ("histogram",)), ("", ("gauge", "histogram"))):
        base = name[:len(name) - len(suffix)] if suffix and name.endswith(suffix) else (name if not suffix else None)
        if base in known and known[base][0] in types:
            return base
    return None


def metric_tables(doc: str) -> list[tuple[list[str], tuple[str, ...]]]:
    """(series names, labels) of each row of a doc's metrics table (first column metric names, second labels)."""
    rows = table_rows(section(doc, "Metrics"))
    out = []
    for row in rows:
        names = [n for n in ticked(row[0]) if re.fullmatch(r"(bsp)?_?[a-z_]+", n)]
        prefix = "bsp_" if names and names[0].startswith("bsp_") else ""
        full = [names[0]] + [(prefix + names[0].split("_")[1 if prefix else 0] + n) if n.startswith("_") else n
                             for n in names[1:]] if names else []
        out.append((full, tuple(x.strip() for x in row[1].split(",") if x.strip())))
    return out


def metric_problems(doc: str, known: dict[str, tuple[str, tuple[str, ...]]]) -> list[str]:
    found, listed = [], set()
    for names, labels in metric_tables(doc):
        for name in names:
            fam = family_of(name, known)
            if fam is None:
                found.append(f"{name}: no such metric")
                continue
            listed.add(fam)
            if set(labels) != set(known[fam][1]):
                found.append(f"{name}: labels {', '.join(labels) or 'none'}; the code's: {', '.join(known[fam][1]) or 'none'}")
    found += [f"bsp_{fam}: served on /metrics, not in the table" for fam in sorted(set(known) - listed)]
    return found


@pytest.mark.parametrize("name", ["operations.md", "admin-api.md"])
def test_metrics_tables_list_every_family_with_its_labels(name: str) -> None:
    found = metric_problems(_read(name), families())
    assert not found, f"docs/{name} metrics table:\n  " + "\n  ".join(found)


def test_the_metrics_check_finds_a_missing_family_a_wrong_name_and_wrong_labels() -> None:
    known = families()
    doc = _read("operations.md")
    assert metric_problems(doc, known) == []
    assert metric_problems(doc.replace("| `route_flagged_total` |", "| `route_flaged_total` |"), known) == [
        "route_flaged_total: no such metric", "bsp_route_flagged: served on /metrics, not in the table"]
    assert metric_problems(doc.replace("| `reloads_total` | result, source |", "| `reloads_total` | result |"),
                           known) == ["reloads_total: labels result; the code's: result, source"]


def test_every_metric_name_a_page_gives_is_served() -> None:
    known = families()
    wrong = [f"{p.relative_to(REPO)}: {name}" for p in PAGES
             for name in sorted(set(re.findall(r"\bbsp_[a-z][a-z_]*[a-z]\b", p.read_text(encoding="utf-8"))))
             if family_of(name, known) is None and not name.startswith(("bsp_kvtools", "bsp_linebank"))]
    assert not wrong, "metric names no engine serves:\n  " + "\n  ".join(wrong)


# --- admin API -------------------------------------------------------------------------------------------

ADMIN = "admin-api.md"


def endpoint_table_problems(doc: str) -> list[str]:
    rows = table_rows(section(doc, "## Endpoints"))
    # the role column: the role the endpoint needs (its first word; "read (+ raw)": more in its section)
    documented = {(r[0], ticked(r[1])[0]): (r[2].split() or [""])[0].strip("`") for r in rows
                  if len(r) >= 3 and r[0] in ("GET", "POST", "PUT", "PATCH", "DELETE") and ticked(r[1])}
    code = {(e.method, e.path): (e.role if e.auth else "none") for e in ENDPOINTS}
    out = [f"{m} {p}: documented, not in engine/admin/endpoints.py" for m, p in documented if (m, p) not in code]
    out += [f"{m} {p}: in engine/admin/endpoints.py, not in the table" for m, p in code if (m, p) not in documented]
    out += [f"{m} {p}: role {documented[(m, p)]}, the code's {a}" for (m, p), a in code.items()
            if (m, p) in documented and documented[(m, p)] != a]
    return out


def parameter_problems(doc: str) -> list[str]:
    """Each endpoint with query parameters has a section ``### `METHOD /path` `` whose table names exactly
    them, and a parameter with a fixed set of values lists exactly those values."""
    out = []
    for e in ENDPOINTS:
        if not e.params:
            continue
        try:
            text = section(doc, f"### `{e.method} {e.path}`")
        except AssertionError:
            out.append(f"{e.method} {e.path}: no section (### `{e.method} {e.path}`)")
            continue
        rows = {}
        for row in table_rows(text):
            for name in ticked(row[0]):
                rows[name] = row[1] if len(row) > 1 else ""
        for p in e.params:
            if p.name not in rows:
                out.append(f"{e.method} {e.path}: parameter {p.name} not in its table")
            elif p.enum is not None and set(ticked(rows[p.name])) != set(p.enum):
                out.append(f"{e.method} {e.path}: {p.name} takes {', '.join(p.enum)}; the table says "
                           f"{', '.join(ticked(rows[p.name]))}")
        out += [f"{e.method} {e.path}: {name} in its table is no parameter of it" for name in rows
                if name not in {p.name for p in e.params}]
    return out


def test_the_endpoints_table_is_the_registry() -> None:
    found = endpoint_table_problems(_read(ADMIN))
    assert not found, "docs/admin-api.md:\n  " + "\n  ".join(found)


def test_every_query_parameter_is_documented_with_its_values() -> None:
    found = parameter_problems(_read(ADMIN))
    assert not found, "docs/admin-api.md:\n  " + "\n  ".join(found)


def test_the_admin_checks_find_a_missing_endpoint_a_missing_parameter_and_a_missing_value() -> None:
    doc = _read(ADMIN)
    no_retry = "\n".join(ln for ln in doc.splitlines() if "| `/dead-letters/{id}/retry` |" not in ln)
    assert endpoint_table_problems(no_retry) == ["POST /dead-letters/{id}/retry: in engine/admin/endpoints.py, "
                                                 "not in the table"]
    wrong_role = doc.replace("| POST | `/reload` | operate |", "| POST | `/reload` | monitor |")
    assert endpoint_table_problems(wrong_role) == ["POST /reload: role monitor, the code's operate"]
    no_cursor = doc.replace("| `cursor` | go on", "| `kursor` | go on")
    assert "GET /deals: parameter cursor not in its table" in parameter_problems(no_cursor)
    assert "GET /deals: kursor in its table is no parameter of it" in parameter_problems(no_cursor)
    fewer = doc.replace("| `status` | `new`, `retrying`, `retried` or `purged` |", "| `status` | `new` or `retried` |")
    assert parameter_problems(fewer) == ["GET /dead-letters: status takes new, retrying, retried, purged; the table "
                                         "says new, retried"]


def test_every_admin_request_a_page_gives_is_an_endpoint() -> None:
    paths = {(e.method, re.sub(r"\{[^}]*\}", "{id}", e.path)) for e in ENDPOINTS}
    wrong = []
    for p in PAGES:
        if p.parent.name == "services":          # the services' own HTTP APIs
            continue
        for method, path in re.findall(r"\b(GET|POST|PUT|DELETE|PATCH) (/[\w\-/{}.]*[\w}]|/)", p.read_text(encoding="utf-8")):
            path = re.sub(r"\{[^}]*\}|(?<=/)[0-9a-f]{8,}\b|(?<=/)ID\b", "{id}", path)
            if (method, path) not in paths and not (method == "DELETE" and path == "/status"):  # the 405 example
                wrong.append(f"{p.relative_to(REPO)}: {method} {path}")
    assert not wrong, "requests to no admin endpoint:\n  " + "\n  ".join(wrong)


# --- diagnostic codes ------------------------------------------------------------------------------------

def test_every_diagnostic_code_a_page_gives_is_in_the_catalogue() -> None:
    codes = by_code()
    wrong = [f"{p.relative_to(REPO)}:{n}: {code}" for p in PAGES
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             for code in re.findall(r"\b([EW]\d{3})\b", line) if code not in codes]
    assert not wrong, "codes bsp check never gives (dsl/errors_catalogue.py):\n  " + "\n  ".join(wrong)


# --- the capture file ------------------------------------------------------------------------------------

def test_the_capture_frames_table_is_the_capture_schema() -> None:
    text = section(_read("testing.md"), "The capture format")
    rows = table_rows(text)
    documented = [ticked(r[0])[0] for r in rows if ticked(r[0])][3:]    # after the three tables' rows
    assert documented == [c[0] for c in COLUMNS], "docs/testing.md frames columns != engine/replay/capture.py"
