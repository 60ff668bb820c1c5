"""Every schedule with at most one preemption, and seeded random and PCT
schedules, of each scenario keep the guarantees of specs/rcfd.md.

`make verify` runs the same exploration through tools/explore.py (with more
random and PCT schedules); `make explore-long` raises the preemption bound.
The checker itself (model.guarantees over a History) and the seam that logs
rcfd's steps have their own tests in tests/test_history_checks.py.
"""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 12):
    pytest.skip(
        "interleaving exploration needs Python 3.12+ (interleave-test is built on "
        "sys.monitoring, PEP 669); run it with `make test PY=3.13`",
        allow_module_level=True,
    )

from tests.interleavings import harness
from tests.interleavings.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_schedule_keeps_the_guarantees(scenario: harness.Scenario) -> None:
    runs = [harness.explore(scenario, "dfs", granularity="line", iterations=10**6)]
    runs.append(harness.explore(scenario, "random", granularity="opcode", iterations=20))
    runs.append(harness.explore(scenario, "pct", granularity="opcode", iterations=20))
    for run in runs:
        if run.failure is not None:
            pytest.fail(
                f"{run.label}: schedule {run.schedules}\n{harness.describe_failure(run.failure)}"
            )
    assert runs[0].exhausted, f"DFS did not exhaust its bound in {runs[0].schedules} schedules"
