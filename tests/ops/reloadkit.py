"""Checks shared by the reload-under-load probes (tests/ops/test_ops_reload_kinds.py): every request got
exactly one reply from one generation, every deal is in the ledger once with the version that served it,
no dead letter, the capture holds every exchange once with that version, and a replay of the capture
against the last configuration differs exactly for the exchanges an older one served."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import orjson
import trio

from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file
from opskit import rows


async def check_generations(ledger: Path, capture: Path | None, replies: dict[str, str],
                            versions: dict[str, str], final: Path, *, sent: list[str],
                            tag_of: Callable[[bytes | None], Any] = None) -> dict[str, Any]:
    """``replies``: reference -> the tag its client got; ``versions``: config version -> its tag;
    ``final``: the route file as the last reload left it.  Returns figures for the report."""
    tag_of = tag_of or (lambda raw: orjson.loads(raw)["tag"])
    assert sorted(replies) == sorted(sent), (len(replies), len(sent))          # one reply each, none lost
    deals = rows(ledger, "SELECT reference, config_version, status FROM deals")
    refs = [r for r, _, _ in deals]
    assert sorted(refs) == sorted(sent), "deals missing or recorded twice"
    assert {s for _, _, s in deals} == {"committed"}
    served = {r: v for r, v, _ in deals}
    wrong = [(r, versions.get(v), replies[r]) for r, v in served.items() if versions.get(v) != replies[r]]
    assert wrong == [], wrong[:5]                      # the reply came from the generation the deal names
    assert rows(ledger, "SELECT count(*) FROM dead_letters") == [(0,)]
    out = {"requests": len(sent), "by_version": {versions[v]: list(served.values()).count(v) for v in versions}}
    if capture is None:
        return out
    cap = Capture(capture)
    keys = [ex.key for ex in cap.exchanges]
    assert sorted(keys) == sorted(sent), "the capture misses exchanges or holds some twice"
    for ex in cap.exchanges:
        assert ex.request.config_version == served[ex.key], (ex.key, ex.request.config_version, served[ex.key])
        assert ex.reply is not None and tag_of(ex.reply.raw) == replies[ex.key], ex.key
    report = await trio.to_thread.run_sync(lambda: replay_file(capture, [final], default_registry()))
    last = list(versions)[-1]
    old = sorted(r for r, v in served.items() if v != last)
    differing = sorted({d.key for d in report.diff.differences})
    assert differing == old, (len(differing), len(old))
    assert {(d.what, d.field) for d in report.diff.differences} <= {("reply", "tag")}, report.diff.groups()[:3]
    out["replay_differences"] = len(differing)
    # the report says it by the configuration that served each exchange: none of the last one's differ
    by_version = report.summary()["by_recorded_version"]
    assert by_version == {v: {"exchanges": n, "with_differences": 0 if v == last else n}
                          for v, n in ((v, list(served.values()).count(v)) for v in versions) if n}, by_version
    if len(by_version) > 1:
        assert f"{last} {by_version[last]['exchanges']} (0 with differences, the configuration replayed)" \
            in report.text()
    return out
