"""JUnit XML (the common CI dialect: testsuites / testsuite / testcase / failure).

Route coverage goes with each configuration's testsuite: a ``coverage`` property
(``reached/total``) and, in ``system-out``, one line per step or branch no test
reached (``file:line:col: what``), as ``bsp test`` prints them.

Route files that do not compile give a report too (``write_junit_error``): one
testcase with an ``error`` naming each diagnostic, so a CI job's test view says
why no test ran instead of finding no report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def write_junit(result: Any, path: Path, *, coverage: bool = True) -> None:
    root = ET.Element("testsuites", tests=str(len(result.outcomes)),
                      failures=str(sum(1 for o in result.outcomes if not o.passed)),
                      time=f"{sum(o.seconds for o in result.outcomes):.3f}")
    suites: dict[str, ET.Element] = {}
    for o in result.outcomes:
        suite = suites.get(o.suite)
        if suite is None:
            suite = suites[o.suite] = ET.SubElement(root, "testsuite", name=o.suite, tests="0", failures="0")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        case = ET.SubElement(suite, "testcase", classname=o.file_name, name=o.name, time=f"{o.seconds:.3f}",
                             file=o.where.split(":")[0] if o.where else "", line=o.where.split(":")[1]
                             if o.where and o.where.count(":") >= 2 else "")
        if not o.passed:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            fail = ET.SubElement(case, "failure", message=o.failures[0] if o.failures else "failed")
            fail.text = "\n".join(o.failures)
    cov = getattr(result, "coverage", None)
    if coverage and cov is not None:
        for name, suite in suites.items():
            items = cov.of_suite(name)
            if not items:
                continue
            missed = [i for i in items if not i.hit]
            reached = len(items) - len(missed)
            props = ET.Element("properties")
            ET.SubElement(props, "property", name="coverage", value=f"{reached}/{len(items)}")
            ET.SubElement(props, "property", name="coverage.unreached", value=str(len(missed)))
            suite.insert(0, props)
            out = ET.SubElement(suite, "system-out")
            lines = [f"coverage: {reached}/{len(items)} routes, steps and branches reached"]
            if missed:
                lines.append("not reached by any test:")
                lines.extend(f"  {i.where}: {i.label}" for i in missed)
            out.text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_junit_error(path: Path, suite: str, messages: list[str]) -> None:
    """The report of a run that could not start: one ``error`` testcase holding ``messages``."""
    root = ET.Element("testsuites", tests="1", failures="0", errors="1", time="0.000")
    el = ET.SubElement(root, "testsuite", name=suite, tests="1", failures="0", errors="1")
    case = ET.SubElement(el, "testcase", classname=suite, name="the route files compile", time="0.000")
    err = ET.SubElement(case, "error", message=messages[0].splitlines()[0] if messages else "the route files do not compile",
                        type="compile")
    err.text = "\n".join(messages) + "\nthe route tests did not run"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
