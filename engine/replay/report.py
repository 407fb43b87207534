"""The replay report: terminal text, JSON and HTML, from one ``ReplayReport``."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine import filemodes
from engine.replay.diff import DiffResult, Difference
from engine.replay.volatile import Suggestion, profile_yaml, suggest

SHOWN = 20


@dataclass(frozen=True)
class NotReplayable:
    """A recorded exchange that was not fed to the candidate, and why (as recorded)."""
    exchange: int
    key: str | None
    channel: str
    reason: str


@dataclass
class ReplayReport:
    capture: str
    config_version: str
    recorded_version: str
    config_files: list[str]
    pace: str
    diff: DiffResult
    answered_by_key: int = 0               # from the call's own recorded exchange: by identity or by position
    answered_by_order: int = 0
    answered_by_identity: int = 0          # of answered_by_key: the recorded call of the same identity
    answered_by_position: int = 0          # of answered_by_key: the recorded nth call (no identity)
    pairing: dict[str, str] = field(default_factory=dict)                 # channel -> how its calls are paired
    unanswered_identity: dict[str, int] = field(default_factory=dict)     # channel -> calls of an identity never recorded
    unanswered: int = 0
    answered_by_script: dict[str, int] = field(default_factory=dict)      # channel -> calls (--answers)
    unanswered_by_channel: dict[str, int] = field(default_factory=dict)   # channel -> calls answered by nothing
    recorded_channels: list[str] = field(default_factory=list)            # channels the recording has calls to
    answers: str | None = None                                            # the answers file
    unused_answers: list[str] = field(default_factory=list)               # its rules that answered no call
    seconds: float = 0.0
    profile: str | None = None
    total_exchanges: int | None = None     # in the capture (None: as many as were replayed)
    interrupted: bool = False              # stopped by SIGINT: the figures cover the replayed part only
    not_replayable: list[NotReplayable] = field(default_factory=list)
    capture_notes: list[str] = field(default_factory=list)     # what the capture may lack (Capture.completeness)
    clock: str = "recorded"                # what now() / today() read: the recorded received times, or now
    served_by: dict[int, str] = field(default_factory=dict)    # replayed exchange -> the version that served it
    versions: dict[str, dict[str, int]] | None = None          # by_recorded_version, tallied as compared
    slice: dict[str, int] | None = None    # --from / --count: {"from": 1-based, "count": n, "of": in the capture}
    resume_from: int | None = None         # interrupted: the position (1-based) from which nothing was compared
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nothing_replayable(self) -> bool:
        """Every exchange of the capture is not replayable: nothing was compared, so no verdict."""
        return bool(self.not_replayable) and len(self.not_replayable) >= self.total

    @property
    def passed(self) -> bool:
        return not self.diff.unexpected_count and not self.nothing_replayable

    @property
    def result(self) -> str:
        return ("interrupted" if self.interrupted else "not replayable" if self.nothing_replayable
                else "pass" if self.passed else "fail")

    def not_replayable_groups(self) -> list[tuple[str, list[NotReplayable]]]:
        """The not replayable exchanges by reason, the most frequent first."""
        by: dict[str, list[NotReplayable]] = {}
        for n in self.not_replayable:
            by.setdefault(n.reason, []).append(n)
        return sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    @property
    def volatile(self) -> list[Suggestion]:
        """Unexpected differences that look volatile (timestamps, generated ids): see volatile.py."""
        if "volatile" not in self.extra:
            self.extra["volatile"] = suggest(self.diff)
        return self.extra["volatile"]

    def suggested_profile(self) -> str | None:
        return profile_yaml(self.volatile) if self.volatile else None

    def summary(self) -> dict[str, Any]:
        d = self.diff
        return {
            "capture": self.capture, "config_version": self.config_version,
            "recorded_config_version": self.recorded_version, "config_files": self.config_files,
            "pace": self.pace, "clock": self.clock, "profile": self.profile,
            "exchanges": d.exchanges, "identical": d.identical, "with_differences": d.exchanges - d.identical,
            "unexpected_differences": d.unexpected_count, "expected_differences": d.expected_count,
            "ignored_differences": d.ignored,
            "answered_by_key": self.answered_by_key, "answered_by_order": self.answered_by_order,
            "answered_by_identity": self.answered_by_identity, "answered_by_position": self.answered_by_position,
            "pairing": dict(sorted(self.pairing.items())),
            "unanswered_calls": self.unanswered, "answers": self.answers,
            "answered_by_script": sum(self.answered_by_script.values()),
            "answered_by_script_per_channel": dict(sorted(self.answered_by_script.items())),
            "unanswered_per_channel": dict(sorted(self.unanswered_by_channel.items())),
            "unused_answers": list(self.unused_answers), "seconds": round(self.seconds, 3),
            "exchanges_in_capture": self.total, "not_replayable": len(self.not_replayable),
            "frames_not_compared": d.unstored, "uuid_differences_not_counted": d.uuids,
            "mac_fields_not_compared": {f: sorted(k) for f, k in sorted(d.mac_fields.items())},
            "unused_profile_rules": [f"{r.label} {r.describe()}" for r in d.unused_rules],
            "capture_notes": list(self.capture_notes),
            "partial": self.interrupted, "result": self.result,
            "by_recorded_version": self.by_recorded_version(),
            **({"slice": dict(self.slice)} if self.slice is not None else {}),
            **({"differences_not_kept": d.dropped} if d.dropped else {}),
            **({"resume_from": self.resume_from} if self.interrupted and self.resume_from is not None else {}),
        }

    def by_recorded_version(self) -> dict[str, dict[str, int]]:
        """``{version: {"exchanges": n, "with_differences": m}}`` over the replayed exchanges, by the configuration
        that served each when it was recorded (a capture recorded across reloads holds several): the exchanges
        an older configuration served may differ by that configuration's change alone."""
        if self.versions is not None:
            return {v: dict(r) for v, r in self.versions.items()}
        differing = {d.exchange for d in self.diff.differences}
        out: dict[str, dict[str, int]] = {}
        for exchange, version in self.served_by.items():
            row = out.setdefault(version or "unknown", {"exchanges": 0, "with_differences": 0})
            row["exchanges"] += 1
            row["with_differences"] += exchange in differing
        return out

    def by_version_text(self) -> str | None:
        """The line of ``by_recorded_version`` for a capture of more than one configuration (None otherwise)."""
        rows = self.by_recorded_version()
        if len(rows) < 2:
            return None
        parts = [f"{v} {r['exchanges']} ({r['with_differences']} with differences"
                 f"{', the configuration replayed' if v == self.config_version else ''})" for v, r in rows.items()]
        return "by the configuration that served them when recorded: " + "; ".join(parts)

    def slice_text(self) -> str | None:
        """Which exchanges of the capture ran (``--from`` / ``--count``); None for the whole capture."""
        if self.slice is None:
            return None
        first, n, of = self.slice["from"], self.slice["count"], self.slice["of"]
        return (f"slice: exchanges {first} to {first + n - 1} of the {of} in the capture, in replay order "
                f"(--from {first} --count {n}); the figures cover those only")

    def kept_text(self) -> str:
        d = self.diff
        return (f"{d.dropped} more difference(s) counted but not kept (past --max-differences {d.keep}): the counts "
                f"and the places cover them all, the lists of differences (and the volatile suggestions) the "
                f"first {d.keep}")

    def endpoints_text(self) -> str:
        """Where the candidate's calls were answered from: the recording, the answers script, nothing."""
        scripted = sum(self.answered_by_script.values())
        script = (f", {scripted} from the answers script {self.answers}"
                  + (f" ({', '.join(f'{c} {n}' for c, n in sorted(self.answered_by_script.items()))})"
                     if scripted else "")) if self.answers else ""
        nothing = (f" ({', '.join(f'{c} {n}' for c, n in sorted(self.unanswered_by_channel.items()))})"
                   if self.unanswered_by_channel else "")
        how = (f" ({self.answered_by_identity} by the call's identity, {self.answered_by_position} by its position "
               f"in the exchange)" if self.answered_by_identity and self.answered_by_position
               else " (by the call's identity)" if self.answered_by_identity
               else " (by its position in the exchange)" if self.answered_by_position else "")
        return (f"{self.answered_by_key} answer(s) from the recording by correlation key{how}, {self.answered_by_order} "
                f"by order{script}, {self.unanswered} call(s) with no answer, failed as unreachable{nothing}")

    def pairing_text(self) -> str | None:
        """How the candidate's calls were paired with the recorded ones, per channel (None: no call)."""
        if not self.pairing:
            return None
        ident = [f"{ch} ({how})" for ch, how in sorted(self.pairing.items()) if how != "position"]
        pos = [ch for ch, how in sorted(self.pairing.items()) if how == "position"]
        parts = ([f"by identity on {', '.join(ident)}"] if ident else []) + (
            [f"by position in their exchange on {', '.join(pos)} (their requests carry no identity: no `match`, "
             f"not ISO 8583)"] if pos else [])
        return ("pairing: each reply and deal with its recorded exchange (as recorded: connection and arrival); "
                "calls " + "; ".join(parts))

    def answer_notes(self) -> list[str]:
        """Per channel whose calls nothing answered: why, and how to script them; the unused script rules."""
        out = []
        if self.answered_by_order:
            out.append(f"{self.answered_by_order} call(s) answered by order (the channel's next answer the recording "
                       f"made outside any exchange, or a call made outside any recorded exchange): nothing else "
                       f"pairs them, so such an answer may not be the one that call got; their differences are worth "
                       f"a look")
        for ch, n in sorted(self.unanswered_by_channel.items()):
            ident = self.unanswered_identity.get(ch, 0)
            why = ("the recording has no call to it (a counterpart the candidate adds?)"
                   if ch not in self.recorded_channels else
                   f"their recorded exchange made no call of their identity ({self.pairing.get(ch, 'its key')}): "
                   f"calls the candidate adds (a check, a reversal, a repeat) or whose key fields it changes"
                   if ident >= n else
                   "their recorded exchange made fewer calls to it (a call is never given another exchange's "
                   "answer)")
            out.append(f"channel {ch}: {n} call(s) answered by nothing, failed as unreachable: {why}; script "
                       f"their answer with --answers FILE, e.g. `answers: [{{channel: {ch}, answer: 'FORMAT "
                       f"{{ field = value }}'}}]` (docs/testing.md, Answers the recording lacks)")
        out.extend(f"answers: {r}: answered no call" for r in self.unused_answers)
        return out

    @property
    def total(self) -> int:
        return (self.total_exchanges if self.total_exchanges is not None
                else self.diff.exchanges + len(self.not_replayable))

    @property
    def replayable(self) -> int:
        """The exchanges of the capture that could be fed to the candidate."""
        return self.total - len(self.not_replayable)

    # ------------------------------------------------------------ text
    def text(self, shown: int = SHOWN) -> str:
        s = self.summary()
        d = self.diff
        lines = [f"interrupted after {s['exchanges']} of {self.replayable} exchange(s); the figures below cover "
                 f"those {s['exchanges']} only (partial)"] if self.interrupted else []
        lines += [
            f"replay of {self.capture}: {s['exchanges']} exchange(s) against configuration {self.config_version}"
            f" (recorded on {self.recorded_version or 'unknown'}), pace {self.pace}, clock {self.clock}, "
            f"{s['seconds']}s",
            f"  identical {s['identical']}, with differences {s['with_differences']}; differences: "
            f"{s['unexpected_differences']} unexpected, {s['expected_differences']} expected, "
            f"{s['ignored_differences']} ignored",
            f"  virtual endpoints: {self.endpoints_text()}",
        ]
        if self.slice_text() is not None:
            lines.append(f"  {self.slice_text()}")
        if d.dropped:
            lines.append(f"  {self.kept_text()}")
        by_version = self.by_version_text()
        if by_version is not None:
            lines.append(f"  {by_version}")
        pairing = self.pairing_text()
        if pairing is not None:
            lines.append(f"  {pairing}")
        lines.extend(f"  {note}" for note in self.answer_notes())
        lines.extend(f"  capture: {note}" for note in self.capture_notes)
        if self.not_replayable:
            lines.append(f"  not replayable {len(self.not_replayable)} of {self.total} exchange(s): recorded without "
                         f"the bytes a replay needs, so not fed and not compared (not counted as differences):")
            for reason, items in self.not_replayable_groups():
                eg = ", ".join(f"{n.exchange}{f' (ref {n.key})' if n.key else ''}" for n in items[:3])
                lines.append(f"    {len(items):>6}  {reason}; e.g. exchange {eg}")
        if d.unstored:
            lines.append(f"  {d.unstored} recorded frame(s) of replayed exchanges (replies, outbound requests) were "
                         f"stored without their bytes (--mask): not compared")
        if d.uuids:
            lines.append(f"  {d.uuids} value(s) that differ only in UUIDs (uuid() makes a new one each run) not "
                         f"counted as differences (--compare-uuids counts them)")
        if self.clock == "now":
            lines.append("  clock now: now() and today() read the wall clock, not the recorded times (a date "
                         "computed from them differs on another day)")
        if d.mac_fields:
            shown_macs = "; ".join(f"format {f} field {', '.join(sorted(k))}" for f, k in sorted(d.mac_fields.items()))
            lines.append(f"  MAC field(s) not compared: {shown_macs} (a MAC differs whenever another field "
                         f"does; the candidate's codec verified each MAC it read and computed each one it wrote)")
        if d.unused_rules:
            lines.append(f"  {len(d.unused_rules)} profile rule(s) matched no difference in this replay (if they "
                         f"should have, check their channel, what and field against the places below):")
            lines.extend(f"    {r.label} {r.describe()}" for r in d.unused_rules)
        groups = d.groups()
        if groups:
            lines.append("differences by place:")
            fields = [g["field"] + (f" ({g['example'].title})" if g["example"].title else "") for g in groups]
            # columns as wide as the longest channel and field (a field up to 64 characters), so the counts line up
            cw = max([12] + [len(g["channel"]) for g in groups])
            fw = max([24] + [len(f) for f in fields if len(f) <= 64])
            ww = max([5] + [len(g["what"]) for g in groups])       # "dead letter" is wider than "reply"
            for g, shown_field in zip(groups, fields):
                ex: Difference = g["example"]
                tag = "unexpected" if g["unexpected"] else f"expected by {g['expected_by']}"
                lines.append(f"  {g['what']:<{ww}} {g['channel']:<{cw}} {shown_field:<{fw}} {g['count']:>6}  {tag}; "
                             f"e.g. exchange {ex.exchange}{_ref(ex)}: {_show(ex.recorded)} -> {_show(ex.produced)}")
        if d.unexpected and shown > 0:
            lines.append(f"first {min(shown, len(d.unexpected))} unexpected difference(s):")
            for x in d.unexpected[:shown]:
                lines.append(f"  exchange {x.exchange}{_ref(x)}: {x.place()} field {x.field}"
                             f"{f' ({x.title})' if x.title else ''}: recorded {_show(x.recorded)}, produced "
                             f"{_show(x.produced)}")
        if self.volatile:
            n = sum(v.count for v in self.volatile)
            lines.append(f"{n} of the unexpected differences look volatile ("
                         f"{', '.join(sorted({v.kind for v in self.volatile}))}); if they are, ignore them with "
                         f"these rules in a replay profile (--profile FILE):")
            lines.extend("    " + ln for ln in self.suggested_profile().splitlines())
        if self.interrupted:
            lines.append(f"result: INTERRUPTED after {s['exchanges']} of {self.replayable} exchange(s) "
                         f"({d.unexpected_count} unexpected difference(s) in those); run it again to the end "
                         f"for a verdict" + (f", or continue it with --from {self.resume_from}"
                                             if self.resume_from is not None else ""))
        elif self.nothing_replayable:
            lines.append(f"result: NOT REPLAYABLE (none of the {self.total} exchange(s) could be replayed, so "
                         f"nothing was compared; record again with a configuration whose formats decode and "
                         f"re-encode this traffic, see `masked` in the capture's frames table)")
        else:
            skipped = (f" ({len(self.not_replayable)} of {self.total} exchange(s) not replayable: not compared)"
                       if self.not_replayable else "")
            lines.append(f"result: PASS{skipped}" if self.passed else
                         f"result: FAIL ({d.unexpected_count} unexpected difference(s); accept known ones with "
                         f"`expect:` rules or volatile fields with `ignore:` rules in a replay profile, "
                         f"--profile FILE){skipped}")
        return "\n".join(lines)

    # ------------------------------------------------------------ json
    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "groups": [{k: v for k, v in g.items() if k != "example"} for g in self.diff.groups()],
            "differences": [_diff_json(x) for x in self.diff.differences],
            "volatile": [{"what": v.what, "channel": v.channel, "field": v.field, "kind": v.kind, "count": v.count}
                         for v in self.volatile],
            "suggested_profile": self.suggested_profile(),
            "not_replayable": [{"exchange": n.exchange, "key": n.key, "channel": n.channel, "reason": n.reason}
                               for n in self.not_replayable],
        }

    def write_json(self, path: Path) -> None:
        filemodes.write_private(path, json.dumps(self.to_json(), indent=2, default=_default) + "\n")

    # ------------------------------------------------------------ html
    def write_html(self, path: Path, rows: int = 2000) -> None:
        filemodes.write_private(path, self.html(rows))

    def html(self, rows: int = 2000) -> str:
        s = self.summary()
        e = html.escape
        verdict = self.result.upper()
        facts = [("exchanges", s["exchanges"] if not self.interrupted else f"{s['exchanges']} of {self.replayable}"),
                 ("identical", s["identical"]), ("unexpected differences", s["unexpected_differences"]),
                 ("expected differences", s["expected_differences"]), ("ignored", s["ignored_differences"]),
                 ("not replayable", s["not_replayable"])]
        cards = "".join(f"<div class='card{' bad' if k in ('unexpected differences', 'not replayable') and v else ''}'>"
                        f"<b>{e(str(v))}</b><span>{e(k)}</span></div>" for k, v in facts)
        info = [("capture", self.capture), ("candidate configuration", self.config_version),
                ("recorded on configuration", self.recorded_version or "unknown"),
                ("configuration files", ", ".join(self.config_files)), ("profile", self.profile or "(none)"),
                ("pace", self.pace), ("time", f"{s['seconds']} s"),
                ("virtual endpoints", self.endpoints_text())]
        if self.slice_text() is not None:
            info.append(("slice", self.slice_text()[len("slice: "):]))
        if self.pairing_text() is not None:
            info.append(("pairing", self.pairing_text()[len("pairing: "):]))
        info.extend(("unanswered calls", note) for note in self.answer_notes())
        if self.diff.mac_fields:
            info.append(("MAC fields not compared", "; ".join(
                f"format {f} field {', '.join(sorted(k))}" for f, k in sorted(self.diff.mac_fields.items()))
                + " (verified and computed by the codec)"))
        info.extend(("capture incomplete", note) for note in self.capture_notes)
        if self.diff.unstored:
            info.append(("frames not compared", f"{self.diff.unstored} recorded without their bytes (--mask)"))
        info_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in info)
        unrep = "".join(f"<tr class='bad'><td class='n'>{len(items)}</td><td>{e(reason)}</td><td>"
                        f"{e(', '.join(str(n.exchange) for n in items[:20]))}{' ...' if len(items) > 20 else ''}"
                        f"</td></tr>" for reason, items in self.not_replayable_groups())
        unrep_part = (f"<h2>Not replayable</h2><p>Recorded without the bytes a replay needs: not fed to the "
                      f"candidate, not compared, not counted as differences.</p><table><thead><tr><th>count</th>"
                      f"<th>why</th><th>exchanges</th></tr></thead><tbody>{unrep}</tbody></table>" if unrep else "")
        groups = "".join(
            f"<tr class='{'bad' if g['unexpected'] else 'ok'}'><td>{e(g['what'])}</td><td>{e(g['channel'])}</td>"
            f"<td><code>{e(g['field'])}</code>{_title_html(g['example'])}</td><td class='n'>{g['count']}</td>"
            f"<td>{'unexpected' if g['unexpected'] else e('expected: ' + str(g['expected_by']))}</td>"
            f"<td><code>{e(_show(g['example'].recorded))}</code> &rarr; <code>{e(_show(g['example'].produced))}"
            f"</code></td></tr>"
            for g in self.diff.groups())
        shown = self.diff.differences[:rows]
        diffs = "".join(
            f"<tr class='{'bad' if x.unexpected else 'ok'}'><td class='n'>{x.exchange}</td><td>{e(x.key or '')}</td>"
            f"<td>{e(x.place())}</td><td><code>{e(x.field)}</code>{_title_html(x)}</td><td><code>{e(_show(x.recorded))}</code></td>"
            f"<td><code>{e(_show(x.produced))}</code></td></tr>" for x in shown)
        more = (f"<p class='note'>{len(self.diff.differences) - len(shown)} more difference(s) are in the JSON "
                f"report (--json FILE).</p>" if len(self.diff.differences) > len(shown) else "")
        if self.diff.dropped:
            more += f"<p class='note'>{e(self.kept_text())}</p>"
        volatile = ""
        if self.volatile:
            volatile = (f"<h2>Volatile fields?</h2><p>These places differ in every exchange with values that "
                        f"look generated (timestamps, ids). If they are, ignore them with these rules in a replay "
                        f"profile (<code>--profile FILE</code>):</p><pre>{e(self.suggested_profile() or '')}</pre>")
        group_part = (f"<table><thead><tr><th>what</th><th>channel</th><th>field</th><th>count</th><th>status</th>"
                      f"<th>example (recorded &rarr; produced)</th></tr></thead><tbody>{groups}</tbody></table>"
                      if groups else "<p class='note'>No differences.</p>")
        diff_part = (f"<table><thead><tr><th>exchange</th><th>key</th><th>place</th><th>field</th><th>recorded</th>"
                     f"<th>produced</th></tr></thead><tbody>{diffs}</tbody></table>{more}" if diffs else "")
        colour = ("#9a6700" if self.interrupted or self.nothing_replayable else "#1a7f37" if self.passed
                  else "#c62828")
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>bsp replay: {verdict}</title>
<style>
body{{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}}
main{{max-width:1200px;margin:0 auto;padding:1.5em 2em 3em}}
h1{{margin:.2em 0 .6em;font-size:1.7em}} h1 .v{{color:#fff;background:{colour};padding:.05em .5em;border-radius:.3em}}
h2{{font-size:1.2em;margin:1.6em 0 .5em}}
.cards{{display:flex;gap:.8em;flex-wrap:wrap;margin-bottom:1em}}
.card{{background:#fff;border:1px solid #d0d7de;border-radius:.5em;padding:.6em 1em;min-width:9em}}
.card b{{display:block;font-size:1.6em}} .card span{{color:#57606a}} .card.bad b{{color:#c62828}}
table{{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}}
th,td{{border-bottom:1px solid #e5e7eb;padding:.35em .7em;text-align:left;vertical-align:top}}
thead th{{background:#eaeef2;position:sticky;top:0}} table.info th{{width:14em;color:#57606a;font-weight:normal}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}}
code,pre{{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}}
pre{{background:#fff;border:1px solid #d0d7de;padding:.8em;border-radius:.4em;overflow:auto}}
tr.bad td:first-child{{border-left:4px solid #c62828}} tr.ok td:first-child{{border-left:4px solid #1a7f37}}
.note{{color:#57606a}}
</style></head><body><main>
<h1>bsp replay <span class="v">{verdict}</span></h1>
<div class="cards">{cards}</div>
<table class="info">{info_rows}</table>
{unrep_part}
{volatile}
<h2>Differences by place</h2>
{group_part}
<h2>Differences</h2>
{diff_part or "<p class='note'>None.</p>"}
</main></body></html>
"""


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


def _title_html(x: Difference) -> str:
    return f" ({html.escape(x.title)})" if x.title else ""


def _diff_json(x: Difference) -> dict[str, Any]:
    return {"exchange": x.exchange, "key": x.key, "channel": x.channel, "what": x.what, "call_seq": x.call_seq,
            "field": x.field, "field_name": x.title, "recorded": x.recorded, "produced": x.produced,
            "unexpected": x.unexpected, "expected_by": x.expected_by}
