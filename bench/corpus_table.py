"""Recompute the conformance table at the top of docs/formats.md from the corpus tests.

    .venv/bin/python bench/corpus_table.py            # print the table
    .venv/bin/python bench/corpus_table.py --write    # rewrite it in docs/formats.md
    .venv/bin/python bench/corpus_table.py --check    # exit 1 when docs/formats.md is stale

It runs ``pytest tests/formats -k corpus`` in this process with a small plugin
that records, per test, which corpus files the test opened (a ``sys`` audit
hook on "open").  A corpus case (``<format>/<case>/`` under
``<repo>/../shared/corpus``) passes when at least one test read its files and
every test that read them passed.  A case no test reads counts as not passed.
"""
from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
DOC = REPO / "docs" / "formats.md"
START = "<!-- corpus-table:start (bench/corpus_table.py --write) -->"
END = "<!-- corpus-table:end -->"

FORMATS = ("copybook", "iso8583", "swift", "iso20022")
# What each format's page says about knowingly differing from upstream (kept short; details behind the link).
DEVIATIONS = {
    "copybook": "[5 listed](formats-copybook.md#conformance-1010-corpus-cases-29-option-variants-all-records): "
                "blank implied-decimal is null; IBM control-character tables; cp273 X'BC'; "
                "null numbers not filled with 0; scale kept",
    "iso8583": "[listed](formats-iso8583.md#conformance-testsformatstest_iso8583_corpuspy): "
               "moov hex length prefixes read in either case, written upper case; 7 negative moov cases rejected with their field and rule; `x+n` counts digits; "
               "jmeter 0110s lack DE 3 (read with validate false)",
    "swift": "[10 listed](formats-swift.md#conformance-testsformatstest_swift_corpuspy-and-deviations-from-upstream): "
             "`:61:` references split per SWIFT; `:13D:` offset; X set strict (`_`, stray `{`); "
             "`:86:` KREF kept apart from the `:61:` reference, text before the first SEPA keyword kept",
    "iso20022": "[listed](formats-iso20022.md#deviations--missing): genkgo dumps one record (every fact of it "
                "compared); no XSD for the .001.07 AppHdr files (read and written back without validation)",
}


class Recorder:
    """Pytest plugin: corpus files opened per test, and each test's outcome."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.touched: dict[str, set[str]] = defaultdict(set)
        self.outcome: dict[str, str] = {}
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple) -> None:
        if event != "open" or self.current is None or not args or not isinstance(args[0], (str, Path)):
            return
        try:
            rel = Path(args[0]).resolve().relative_to(CORPUS)
        except (ValueError, OSError):
            return
        if len(rel.parts) >= 3:             # <format>/<case>/<file...>
            self.touched[self.current].add(f"{rel.parts[0]}/{rel.parts[1]}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):  # noqa: ANN001
        self.current = item.nodeid
        yield
        self.current = None

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001
        prev = self.outcome.get(report.nodeid)
        if report.failed:
            self.outcome[report.nodeid] = "failed"
        elif report.when == "call" and prev != "failed":
            self.outcome[report.nodeid] = "skipped" if report.skipped else "passed"
        elif report.skipped and prev is None:
            self.outcome[report.nodeid] = "skipped"


def measure() -> dict[str, dict[str, int]]:
    rec = Recorder()
    with redirect_stdout(io.StringIO()):
        pytest.main([str(REPO / "tests" / "formats"), "-q", "-k", "corpus", "-p", "no:cacheprovider",
                     "--rootdir", str(REPO)], plugins=[rec])
    case_tests: dict[str, list[str]] = defaultdict(list)
    for test, cases in rec.touched.items():
        for case in cases:
            case_tests[case].append(test)
    out: dict[str, dict[str, int]] = {}
    for fmt in FORMATS:
        cases = sorted(p.name for p in (CORPUS / fmt).iterdir() if p.is_dir())
        passed = sum(1 for c in cases
                     if case_tests.get(f"{fmt}/{c}")
                     and all(rec.outcome.get(t) == "passed" for t in case_tests[f"{fmt}/{c}"]))
        tests = [t for t in rec.outcome if f"test_{fmt}_corpus" in t]
        out[fmt] = {"cases": len(cases), "passed": passed, "tests": len(tests),
                    "tests_passed": sum(1 for t in tests if rec.outcome[t] == "passed")}
    return out


def table(figures: dict[str, dict[str, int]]) -> str:
    rows = ["| format | corpus cases passed / total | corpus tests passed / total | deviations from upstream |",
            "|---|---|---|---|"]
    for fmt in FORMATS:
        f = figures[fmt]
        rows.append(f"| {fmt} | **{f['passed']} / {f['cases']}** | {f['tests_passed']} / {f['tests']} | "
                    f"{DEVIATIONS[fmt]} |")
    return "\n".join(rows)


def current_block(text: str) -> str | None:
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the table in docs/formats.md")
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/formats.md is stale")
    args = ap.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 2
    fresh = table(measure())
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        if current_block(text) is None:
            print(f"{DOC}: no {START} ... {END} markers to write between", file=sys.stderr)
            return 2
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{START}\n{fresh}\n{END}{tail}", encoding="utf-8")
        print(fresh)
        return 0
    if args.check:
        have = current_block(DOC.read_text(encoding="utf-8"))
        if have != fresh:
            print(f"{DOC} is stale; run: .venv/bin/python bench/corpus_table.py --write\n"
                  f"--- in the page:\n{have}\n--- measured now:\n{fresh}", file=sys.stderr)
            return 1
        print("docs/formats.md conformance table is up to date")
        return 0
    print(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
