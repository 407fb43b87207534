"""Settings for the whole suite.

Hypothesis: no per-example deadline anywhere (speed is measured in bench/, never asserted in a test;
a loaded CI machine would otherwise fail a property for being slow), and under CI (``CI=true``, as
``.ci/run`` is run) a derandomized search, so that a run is reproducible: a property that fails in
CI fails again on the same commit.  Locally each run explores new examples.
"""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")
