"""The replay report as JUnit XML (``bsp replay --junit FILE``), for a CI job's test view.

One ``testsuite`` (``replay CAPTURE``) with a ``testcase`` per place that differs (``reply mainframe
message``): a ``failure`` when its differences are unexpected (the count, an example and up to
``SHOWN`` of them, values masked as in the other reports), passed with the rule that accepted them
in ``system-out`` when a profile's ``expect:`` rule did.  A first testcase, ``replay``, carries the
summary; it is an ``error`` when the replay was interrupted or no exchange could be replayed (no
verdict).  The suite's properties name the capture, the candidate and recorded versions and the profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from engine import filemodes
from engine.replay.report import _ref, _show
from engine.routetest.junit import _count

SHOWN = 50


def junit_xml(report: Any) -> bytes:
    s = report.summary()
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=f"replay {Path(report.capture).name}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("capture", report.capture), ("config_version", report.config_version),
                        ("recorded_config_version", report.recorded_version), ("profile", report.profile or ""),
                        ("result", report.result)):
        ET.SubElement(props, "property", name=name, value=str(value))
    first = ET.SubElement(suite, "testcase", classname="replay", name="replay", time=f"{report.seconds:.3f}")
    out = ET.SubElement(first, "system-out")
    out.text = (f"{s['exchanges']} exchange(s): identical {s['identical']}, with differences "
                f"{s['with_differences']}; differences: {s['unexpected_differences']} unexpected, "
                f"{s['expected_differences']} expected, {s['ignored_differences']} ignored; "
                f"not replayable {s['not_replayable']}"
                + "".join(f"\ncapture: {n}" for n in report.capture_notes))
    if report.interrupted or report.nothing_replayable:
        why = ("interrupted: the figures cover the exchanges replayed so far" if report.interrupted
               else "no exchange of the capture could be replayed: nothing was compared")
        ET.SubElement(first, "error", message=why, type=report.result.replace(" ", "_"))
    for g in report.diff.groups():
        case = ET.SubElement(suite, "testcase", classname=f"replay.{g['what']}.{g['channel']}",
                             name=f"{g['what']} {g['channel']} {g['field']}"
                             + ("" if g["unexpected"] else f" (expected by {g['expected_by']})"), time="0.000")
        ex = g["example"]
        eg = f"e.g. exchange {ex.exchange}{_ref(ex)}: {_show(ex.recorded)} -> {_show(ex.produced)}"
        if g["unexpected"]:
            fail = ET.SubElement(case, "failure", message=f"{g['count']} unexpected difference(s); {eg}",
                                 type="difference")
            same = [d for d in report.diff.unexpected
                    if (d.what, d.channel, d.field) == (g["what"], g["channel"], g["field"])]
            lines = [f"exchange {d.exchange}{_ref(d)}: {d.place()} field {d.field}: recorded {_show(d.recorded)}, "
                     f"produced {_show(d.produced)}" for d in same[:SHOWN]]
            if g["count"] > min(len(same), SHOWN):
                lines.append(f"... and {g['count'] - min(len(same), SHOWN)} more (--json has "
                             + ("them all)" if not report.diff.dropped else f"the first {report.diff.keep} "
                                                                            f"differences)"))
            fail.text = "\n".join(lines)
        else:
            note = ET.SubElement(case, "system-out")
            note.text = f"{g['count']} difference(s) expected by {g['expected_by']}; {eg}"
    _count(suite)
    _count(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(report: Any, path: Path) -> None:
    filemodes.write_private(path, junit_xml(report).decode("utf-8"))
