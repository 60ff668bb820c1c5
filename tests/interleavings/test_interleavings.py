"""Every schedule with at most one preemption, and seeded random and PCT
schedules, of each scenario keep the guarantees of specs/rcfd.md.

`make verify` runs the same exploration through tools/explore.py (with more
random and PCT schedules); `make explore-long` raises the preemption bound.
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

from rcfd._lifecycle import State
from tests.interleavings import harness
from tests.interleavings.harness import Ev, World
from tests.interleavings.scenarios import BY_NAME, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_schedule_keeps_the_guarantees(scenario: harness.Scenario) -> None:
    runs = [harness.explore(scenario, "dfs", granularity="line", iterations=10**6)]
    runs.append(harness.explore(scenario, "random", granularity="opcode", iterations=20))
    runs.append(harness.explore(scenario, "pct", granularity="opcode", iterations=20))
    for run in runs:
        if run.failure is not None:
            pytest.fail(f"{run.label}: schedule {run.schedules}\n{run.failure.format()}")
    assert runs[0].exhausted, f"DFS did not exhaust its bound in {runs[0].schedules} schedules"


# The checker itself: each guarantee, broken in a hand-written log, is reported.


def _world(*events: tuple[str, str, str, State]) -> World:
    world = World(BY_NAME["borrowers_closer/2"])  # no FD: only the log is checked
    world.events = [Ev(who, what, detail, state, 0) for who, what, detail, state in events]
    return world


OPENED = ("main", "state", "UNINIT -> OPEN", State.OPEN)
CLOSING = ("closer", "state", "OPEN -> CLOSING", State.CLOSING)
CLOSER_HOLD = ("closer", "hold", "", State.CLOSING)
CLOSER_UNHOLD = ("closer", "unhold", "", State.CLOSING)


def test_checker_reports_close_func_under_a_borrow() -> None:
    world = _world(
        OPENED,
        ("b", "hold", "", State.OPEN),
        ("b", "fn", "rawfd=7", State.OPEN),
        CLOSING,
        CLOSER_HOLD,
        CLOSER_UNHOLD,
        ("closer", "close_func", "rawfd=7", State.CLOSING),
    )
    assert any("close_func called while borrows run" in p for p in harness.violations(world))


def test_checker_reports_a_borrow_after_close_began() -> None:
    world = _world(
        OPENED,
        CLOSING,
        CLOSER_HOLD,
        ("b", "hold", "", State.CLOSING),
        ("b", "fn", "rawfd=7", State.CLOSING),
    )
    assert any("after close began (guarantee 2)" in p for p in harness.violations(world))


def test_checker_accepts_a_borrow_taken_back_unused() -> None:
    # A lock-free borrow path may publish a borrow, see CLOSING, and take it back.
    world = _world(
        OPENED,
        CLOSING,
        CLOSER_HOLD,
        ("b", "hold", "", State.CLOSING),
        ("b", "unhold", "", State.CLOSING),
    )
    assert not any("guarantee 2" in p for p in harness.violations(world))


def test_checker_reports_a_second_close_func() -> None:
    world = _world(
        OPENED,
        CLOSING,
        ("closer", "close_func", "rawfd=7", State.CLOSING),
        ("other", "close_func", "rawfd=7", State.CLOSING),
    )
    assert any("second time" in p for p in harness.violations(world))


def test_checker_passes_a_clean_close() -> None:
    world = _world(
        OPENED,
        CLOSING,
        CLOSER_HOLD,
        CLOSER_UNHOLD,
        ("closer", "close_func", "rawfd=7", State.CLOSING),
        ("closer", "close_func_end", "", State.CLOSING),
        ("closer", "state", "CLOSING -> CLOSED", State.CLOSED),
    )
    assert harness.violations(world) == []


def test_checker_reports_a_refused_borrow_that_runs_close_func() -> None:
    world = _world(
        OPENED,
        CLOSING,
        CLOSER_HOLD,
        ("b", "call", "do", State.CLOSING),
        ("b", "hold", "", State.CLOSING),
        CLOSER_UNHOLD,
        ("b", "unhold", "", State.CLOSING),
        ("b", "close_func", "rawfd=7", State.CLOSING),
        ("b", "close_func_end", "", State.CLOSING),
        ("b", "state", "CLOSING -> CLOSED", State.CLOSED),
        ("b", "return", "do: ClosedFDError", State.CLOSED),
    )
    assert any("refused, yet ran close_func" in p for p in harness.violations(world))
