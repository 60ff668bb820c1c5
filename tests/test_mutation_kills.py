"""The catalog's scenarios (mutants/) replayed against the real rcfd: no guarantee breaks.

Each scenario is the shortest sequence of steps that shows one catalog bug
(`make explain MUTANT=<name>`); replayed here against the unmutated FD, with
real threads and bounded waits, it must break nothing. Against its mutant it
breaks the guarantee the mutant's entry names, which is how `make mutants`
kills the bugs that no other check reaches (a preemption right after a
locked section, a close inside a borrow, a refused call that leaks a count).
"""

from __future__ import annotations

import pytest

from mutants import CATALOG
from mutants._harness import replay
from mutants._mutant import Mutant


@pytest.mark.parametrize("mutant", CATALOG, ids=[m.name for m in CATALOG])
def test_scenario_breaks_nothing_on_the_real_fd(mutant: Mutant) -> None:
    result = replay(mutant.scenario)
    assert not result.violations, "\n".join(str(v) for v in result.violations)
