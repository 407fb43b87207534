"""No classified value in clear anywhere bsp writes, for a slice of the shipped services run through
`bsp run` (tests/tools/leak_scan.py; docs/security.md, "Scanning for leaks").

Bill payment (its mainframe simulator sends unrouted and malformed frames too), card payments (PANs in
ISO 8583) and remittances (names and accounts in a copybook, MT103 and pacs.008) against their
simulators, with a field keyring, an audit key, `--log-level debug -v --log-file` and
`--record --mask`; then the admin API, `bsp deals`, `bsp deals show`, `bsp dead list`, the reports and
a reconciliation.  Every value the simulators sent or got in a classified field is searched for, in
its usual forms (case, spaces, JSON/XML escapes, EBCDIC, hex), in every artefact.

The engine and the simulators run on a clock started at AT (`bsp run --at`): remittances are judged on
cny_holidays.csv, which lists given years only, so on the wall clock every remittance failed (96) from the
first day of a year it does not list, and the scan no longer saw an MT103, a pacs.008 or a remittance
counterpart's answer.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tools"))
import leak_scan  # noqa: E402

SERVICES = ["bill_payment", "card_payments", "remittance"]
AT = "2026-11-25T02:00:00Z"      # a Wednesday, 10:00 in Shanghai: a CNAPS business day before the cut-off


def test_no_classified_value_in_clear_in_any_artefact(tmp_path: Path) -> None:
    work = tmp_path / "run"
    res = leak_scan.run_platform(work, SERVICES, per_service=40, bill=120, sample=4, formats=("csv", "html"),
                                 echo=lambda _: None, at=AT)
    assert res.engine_exit == 0, (work / "engine.stderr").read_text()[-2000:]
    tri = leak_scan.triage(res.harvest, work, SERVICES)
    tags = {tag for tag, _ in tri.searched.values()}
    assert len(tri.searched) >= 100 and tags == {"pan", "personal"}, (len(tri.searched), tags)
    # the artefacts are there, and hold the masked forms
    names = set(res.artefacts)
    for expected in ("engine.log", "bsp.duckdb table deals", "capture.duckdb table frames", "bsp.duckdb.txn",
                     "out/admin_GET_metrics.txt", "out/bsp_deals_--json_--limit_0.txt"):
        assert expected in names, sorted(names)
    assert any(n.startswith("reports/") for n in names), sorted(names)
    assert b"(unrouted)" in res.artefacts["engine.log"]            # the lines that leaked once are there
    leaks = leak_scan.scan(tri.searched, res.artefacts)
    assert not leaks, "\n".join(f"{x.artefact}: {x.value!r} ({x.tag}, {x.source}) as {x.how}: {x.context}"
                                for x in leaks[:20])
    # the scanner finds what it looks for: the decrypted view shows values in clear, by design
    assert leak_scan.scan(tri.searched, res.decrypted_view)
