"""JUnit XML (the common CI dialect: testsuites / testsuite / testcase / failure).

Route coverage goes with each configuration's testsuite: a ``coverage`` property
(``reached/total``) and, in ``system-out``, one line per step or branch no test
reached (``file:line:col: what``), as ``bsp test`` prints them.

A configuration whose route files do not compile gets a testsuite too: one
testcase with an ``error`` naming each diagnostic, so a CI job's test view says
why its tests did not run instead of finding them missing; the other
configurations' tests are in the same report.

Every testsuite, and the testsuites root, has ``tests``, ``failures``,
``errors``, ``skipped`` (always 0: bsp has no skipped test) and ``time`` (seconds,
the sum of its testcases'); every testcase has ``time``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable
from xml.etree import ElementTree as ET


def write_junit(result: Any, path: Path, *, coverage: bool = True,
                render: Callable[[Any], list[str]] | None = None) -> None:
    """``render(broken)``: the lines naming each diagnostic of a configuration that does not compile
    (as ``bsp test`` shows them); by default ``dsl.diagnostics.render``."""
    root = ET.Element("testsuites")
    suites: dict[str, ET.Element] = {}
    for o in result.outcomes:
        suite = suites.get(o.suite)
        if suite is None:
            suite = suites[o.suite] = ET.SubElement(root, "testsuite", name=o.suite)
        case = ET.SubElement(suite, "testcase", classname=o.file_name, name=o.name, time=f"{o.seconds:.3f}",
                             file=o.where.split(":")[0] if o.where else "", line=o.where.split(":")[1]
                             if o.where and o.where.count(":") >= 2 else "")
        if not o.passed:
            fail = ET.SubElement(case, "failure", message=o.failures[0] if o.failures else "failed")
            fail.text = "\n".join(o.failures)
    for b in getattr(result, "broken", ()):
        lines = render(b) if render is not None else _rendered(b)
        suites[b.suite] = _error_suite(root, b.suite, lines)
    for suite in suites.values():
        _count(suite)
    _count(root)
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


def _error_suite(root: ET.Element, suite: str, messages: list[str]) -> ET.Element:
    """A configuration whose route files do not compile: one testcase with an ``error`` naming each diagnostic."""
    el = ET.SubElement(root, "testsuite", name=suite)
    case = ET.SubElement(el, "testcase", classname=suite, name="the route files compile", time="0.000")
    err = ET.SubElement(case, "error", message=messages[0].splitlines()[0] if messages
                        else "the route files do not compile", type="compile")
    err.text = "\n".join(messages) + "\nthe route tests did not run"
    return el


def _count(el: ET.Element) -> None:
    """``tests``, ``failures``, ``errors``, ``skipped`` and ``time`` of a testsuite (from its testcases) or of
    the testsuites root (from its testsuites), in the order CI parsers (Jenkins, GitLab, Azure) read them."""
    cases = list(el.iter("testcase"))
    attrs = {"tests": str(len(cases)),
             "failures": str(sum(1 for c in cases if c.find("failure") is not None)),
             "errors": str(sum(1 for c in cases if c.find("error") is not None)),
             "skipped": str(sum(1 for c in cases if c.find("skipped") is not None)),
             "time": f"{sum(float(c.get('time') or 0) for c in cases):.3f}"}
    rest = {k: v for k, v in el.attrib.items() if k not in attrs}
    el.attrib.clear()
    el.attrib.update({**({"name": rest.pop("name")} if "name" in rest else {}), **attrs, **rest})


def _rendered(broken: Any) -> list[str]:
    from dsl.diagnostics import render
    return [render(d, broken.sources) for d in broken.diagnostics]
