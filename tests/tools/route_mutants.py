"""Boundary mutants of the route library: which limit edits do the route tests miss?

Developer tool, slow (one ``bsp test`` per mutant): not run by the test suite.

    .venv/bin/python tests/tools/route_mutants.py                  # every service under routes/
    .venv/bin/python tests/tools/route_mutants.py sales remittance # some services
    .venv/bin/python tests/tools/route_mutants.py --jobs 4 --all   # also list the killed ones
    .venv/bin/python tests/tools/route_mutants.py --list           # the mutants only, nothing run

For every ordered comparison (``<``, ``<=``, ``>``, ``>=``) in a service's route files
(not its ``*_test.route``) it makes three edits, one at a time, and runs that
service's route tests on a copy of ``routes/``:

* ``flip``: ``<=`` <-> ``<``, ``>=`` <-> ``>``;
* ``up`` / ``down``: the right-hand side moved by one step, ``(L + s)`` / ``(L - s)``
  (``add_days(L, +-1)`` for a date).

The step is the resolution of the compared value: 1 for ``len(...)``, one day for a
date, else the scale of the left-hand field (a ``decimal(p, s)`` / ``decimal(s)`` /
``integer`` field of a route format, a copybook ``PIC``, a ``let x = round(.., n)``),
else the decimals of the limit (``50000.00``, ``round(.., 2)``).  Each mutant's
line shows the step used.  A mutant is *killed* when a test fails, *survives*
when all pass; a mutant the tests cannot run (does not compile) is an error.
Exit status: 1 when a mutant survives (or errs), 0 when every one is killed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPS = ("<=", ">=", "<", ">")
FLIP = {"<=": "<", "<": "<=", ">=": ">", ">": ">="}
OPEN, CLOSE = "([", ")]"


def code_part(line: str) -> str:
    """The line without its comment (a '#' outside a string)."""
    quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            quote = not quote
        elif ch == "#" and not quote:
            return line[:i]
    return line


def comparisons(line: str) -> list[tuple[int, str]]:
    """(column, operator) of each ordered comparison in the code of a line."""
    code, out, quote, i = code_part(line), [], False, 0
    while i < len(code):
        ch = code[i]
        if ch == '"':
            quote = not quote
        elif not quote and ch in "<>":
            op = code[i:i + 2] if code[i:i + 2] in OPS else ch
            if code[i - 1:i] not in "=!-" or i == 0:
                out.append((i, op))
            i += len(op)
            continue
        i += 1
    return out


def operand_right(code: str, start: int) -> tuple[int, int]:
    """[start, end) of the operand that begins at or after ``start``."""
    while code[start] == " ":
        start += 1
    depth, quote, i = 0, False, start
    while i < len(code):
        ch = code[i]
        if ch == '"':
            quote = not quote
        elif not quote:
            if ch in OPEN:
                depth += 1
            elif ch in CLOSE:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and ch in " ,\n":
                break
        i += 1
    return start, i


def operand_left(code: str, end: int) -> str:
    """The operand that ends just before ``end`` (its text)."""
    i = end
    while i > 0 and code[i - 1] == " ":
        i -= 1
    stop, depth, quote = i, 0, False
    while i > 0:
        ch = code[i - 1]
        if ch == '"':
            quote = not quote
        elif not quote:
            if ch in CLOSE:
                depth += 1
            elif ch in OPEN:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and ch in " ,=":
                break
        i -= 1
    return code[i:stop]


def decimals(text: str) -> int:
    return max([len(m) for m in re.findall(r"\d\.(\d+)", text)] +
               [int(n) for n in re.findall(r"round\(.*,\s*(\d+)\)", text)] + [0])


def field_scale(service: Path, name: str) -> int | None:
    """The scale of field or let ``name`` in the service's formats, copybooks and lets."""
    for route in sorted(service.glob("*.route")) + sorted(service.parent.glob("common/*.route")):
        if route.name.endswith("_test.route"):
            continue
        text = route.read_text()
        m = re.search(rf"^\s+{name}\s+decimal\((?:\d+,\s*)?(\d+)\)", text, re.M)
        if m:
            return int(m.group(1))
        if re.search(rf"^\s+{name}\s+integer\b", text, re.M):
            return 0
        m = re.search(rf"^\s+let {name}\s*=\s*(.*)$", text, re.M)
        if m:
            d = re.search(r"/\s*(10+)\s*$", m.group(1))     # round(x, 0) / 100: cents
            return decimals(m.group(1)) + (len(d.group(1)) - 1 if d else 0)
    cobol = name.upper().replace("_", "-")
    for cpy in sorted(service.rglob("*.cpy")) + sorted(service.parent.glob("common/copybooks/*.cpy")):
        m = re.search(rf"\b{re.escape(cobol)}\s+PIC\s+(\S+)", cpy.read_text())
        if m:
            pic = m.group(1).rstrip(".")
            frac = pic.split("V", 1)[1] if "V" in pic else ""
            n = re.match(r"9\((\d+)\)", frac)
            return int(n.group(1)) if n else frac.count("9")
    return None


def step_of(service: Path, left: str, right: str) -> str:
    """The step as route text: '1', '0.01', ... or 'day'."""
    if left.startswith(("len(", "days_between(")):
        return "1"
    if "date" in left or right.startswith(("today(", "add_days(", "parse_date(")):
        return "day"
    m = re.search(r"(\w+)$", left)
    scale = field_scale(service, m.group(1)) if m else None
    if scale is None:
        scale = decimals(right)
    return str(Decimal(1).scaleb(-scale)) if scale else "1"


def mutants(service: Path, line: str) -> list[tuple[str, str, str]]:
    """(name, mutated line, step) for each comparison of the line."""
    out = []
    code = code_part(line)
    for col, op in comparisons(line):
        a, b = operand_right(code, col + len(op))
        left, right = operand_left(code, col), code[a:b]
        step = step_of(service, left, right)
        where = f"`{left} {op} {right}`"
        out.append((f"flip {op}->{FLIP[op]} in {where}", line[:col] + FLIP[op] + line[col + len(op):], step))
        for sign, name in (("+", "up"), ("-", "down")):
            moved = (f"add_days({right}, {'-' if sign == '-' else ''}1)" if step == "day" else f"({right} {sign} {step})")
            out.append((f"{name} {step} in {where}", line[:a] + moved + line[b:], step))
    return out


def run_tests(bsp: str, folder: Path) -> tuple[str, str]:
    r = subprocess.run([bsp, "test", str(folder), "--no-coverage"], capture_output=True, text=True)
    if r.returncode == 0:
        return "SURVIVED", ""
    if r.returncode == 1 and "FAIL " in r.stdout:
        failed = [ln.split("  (")[0][6:] for ln in r.stdout.splitlines() if ln.startswith("FAIL ")]
        return "killed", f"by {len(failed)}: {failed[0]}"
    return "ERROR", (r.stdout + r.stderr).strip().splitlines()[-1:][0] if (r.stdout + r.stderr).strip() else ""


def mutate_service(bsp: str, routes: Path, service: str, show_all: bool) -> list[tuple[str, str]]:
    results: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix=f"mut-{service}-") as tmp:
        copy = Path(tmp) / "routes"
        shutil.copytree(routes, copy)
        folder = copy / service
        verdict, detail = run_tests(bsp, folder)
        if verdict != "SURVIVED":
            return [("ERROR", f"{service}: the unmutated tests do not pass ({verdict} {detail})")]
        for route in sorted(folder.glob("*.route")):
            if route.name.endswith("_test.route"):
                continue
            lines = route.read_text().splitlines(keepends=True)
            for no, line in enumerate(lines, 1):
                for name, new, _ in mutants(folder, line):
                    route.write_text("".join(lines[:no - 1] + [new] + lines[no:]))
                    verdict, detail = run_tests(bsp, folder)
                    results.append((verdict, f"{service}/{route.name}:{no}: {name}  {detail}"))
                    if show_all or verdict != "killed":
                        print(f"{verdict:8s} {results[-1][1]}", flush=True)
            route.write_text("".join(lines))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("services", nargs="*", help="service folders under routes/ (default: all with tests)")
    ap.add_argument("--routes", type=Path, default=ROOT / "routes")
    ap.add_argument("--bsp", default=str(Path(sys.executable).parent / "bsp"))
    ap.add_argument("--jobs", type=int, default=4, help="services mutated in parallel")
    ap.add_argument("--all", action="store_true", help="also list the killed mutants")
    ap.add_argument("--list", action="store_true", help="only list the mutants (as edited lines), run nothing")
    args = ap.parse_args()
    services = args.services or sorted(p.parent.name for p in args.routes.glob("*/*_test.route"))
    services = sorted(set(services))
    if args.list:
        for service in services:
            for route in sorted((args.routes / service).glob("*.route")):
                if route.name.endswith("_test.route"):
                    continue
                for no, line in enumerate(route.read_text().splitlines(keepends=True), 1):
                    for name, new, _ in mutants(route.parent, line):
                        print(f"{service}/{route.name}:{no}: {name}\n    {new.strip()}")
        return 0
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda s: mutate_service(args.bsp, args.routes, s, args.all), services))
    results = [r for rs in done for r in rs]
    counts = {v: sum(1 for r in results if r[0] == v) for v in ("killed", "SURVIVED", "ERROR")}
    print(f"{len(results)} mutants in {len(services)} services: {counts['killed']} killed, "
          f"{counts['SURVIVED']} survived, {counts['ERROR']} errors")
    return 0 if counts["SURVIVED"] == counts["ERROR"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
