"""Every schedule with at most one preemption, and seeded random and PCT
schedules, of each scenario keep the guarantees of specs/rcfd.md.

`make verify` runs the same exploration through tools/explore.py (with more
random and PCT schedules); `make explore-long` raises the preemption bound.
"""

from __future__ import annotations

import sys
from array import array

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
            pytest.fail(
                f"{run.label}: schedule {run.schedules}\n{harness.describe_failure(run.failure)}"
            )
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


def test_checker_reports_two_owners() -> None:
    world = _world(
        OPENED,
        ("c1", "hold", harness.OWNER_HOLD, State.OPEN),
        ("c2", "hold", harness.OWNER_HOLD, State.OPEN),
    )
    assert any("two owners" in p for p in harness.violations(world))


def test_checker_reports_a_closing_state_without_the_freeze() -> None:
    world = _world(OPENED, CLOSING, ("closer", "unfrozen", "CLOSING, ...", State.CLOSING))
    assert any("did not freeze the holders" in p for p in harness.violations(world))


def test_checker_reports_a_count_the_log_does_not_explain() -> None:
    world = _world(OPENED, ("b", "hold", "insert", State.OPEN))
    world.counted = True
    world.events[-1] = Ev("b", "hold", "insert", State.OPEN, 2)  # two counted, one logged
    assert any("borrow_count=2, but the log has 1" in p for p in harness.violations(world))


# The logging containers: each change logged once, and the freeze still refuses.


def test_holders_log_each_change_and_keep_the_freeze() -> None:
    world = World(BY_NAME["borrowers_closer/2"])
    holders = harness.HoldList(world)
    holders.insert(0, 1)  # a borrow (FD.do, Borrow.__enter__): at the front
    holders.insert(0, 5)
    holders.append(6)
    holders += array("L", (2,))  # the owner's borrow (close)
    holders.remove(1)
    holders.remove(5)
    holders.remove(6)
    assert not harness.is_frozen(holders)
    freeze = memoryview(holders)  # what close() stores in _closer.freeze
    assert harness.is_frozen(holders)
    for change in (
        lambda: holders.insert(0, 3),
        lambda: holders.append(3),
        lambda: holders.remove(2),
        lambda: holders.__iadd__(array("L", (4,))),
    ):
        with pytest.raises(BufferError):
            change()
    assert [(ev.what, ev.detail) for ev in world.events] == [
        ("hold", "insert"),
        ("hold", "insert"),
        ("hold", "append"),
        ("hold", harness.OWNER_HOLD),
        ("unhold", "remove"),
        ("unhold", "remove"),
        ("unhold", "remove"),
    ]  # the refused changes logged nothing
    assert list(holders) == [2]
    freeze.release()


def test_tombstones_are_logged_as_releases() -> None:
    world = World(BY_NAME["borrowers_closer/2"])
    fd = world.fd = harness.MonitoredFD(world, None)
    world.counted = True
    fd.close(timeout=10)  # outside a run: plain threads, the same steps (no hang if broken)
    closer = fd._closer
    assert closer is not None and isinstance(closer.released, harness.Tombstones)
    assert [(ev.what, ev.detail, ev.borrows) for ev in world.events] == [
        ("state", "UNINIT -> OPEN", 0),
        ("hold", harness.OWNER_HOLD, 1),
        ("state", "OPEN -> CLOSING", 1),
        ("unhold", "tombstone", 0),  # the owner's release, after the freeze
        ("close_func", "rawfd=7", 0),
        ("close_func_end", "", 0),
        ("state", "CLOSING -> CLOSED", 0),
    ]
    assert harness.violations(world) == []


def test_checker_reports_a_borrow_that_returns_still_counted() -> None:
    world = _world(
        OPENED,
        ("b", "call", "do", State.OPEN),
        ("b", "hold", "insert", State.OPEN),
        ("b", "fn", "rawfd=7", State.OPEN),
        ("b", "fn_end", "", State.OPEN),
        ("b", "return", "do: ok", State.OPEN),
    )
    assert any("still counted" in p for p in harness.violations(world))


def test_checker_reports_a_lost_wake_up_in_a_cut_short_log() -> None:
    world = _world(
        OPENED,
        ("b", "hold", "insert", State.OPEN),
        CLOSING,
        ("b", "unhold", "tombstone", State.CLOSING),
    )
    assert any("lost wake-up" in p for p in harness.violations(world, ended=False))
    assert not any("lost wake-up" in p for p in harness.violations(world))  # the end checks


def test_checker_reports_a_close_waiting_on_an_open_fd_in_a_cut_short_log() -> None:
    world = _world(OPENED, ("closer", "call", "close", State.OPEN))
    assert any("no close began" in p for p in harness.violations(world, ended=False))
