"""Every service folder in routes/ has route tests, they all pass, and together
they reach every route, step and branch (``bsp test routes/``)."""
from __future__ import annotations

from pathlib import Path

from engine.routetest.runner import discover, has_tests, run_paths
from engine.sim.services.catalog import ROUTES_DIR
from engine.sim.services.registry import services_registry

SERVICE_DIRS = sorted(p for p in ROUTES_DIR.iterdir() if p.is_dir() and p.name != "common")


def test_every_service_folder_has_route_tests():
    assert len(SERVICE_DIRS) >= 15
    missing = [d.name for d in SERVICE_DIRS if not has_tests(sorted(d.glob("*.route")))]
    assert missing == []


def test_all_route_tests_pass_with_full_coverage():
    res = run_paths([ROUTES_DIR], services_registry())
    failures = [f"{o.name} ({o.where}): {'; '.join(o.failures)}" for o in res.failed]
    assert failures == []
    assert res.configurations == len(SERVICE_DIRS)
    assert len(res.outcomes) >= 10 * len(SERVICE_DIRS)
    missed = [f"{i.where}: {i.label}" for i in res.coverage.missed]
    assert missed == []
    # every configuration found is one service folder (common/ holds no tests and is skipped)
    assert {Path(files[0]).parent.name for files in discover([ROUTES_DIR]) if has_tests(files)} == \
        {d.name for d in SERVICE_DIRS}


# `bsp test routes/` through the command (exit 0, "coverage: ... (100%)", " 0 failed") is checked by
# tests/routetest/test_routetest.py::test_bsp_test_routes_passes_and_writes_junit_with_coverage, in the
# same run that checks its JUnit report: running every service's tests a third time took ~5 s.
