"""JUnit XML (the common CI dialect: testsuites / testsuite / testcase / failure)."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def write_junit(result: Any, path: Path) -> None:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
