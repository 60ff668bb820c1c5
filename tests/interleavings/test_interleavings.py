"""Every schedule with at most one preemption, and seeded random and PCT
schedules, of each scenario keep the guarantees of specs/rcfd.md.

`make verify` runs the same exploration through tools/explore.py (with more
random and PCT schedules); `make explore-long` raises the preemption bound.
"""

from __future__ import annotations

import sys
import threading
from array import array

import pytest

if sys.version_info < (3, 12):
    pytest.skip(
        "interleaving exploration needs Python 3.12+ (interleave-test is built on "
        "sys.monitoring, PEP 669); run it with `make test PY=3.13`",
        allow_module_level=True,
    )

from rcfd import _fd
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
        ("written", "_state = OPEN (holders not published: UNINIT)", 0),  # FD(rawfd) inits
        ("state", "UNINIT -> OPEN (holders published: rawfd=7, main's close_func)", 0),
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


# Starting UNINIT: init's publication is logged as the FD's opening, and the
# checks of init, track_lifetime and the calls refused before init.


def test_init_is_logged_when_it_publishes_the_holders() -> None:
    world = World(BY_NAME["init_borrow_close/3"])
    world.names[threading.get_ident()] = "t"
    fd = world.fd = harness.MonitoredFD(world, None, uninit=True)
    world.counted = True
    close_func = world.close_func_for("t", harness.RAWFD)
    # Outside a run: plain threads and locks, the same steps (no hang if broken).
    world.call("do", lambda: fd.do(world.borrow_body))
    world.call("close", fd.close)
    world.call("init(rawfd=7)", lambda: fd.init(harness.RAWFD, close_func))
    world.call("do", lambda: fd.do(world.borrow_body))
    world.call("close", fd.close)
    assert isinstance(fd._holders, harness.HoldList)
    assert len(_fd._NO_BORROWS) == 0 and harness.is_frozen(_fd._NO_BORROWS)  # still shared
    assert [(ev.what, ev.detail, ev.state) for ev in world.events][:8] == [
        ("call", "do", State.UNINIT),
        ("return", "do: UninitializedFDError", State.UNINIT),
        ("call", "close", State.UNINIT),
        ("return", "close: UninitializedFDError", State.UNINIT),
        ("call", "init(rawfd=7)", State.UNINIT),
        ("written", "_state = OPEN (holders not published: UNINIT)", State.UNINIT),
        ("state", "UNINIT -> OPEN (holders published: rawfd=7, t's close_func)", State.OPEN),
        ("return", "init(rawfd=7): ok", State.OPEN),
    ]
    assert ("close_func", "rawfd=7 (t's)", State.CLOSING) in [
        (ev.what, ev.detail, ev.state) for ev in world.events
    ]
    assert harness.violations(world) == []


def test_checker_reports_an_exception_rcfd_does_not_document() -> None:
    world = _world(
        ("c", "call", "close", State.UNINIT), ("c", "return", "close: BufferError", State.UNINIT)
    )
    assert any("documented errors" in p for p in harness.violations(world))


def test_checker_reports_a_refused_call_that_changed_the_fd() -> None:
    world = _world(
        ("c", "call", "close", State.UNINIT),
        ("c", "hold", harness.OWNER_HOLD, State.UNINIT),
        ("c", "unhold", "tombstone", State.UNINIT),
        ("c", "return", "close: UninitializedFDError", State.UNINIT),
    )
    assert any("refused call changes nothing" in p for p in harness.violations(world))


def test_checker_reports_a_refusal_as_uninit_of_an_open_fd() -> None:
    world = _world(
        OPENED,
        ("b", "call", "do", State.OPEN),
        ("b", "return", "do: UninitializedFDError", State.OPEN),
    )
    assert any("refused as UNINIT, yet the FD was OPEN" in p for p in harness.violations(world))


def test_checker_reports_a_borrow_taken_before_init_published() -> None:
    world = _world(
        ("i", "published", "holders, while _state is UNINIT", State.UNINIT),
        ("b", "hold", "insert", State.UNINIT),
        ("b", "fn", "rawfd=-1", State.UNINIT),
    )
    problems = harness.violations(world, ended=False)
    assert any("borrows succeed while the FD reads UNINIT" in p for p in problems)
    assert any("borrow taken in UNINIT" in p for p in problems)


def test_checker_reports_two_inits_that_succeed() -> None:
    world = _world(
        ("i1", "call", "init(rawfd=7)", State.UNINIT),
        ("i1", "state", "UNINIT -> OPEN (holders published: rawfd=7, i1's close_func)", State.OPEN),
        ("i1", "return", "init(rawfd=7): ok", State.OPEN),
        ("i2", "call", "init(rawfd=8)", State.OPEN),
        ("i2", "republished", "holders (0 borrow(s) in the replaced ones)", State.OPEN),
        ("i2", "return", "init(rawfd=8): ok", State.OPEN),
    )
    problems = harness.violations(world)
    assert any("a second init got past its check" in p for p in problems)
    assert any("a second init succeeded (i1, i2)" in p for p in problems)
    assert any("the FD was OPEN when called" in p for p in problems)


def test_checker_reports_a_track_accepted_after_init() -> None:
    world = _world(
        OPENED,
        ("t", "call", "track_lifetime", State.OPEN),
        ("t", "return", "track_lifetime: ok", State.OPEN),
    )
    assert any("only an UNINIT FD accepts it" in p for p in harness.violations(world))


def test_checker_reports_a_close_func_init_did_not_install() -> None:
    world = _world(
        ("i1", "state", "UNINIT -> OPEN (holders published: rawfd=7, i1's close_func)", State.OPEN),
        CLOSING,
        ("closer", "close_func", "rawfd=8 (i2's)", State.CLOSING),
    )
    assert any("only the initialized number" in p for p in harness.violations(world))


def test_checker_reports_an_init_that_published_what_it_was_not_passed() -> None:
    world = _world(
        ("i1", "state", "UNINIT -> OPEN (holders published: rawfd=8, i2's close_func)", State.OPEN),
    )
    world.close_func_for("i1", harness.RAWFD)
    assert any("not the rawfd=7 and close_func it passed" in p for p in harness.violations(world))
