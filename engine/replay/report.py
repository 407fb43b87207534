"""The replay report: terminal text, JSON and HTML, from one ``ReplayReport``."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.replay.diff import DiffResult, Difference

SHOWN = 20


@dataclass
class ReplayReport:
    capture: str
    config_version: str
    recorded_version: str
    config_files: list[str]
    pace: str
    diff: DiffResult
    answered_by_key: int = 0
    answered_by_order: int = 0
    unanswered: int = 0
    seconds: float = 0.0
    profile: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.diff.unexpected

    def summary(self) -> dict[str, Any]:
        d = self.diff
        return {
            "capture": self.capture, "config_version": self.config_version,
            "recorded_config_version": self.recorded_version, "config_files": self.config_files,
            "pace": self.pace, "profile": self.profile,
            "exchanges": d.exchanges, "identical": d.identical, "with_differences": d.exchanges - d.identical,
            "unexpected_differences": len(d.unexpected), "expected_differences": len(d.expected),
            "ignored_differences": d.ignored,
            "answered_by_key": self.answered_by_key, "answered_by_order": self.answered_by_order,
            "unanswered_calls": self.unanswered, "seconds": round(self.seconds, 3),
            "result": "pass" if self.passed else "fail",
        }

    # ------------------------------------------------------------ text
    def text(self, shown: int = SHOWN) -> str:
        s = self.summary()
        d = self.diff
        lines = [
            f"replay of {self.capture}: {s['exchanges']} exchange(s) against configuration {self.config_version}"
            f" (recorded on {self.recorded_version or 'unknown'}), pace {self.pace}, {s['seconds']}s",
            f"  identical {s['identical']}, with differences {s['with_differences']}; differences: "
            f"{s['unexpected_differences']} unexpected, {s['expected_differences']} expected, "
            f"{s['ignored_differences']} ignored",
            f"  virtual endpoints: {self.answered_by_key} answer(s) by correlation key, "
            f"{self.answered_by_order} by order, {self.unanswered} call(s) with no recorded answer",
        ]
        groups = d.groups()
        if groups:
            lines.append("differences by place:")
            for g in groups:
                ex: Difference = g["example"]
                tag = "unexpected" if g["unexpected"] else f"expected by {g['expected_by']}"
                lines.append(f"  {g['what']:5} {g['channel']:<12} {g['field']:<24} {g['count']:>6}  {tag}; "
                             f"e.g. exchange {ex.exchange}{_ref(ex)}: {_show(ex.recorded)} -> {_show(ex.produced)}")
        if d.unexpected:
            lines.append(f"first {min(shown, len(d.unexpected))} unexpected difference(s):")
            for x in d.unexpected[:shown]:
                lines.append(f"  exchange {x.exchange}{_ref(x)}: {x.place()} field {x.field}: recorded "
                             f"{_show(x.recorded)}, produced {_show(x.produced)}")
        lines.append("result: PASS" if self.passed else
                     f"result: FAIL ({len(d.unexpected)} unexpected difference(s); accept known ones with "
                     f"`expect:` rules or volatile fields with `ignore:` rules in a replay profile, --profile FILE)")
        return "\n".join(lines)

    # ------------------------------------------------------------ json
    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "groups": [{k: v for k, v in g.items() if k != "example"} for g in self.diff.groups()],
            "differences": [_diff_json(x) for x in self.diff.differences],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=_default) + "\n", encoding="utf-8")

    # ------------------------------------------------------------ html
    def write_html(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        s = self.summary()
        e = html.escape
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in s.items())
        groups = "".join(
            f"<tr class='{'bad' if g['unexpected'] else 'ok'}'><td>{e(g['what'])}</td><td>{e(g['channel'])}</td>"
            f"<td>{e(g['field'])}</td><td>{g['count']}</td>"
            f"<td>{'unexpected' if g['unexpected'] else e('expected by ' + str(g['expected_by']))}</td></tr>"
            for g in self.diff.groups())
        diffs = "".join(
            f"<tr class='{'bad' if x.unexpected else 'ok'}'><td>{x.exchange}</td><td>{e(x.key or '')}</td>"
            f"<td>{e(x.place())}</td><td>{e(x.field)}</td><td>{e(_show(x.recorded))}</td>"
            f"<td>{e(_show(x.produced))}</td></tr>" for x in self.diff.differences[:5000])
        verdict = "PASS" if self.passed else "FAIL"
        doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bsp replay: {verdict}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:90%}}
tr.bad td{{background:#fde8e8}} tr.ok td{{background:#eef7ee}} h1 span{{color:{'#1a7f37' if self.passed else '#c62828'}}}
</style></head><body>
<h1>bsp replay: <span>{verdict}</span></h1>
<h2>Summary</h2><table>{rows}</table>
<h2>Differences by place</h2>
<table><tr><th>what</th><th>channel</th><th>field</th><th>count</th><th>status</th></tr>{groups}</table>
<h2>Differences</h2>
<table><tr><th>exchange</th><th>key</th><th>place</th><th>field</th><th>recorded</th><th>produced</th></tr>{diffs}</table>
</body></html>
"""
        path.write_text(doc, encoding="utf-8")


def _ref(d: Difference) -> str:
    return f" (ref {d.key})" if d.key else ""


def _show(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Decimal):
        return str(v)
    return repr(v) if not isinstance(v, (date, datetime)) else v.isoformat()


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return repr(v)


def _diff_json(x: Difference) -> dict[str, Any]:
    return {"exchange": x.exchange, "key": x.key, "channel": x.channel, "what": x.what, "call_seq": x.call_seq,
            "field": x.field, "recorded": x.recorded, "produced": x.produced,
            "unexpected": x.unexpected, "expected_by": x.expected_by}
